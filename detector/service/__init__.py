"""The live process: the core composed with the Kafka and HTTP edges."""
