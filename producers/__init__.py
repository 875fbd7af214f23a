"""Event producers for streamdrift: the inference-side client (`client`), simulated model traffic
(`simulate`) and real-data replay (`replay`) with injectable drift scenarios (`scenarios`),
played into Kafka or JSON-lines files (`play`, `sinks`). Command line: `python -m producers --help`."""
