"""The Kafka edge: delivery (produce and commit), checkpoint (the state topic), topics, client
configurations, fault injection and the embedded Tansu broker launcher."""
