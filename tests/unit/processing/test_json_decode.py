"""The compiled typed JSON decode (exec/jsondecode.py) against the event-by-event decode:
random and adversarial bodies, written as raw JSON text so that they can be anything.
Where the compiled decode gives a batch, every value is what ``loads_json`` gives (in the
column's type); where the event-by-event decode fails or gives a value the column cannot
hold, the compiled decode declines (``ROWS``). Through the engine, both paths give the
same rows and counters."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import orjson
import polars as pl
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.serializers import DecodeError, loads_json
from headwater.services.processing.engine import OrderingPolicy, compile_query, format_rows
from headwater.services.processing.exec import jsondecode
from headwater.services.processing.exec.jsondecode import KERNELS, ROWS, TypedDecoder

SCHEMA = {"s": pl.Utf8, "i": pl.Int64, "f": pl.Float64, "b": pl.Boolean, "Mixed": pl.Utf8}
TEXTS = [b'""', b'"abc"', b'"12"', b'"true"', b'"{}"', b'"caf\xc3\xa9"', b'"\xf0\x9f\x98\x80"', b'"a\\"b"',
         b'"\\\\"', b'"\\/"', b'"\\b\\f\\n\\r\\t"', b'"\\u0041\\u00e9\\u20ac"', b'"\\ud83d\\ude00"', b'"\\u0000"',
         b'"\x7f"', b'"San Francisco"', b'"2024-01-01T00:00:00.000Z"', b'"\\uD83D\\uDE00x"']
BAD_TEXTS = [b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\x01"', b'"a\nb"', b'"\xff"', b'"\xc3"', b'"\xed\xa0\x80"',
             b'"\xe0\x80\x80"', b'"\xf4\x90\x80\x80"', b'"\\x"', b'"\\u12"', b'"abc', b"'abc'"]
INTS = [b"0", b"-0", b"7", b"-42", b"123456789012345678", b"-123456789012345678", b"999999999999999999",
        b"9223372036854775807", b"-9223372036854775808", b"9223372036854775808", b"18446744073709551616",
        b"1" + b"0" * 30, b"1" + b"0" * 400]
FLOATS = [b"0.0", b"-0.0", b"1.5", b"-2.25", b"12.05", b"0.05", b"0.000001", b"1e5", b"1E+2", b"1e-0", b"2.5e-3",
          b"1.7976931348623157e308", b"1e308", b"1e309", b"-1e400", b"5e-324", b"2.2250738585072014e-308",
          b"1.2345678901234567890123e-5", b"123456789012345678901234567890.5", b"0." + b"0" * 40 + b"1",
          b"9007199254740993.0", b"1e22", b"1e23", b"4.35", b"0.1", b"1e-99999"]
BAD_NUMBERS = [b"01", b"1.", b".5", b"+1", b"1e", b"1e+", b"-", b"--1", b"0x10", b"NaN", b"Infinity", b"1.e5"]
OTHER = [b"true", b"false", b"null", b"[]", b"{}", b'[1, "x", {"a": [null]}]', b'{"a": {"b": [1, 2.5, "\\u0041"]}}',
         b"[[[[]]]]", b'{"q": 1e400}', b'[' * 600 + b']' * 600]
BAD_OTHER = [b"tru", b"nul", b"True", b"[1,]", b'{"a":1,}', b"[1 2]", b'{"a" 1}', b"{1: 2}", b"[", b"{", b"]"]
KEYS = [b'"s"', b'"i"', b'"f"', b'"b"', b'"Mixed"', b'"S"', b'"mixed"', b'"MIXED"', b'"x"', b'"y"', b'"caf\xc3\xa9"',
        b'"\\u0073"', b'"\\u0078"', b'"\xe2\x84\xaa"', b'"\xc3\x89"', b'""']
WS = [b"", b"", b"", b" ", b"\n", b"\t", b"\r\n "]


def _random_float(rng: random.Random) -> bytes:
    x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if not math.isfinite(x):
        x = rng.uniform(-1e6, 1e6)
    return repr(x).encode() if rng.random() < 0.5 else f"{rng.uniform(-1e4, 1e4):.{rng.randrange(0, 17)}f}".encode()


def _value(rng: random.Random, kind: str | None, bad: float) -> bytes:
    r = rng.random()
    if r < bad:
        return rng.choice(BAD_TEXTS + BAD_NUMBERS + BAD_OTHER)
    if kind is not None and r < (0.75 if bad else 0.97):  # mostly the column's own type
        if kind == "s":
            return rng.choice(TEXTS) if rng.random() < 0.5 else orjson.dumps("".join(
                rng.choice("abcé€\U0001F600\"\\/\n\t\x00\x1f ") for _ in range(rng.randrange(0, 30))))
        if kind == "i":
            return rng.choice(INTS[:7]) if rng.random() < 0.5 else str(rng.randrange(-10**18 + 1, 10**18)).encode()
        if kind == "f":
            return rng.choice(FLOATS[:6] + INTS[:3]) if rng.random() < 0.3 else _random_float(rng)
        if kind == "b":
            return rng.choice([b"true", b"false"])
    return rng.choice(TEXTS + INTS + FLOATS + OTHER) if rng.random() < 0.9 else _random_float(rng)


def _body(rng: random.Random, bad: float) -> bytes:
    ws = lambda: rng.choice(WS)  # noqa: E731
    r = rng.random()
    if r < bad / 3:
        return rng.choice([b"", b" ", b"[]", b"1", b'"x"', b"null", b'[{"s": "a"}]', b'[{"s": "a"}, {"i": 1}]',
                           b"\xef\xbb\xbf{}", b"{}x", b"{} {}", b'{"s": "a"}\n{"s": "b"}'])
    items = []
    for _ in range(rng.randrange(0, 7)):
        if rng.random() < 0.8:
            key = rng.choice([b'"s"', b'"i"', b'"f"', b'"b"', b'"Mixed"', b'"x"'])
        else:
            key = rng.choice(KEYS)
        name = orjson.loads(key) if key not in (b'"\\u0073"', b'"\\u0078"') else None
        kind = {"s": "s", "i": "i", "f": "f", "b": "b", "Mixed": "s"}.get(name) if isinstance(name, str) else None
        items.append(ws() + key + ws() + b":" + ws() + _value(rng, kind, bad) + ws())
    body = ws() + b"{" + b",".join(items) + b"}" + ws()
    if rng.random() < bad:  # a truncation or a flipped byte
        at = rng.randrange(0, len(body))
        body = body[:at] if rng.random() < 0.5 else body[:at] + bytes([rng.randrange(256)]) + body[at + 1:]
    return body


def _expected(bodies: list[bytes], schema: dict, fields: set[str] | None) -> list[dict] | None:
    """What the event-by-event decode gives in ``schema``'s columns; None when a body fails
    to decode, is not one object, or has a value its column cannot hold as that type."""
    names = {c.lower(): c for c in schema}
    out = []
    for b in bodies:
        try:
            ev = loads_json(b, fields if fields is not None else None)
        except (orjson.JSONDecodeError, DecodeError):
            return None
        if not isinstance(ev, dict):
            return None
        if fields is None and set(ev) != set(schema):
            return None
        for k in ev:
            if k.lower() in (fields if fields is not None else names) and k not in schema:
                return None  # another spelling: the row decode reads it case-insensitively
        row = {}
        for c, t in schema.items():
            v = ev.get(c)
            if v is None:
                if fields is None:
                    return None
            elif t == pl.Utf8 and type(v) is not str or t == pl.Int64 and type(v) is not int \
                    or t == pl.Boolean and type(v) is not bool or t == pl.Float64 and type(v) not in (int, float):
                return None
            row[c] = float(v) if t == pl.Float64 and v is not None else v
        out.append(row)
    return out


def _same(got: pl.DataFrame, expected: list[dict], schema: dict) -> None:
    assert got.schema == pl.Schema(schema)
    rows = got.to_dicts()
    assert len(rows) == len(expected)
    for g, e in zip(rows, expected):
        for c in schema:
            if isinstance(e[c], float):  # the same double, sign of zero included
                assert struct.pack("<d", g[c]) == struct.pack("<d", e[c]), (c, g[c], e[c])
            else:
                assert g[c] == e[c] and type(g[c]) is type(e[c]), (c, g[c], e[c])


@pytest.fixture(scope="module", autouse=True)
def kernels():
    return KERNELS.load()


@pytest.mark.parametrize("seed", range(12))
def test_random_bodies_decode_as_the_row_decode_or_decline(seed, monkeypatch) -> None:
    rng = random.Random(seed)
    if seed % 3 == 0:  # ranges of bodies in threads
        monkeypatch.setattr(jsondecode, "_MIN_PER_THREAD", 2)
        monkeypatch.setattr(jsondecode, "_THREADS", 3)
    fast = 0
    for _ in range(300):
        bad = rng.choice([0.0, 0.0, 0.02, 0.2])
        schema = dict(rng.sample(sorted(SCHEMA.items()), rng.randrange(1, len(SCHEMA) + 1)))
        fields = {c.lower() for c in schema} | ({"x"} if rng.random() < 0.15 else set())
        bodies = [_body(rng, bad) for _ in range(rng.randrange(0, 9))]
        got = TypedDecoder(schema, fields).decode(bodies)
        expected = _expected(bodies, schema, fields)
        if isinstance(got, pl.DataFrame):
            assert expected is not None, (bodies, got)
            _same(got, expected, schema)
            fast += 1
        else:
            assert got == ROWS
    assert fast > 50  # the compiled decode took many batches (the others are declined on purpose)


@pytest.mark.parametrize("seed", range(4))
def test_whole_events_decode_only_when_each_has_exactly_the_fields(seed) -> None:
    """``SELECT *`` (fields None): every field present, none NULL, no other."""
    rng = random.Random(100 + seed)
    schema = {"s": pl.Utf8, "i": pl.Int64, "f": pl.Float64}
    fast = 0
    for _ in range(200):
        bodies = []
        for _ in range(rng.randrange(1, 5)):
            ev = {"s": rng.choice(["a", "é", "\\"]), "i": rng.randrange(-5, 5), "f": rng.choice([1.5, 2, -0.0])}
            if rng.random() < 0.1:
                del ev[rng.choice(list(ev))]
            if rng.random() < 0.1:
                ev[rng.choice(["x", "S", "s"])] = None
            bodies.append(orjson.dumps(ev))
        got = TypedDecoder(schema, None).decode(bodies)
        expected = _expected(bodies, schema, None)
        if isinstance(got, pl.DataFrame):
            assert expected is not None, bodies
            _same(got, expected, schema)
            fast += 1
        else:
            assert got == ROWS
    assert fast > 50


@pytest.mark.parametrize("bodies, why", [
    ([b'{"s": "a"}', b'{"S": "b"}'], "another spelling of a field read"),
    ([b'{"s": "a", "s": "b"}'], "a duplicated key (the last one counts)"),
    ([b'{"\\u0073": "a"}'], "a key with escapes that spells a field read"),
    ([b'{"i": 1.0}'], "a float in an integer column"),
    ([b'{"i": 9223372036854775807}'], "an integer near the bigint range"),
    ([b'{"f": 1e400}'], "a float orjson reads as infinity"),
    ([b'{"s": 12}'], "a number in a text column"),
    ([b'{"s": {"a": 1}}'], "a record"),
    ([b'[{"s": "a"}]'], "an array of events"),
    ([b'{"s": "a"}', b"{"], "bad JSON in one event"),
    ([b'{"s": "\\ud800"}'], "a lone surrogate"),
    ([b'{"x": [' * 600 + b']' * 600 + b'}'], "nesting deeper than the compiled decode follows"),
])
def test_what_the_compiled_decode_leaves_to_the_row_decode(bodies, why) -> None:
    schema = {"s": pl.Utf8, "i": pl.Int64, "f": pl.Float64}
    assert TypedDecoder(schema, {"s", "i", "f"}).decode(bodies) == ROWS, why


def test_a_field_read_but_missing_from_the_first_batch_is_read_by_the_row_decode() -> None:
    """``fields`` names more than the schema when the first batch lacked one: a later event
    that has it is not given NULL there."""
    d = TypedDecoder({"s": pl.Utf8}, {"s", "late"})
    assert isinstance(d.decode([b'{"s": "a", "other": 1}']), pl.DataFrame)
    assert d.decode([b'{"s": "a", "late": 1}']) == ROWS
    assert d.decode([b'{"s": "a", "LATE": 1}']) == ROWS


def test_unusual_keys_that_are_not_read_keep_the_batch_compiled() -> None:
    d = TypedDecoder({"s": pl.Utf8}, {"s"})
    got = d.decode([b'{"caf\xc3\xa9": 1, "\\u0078": [1], "s": "\\u00e9"}', b'{"\xe2\x84\xaa": 2, "s": "b"}'])
    assert isinstance(got, pl.DataFrame) and got["s"].to_list() == ["é", "b"]
    # the Kelvin sign lower-cases to "k": a field read
    assert TypedDecoder({"s": pl.Utf8}, {"s", "k"}).decode([b'{"\xe2\x84\xaa": 2, "s": "b"}']) == ROWS


def test_large_batches_in_threads_equal_one_thread(monkeypatch) -> None:
    rng = random.Random(5)
    d = TypedDecoder(SCHEMA, {c.lower() for c in SCHEMA})
    bodies = [b for b in (_body(rng, 0.0) for _ in range(3000)) if isinstance(d.decode([b]), pl.DataFrame)]
    assert len(bodies) > 500
    one = d.decode(bodies)
    monkeypatch.setattr(jsondecode, "_MIN_PER_THREAD", 100)
    monkeypatch.setattr(jsondecode, "_THREADS", 4)
    assert jsondecode._ranges(len(bodies))[1:]
    many = TypedDecoder(SCHEMA, {c.lower() for c in SCHEMA}).decode(bodies)
    assert isinstance(one, pl.DataFrame) and one.equals(many)
    _same(one, _expected(bodies, SCHEMA, {c.lower() for c in SCHEMA}), SCHEMA)


def test_packed_bodies_decode_from_their_buffer() -> None:
    from headwater.services.processing.engine import PackedBodies

    bodies = [b'{"s": "a", "i": 1}', b'{"s": "\\u00e9", "i": -2}', b' {} ']
    buf = b"xx" + b"".join(bodies) + b"yy"
    offsets = np.cumsum([2] + [len(b) for b in bodies])
    packed = TypedDecoder({"s": pl.Utf8, "i": pl.Int64}, {"s", "i"}).decode(PackedBodies(buf, offsets))
    listed = TypedDecoder({"s": pl.Utf8, "i": pl.Int64}, {"s", "i"}).decode(bodies)
    assert isinstance(packed, pl.DataFrame) and packed.equals(listed)
    assert packed.to_dicts() == [{"s": "a", "i": 1}, {"s": "é", "i": -2}, {"s": None, "i": None}]


# -- through the engine ------------------------------------------------------------------------
QUERIES = ["SELECT s, i, f, b FROM e TIMESTAMP BY t",
           "SELECT s, COUNT(*) AS n, SUM(i) AS si, SUM(f) AS sf, System.Timestamp() AS w FROM e TIMESTAMP BY t "
           "GROUP BY s, TumblingWindow(second, 2)",
           "SELECT * FROM e TIMESTAMP BY t",
           "SELECT Mixed, b, i FROM e WHERE i > 0 OR b"]


def _engine_batches(rng: random.Random) -> list[list[bytes]]:
    batches = []
    for k in range(rng.randrange(1, 5)):
        bad = rng.choice([0.0, 0.0, 0.05])
        bodies = []
        for j in range(rng.randrange(0, 30)):
            body = _body(rng, bad)
            t = f'"t": "2024-01-01T00:00:{(k * 30 + j) % 60:02d}Z"'.encode()
            body = body.replace(b"{", b"{" + t + (b"," if not body.strip().startswith(b"{}") else b""), 1) \
                if rng.random() < 0.95 else body
            bodies.append(body)
        batches.append(bodies)
    return batches


def _run(sql: str, batches: list[list[bytes]], columnar: bool):
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(5, 5, "adjust"), columnar=columnar)
    rows = []
    try:
        for bodies in batches:
            rt.feed_bodies("e", bodies, [1_704_067_200_000_000 + i for i in range(len(bodies))])
            rows += rt.take()["output"]
        rt.flush()
        rows += rt.take()["output"]
        canon = _canon(rows)
    except Exception as exc:  # noqa: BLE001 - the same failure on both paths
        return type(exc).__name__, str(exc)
    counters = {k: v for k, v in rt.counters.as_dict().items() if k not in ("samples",)}
    return canon, counters


def _canon(rows: list[dict]) -> list[str]:
    """Rows to compare: numbers as floats, as test_vectorised_differential compares them (a
    typed column holds a batch's integers and floats of one field as floats; the row path
    keeps each as read), -0.0 as 0.0 (a vectorised SUM starts from 0.0), in sorted order."""
    return sorted(repr(sorted((k, round(float(v), 6) + 0.0 if isinstance(v, (int, float)) and not isinstance(v, bool)
                               else v) for k, v in r.items())) for r in format_rows(rows))


class _Loading:
    """The kernels as they are while they load (or where numba cannot): not there."""

    def get(self):
        return None

    loaded = None


@pytest.mark.parametrize("seed", range(8))
def test_engine_reads_any_batch_as_the_json_lines_readers_did(seed, monkeypatch) -> None:
    """Adversarial batches through the engine: the same rows, counters and errors with the
    compiled decode as with the readers it replaces (still used while it loads)."""
    rng = random.Random(1000 + seed)
    for _ in range(10):
        sql = rng.choice(QUERIES)
        batches = _engine_batches(rng)
        compiled = _run(sql, batches, True)
        with monkeypatch.context() as m:
            m.setattr(jsondecode, "KERNELS", _Loading())
            assert _run(sql, batches, True) == compiled, (sql, batches)


def _clean_batches(rng: random.Random) -> list[list[bytes]]:
    """Events whose fields keep one type each (floats written as floats), some missing or NULL."""
    batches = []
    for k in range(rng.randrange(1, 5)):
        bodies = []
        for j in range(rng.randrange(0, 40)):
            ev = {"t": f"2024-01-01T00:00:{(k * 40 + j) % 60:02d}.{rng.randrange(1000):03d}Z",
                  "s": rng.choice(["a", "B", "é", "\\", '"q"', "\n", "😀", None]),
                  "i": rng.choice([rng.randrange(-10**18 + 1, 10**18), 0, None]),
                  "f": rng.choice([float(rng.uniform(-1e6, 1e6)), -0.0, 1.5, None]),
                  "b": rng.choice([True, False, None]), "Mixed": rng.choice(["x", "y"]), "other": [1, {"z": "w"}]}
            ev = {k2: v for k2, v in ev.items() if rng.random() < 0.9 or k2 == "t"}
            bodies.append(orjson.dumps(ev).replace(b",", rng.choice([b",", b" , ", b",\n"])))
        batches.append(bodies)
    return batches


@pytest.mark.parametrize("seed", range(6))
def test_engine_gives_the_row_paths_rows_for_typed_events(seed) -> None:
    rng = random.Random(2000 + seed)
    for _ in range(8):
        sql = rng.choice(QUERIES)
        batches = _clean_batches(rng)
        assert _run(sql, batches, True) == _run(sql, batches, False), (sql, batches)


def _iso(rng: random.Random) -> str:
    y, mo, d = rng.choice([(2024, 2, 29), (2023, 2, 29), (1900, 2, 29), (2000, 2, 29), (1969, 12, 31), (1, 1, 1),
                           (9999, 12, 31), (rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 32))])
    text = f"{y:04d}-{mo:02d}-{d:02d}T{rng.randrange(25):02d}:{rng.randrange(61):02d}:{rng.randrange(61):02d}"
    if rng.random() < 0.6:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 11)))
    text += "Z"
    if rng.random() < 0.2:  # another spelling, a stray character
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(["", " ", "x", "1", "+", "-", "t", "z", "é"]) + text[at + 1:]
    return text


@pytest.mark.parametrize("seed", range(3))
def test_times_read_with_the_batch_equal_polars_parser(seed) -> None:
    """The TIMESTAMP BY field's plain ISO times are read in the decode; each one read there
    is what Polars' ``%Y-%m-%dT%H:%M:%S%.fZ`` gives (the others are left to it)."""
    rng = random.Random(seed)
    texts = [_iso(rng) for _ in range(3000)]
    d = TypedDecoder({"t": pl.Utf8}, {"t"}, iso="t")
    df = d.decode([orjson.dumps({"t": t}) for t in texts])
    assert isinstance(df, pl.DataFrame) and d.micros is not None and d.micros[0] is df
    ours = d.micros[1].to_list()
    theirs = pl.Series(texts).str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S%.fZ", strict=False) \
        .dt.epoch("us").to_list()
    read = [(t, a, b) for t, a, b in zip(texts, ours, theirs) if a is not None]
    assert len(read) > 1000
    assert [(t, a) for t, a, _ in read] == [(t, b) for t, _, b in read]


