"""The Kafka protocol endpoint of the ingestion service, as Event Hubs has on port 9093.

Unmodified Kafka clients (kafka-python, aiokafka, confluent-kafka/librdkafka,
the Java client) produce to and consume from hubs: topic = hub, partition =
partition, offset = sequence number, consumer group = consumer group. See
docs/kafka.md for the APIs, versions, mapping and SASL settings.
"""

from __future__ import annotations

from headwater.services.ingestion.kafka.broker import KafkaListener

__all__ = ["KafkaListener"]
