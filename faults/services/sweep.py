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
from collections import Counter
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.services.repair import sessions_mark_lost
from stations.models import Connector, ConnectorState, Pile, Station, StatusEvent

from ..codes import FaultCode
from ..facts import open_sessions_facts
from ..models import FaultSettings, FaultSource
from ..rules import Thresholds, detect, propose_lost_bill
from .cases import CaseOpening, case_record, fault_cases_open

LOST_CODES = frozenset({FaultCode.BILL_LOST, FaultCode.BILL_LOST_OFFLINE})

CANDIDATES_SQL = f"""
SELECT s.id, s.pile_id, s.connector_id, c.number AS connector_number, s.created_at,
       s.started_at, s.meter_start_wh, s.operator_id, s.member_id, s.station_id,
       s.sub_operator_id, s.channel, p.last_boot_at,
       p.firmware_version, st.time_zone, NULL::timestamptz AS next_start
FROM {ChargingSession._meta.db_table} s
JOIN {Connector._meta.db_table} c ON c.id = s.connector_id
JOIN {Pile._meta.db_table} p ON p.id = s.pile_id
JOIN {Station._meta.db_table} st ON st.id = s.station_id
LEFT JOIN {FaultSettings._meta.db_table} fs ON fs.operator_id = s.operator_id
WHERE s.state = ANY(%(active)s)
  AND (
    COALESCE(s.last_sample_at, s.created_at)
        < %(now)s - make_interval(mins => COALESCE(fs.max_silence_minutes, %(silence)s))
    OR p.last_boot_at > s.created_at
    OR EXISTS (
        SELECT 1 FROM {StatusEvent._meta.db_table} e
        WHERE e.pile_id = s.pile_id AND e.connector_number = c.number
          AND e.status = %(available)s AND e.received_at > s.created_at
    )
  )
ORDER BY s.id
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""


SETTLE_CHUNK = 500


def _sessions_stoppeds(ids: list[int]) -> None:
    from ..tasks import lost_bills_settle_task

    for i in range(0, len(ids), SETTLE_CHUNK):
        lost_bills_settle_task.delay(ids[i : i + SETTLE_CHUNK])


@dataclass
class SweepResult:
    candidates: int = 0
    lost: int = 0
    by_code: Counter = field(default_factory=Counter)
    case_ids: list[int] = field(default_factory=list)


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
            {
                "now": now,
                "silence": int(default.max_silence.total_seconds() // 60),
                "limit": limit,
                "active": [str(state) for state in ACTIVE_STATES],
                "available": ConnectorState.AVAILABLE,
            },
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
    transaction.on_commit(lambda: _sessions_stoppeds(sorted(moved)))
    openings = [
        CaseOpening(
            session_id=row["id"],
            scope=row,
            record=case_record(
                facts=session_facts,
                findings=findings,
                proposal=propose_lost_bill(session_facts),
                firmware=row["firmware_version"],
            ),
        )
        for row, session_facts, findings in decided
        if row["id"] in moved
    ]
    # The driver's "being checked" message follows from the settlement queued above.
    cases = fault_cases_open(openings=openings, source=FaultSource.SWEEP, now=now)
    result.lost = len(cases)
    result.case_ids = [case.pk for case in cases]
    for case in cases:
        result.by_code.update(case.codes)
    return result
