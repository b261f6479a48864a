"""The Kafka protocol endpoint of the ingestion service, as Event Hubs has on port 9093.

Unmodified Kafka clients (kafka-python, aiokafka, confluent-kafka/librdkafka,
the Java client) produce to and consume from hubs: topic = hub, partition =
partition, offset = sequence number, consumer group = consumer group. See
docs/kafka.md for the APIs, versions, mapping and SASL settings.

The listener (:mod:`.broker`) and kafka-python are imported when first asked for, not with this
package: the service binds the port at start and loads them at the first connection.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from typing import TYPE_CHECKING, Any

from headwater.listeners import Closer, DeferredListener
from headwater.server import http_ssl_context

if TYPE_CHECKING:
    from headwater.services.ingestion.kafka.broker import KafkaListener

__all__ = ["KafkaListener", "start_kafka_endpoint"]


async def start_kafka_endpoint(servicer: Any, config: Any, port: int) -> DeferredListener:
    """Bind the Kafka port now (OSError as ``asyncio.start_server`` raises it; TLS set up now);
    import kafka-python and start the :class:`KafkaListener` (its group coordinator with it) at the
    first connection, which it then serves."""
    ssl_context = http_ssl_context(config)

    async def open_listener(sockets: list[socket.socket]) -> Closer:
        broker = await asyncio.to_thread(importlib.import_module, "headwater.services.ingestion.kafka.broker")
        listener = broker.KafkaListener(servicer, config)
        try:
            await listener.serve(sockets, ssl_context)
        except BaseException:
            await listener.stop()
            raise
        return listener.stop

    return await DeferredListener.bind("Kafka endpoint", config.host, port, open_listener)


def __getattr__(name: str) -> Any:
    if name == "KafkaListener":
        from headwater.services.ingestion.kafka.broker import KafkaListener

        return KafkaListener
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
