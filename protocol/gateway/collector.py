"""The garbage collector of a gateway process (`rungateway`, `runykc`).

A gateway is one event loop answering thousands of piles: while Python's cycle collector
runs, every pile waits. Under the closed loop of `bench.gateway` (200 piles, a 20 s
window) Python's thresholds (700, 10, 10) collected the young generation 299 times (821
ms in all), the middle one 28 times (135 ms), and a full collection walked every object
Django and the gateway had loaded: 86-199 ms each, every pile's answer held up, a p99 of
its own (22 ms with the freeze).

So once a gateway has loaded, the objects it started with are frozen out of collection
(``gc.freeze``: the models, the URL maps, the compiled schemas never become garbage), and
the young generation is collected every ``GATEWAY_GC_THRESHOLD`` container allocations
instead of every 700: reference counting frees nearly everything a message allocates, so
what is left for the collector is rare, and it still runs, in far fewer and shorter
pauses. 0 keeps Python's own thresholds (the freeze still applies).
"""

from __future__ import annotations

import gc

from django.conf import settings


def collector_tuned() -> None:
    """Freeze what the process has loaded and set the young generation's threshold; call
    once, when the process is about to serve."""
    gc.collect()
    gc.freeze()
    threshold = settings.GATEWAY_GC_THRESHOLD
    if threshold:
        _young, middle, old = gc.get_threshold()
        gc.set_threshold(threshold, middle, old)
