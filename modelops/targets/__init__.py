"""Target drivers: one interface (base.Target), three implementations (local, kubernetes, aws)."""
