"""The scheduled lost-bill sweep: open sessions whose end never came become fault bills.

The sweep closes them (``stopped``, stop reason "Lost"), records their fault case with
the reasons and a proposed stop/energy for customer service, queues the driver's "being
checked" message, and queues their settlement after commit, where `bill_settle` writes the
(uncharged) fault bill through the same rules — like any session superseded by a new
transaction on its connector.

Set-based on purpose: the number of queries is the same for 10 or 100,000 open sessions
(one candidate query, three fact queries, a handful of bulk writes). The candidate query
only pre-selects with cheap SQL conditions (connector back to Available, pile rebooted,
silence past the operator's limit); the pure rules in `faults.rules` make the decision and
write the explanation. A new transaction on the connector is not looked for here: the
gateway closes the older session at once (superseded) and its settlement runs the same
rules, which see the newer session. A refused start (state ``refused``) is not an open
session: the pile was told not to charge, and one that charges anyway makes it live.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from billing.services.repair import sessions_mark_lost

from ..codes import FaultCode
from ..facts import open_sessions_facts
from ..models import FaultAction, FaultCase, FaultSettings, FaultSource, Notification
from ..rules import Thresholds, detect, propose_lost_bill
from .cases import case_record, fault_case_build

LOST_CODES = frozenset({FaultCode.BILL_LOST, FaultCode.BILL_LOST_OFFLINE})

CANDIDATES_SQL = """
SELECT s.id, s.pile_id, s.connector_id, c.number AS connector_number, s.created_at,
       s.started_at, s.meter_start_wh, s.operator_id, s.member_id, s.station_id,
       s.sub_operator_id, s.channel, p.last_boot_at,
       p.firmware_version, st.time_zone, NULL::timestamptz AS next_start
FROM billing_chargingsession s
JOIN stations_connector c ON c.id = s.connector_id
JOIN stations_pile p ON p.id = s.pile_id
JOIN stations_station st ON st.id = s.station_id
LEFT JOIN faults_faultsettings fs ON fs.operator_id = s.operator_id
WHERE s.state IN ('started', 'charging')
  AND (
    COALESCE(s.last_sample_at, s.created_at)
        < %(now)s - make_interval(mins => COALESCE(fs.max_silence_minutes, %(silence)s))
    OR p.last_boot_at > s.created_at
    OR EXISTS (
        SELECT 1 FROM stations_statusevent e
        WHERE e.pile_id = s.pile_id AND e.connector_number = c.number
          AND e.status = 'Available' AND e.received_at > s.created_at
    )
  )
ORDER BY s.id
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""


SETTLE_CHUNK = 500


def _queue_settlements(ids: list[int]) -> None:
    from ..tasks import lost_bills_settle_task

    for i in range(0, len(ids), SETTLE_CHUNK):
        lost_bills_settle_task.delay(ids[i : i + SETTLE_CHUNK])


@dataclass
class SweepResult:
    candidates: int = 0
    lost: int = 0
    by_code: Counter = field(default_factory=Counter)
    case_ids: list[int] = field(default_factory=list)


CASE_COLUMNS = (
    "session_id",
    "operator_id",
    "station_id",
    "sub_operator_id",
    "channel",
    "codes",
    "blocks_payment",
    "state",
    "source",
    "findings",
    "pile_values",
    "platform_values",
    "proposal",
    "firmware",
    "detected_at",
)


def _write_cases(cases: list[FaultCase], *, now: dt.datetime) -> None:
    """Cases by COPY, then their detection rows and the drivers' "being checked" messages
    by INSERT … SELECT: four statements for any number of cases."""
    if not cases:
        return
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY faults_faultcase ({', '.join(CASE_COLUMNS)}) FROM STDIN"
        ) as copy:
            for case in cases:
                copy.write_row(
                    (
                        case.session_id,
                        case.operator_id,
                        case.station_id,
                        case.sub_operator_id,
                        case.channel,
                        case.codes,
                        case.blocks_payment,
                        case.state,
                        case.source,
                        json.dumps(case.findings, ensure_ascii=False),
                        json.dumps(case.pile_values),
                        json.dumps(case.platform_values),
                        json.dumps(case.proposal),
                        case.firmware,
                        case.detected_at,
                    )
                )
        session_ids = [case.session_id for case in cases]
        cursor.execute(
            """
            INSERT INTO faults_faultaction (case_id, kind, at, from_state, to_state, after, reason)
            SELECT id, %s, %s, '', state, jsonb_build_object('codes', codes), ''
            FROM faults_faultcase WHERE session_id = ANY(%s)
            """,
            [FaultAction.Kind.DETECT, now, session_ids],
        )
        cursor.execute(
            """
            INSERT INTO faults_notification (session_id, member_id, kind, payload, state,
                attempts, last_error, sender, external_id, created_at)
            SELECT id, member_id, %s, '{}', %s, 0, '', '', '', %s
            FROM billing_chargingsession WHERE id = ANY(%s) AND member_id IS NOT NULL
            ON CONFLICT DO NOTHING
            """,
            [Notification.Kind.BEING_CHECKED, Notification.State.PENDING, now, session_ids],
        )
    transaction.on_commit(_queue_notifications)


def _queue_notifications() -> None:
    from ..tasks import notifications_send_pending_task

    notifications_send_pending_task.delay()


@transaction.atomic
def lost_bills_sweep(*, now: dt.datetime | None = None, limit: int = 50_000) -> SweepResult:
    """Turn every open session that is evidently over into a fault bill (code 1 or 2, with
    any other code its facts show), propose its stop and energy, and queue the driver's
    "being checked" message. Sessions locked by a concurrent stop are skipped (next run).
    At most ``limit`` sessions per run, so a backlog drains over successive runs."""
    now = now or timezone.now()
    default = Thresholds()
    with connection.cursor() as cursor:
        # The planner's estimate for this one query crosses the JIT threshold; compiling
        # costs more (~0.5 s) than the whole query.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(
            CANDIDATES_SQL,
            {"now": now, "silence": int(default.max_silence.total_seconds() // 60), "limit": limit},
        )
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    result = SweepResult(candidates=len(rows))
    if not rows:
        return result
    limits = {
        s.operator_id: s.thresholds()
        for s in FaultSettings.objects.filter(operator_id__in={r["operator_id"] for r in rows})
    }
    facts = open_sessions_facts(rows=rows, now=now)
    decided = []
    for row in rows:
        session_facts = facts[row["id"]]
        findings = detect(session_facts, limits.get(row["operator_id"], default))
        if not any(f.code in LOST_CODES for f in findings):
            continue
        decided.append((row, session_facts, findings))
    moved = sessions_mark_lost(
        session_ids=[row["id"] for row, _f, _x in decided],
        reason="bill lost: found by the sweep",
        now=now,
    )
    transaction.on_commit(lambda: _queue_settlements(sorted(moved)))
    cases = [
        fault_case_build(
            session_id=row["id"],
            scope=row,
            record=case_record(
                facts=session_facts,
                findings=findings,
                proposal=propose_lost_bill(session_facts),
                firmware=row["firmware_version"],
            ),
            source=FaultSource.SWEEP,
            now=now,
        )
        for row, session_facts, findings in decided
        if row["id"] in moved
    ]
    _write_cases(cases, now=now)
    result.lost = len(cases)
    result.case_ids = list(
        FaultCase.objects.filter(session_id__in=[c.session_id for c in cases]).values_list(
            "pk", flat=True
        )
    )
    for case in cases:
        result.by_code.update(case.codes)
    return result
