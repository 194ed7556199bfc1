"""The journal writer stores every frame of a batch it can, whatever one frame holds."""

from __future__ import annotations

import pytest
from django.utils import timezone

from protocol.journal import _insert
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
