"""After promotion: prediction logs, drift, anomalies, concept drift and the Prometheus rules."""
