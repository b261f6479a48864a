"""JavaScript user-defined functions and aggregates, as Stream Analytics jobs write them.

A UDF is ``function main(arg1, ...) { ... }`` called as ``UDF.name(...)``; a UDA is a
constructor ``function main() { this.init = ...; this.accumulate = function (value,
timestamp) {...}; this.computeResult = ...; }`` called as ``UDA.name(expr)``
(``deaccumulate`` / ``deaccumulateState`` may be present: they are accepted and not needed,
the result is recomputed from the window's values; ``timestamp`` is the event's
System.Timestamp as a ``Date``).

The code runs in QuickJS (the ``quickjs`` package): an embedded interpreter with no module
loader, no ``std``/``os`` objects, no file, process or network access, a memory limit and
a time budget per call. Each thread gets its own interpreter (QuickJS contexts are not
thread-safe); the code is compiled once per thread.

Values cross as Stream Analytics documents for JavaScript functions: bigint and float are
``Number``, nvarchar(max) ``String``, datetime ``Date``, record ``Object``, array ``Array``,
NULL ``null``; back, a whole ``Number`` within 64 bits is bigint, other numbers float,
``Date`` datetime, ``undefined``/``null``/``NaN`` NULL.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import quickjs

from headwater.functions import (
    UTC,
    AggregateFunction,
    ListAggregate,
    ScalarFunction,
    from_micros,
    to_datetime,
)

__all__ = ["JavaScriptError", "JsFunction", "js_function", "js_plugin", "run_js", "TIME_LIMIT_S",
           "MEMORY_LIMIT"]

#: Time budget of one call (seconds); $HEADWATER_JS_TIME_LIMIT overrides.
TIME_LIMIT_S = float(os.environ.get("HEADWATER_JS_TIME_LIMIT", "1.0"))
#: Memory limit of one interpreter (bytes).
MEMORY_LIMIT = 64 << 20

# Marshalling: arguments go in as one JSON text with datetimes tagged {"$date": iso};
# results come back the same way, so records, arrays and dates keep their types.
_PRELUDE = r"""
var console = {log: function () {}, info: function () {}, warn: function () {}, error: function () {},
               debug: function () {}};  // accepted and discarded: there is nowhere to print
