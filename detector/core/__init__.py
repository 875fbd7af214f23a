"""Pure logic, no Kafka, no HTTP, no files: events (decode, validate) → pipeline (route per
partition and model) → monitors (reference, detectors, lifecycle) → alerts; calibration of the
detectors' thresholds; state (the checkpoint record codec, restore selection)."""
