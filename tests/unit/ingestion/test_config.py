"""Ingestion settings: defaults, environment, clear errors."""

from __future__ import annotations

import pytest

from headwater.config import ConfigError, load_config
from headwater.services.ingestion.config import IngestionConfig


def test_defaults_and_environment():
    cfg = load_config(IngestionConfig, "ingestion", None, env={"HEADWATER_INGESTION_FSYNC_POLICY": "every_batch",
                                                               "HEADWATER_INGESTION_MAX_PARTITIONS": "8"})
    assert cfg.grpc_port == 50051 and cfg.http_port == 8081
    assert cfg.fsync_policy == "every_batch" and cfg.max_partitions == 8
    assert cfg.max_message_bytes == 1024 * 1024 and cfg.default_retention_s == 7 * 86400


@pytest.mark.parametrize("env,words", [
    ({"HEADWATER_INGESTION_FSYNC_POLICY": "sometimes"}, "every_batch, interval, never"),
    ({"HEADWATER_INGESTION_MAX_PARTITIONS": "0"}, "max_partitions"),
    ({"HEADWATER_INGESTION_SEGMENT_MAX_BYTES": "ten"}, "segment_max_bytes"),
    ({"HEADWATER_INGESTION_LOG_BACKEND": "kafka"}, "embedded, nats"),
])
def test_bad_settings_name_the_setting(env, words):
    with pytest.raises(ConfigError) as err:
        load_config(IngestionConfig, "ingestion", None, env=env)
    assert words in str(err.value)
