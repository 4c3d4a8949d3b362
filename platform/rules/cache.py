"""Compiled rule documents kept in memory, least recently used first out.

Keys are (tenant, version id): published versions never change, so an entry never goes stale
and nothing needs invalidating. One cache per kind of document (routing, promotions), each
with the function that compiles its documents.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

C = TypeVar("C")


class CompiledCache(Generic[C]):
    """Compiled versions by (tenant, version), at most ``size`` of them."""

    def __init__(self, compile: Callable[[dict[str, Any]], C], size: int = 512) -> None:
        self.compile = compile
        self.size = size
        self.entries: OrderedDict[tuple[Any, Any], C] = OrderedDict()
        self.hits = self.misses = 0

    def peek(self, key: tuple[Any, Any]) -> C | None:
        """The compiled version when it is cached (no document needed), else None."""
        compiled = self.entries.get(key)
        if compiled is not None:
            self.entries.move_to_end(key)
            self.hits += 1
        return compiled

    def get(self, key: tuple[Any, Any], document: dict[str, Any]) -> C:
        """The compiled version, compiled from ``document`` on a miss."""
        compiled = self.entries.get(key)
        if compiled is not None:
            self.entries.move_to_end(key)
            self.hits += 1
            return compiled
        self.misses += 1
        compiled = self.entries[key] = self.compile(document)
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return compiled
