"""Columnar fast path (placeholder until implemented): None means row path."""

from __future__ import annotations


def try_columnar(compiled, policy):
    return None
