"""modelops: take a BentoML model from prototype to production through a Locust promotion gate."""

__version__ = "0.1.0"