def test_a_deeply_nested_event_with_a_long_number_is_an_error_not_a_crash() -> None:
    """The bigint check of the event-by-event decode walks values without recursion."""
    deep = b'{"s": "a", "x": ' + b"[" * 600 + b"1234567890123456789" + b"]" * 600 + b"}"
    assert loads_json(deep, {"s"})["s"] == "a"
    with pytest.raises(DecodeError, match="outside the bigint range"):
        loads_json(b'{"s": ' + b"[" * 600 + b"12345678901234567890" + b"]" * 600 + b"}", {"s"})


def test_the_kernels_can_be_turned_off_for_the_json_lines_readers() -> None:
    """``HEADWATER_PROCESSING_JSON_KERNELS=0``: the kernels are never loaded into the process
    (numba's JIT: about 110 MB of memory) and the readers of JSON lines decode, with the same
    rows (``HEADWATER_JIT_AOT=0``: the kernels come from numba's JIT, not the ahead-of-time
    extension)."""
    import subprocess
    import sys

    code = ("import sys, time; from headwater.services.processing.engine import compile_query; "
            "from headwater.services.processing.exec.jsondecode import KERNELS, ENABLED; "
            "ENABLED and KERNELS.load(); "
            "rt = compile_query('SELECT s, COUNT(*) AS n FROM i GROUP BY s, TumblingWindow(second, 10)').runtime(); "
            "rt.feed_bodies('i', [b'{\"s\": \"a\"}', b'{\"s\": \"b\"}', b'{\"s\": \"a\"}'], [1, 2, 3]); "
            "rt.flush(); "
            "print(sorted((r['s'], r['n']) for r in rt.take()['output']), 'numba' in sys.modules)")
    for setting, numba_loaded in (("0", False), ("1", True)):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "HEADWATER_PROCESSING_JSON_KERNELS": setting,
                                  "HEADWATER_JIT_AOT": "0"})
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("[('a', 2), ('b', 1)]"), out.stdout
        assert out.stdout.strip().endswith(str(numba_loaded)), out.stdout


