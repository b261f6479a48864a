"""Client-named paths stay under the service's allowed_paths, and a sink deletes only its own files.

Before: a files/Delta sink's ``path`` and a hub's Capture ``destination`` could name any server folder,
a ``path_pattern`` field rendered empty made an absolute path (``{a}/{b}`` with a="" -> ``/b``), and
creating a files sink over a folder deleted the ``.inprogress`` files already in it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import ingestion_pb2, sink_pb2_grpc
from headwater.v1 import sink_pb2 as spb
from tests.conftest import conn_for
from tests.integration.ingestion_support import create_hub
from tests.integration.test_sink_service import create, rpc, write


def _sink(service_process, data: Path):
    return service_process("sink", "--data-dir", str(data), env={"HEADWATER_SINK_DASHBOARD_PORT": "-1"})


async def _refused(coro) -> HeadwaterError:
    with pytest.raises(HeadwaterError) as info:
        await coro
    return info.value


async def test_files_and_delta_paths_outside_allowed_paths_are_refused(service_process, root_policy, tmp_path,
                                                                       _isolated_home):
    data = tmp_path / "sinkdata"
    proc = _sink(service_process, data)
    (data / "link").symlink_to(_isolated_home)  # a symlink inside the root that leads out
    outside = [str(tmp_path / "elsewhere"), "../elsewhere", "link/out", str(_isolated_home), "/etc/headwater-x",
               "file:///tmp/headwater-x"]
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        for kind in ("files", "delta"):
            for n, path in enumerate(outside):
                err = await _refused(create(stub, f"{kind}{n}", kind=kind, path=path))
                assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "path", (kind, path)
                assert "allowed" in err.message
        for n, prefix in enumerate(["../../../tmp/evil", "a/b", ".hidden", ""]):
            err = await _refused(create(stub, f"pre{n}", kind="files", path="out", prefix=prefix))
            assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "prefix", prefix
        # Relative paths resolve under the root.
        sink = await create(stub, "rel", kind="files", path="out/trips")
        assert sink.config["path"] == str((data / "out" / "trips").resolve())
    assert not (tmp_path / "elsewhere").exists() and not (_isolated_home / "out").exists()


async def test_empty_path_pattern_field_does_not_escape_the_folder(service_process, root_policy, tmp_path):
    data = tmp_path / "sinkdata"
    proc = _sink(service_process, data)
    prefix = f"esc{uuid.uuid4().hex[:8]}"
    target = Path("/tmp")
    try:
        async with aio_channel(conn_for(proc.address, root_policy)) as ch:
            stub = sink_pb2_grpc.SinkServiceStub(ch)
            await create(stub, "pp", kind="files", path="out", path_pattern="{a}/{b}", prefix=prefix)
            # a="" rendered "/tmp": the file landed in the server's /tmp.
            await write(stub, "pp", pa.table({"a": [""], "b": ["tmp"], "v": [1]}), ckpt=1, commit=True)
        assert not list(target.glob(f"{prefix}-*")), "the rendered path escaped the sink's folder"
        files = list((data / "out").rglob(f"{prefix}-*"))
        assert [f.relative_to(data / "out").parts[:2] for f in files] == [("_", "tmp")]
    finally:
        for f in target.glob(f"{prefix}-*"):
            f.unlink()


async def test_files_sink_never_deletes_files_it_did_not_write(service_process, root_policy, tmp_path):
    data = tmp_path / "sinkdata"
    folder = data / "shared"
    (folder / "sub").mkdir(parents=True)
    foreign = [folder / "data.csv", folder / ".cache.inprogress", folder / "sub" / ".other.jsonl.inprogress",
               folder / "part-deadbeef-000000000005-0000.jsonl", folder / "_headwater" / "notes.txt"]
    for f in foreign:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("not yours")
    proc = _sink(service_process, data)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "over", kind="files", path="shared")
        await write(stub, "over", pa.table({"v": [1, 2]}), ckpt=1, commit=True)
        await write(stub, "over", pa.table({"v": [3]}), ckpt=2, commit=False)  # left uncommitted
    proc.kill()
    assert all(f.exists() for f in foreign)
    proc = _sink(service_process, data)  # restart: its own uncommitted checkpoint is removed, nothing else
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await write(stub, "over", pa.table({"v": [4]}), ckpt=3, commit=True)
    assert [f for f in foreign if not f.exists()] == []
    ours = sorted(p.name for p in folder.glob("part-*.jsonl") if p.name != "part-deadbeef-000000000005-0000.jsonl")
    assert len(ours) == 2 and not any("-000000000002-" in n for n in ours), ours


async def test_capture_destination_and_name_format_stay_under_allowed_paths(service_process, root_policy,
                                                                             tmp_path, _isolated_home):
    data = tmp_path / "ing"
    proc = service_process("ingestion", "--data-dir", str(data))
    for n, (dest, fmt, field) in enumerate([
            (str(tmp_path / "elsewhere"), "", "hub.capture.destination"),
            ("../elsewhere", "", "hub.capture.destination"),
            (str(_isolated_home), "", "hub.capture.destination"),
            ("", "../../../{EventHub}/{PartitionId}", "hub.capture.archive_name_format"),
            ("", "/tmp/{EventHub}", "hub.capture.archive_name_format"),
            ("", "{Nope}/{EventHub}", "hub.capture.archive_name_format")]):
        cap = ingestion_pb2.CaptureDescription(enabled=True, interval={"seconds": 60}, destination=dest,
                                               archive_name_format=fmt)
        err = await _refused(rpc(create_hub(proc.address, root_policy, f"cap{n}", 1, capture=cap)))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == field, (dest, fmt, err)
    hub = await create_hub(proc.address, root_policy, "capok", 1, capture=ingestion_pb2.CaptureDescription(
        enabled=True, interval={"seconds": 60}, destination="captured"))
    assert hub.capture.destination == str((data / "captured").resolve())


async def test_sink_outside_new_roots_is_kept_until_allowed_again(service_process, root_policy, tmp_path):
    data, lake = tmp_path / "sinkdata", tmp_path / "lake"
    wide = {"HEADWATER_SINK_DASHBOARD_PORT": "-1", "HEADWATER_SINK_ALLOWED_PATHS": str(tmp_path)}
    proc = service_process("sink", "--data-dir", str(data), env=wide)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        await create(sink_pb2_grpc.SinkServiceStub(ch), "lake", kind="files", path=str(lake))
    proc.kill()
    proc = _sink(service_process, data)  # allowed_paths back to the data folder: not restored, not forgotten
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        err = await _refused(rpc(stub.GetSink(spb.GetSinkRequest(name="sinks/lake"))))
        assert err.reason is Reason.RESOURCE_NOT_FOUND
        await create(stub, "other", kind="memory")
    proc.kill()
    proc = service_process("sink", "--data-dir", str(data), env=wide)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        got = await rpc(sink_pb2_grpc.SinkServiceStub(ch).ListSinks(spb.ListSinksRequest()))
        assert sorted(s.name for s in got.sinks) == ["sinks/lake", "sinks/other"]
