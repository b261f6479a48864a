"""headwater.secrets: the store's files and names, reference resolution, what readers see."""

from __future__ import annotations

import os
import stat

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.secrets import (
    SecretStore,
    keep_references,
    redact_config,
    redact_job,
    resolve_config,
    unmask_job,
)
from headwater.v1 import processing_pb2 as pb


def test_store_files_are_private_and_names_full_match(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    store.set("pg-dsn", "host=x password=p")
    assert stat.S_IMODE(os.stat(tmp_path / "secrets").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "secrets" / "pg-dsn").st_mode) == 0o600
    assert store.list() == ["pg-dsn"] and store.get("secrets/pg-dsn") == "host=x password=p"
    for bad in ("../x", "a/b", "x\n", "", ".hidden", "x" * 64):
        with pytest.raises(HeadwaterError) as info:
            store.set(bad, "v")
        assert info.value.reason is Reason.INVALID_ARGUMENT
    with pytest.raises(HeadwaterError, match="cannot itself be"):
        store.set("loop", "secret:pg-dsn")
    store.delete("pg-dsn")
    with pytest.raises(HeadwaterError) as info:
        store.delete("pg-dsn")
    assert info.value.reason is Reason.RESOURCE_NOT_FOUND
    store.delete("pg-dsn", allow_missing=True)


def test_references_resolve_and_are_kept_where_validation_kept_the_value(tmp_path):
    store = SecretStore(tmp_path)
    store.set("tok", "Bearer abc")
    store.set("dsn", "host=db")
    config = {"dsn": "secret:dsn", "headers": {"Authorization": "secret:tok", "X": "1"}, "table": "t"}
    resolved = resolve_config(config, store)
    assert resolved == {"dsn": "host=db", "headers": {"Authorization": "Bearer abc", "X": "1"}, "table": "t"}
    assert keep_references(config, resolved, {**resolved, "table": "T"}) == {**config, "table": "T"}
    with pytest.raises(HeadwaterError) as info:
        resolve_config({"dsn": "secret:missing"}, store)
    assert info.value.metadata["field"] == "dsn" and info.value.reason is Reason.INVALID_ARGUMENT


def test_readers_see_masks_or_reference_names():
    shown = redact_config({"dsn": "host=db password=p", "url": "http://x", "connection_string": "secret:hub",
                           "headers": {"Authorization": "Bearer abc"}, "storage_options": {"AWS_SECRET": "k"},
                           "table": "t"})
    assert shown == {"dsn": "***", "url": "http://x", "connection_string": "secret:hub",
                     "headers": {"Authorization": "***"}, "storage_options": {"AWS_SECRET": "***"}, "table": "t"}
    job = pb.Job(inputs=[pb.JobInput(alias="i", connection_string="Endpoint=x;SharedAccessKey=k")],
                 outputs=[pb.JobOutput(alias="o", connection_string="secret:out")])
    masked = redact_job(job)
    assert masked.inputs[0].connection_string == "***" and masked.outputs[0].connection_string == "secret:out"
    assert job.inputs[0].connection_string.endswith("=k")  # the stored job is untouched
    assert unmask_job(masked, job).inputs[0].connection_string == job.inputs[0].connection_string
