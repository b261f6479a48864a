"""What a job may make the processing service load: the operator's UDFs, files under allowed_paths,
secrets by name (docs/security.md, "Data paths, UDFs and secrets").

A job names UDFs; it never carries code. Its reference files lie under the
service's ``allowed_paths``. Its ``secret:NAME`` connection strings name
secrets that exist.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.processing.local import load_udf, udf_plugin
from headwater.v1 import processing_pb2 as pb

__all__ = ["check_secret_references", "plugin_manager", "reference_file"]


@functools.lru_cache(maxsize=32)
def _operator_udfs(specs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The UDFs the operator registered in the service's configuration (``udfs: {name: module:function}``)."""
    udfs = {}
    for name, target in specs:
        try:
            udfs[name] = load_udf(target)
        except (ImportError, AttributeError, OSError, SyntaxError, ValueError) as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"setting 'udfs': {name}={target} cannot be loaded: {exc}",
                                 metadata={"field": "udfs"}) from None
    return udfs


def plugin_manager(job: pb.Job, config: Any = None):
    """Plugins plus the operator's UDFs. A job only *names* UDFs: one that carries code
    (``NAME=module:function``) is refused, since a client must not pick what the service imports."""
    from headwater.pluginmanager import get_plugin_manager

    udfs = _operator_udfs(tuple(sorted((getattr(config, "udfs", None) or {}).items())))
    pm = get_plugin_manager(([("operator-udfs", udf_plugin(udfs))] if udfs else []) + _js_functions(job))
    functions = pm.collect().functions if job.udfs else None
    for spec in job.udfs:
        name = spec.strip()
        if "=" in name or ":" in name:
            short = name.partition("=")[0].strip() or "NAME"
            raise HeadwaterError(
                Reason.INVALID_ARGUMENT,
                f"job.udfs entry {spec!r}: a job cannot load code (module:function); UDFs come from the operator: "
                f"a plugin package, or the processing service's configuration (udfs: {{{short}: module:function}}). "
                f"A job names a registered UDF: udfs: [{short!r}]", metadata={"field": "job.udfs"})
        if functions is not None and functions.get(name, "UDF") is None and functions.get(name, "UDA") is None:
            known = sorted(udfs) or ["none"]
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"job.udfs entry {spec!r}: no UDF of that name is registered by the operator "
                                 f"(configured: {', '.join(known)})", metadata={"field": "job.udfs"})
    return pm


def _js_functions(job: pb.Job) -> list[tuple[str, object]]:
    """The job's JavaScript functions: code as data, run in the sandbox (plugins/javascript.py)."""
    from headwater.plugins.javascript import JavaScriptError, JsFunction, js_plugin

    if not job.functions:
        return []
    try:
        return [("job-functions", js_plugin([JsFunction(f.name, f.code, f.language or "javascript")
                                             for f in job.functions]))]
    except JavaScriptError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job.functions: {exc}",
                             metadata={"field": "job.functions"}) from None


def check_secret_references(job: pb.Job, config: Any) -> None:
    """``secret:NAME`` connection strings name secrets that exist (resolved when the job starts)."""
    from headwater.secrets import SecretStore, is_reference, resolve

    if config is None or not hasattr(config, "secrets_path"):
        return
    store = SecretStore(config.secrets_path())
    for what, items in (("inputs", job.inputs), ("outputs", job.outputs)):
        for item in items:
            if is_reference(item.connection_string):
                resolve(item.connection_string, store, f"job.{what}.connection_string")
    for item in job.inputs:
        if is_reference(item.dsn):
            resolve(item.dsn, store, "job.inputs.dsn")


def reference_file(inp: pb.JobInput, config: Any = None) -> Path:
    """A reference input's file, confined to the service's ``allowed_paths`` (default its data folder)."""
    from headwater.config import headwater_home
    from headwater.paths import allowed_roots, confine

    roots = allowed_roots(config) if config is not None else [headwater_home() / "processing"]
    return confine(inp.reference_path, roots, "reference_path")
