"""Rights on the Kafka endpoint, as Event Hubs has them: SASL PLAIN with ``$ConnectionString`` and a
connection string; Send to produce, Listen to fetch and commit, Manage to create and delete topics;
unsupported APIs and versions get an error code back, never a closed socket."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.admin.cluster import DescribeClusterRequest, DescribeClusterResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from headwater.auth import AUTH_FAILED, Policy, Right
from tests.integration.ingestion_support import add_policy, conn_str
from tests.integration.kafka_support import Raw, confluent_conf, create_hub, kafka_port

KAFKA_SASL_AUTHENTICATION_FAILED = 58
KAFKA_TOPIC_AUTHORIZATION_FAILED = 29
KAFKA_UNSUPPORTED_VERSION = 35


@pytest.fixture
def svc(service_process, tmp_path, root_policy):
    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    create_hub(proc, root_policy, "h", 2)
    return proc


def _sasl(raw: Raw, password: str):
    hs = raw.call(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse, 1)
    assert hs.error_code == 0 and hs.mechanisms == ["PLAIN"]
    token = b"\x00$ConnectionString\x00" + password.encode()
    return raw.call(SaslAuthenticateRequest(auth_bytes=token), SaslAuthenticateResponse, 2)


def test_bad_sasl_password_gets_sasl_authentication_failed(svc, root_policy):
    port = kafka_port(svc)
    wrong = Policy(root_policy.name, "d3Jvbmcga2V5", root_policy.rights)
    raw = Raw(port)
    try:
        resp = _sasl(raw, conn_str(svc.address, wrong))
        assert resp.error_code == KAFKA_SASL_AUTHENTICATION_FAILED
        assert resp.error_message == AUTH_FAILED  # one message for every failure (docs/security.md)
        # The connection stays open; unauthenticated, it sees no topic.
        meta = raw.call(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="h")]),
                        MetadataResponse, 12)
        assert [t.error_code for t in meta.topics] == [KAFKA_TOPIC_AUTHORIZATION_FAILED]
        assert _sasl(raw, conn_str(svc.address, root_policy)).error_code == 0
    finally:
        raw.close()
    # A real client reports the authentication failure.
    failed = threading.Event()
    errors = []

    def on_error(err):
        errors.append(err)
        if err.code() == KafkaError._AUTHENTICATION:
            failed.set()

    producer = Producer(confluent_conf(port, svc, wrong, error_cb=on_error))
    producer.produce("h", b"x")
    for _ in range(100):
        producer.poll(0.1)
        if failed.is_set():
            break
    assert failed.is_set(), errors
    assert producer.flush(0) == 1  # nothing was accepted
    producer.purge()


def test_listen_only_key_cannot_produce_but_consumes(svc, _isolated_home, root_policy):
    port = kafka_port(svc)
    listen = add_policy(_isolated_home, "kafka-listen", Right.LISTEN)
    results = []
    producer = Producer(confluent_conf(port, svc, listen, **{"message.send.max.retries": 0}))
    producer.produce("h", b"refused", partition=0, on_delivery=lambda err, msg: results.append(err))
    producer.flush(20)
    assert len(results) == 1 and results[0] is not None
    assert results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The root key produces; the Listen key reads it back and commits.
    ok = Producer(confluent_conf(port, svc, root_policy))
    ok.produce("h", b"accepted", partition=0)
    assert ok.flush(20) == 0
    consumer = Consumer(confluent_conf(port, svc, listen, **{"group.id": "listeners", "enable.auto.commit": False}))
    consumer.assign([TopicPartition("h", 0, 0)])
    msgs = []
    while not msgs:
        msgs = [m for m in consumer.consume(1, 5) if not m.error()]
    assert msgs[0].value() == b"accepted"
    consumer.commit(message=msgs[0], asynchronous=False)
    assert consumer.committed([TopicPartition("h", 0)], timeout=10)[0].offset == msgs[0].offset() + 1
    consumer.close()


def test_only_manage_creates_and_deletes_topics(svc, _isolated_home, root_policy):
    port = kafka_port(svc)
    send = add_policy(_isolated_home, "kafka-send", Right.SEND)
    send_admin = AdminClient(confluent_conf(port, svc, send))
    with pytest.raises(Exception) as err:
        send_admin.create_topics([NewTopic("new-topic", 3)])["new-topic"].result(20)
    assert err.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(confluent_conf(port, svc, root_policy))
    admin.create_topics([NewTopic("new-topic", 3)])["new-topic"].result(20)
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics["new-topic"].partitions) == 3
    with pytest.raises(Exception) as err:
        admin.create_topics([NewTopic("new-topic", 3)])["new-topic"].result(20)
    assert err.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    admin.delete_topics(["new-topic"])["new-topic"].result(20)
    assert "new-topic" not in admin.list_topics(timeout=10).topics


def test_unsupported_api_and_version_get_an_error_code(svc, root_policy):
    raw = Raw(kafka_port(svc))
    try:
        assert _sasl(raw, conn_str(svc.address, root_policy)).error_code == 0
        # DescribeCluster is not served; Metadata v13 is past the highest version offered.
        resp = raw.call(DescribeClusterRequest(), DescribeClusterResponse, 0)
        assert resp.error_code == KAFKA_UNSUPPORTED_VERSION
        resp = raw.call(MetadataRequest(topics=None), MetadataResponse, 13)
        assert resp.error_code == KAFKA_UNSUPPORTED_VERSION
        # ... and the connection still answers.
        meta = raw.call(MetadataRequest(topics=None), MetadataResponse, 12)
        assert [t.name for t in meta.topics] == ["h"]
    finally:
        raw.close()


def test_sasl_ssl_when_the_service_has_tls(tmp_path, _isolated_home, root_policy):
    """With a certificate configured, the Kafka port is TLS: SASL_SSL exactly as for Event Hubs."""
    import subprocess

    from headwater.procs import ServiceProcess, headwater_cmd

    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    proc = ServiceProcess("ingestion", [*headwater_cmd(), "serve", "ingestion", "--port", "0", "--metrics-port", "-1",
                                        "--data-dir", str(tmp_path / "data")],
                          env={"HEADWATER_HOME": str(_isolated_home), "HEADWATER_TLS_CERT_FILE": str(crt),
                               "HEADWATER_TLS_KEY_FILE": str(key), "HEADWATER_INGESTION_HTTP_PORT": "-1"})
    proc.start(timeout=30, check_health=False)  # health over plaintext would be refused
    try:
        conf = confluent_conf(kafka_port(proc), proc, root_policy, **{
            "security.protocol": "SASL_SSL", "ssl.ca.location": str(crt)})
        admin = AdminClient(conf)
        admin.create_topics([NewTopic("secure", 1)])["secure"].result(20)
        producer = Producer(conf)
        producer.produce("secure", b"over tls", b"k")
        assert producer.flush(20) == 0
        consumer = Consumer({**conf, "group.id": "tls-readers"})
        consumer.assign([TopicPartition("secure", 0, 0)])
        msgs = []
        while not msgs:
            msgs = [m for m in consumer.consume(1, 5) if not m.error()]
        consumer.close()
        assert (msgs[0].key(), msgs[0].value()) == (b"k", b"over tls")
        # Plaintext Kafka on the TLS port gets nowhere.
        reports = []
        plain = Producer(confluent_conf(kafka_port(proc), proc, root_policy, **{"message.timeout.ms": 3000}))
        plain.produce("secure", b"x", on_delivery=lambda err, msg: reports.append(err))
        plain.flush(10)
        assert len(reports) == 1 and reports[0] is not None
    finally:
        proc.kill()