def test_batches_before_and_after_the_kernels_load_mix_in_one_job(monkeypatch) -> None:
    """A job's first batches are read by the JSON lines readers while the kernels load, the
    next ones by the kernels: the same rows as a job that had them from the start."""
    rng = random.Random(11)
    batches = _clean_batches(rng) + _clean_batches(rng)
    sql = QUERIES[1]
    whole = _run(sql, batches, True)
    pm = get_plugin_manager(load_entrypoints=False).collect()
    rt = compile_query(sql, pm).runtime(OrderingPolicy.from_seconds(5, 5, "adjust"))
    rows = []
    for k, bodies in enumerate(batches):
        with monkeypatch.context() as m:
            if k < len(batches) // 2:
                m.setattr(jsondecode, "KERNELS", _Loading())
            rt.feed_bodies("e", bodies, [1_704_067_200_000_000 + i for i in range(len(bodies))])
        rows += rt.take()["output"]
    rt.flush()
    rows += rt.take()["output"]
    assert _canon(rows) == whole[0]


def test_an_event_nested_as_deep_as_orjson_reads_goes_through_select_star() -> None:
    """Output rows are made JSON-ready with a loop: a 900-deep array in an event reaches the
    output (the recursion raised RecursionError out of format_rows). The row path: the
    vectorised source's first look at a batch (Polars' schema inference) takes seconds on
    such nesting."""
    body = b'{"t": "2024-01-01T00:00:01Z", "x": ' + b"[" * 900 + b"1" + b"]" * 900 + b"}"
    rt = compile_query("SELECT * FROM e TIMESTAMP BY t").runtime(columnar=False)
    rt.feed_bodies("e", [body])
    rt.flush()
    (row,) = format_rows(rt.take()["output"])
    x, depth = row["x"], 0
    while isinstance(x, list):
        x, depth = x[0], depth + 1
    assert (depth, x) == (900, 1)


def test_a_job_loads_the_kernels_only_at_its_first_large_batch() -> None:
    """A job whose batches stay small (a quiet input) never loads numba (about 110 MB of
    memory); its first batch of ``LOAD_MIN_EVENTS`` or more starts loading the kernels."""
    import subprocess
    import sys

    code = ("import sys; from headwater.services.processing.engine import compile_query; "
            "from headwater.services.processing.exec import jsondecode as j; "
            "rt = compile_query('SELECT s, COUNT(*) AS n FROM i GROUP BY s, TumblingWindow(second, 10)').runtime(); "
            "small = [b'{\"s\": \"a\"}'] * (j.LOAD_MIN_EVENTS - 1); "
            "[rt.feed_bodies('i', small, list(range(k * len(small), (k + 1) * len(small)))) for k in range(3)]; "
            "print('numba' in sys.modules, j.KERNELS.loaded is None); "
            "rt.feed_bodies('i', small + small[:1], list(range(10**6, 10**6 + len(small) + 1))); "
            "print(j.KERNELS.load() is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "HEADWATER_PROCESSING_JSON_KERNELS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"], out.stdout
