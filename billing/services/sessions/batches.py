"""How a batch of one command's calls runs (the gateway's group commit gives a batch's
MeterValues, starts, stops and Authorizes to the command's ``many``, see `protocol.db`)."""

from __future__ import annotations

from collections.abc import Callable


def calls_run(calls: list[dict], batched: list[int], batch: Callable, alone: Callable) -> list:
    """The results of ``calls``, in their order: those at the indexes ``batched`` (when
    more than one) from ``batch``, given their calls at once, which answers each with a
    result or None; every other call, and each ``batch`` answered None, from
    ``alone(**call)``, after the batch, one by one, in their order."""
    results: list = [None] * len(calls)
    if len(batched) > 1:
        for i, result in zip(batched, batch([calls[i] for i in batched]), strict=True):
            results[i] = result
    for i, call in enumerate(calls):
        if results[i] is None:
            results[i] = alone(**call)
    return results