var __hw_rev = function (k, v) {
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v['$date'] === 'string'
      && Object.keys(v).length === 1) { return new Date(v['$date']); }
  return v;
};
var __hw_rep = function (k, v) {
  var raw = this[k];
  if (raw instanceof Date) { return {'$date': raw.toISOString()}; }
  if (typeof v === 'number' && !isFinite(v)) { return null; }
  return v;
};
var __hw_enc = function (v) { var s = JSON.stringify(v === undefined ? null : v, __hw_rep); return s; };
var __hw_call = function (f, args) { return __hw_enc(f.apply(null, JSON.parse(args, __hw_rev))); };
var __hw_uda = function (C, rows) {
  var o = new C();
  if (typeof o.init === 'function') { o.init(); }
  var xs = JSON.parse(rows, __hw_rev);
  for (var i = 0; i < xs.length; i++) { o.accumulate(xs[i][0], xs[i][1] === null ? null : new Date(xs[i][1])); }
  return __hw_enc(o.computeResult());
};
var __hw_regex = function (p, s) {
  var r;
  try { r = new RegExp(p, 'is'); } catch (e) { return 0; }
  var m = r.exec(s);
  if (m === null) { return 0; }
  return Array.from(s.slice(0, m.index)).length + 1;
};
"""

_FUNC = re.compile(r"\bfunction\s+([A-Za-z_$][\w$]*)\s*\(")
_UDA = re.compile(r"\baccumulate\b[\s\S]*\bcomputeResult\b|\bcomputeResult\b[\s\S]*\baccumulate\b")


class JavaScriptError(ValueError):
    """A JavaScript function that failed, timed out or does not compile (the message says which)."""


def _entry(code: str, name: str) -> str:
    """The function the job calls: ``main`` as Stream Analytics requires; a file with one
    function (or one named like the UDF) is accepted too."""
    if _context(code).eval("typeof main") == "function":  # function main, var main = function ...
        return "main"
    names = _FUNC.findall(code)
    for n in names:
        if n.lower() == name.lower():
            return n
    if len(set(names)) == 1:
        return names[0]
    raise JavaScriptError(f"JavaScript function {name!r} must define function main(...)")


_local = threading.local()


def _context(code: str) -> quickjs.Context:
    """This thread's interpreter for ``code`` (compiled once per thread)."""
    cache = getattr(_local, "contexts", None)
    if cache is None:
        cache = _local.contexts = {}
    ctx = cache.get(code)
    if ctx is None:
        ctx = quickjs.Context()
        ctx.set_memory_limit(MEMORY_LIMIT)
        ctx.set_time_limit(TIME_LIMIT_S)
        try:
            ctx.eval(_PRELUDE)
            ctx.eval(code)
        except quickjs.JSException as exc:
            raise JavaScriptError(f"JavaScript does not compile: {_first_line(exc)}") from None
        if len(cache) > 256:
            cache.clear()
        cache[code] = ctx
    return ctx


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _js_date(dt: datetime) -> str:
    """ISO text a JavaScript Date reads exactly (milliseconds, truncated: a Date has no more)."""
    d = dt.astimezone(UTC) if dt.tzinfo else dt
    return f"{d:%Y-%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$date": _js_date(value)}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$date"), str):
            return to_datetime(value["$date"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, int) and not -(1 << 63) <= value < (1 << 63):
        return float(value)
    return value


def _call(ctx: quickjs.Context, label: str, helper: str, *args: Any) -> Any:
    """``helper(*args)`` in ``ctx`` under the time budget; its JSON result decoded."""
    try:
        out = ctx.get(helper)(*args)
    except quickjs.JSException as exc:
        msg = _first_line(exc)
        if "interrupted" in msg:
            msg = f"exceeded its time budget of {TIME_LIMIT_S:g} s"
        raise JavaScriptError(f"JavaScript {label}: {msg}") from None
    except quickjs.StackOverflow:
        raise JavaScriptError(f"JavaScript {label}: stack overflow") from None
    except MemoryError:
        raise JavaScriptError(f"JavaScript {label}: out of memory (limit {MEMORY_LIMIT >> 20} MiB)") from None
    return out if not isinstance(out, str) or helper == "__hw_regex" else _decode(orjson.loads(out))


def _json(args: Any) -> str:
    return orjson.dumps(_encode(args), default=str).decode()


def run_js(code: str, entry: str, *args: Any, label: str = "function") -> Any:
    """Call ``entry(*args)`` of ``code`` in the sandbox (values converted both ways)."""
    ctx = _context(code)
    return _call(ctx, label, "__hw_call", ctx.get(entry), _json(list(args)))


def js_regex_search(pattern: str, text: str) -> int:
    """ECMAScript ``RegExp(pattern, 'is')`` search in the sandbox, under the time budget:
    1-based code-point position of the first match, 0 when none or the pattern is invalid."""
    return _call(_context(""), "REGEXMATCH", "__hw_regex", pattern, text)


@dataclass(frozen=True)
class JsFunction:
    """A JavaScript function of a job: ``UDF.name`` or, when the code is a UDA, ``UDA.name``."""

    name: str
    code: str
    language: str = "javascript"

    @property
    def is_aggregate(self) -> bool:
        return bool(_UDA.search(self.code))


class _JsAggregate(ListAggregate):
    """A JavaScript UDA: the window's (value, timestamp) pairs are kept (a plain list, so state
    snapshots stay data) and replayed through init/accumulate/computeResult at the result."""

    namespace, timestamped = "UDA", True

    def __init__(self, name: str, code: str) -> None:
        self.name, self.code, self.entry = name, code, _entry(code, name)
        self.doc = f"JavaScript UDA {name}"

    def result(self, acc):
        ctx = _context(self.code)
        rows = [[v, _js_date(from_micros(ts))] for ts, v in acc]
        return _call(ctx, f"UDA.{self.name}", "__hw_uda", ctx.get(self.entry), _json(rows))


def js_function(name: str, code: str, language: str = "javascript") -> ScalarFunction | AggregateFunction:
    """The registry entry for one JavaScript function (compiled now, so errors show at once)."""
    if (language or "javascript").lower() not in ("javascript", "js"):
        raise JavaScriptError(f"function {name!r}: language {language!r} is not supported (javascript only)")
    if not name or not re.fullmatch(r"[A-Za-z_][\w]*", name):
        raise JavaScriptError(f"function name {name!r} must be an identifier")
    _context(code)
    if JsFunction(name, code).is_aggregate:
        return _JsAggregate(name, code)
    entry = _entry(code, name)
    label = f"UDF.{name}"

    def call(*args):
        return run_js(code, entry, *args, label=label)
    return ScalarFunction(name, call, namespace="UDF", doc=f"JavaScript UDF {name}")


def js_plugin(functions: list[JsFunction] | dict[str, str]) -> object:
    """A plugin object registering JavaScript functions (a job's, or ``query test --udf``'s)."""
    from headwater.hookspecs import hookimpl

    items = [JsFunction(n, c) for n, c in functions.items()] if isinstance(functions, dict) else list(functions)
    built = [js_function(f.name, f.code, f.language) for f in items]

    class _JsFunctions:
        @hookimpl
        def register_functions(self, register):
            for fn in built:
                register(fn)
    return _JsFunctions()
