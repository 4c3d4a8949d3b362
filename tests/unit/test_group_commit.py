"""Group commit: what arrives while a batch runs goes together in the next; a failed batch is
run again one item at a time, so only the item at fault fails."""

from __future__ import annotations

import asyncio

import pytest

from core.group_commit import NEXT_BATCH, GroupCommit, NextBatch


class Recorder:
    """A batch step that takes a little while, as a transaction does, and fails any batch
    holding an item that starts with "bad"."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []

    async def work(self, key: str, items: list[str]) -> list[str | Exception]:
        self.batches.append((key, list(items)))
        await asyncio.sleep(0.01)
        if any(item.startswith("bad") for item in items):
            raise RuntimeError(f"batch of {len(items)} failed")
        return [ValueError(item) if item.startswith("refused") else f"{key}:{item}" for item in items]


async def test_a_lone_item_goes_at_once_and_later_arrivals_share_the_next_batch() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=10)
    first = asyncio.ensure_future(group.submit("k", "i0"))
    await asyncio.sleep(0)  # its batch is under way

    results = await asyncio.gather(*(group.submit("k", f"i{n}") for n in range(1, 6)))

    assert await first == "k:i0"
    assert results == [f"k:i{n}" for n in range(1, 6)]
    # The first went alone; the five that arrived while it ran went together.
    assert recorder.batches == [("k", ["i0"]), ("k", ["i1", "i2", "i3", "i4", "i5"])]


async def test_batches_never_exceed_their_limit_and_keep_arrival_order() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=3)

    results = await asyncio.gather(*(group.submit("k", f"i{n}") for n in range(8)))

    assert results == [f"k:i{n}" for n in range(8)]
    assert [items for _, items in recorder.batches] == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6", "i7"]]


async def test_keys_never_share_a_batch() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=10)

    results = await asyncio.gather(*(group.submit(key, f"i{n}") for n in range(4) for key in ("a", "b")))

    assert sorted(results) == sorted(f"{key}:i{n}" for n in range(4) for key in ("a", "b"))
    for key, items in recorder.batches:
        assert all(f"{key}:{item}" in results for item in items)
    assert {key for key, _ in recorder.batches} == {"a", "b"}


async def test_a_failed_batch_is_retried_item_by_item_and_only_the_bad_item_fails() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=10)
    first = asyncio.ensure_future(group.submit("k", "first"))
    await asyncio.sleep(0)  # the first batch is under way; the next three wait for it together

    outcomes = await asyncio.gather(*(group.submit("k", item) for item in ("good1", "bad", "good2")),
                                    return_exceptions=True)

    assert await first == "k:first"
    assert outcomes[0] == "k:good1" and outcomes[2] == "k:good2"
    assert isinstance(outcomes[1], RuntimeError) and str(outcomes[1]) == "batch of 1 failed"
    assert recorder.batches[1:] == [("k", ["good1", "bad", "good2"]), ("k", ["good1"]), ("k", ["bad"]),
                                    ("k", ["good2"])]


async def test_an_item_the_work_refuses_gets_its_own_error_and_the_others_their_results() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=10)

    outcomes = await asyncio.gather(group.submit("k", "a"), group.submit("k", "refused"), group.submit("k", "b"),
                                    return_exceptions=True)

    assert outcomes[0] == "k:a" and outcomes[2] == "k:b"
    assert isinstance(outcomes[1], ValueError)
    assert len(recorder.batches) == 1  # refusing one item is an answer, not a failed batch


async def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.work, max_batch=10)
    first = asyncio.ensure_future(group.submit("k", "first"))
    await asyncio.sleep(0)
    leaving = asyncio.ensure_future(group.submit("k", "leaving"))
    staying = asyncio.ensure_future(group.submit("k", "staying"))
    await asyncio.sleep(0)
    leaving.cancel()

    assert await first == "k:first"
    assert await staying == "k:staying"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert recorder.batches[1] == ("k", ["leaving", "staying"])  # its work was done all the same


async def test_an_item_put_off_goes_in_the_next_batch() -> None:
    """The second of two items that must not share a batch (two requests with one idempotency
    key) waits for the first's batch, then goes with the next arrivals."""
    batches: list[list[str]] = []

    async def work(key: str, items: list[str]) -> list[str | Exception | NextBatch]:
        batches.append(list(items))
        await asyncio.sleep(0.01)
        seen: set[str] = set()
        outcomes: list[str | Exception | NextBatch] = []
        for item in items:
            outcomes.append(NEXT_BATCH if item in seen else f"done {item} after {len(batches) - 1}")
            seen.add(item)
        return outcomes

    group = GroupCommit(work, max_batch=10)
    first = asyncio.ensure_future(group.submit("k", "x"))
    await asyncio.sleep(0)
    results = await asyncio.gather(*(group.submit("k", item) for item in ("a", "a", "b")))
    assert await first == "done x after 0"
    assert results == ["done a after 1", "done a after 2", "done b after 1"]
    assert batches == [["x"], ["a", "a", "b"], ["a"]]
