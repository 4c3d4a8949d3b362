"""Group commit: requests of one kind and key that arrive while the previous batch for that key
is being committed wait for it, then go together in the next batch.

Under load many requests then share one transaction, one commit and a handful of statements;
a request that finds nothing in flight goes at once, so nothing waits on a timer. A batch that
fails is run again one request at a time, so that a request can only ever fail on its own
account, never because it shared a batch with a bad one.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger(__name__)


@dataclass
class _Group(Generic[T]):
    waiting: list[tuple[T, asyncio.Future[Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


class NextBatch:
    """An outcome saying "not in this batch": the item goes in the next one (it needs this
    batch's work committed first, say)."""


NEXT_BATCH = NextBatch()


class GroupCommit(Generic[K, T, R]):
    """``submit(key, item)`` answers with ``work(key, items)``'s outcome for that item. ``work``
    returns one outcome per item, in order: a result, an exception to raise to that caller, or
    ``NEXT_BATCH``."""

    def __init__(self, work: Callable[[K, list[T]], Awaitable[list[R | Exception | NextBatch]]], *,
                 max_batch: int) -> None:
        self._work = work
        self._max_batch = max_batch
        self._groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, _Group[T]]] = \
            weakref.WeakKeyDictionary()

    async def submit(self, key: K, item: T) -> R:
        loop = asyncio.get_running_loop()
        groups = self._groups.setdefault(loop, {})
        group = groups.setdefault(key, _Group())
        future: asyncio.Future[R] = loop.create_future()
        group.waiting.append((item, future))
        if group.task is None:
            # A batch serves many requests: it runs in a context of its own, not the first caller's
            # (whose request id the log would otherwise give to every order of the batch).
            group.task = loop.create_task(self._drain(groups, key, group), context=contextvars.Context())
        return await future

    async def _drain(self, groups: dict[K, _Group[T]], key: K, group: _Group[T]) -> None:
        try:
            while group.waiting:
                batch, group.waiting = group.waiting[:self._max_batch], group.waiting[self._max_batch:]
                group.waiting[:0] = await self._run(key, batch)
        finally:
            del groups[key]
            for _, future in group.waiting:  # only when the loop shuts down mid-batch
                future.cancel()

    async def _run(self, key: K, batch: list[tuple[T, asyncio.Future[Any]]]) -> list[tuple[T, asyncio.Future[Any]]]:
        """Run a batch; returns the entries that go in the next one."""
        try:
            outcomes = await self._work(key, [item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to the caller, or retried one by one
            if len(batch) > 1:
                log.warning("group_commit.batch_failed", size=len(batch), error=repr(exc))
                later = []
                for entry in batch:
                    later += await self._run(key, [entry])
                return later
            outcomes = [exc]
        later = []
        for entry, outcome in zip(batch, outcomes, strict=True):
            future = entry[1]
            if isinstance(outcome, NextBatch):
                later.append(entry)
            elif future.done():  # the caller went away; the work is done all the same
                continue
            elif isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        return later
