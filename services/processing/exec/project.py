"""Stateless row operators: filter, project, CROSS/OUTER APPLY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.services.processing.exec.base import Env

__all__ = ["Apply", "Filter", "Stage"]


class Stage:
    """One step of a statement's pipeline: items in timestamp order in, items out."""

    def process(self, envs: list[Env]) -> list[Env]:
        return envs

    def advance(self, watermark: int) -> list[Env]:
        return []

    def snapshot(self, columns: bool = True) -> Any:
        """The operator's state; ``columns``: large keyed collections as :class:`KeyedColumns`
        (False: as plain dicts, the form schema versions 2 and 3 of the snapshot kept)."""
        return None

    def restore(self, state: Any) -> None:
        pass


class Filter(Stage):
    def __init__(self, pred: Callable[[Env], Any]) -> None:
        self.pred = pred

    def process(self, envs: list[Env]) -> list[Env]:
        pred = self.pred
        return [e for e in envs if pred(e) is True]


class Apply(Stage):
    """``CROSS APPLY GetArrayElements(x) AS a``: one item per element (``ArrayIndex``,
    ``ArrayValue``); ``GetRecordProperties`` gives ``PropertyName``, ``PropertyValue``.
    OUTER APPLY keeps an event with no elements (its fields NULL)."""

    def __init__(self, arg: Callable[[Env], Any], alias: str, records: bool, outer: bool) -> None:
        self.arg, self.alias, self.records, self.outer = arg, alias.lower(), records, outer

    def process(self, envs: list[Env]) -> list[Env]:
        out = []
        alias = self.alias
        for e in envs:
            v = self.arg(e)
            rows: list[dict] = []
            if self.records:
                if isinstance(v, dict):
                    rows = [{"PropertyName": k, "PropertyValue": x} for k, x in v.items()]
            elif isinstance(v, list):
                rows = [{"ArrayIndex": i, "ArrayValue": x} for i, x in enumerate(v)]
            if not rows and self.outer:
                rows = [{}]
            for r in rows:
                recs = dict(e.recs)
                recs[alias] = r
                out.append(e.with_(recs=recs))
        return out
