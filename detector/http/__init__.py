"""The HTTP edge: health and Prometheus endpoints, and the metrics they expose."""
