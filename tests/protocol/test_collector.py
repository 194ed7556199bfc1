"""`collector_tuned`: a gateway process freezes what it loaded and collects its young
garbage less often. Run in a fresh interpreter: it changes the whole process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import gc, json, django
django.setup()
from protocol.gateway.collector import collector_tuned
before = gc.get_threshold()
collector_tuned()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count()}))
"""


def _probe(threshold: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chargenet.settings",
           "GATEWAY_GC_THRESHOLD": threshold}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_gateway_process_freezes_what_it_loaded_and_collects_young_garbage_less_often():
    tuned = _probe("50000")
    assert tuned["before"] == [700, 10, 10]
    assert tuned["after"] == [50000, 10, 10]
    assert tuned["frozen"] > 10_000  # Django, its apps and their models


def test_zero_keeps_pythons_thresholds():
    kept = _probe("0")
    assert kept["after"] == [700, 10, 10]
    assert kept["frozen"] > 10_000
