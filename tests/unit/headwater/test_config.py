"""Configuration: defaults < file < environment < arguments, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from headwater.config import ConfigError, ServiceConfig, load_config


@dataclass
class HubConfig(ServiceConfig):
    max_partitions: int = 32
    fsync: str = "interval"


def test_defaults_take_the_design_ports():
    cfg = load_config(HubConfig, "ingestion", env={})
    assert (cfg.grpc_port, cfg.metrics_port) == (50051, 9101)
    assert cfg.max_partitions == 32 and cfg.service_name == "ingestion"


def test_file_then_env_then_arguments(tmp_path):
    f = tmp_path / "hw.yaml"
    f.write_text("ingestion:\n  max_partitions: 8\n  fsync: always\n  log_level: DEBUG\n")
    env = {"HEADWATER_INGESTION_MAX_PARTITIONS": "16", "HEADWATER_AUTH_ENABLED": "false"}
    cfg = load_config(HubConfig, "ingestion", f, env=env, grpc_port=0)
    assert cfg.max_partitions == 16 and cfg.fsync == "always" and cfg.log_level == "DEBUG"
    assert cfg.auth_enabled is False and cfg.grpc_port == 0


def test_bad_values_name_the_setting_and_source(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(HubConfig, "ingestion", env={"HEADWATER_INGESTION_MAX_PARTITIONS": "many"})
    assert "max_partitions" in info.value.message
    assert "HEADWATER_INGESTION_MAX_PARTITIONS" in info.value.message
    f = tmp_path / "hw.yaml"
    f.write_text("max_partitons: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(HubConfig, "ingestion", f, env={})
    assert "unknown setting 'max_partitons'" in info.value.message
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(HubConfig, "ingestion", tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match="log_level"):
        load_config(HubConfig, "ingestion", env={"HEADWATER_LOG_LEVEL": "LOUD"})
    with pytest.raises(ConfigError, match="go together"):
        load_config(HubConfig, "ingestion", env={"HEADWATER_TLS_CERT_FILE": "x.pem"})
