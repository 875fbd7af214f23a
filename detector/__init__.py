"""streamdrift: a Kafka sidecar that watches ML model inputs, outputs and outcomes for drift.

Data flow, one module each: consume (Kafka loop) → events (decode, validate) → pipeline
(route per partition and model) → monitors (reference, detectors, lifecycle) → alerts
(CloudEvents) and metrics → delivery (produce and commit).
"""

__version__ = "0.1.0"
