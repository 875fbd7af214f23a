"""streamdrift: a Kafka sidecar that watches ML model inputs, outputs and outcomes for drift.

Data flow: service (the Kafka loop) → core (events, pipeline, monitors, alerts: pure logic) →
kafka (delivery: produce and commit) and http (metrics). backtest replays history through the
core; commands are the `streamdrift` command line. README.md, Layout, says what lives where.
"""

__version__ = "0.1.0"
