"""The journal writer stores every frame of a batch it can, whatever one frame holds."""

from __future__ import annotations

import pytest
from django.utils import timezone

from protocol.journal import _copy, _insert
from protocol.models import Frame

pytestmark = pytest.mark.django_db


def frame(n: int, **fields) -> Frame:
    return Frame(
        at=timezone.now(),
        pile_code="P1",
        direction="in",
        message_type=2,
        action="Heartbeat",
        unique_id=f"u{n}",
        payload={},
        **fields,
    )


def test_a_batch_with_unstorable_rows_stores_the_good_ones_as_they_are():
    rows = [frame(n) for n in range(10)]
    rows[3].unique_id = "bad\x00id"
    rows[6].payload = {"k": "nul\x00here", "nan": float("nan")}
    rows[8].transaction_id = 2**70
    _insert(rows)
    stored = list(
        Frame.objects.order_by("pk").values_list("unique_id", "payload", "transaction_id")
    )
    assert stored == [
        ("u0", {}, None),
        ("u1", {}, None),
        ("u2", {}, None),
        ("bad\\u0000id", {}, None),
        ("u4", {}, None),
        ("u5", {}, None),
        ("u6", {"k": "nul\\u0000here", "nan": "nan"}, None),
        ("u7", {}, None),
        ("u8", {}, None),
        ("u9", {}, None),
    ]


def test_a_frame_that_cannot_be_stored_even_cleaned_leaves_a_minimal_row():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    rows = [frame(1), frame(2, raw="x")]
    rows[1].payload = deep
    _insert(rows)
    stored = list(Frame.objects.order_by("pk").values_list("unique_id", "error_code", "payload"))
    assert stored == [("u1", "", {}), ("", "Unstorable", None)]


def test_copy_stores_a_batch_and_stores_a_refused_one_row_safely():
    good = {"pile_code": "P1", "direction": "in", "message_type": 2, "action": "Heartbeat"}
    _copy([{**good, "at": timezone.now(), "unique_id": f"c{n}", "payload": {"n": n}}
           for n in range(3)])  # fmt: skip
    rows = [{**good, "at": timezone.now(), "unique_id": f"r{n}", "payload": {}} for n in range(3)]
    rows[1]["payload"] = {"k": "nul\x00here"}  # COPY refuses the whole batch
    _copy(rows)
    stored = list(
        Frame.objects.order_by("pk").values_list("unique_id", "payload", "raw", "transaction_id")
    )
    assert stored == [
        ("c0", {"n": 0}, "", None),
        ("c1", {"n": 1}, "", None),
        ("c2", {"n": 2}, "", None),
        ("r0", {}, "", None),
        ("r1", {"k": "nul\\u0000here"}, "", None),
        ("r2", {}, "", None),
    ]
