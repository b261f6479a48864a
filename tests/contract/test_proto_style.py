"""DESIGN-critical contract rules, checked on a descriptor set built with source info.

buf lint (STANDARD + COMMENTS) runs in `make lint` through npx; these repeat the
rules that matter most so `make test` needs no npm.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOS = sorted((ROOT / "protos" / "headwater" / "v1").glob("*.proto"))
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[descriptor_pb2.FileDescriptorProto]:
    out = tmp_path_factory.mktemp("desc") / "set.pb"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}", "--include_source_info",
         f"--descriptor_set_out={out}", *[str(p.relative_to(ROOT / "protos")) for p in PROTOS]],
        check=True, cwd=ROOT / "protos",
    )
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return [f for f in fds.file if f.name.startswith("headwater/")]


def _comments(f: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {tuple(loc.path): (loc.leading_comments or loc.trailing_comments).strip()
            for loc in f.source_code_info.location}


def _walk(f):
    """Yield (kind, full name, path) for every element that needs a comment."""
    def msgs(prefix, path, messages):
        for i, m in enumerate(messages):
            mp = path + (i,)
            yield "message", f"{prefix}{m.name}", mp, m
            for j, fld in enumerate(m.field):
                yield "field", f"{prefix}{m.name}.{fld.name}", mp + (2, j), fld
            for j, e in enumerate(m.enum_type):
                yield from enums(f"{prefix}{m.name}.", mp + (4, j), e)
            yield from msgs(f"{prefix}{m.name}.", mp + (3,), [n for n in m.nested_type if not n.options.map_entry])

    def enums(prefix, path, e):
        yield "enum", f"{prefix}{e.name}", path, e
        for j, v in enumerate(e.value):
            yield "enum value", f"{prefix}{e.name}.{v.name}", path + (2, j), v

    yield from msgs("", (4,), f.message_type)
    for i, e in enumerate(f.enum_type):
        yield from enums("", (5, i), e)
    for i, s in enumerate(f.service):
        yield "service", s.name, (6, i), s
        for j, m in enumerate(s.method):
            yield "rpc", f"{s.name}.{m.name}", (6, i, 2, j), m


def test_package_is_headwater_v1(files):
    assert files
    for f in files:
        assert f.package == "headwater.v1", f.name


def test_every_element_is_commented(files):
    missing = []
    for f in files:
        comments = _comments(f)
        for kind, name, path, _ in _walk(f):
            if not comments.get(path):
                missing.append(f"{f.name}: {kind} {name}")
    assert not missing, "uncommented contract elements:\n" + "\n".join(missing)


def test_names_follow_the_style(files):
    bad = []
    for f in files:
        for kind, name, _, el in _walk(f):
            if kind == "field" and not SNAKE.match(el.name):
                bad.append(f"{name}: fields are snake_case")
            if kind == "enum":
                zero = el.value[0]
                if zero.number != 0 or not zero.name.endswith("_UNSPECIFIED"):
                    bad.append(f"{name}: the zero value must be *_UNSPECIFIED")
                for v in el.value:
                    if not UPPER_SNAKE.match(v.name):
                        bad.append(f"{name}.{v.name}: enum values are UPPER_SNAKE_CASE")
    assert not bad, "\n".join(bad)


def test_rpcs_have_their_own_request_and_response(files):
    bad = []
    for f in files:
        for s in f.service:
            for m in s.method:
                if m.input_type.rsplit(".", 1)[-1] != f"{m.name}Request":
                    bad.append(f"{s.name}.{m.name} takes {m.input_type}")
                if m.output_type.rsplit(".", 1)[-1] != f"{m.name}Response":
                    bad.append(f"{s.name}.{m.name} returns {m.output_type}")
    assert not bad, "\n".join(bad)


def test_every_list_rpc_is_paginated(files):
    messages = {f".{f.package}.{m.name}": m for f in files for m in f.message_type}
    bad = []
    for f in files:
        for s in f.service:
            for m in s.method:
                if not m.name.startswith("List"):
                    continue
                req = {fl.name for fl in messages[m.input_type].field}
                resp = {fl.name for fl in messages[m.output_type].field}
                if not {"page_size", "page_token"} <= req or "next_page_token" not in resp:
                    bad.append(f"{s.name}.{m.name}")
    assert not bad, "List RPCs without page_size/page_token/next_page_token: " + ", ".join(bad)


def test_the_four_services_are_defined(files):
    services = {s.name for f in files for s in f.service}
    assert {"ProcessingService"} <= services
    # The other three land with their issues; each must be a *Service.
    assert all(name.endswith("Service") for name in services)


def test_every_proto_has_the_same_language_options():
    """Go, Java and C# clients generate from protos/ with no path-mapping flags."""
    import re

    root = Path(__file__).resolve().parents[2] / "protos" / "headwater" / "v1"
    seen = {}
    for proto in sorted(root.glob("*.proto")):
        text = proto.read_text()
        opts = dict(re.findall(r'^option (\w+) = "?([^";]+)"?;', text, flags=re.M))
        for name in ("go_package", "java_package", "java_multiple_files", "csharp_namespace", "java_outer_classname"):
            assert name in opts, f"{proto.name}: option {name} missing"
        for name in ("go_package", "java_package", "java_multiple_files", "csharp_namespace"):
            seen.setdefault(name, set()).add(opts[name])
    assert all(len(values) == 1 for values in seen.values()), seen


def test_google_rpc_protos_are_vendored():
    root = Path(__file__).resolve().parents[2] / "protos" / "google" / "rpc"
    for name in ("status.proto", "error_details.proto"):
        assert "package google.rpc;" in (root / name).read_text()
    assert "message ErrorInfo" in (root / "error_details.proto").read_text()
