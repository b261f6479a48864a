"""``webhook``: POST batches of rows as a JSON array to a URL (at-least-once).

Each write is one or more POSTs of at most ``max_rows_per_request`` rows
(``Content-Type: application/json``, body ``[{...}, ...]``), with the headers
``X-Headwater-Sink``, ``X-Headwater-Writer``, ``X-Headwater-Checkpoint`` and
``X-Headwater-Batch`` so a receiver can deduplicate. Timeouts, connection
errors, 429 and 5xx answers are retried (``Retry-After`` honoured) under the
service's retry policy; other 4xx answers are permanent and name the status and
the start of the answer. Webhooks are at-least-once: a write retried after a
timeout may reach the receiver twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    Sink,
    SinkConfigError,
    SinkKind,
    SinkSpec,
    SinkTransientError,
    check_keys,
    require,
)

__all__ = ["WebhookKind", "WebhookSink"]

_SETTINGS = ("url", "headers", "timeout_s", "max_rows_per_request")


class WebhookSink(Sink):
    exactly_once = False

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.url = cfg["url"]
        self.headers = {str(k): str(v) for k, v in (cfg.get("headers") or {}).items()}
        self.timeout = float(cfg.get("timeout_s", 10))
        self.chunk = int(cfg.get("max_rows_per_request", 10_000))
        self._session: Any = None

    async def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:

        import aiohttp
        import orjson

        session = await self._client()
        headers = {"Content-Type": "application/json", "X-Headwater-Sink": self.name,
                   "X-Headwater-Writer": checkpoint.writer,
                   "X-Headwater-Checkpoint": str(checkpoint.checkpoint_id),
                   "X-Headwater-Batch": str(checkpoint.batch_id), **self.headers}
        for start in range(0, batch.num_rows, self.chunk):
            body = orjson.dumps(batch.slice(start, self.chunk).to_pylist(), default=str)
            where = f"webhook sink {self.name!r} ({self.url})"
            try:
                async with session.post(self.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        continue
                    text = (await resp.text())[:200]
                    if resp.status == 429 or resp.status >= 500:
                        retry_after = None
                        try:
                            retry_after = float(resp.headers.get("Retry-After", ""))
                        except ValueError:
                            pass
                        raise SinkTransientError(f"{where}: HTTP {resp.status}: {text}", retry_after=retry_after)
                    reason = Reason.UNAUTHORIZED if resp.status in (401, 403) else Reason.PRECONDITION_FAILED
                    raise HeadwaterError(reason, f"{where}: HTTP {resp.status} (permanent): {text}")
            except TimeoutError:
                raise SinkTransientError(f"{where}: no answer within {self.timeout:g}s") from None
            except aiohttp.ClientError as exc:
                raise SinkTransientError(f"{where}: {type(exc).__name__}: {exc}") from None
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    drop = close


class WebhookKind(SinkKind):
    """``webhook``: POST JSON batches; retries 5xx and timeouts; at-least-once."""

    name = "webhook"
    description = "POST batches of rows as JSON to a URL; retries 429/5xx/timeouts (at-least-once)"
    exactly_once = False
    output_modes = (OutputMode.APPEND, OutputMode.UPDATE, OutputMode.COMPLETE)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, _SETTINGS, self.name)
        out = dict(config)
        url = require(out, "url", self.name)
        if not url.startswith(("http://", "https://")):
            raise SinkConfigError(f"webhook sink: setting 'url' must be an http:// or https:// URL, got {url!r}",
                                  setting="url")
        if "headers" in out and not isinstance(out["headers"], dict):
            raise SinkConfigError("webhook sink: setting 'headers' must be a mapping", setting="headers")
        for key in ("timeout_s", "max_rows_per_request"):
            if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                               or out[key] <= 0):
                raise SinkConfigError(f"webhook sink: setting {key!r} must be a number > 0", setting=key)
        return out

    def create(self, spec: SinkSpec) -> WebhookSink:
        return WebhookSink(spec)
