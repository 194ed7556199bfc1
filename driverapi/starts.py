"""A driver's start, answered at once: recorded under its idempotency key, sent to the
pile's gateway node without waiting (`protocol.intents.connector_start_send`), and read
back later — the pile's answer from the reply its node leaves in Redis, the session once
the pile reports the start — whenever the phone asks (`start_refresh`).

A web thread therefore never waits for a pile: a hundred drivers pressing "start" at once
cost a hundred short requests, not a hundred threads held for the round trip.
"""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession
from billing.services.sessions import CredentialKind
from chargenet.errors import Conflict
from orgs.models import Member
from protocol.intents import Outcome, Sent, connector_start_answer, connector_start_send
from stations.models import Connector

from .models import OPEN_STATES, DriverStart, StartState

# A start still "starting" this long after it was recorded without ever being sent (the
# web process died between the two) will not be sent any more.
UNSENT_AFTER = dt.timedelta(seconds=30)

# The pile's answer as the start's state.
OUTCOME_STATES = {
    Outcome.ACCEPTED: StartState.ACCEPTED,
    Outcome.REJECTED: StartState.REJECTED,
    Outcome.OFFLINE: StartState.OFFLINE,
    Outcome.TIMEOUT: StartState.TIMEOUT,
    Outcome.NOT_SUPPORTED: StartState.FAILED,
    Outcome.INVALID: StartState.FAILED,
}


class StartInProgress(Conflict):
    code = "start_in_progress"


def starts_of(*, member: Member, key: str) -> tuple[DriverStart | None, list[DriverStart]]:
    """In one query: the member's start of ``key`` (a retry finds it), and their starts
    still on their way."""
    rows = (
        DriverStart.objects.filter(member=member)
        .filter(Q(idempotency_key=key) | Q(state__in=OPEN_STATES))
        .select_related("connector__pile", "member")
    )
    keyed, under_way = None, []
    for row in rows:
        if row.idempotency_key == key:
            keyed = row
        else:
            under_way.append(row)
    return keyed, under_way


def start_record(
    *, member: Member, connector: Connector, key: str, under_way: list[DriverStart]
) -> tuple[DriverStart, bool]:
    """The start of ``key``: a new one (True), or the one a concurrent twin of this request
    recorded first (False: send nothing). Refused while another start of the member is
    still on its way (``under_way``, from `starts_of`): two piles must not start for one
    driver."""
    for other in under_way:
        if start_refresh(start=other).state in OPEN_STATES:
            raise StartInProgress(
                _("Your previous start is still on its way to the pile; please wait.")
            )
    # Autocommit: one INSERT needs no transaction of its own; inside a caller's
    # transaction a savepoint keeps a duplicate key from breaking it.
    scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with scope:
            start = DriverStart.objects.create(
                member=member, connector=connector, idempotency_key=key
            )
    except IntegrityError:
        return starts_of(member=member, key=key)[0], False
    return start, True


def start_send(*, start: DriverStart, member: Member) -> DriverStart:
    """Send ``start`` to its pile without waiting (call outside a transaction). When it
    cannot be sent (offline, not supported) the start ends so at once."""
    sent = connector_start_send(
        connector=start.connector,
        credential_value=member.token,
        credential_kind=CredentialKind.MEMBER_TOKEN,
        timeout=settings.DRIVER_COMMAND_TIMEOUT,
    )
    if isinstance(sent, Sent):
        start.request_id, start.action, start.expires = sent.request_id, sent.action, sent.expires
        fields = ["request_id", "action", "expires"]
    else:
        start.state, start.outcome = OUTCOME_STATES[sent.outcome], sent.outcome
        start.answered_at = timezone.now()
        fields = ["state", "outcome", "answered_at"]
    DriverStart.objects.filter(pk=start.pk, state=StartState.STARTING).update(
        **{name: getattr(start, name) for name in fields}
    )
    return start


def start_refresh(*, start: DriverStart) -> DriverStart:
    """What became of ``start``: the session once the pile reported it (even after a late
    answer), else the pile's answer once it came. Idempotent; writes only changes."""
    if start.state in (*OPEN_STATES, StartState.TIMEOUT) and start.session_id is None:
        session = (
            ChargingSession.objects.filter(
                member_id=start.member_id,
                connector_id=start.connector_id,
                created_at__gte=start.created_at,
            )
            .order_by("created_at")
            .only("pk")
            .first()
        )
        if session is not None:
            return _settle(start, state=StartState.CHARGING, session_id=session.pk)
    if start.state != StartState.STARTING:
        return start
    if start.request_id:
        result = connector_start_answer(
            connector=start.connector,
            credential_value=start.member.token,
            credential_kind=CredentialKind.MEMBER_TOKEN,
            sent=Sent(start.action, start.request_id, start.expires),
        )
        if result is not None:
            return _settle(start, state=OUTCOME_STATES[result.outcome], outcome=result.outcome)
    elif timezone.now() - start.created_at > UNSENT_AFTER:
        return _settle(start, state=StartState.FAILED, outcome=Outcome.INVALID)
    return start


def _settle(start: DriverStart, **changes) -> DriverStart:
    """Write ``changes`` unless another reader wrote the same moment (then read theirs)."""
    changes.setdefault("answered_at", start.answered_at or timezone.now())
    done = DriverStart.objects.filter(pk=start.pk, state=start.state, session_id=None).update(
        **changes
    )
    if done:
        for name, value in changes.items():
            setattr(start, name, value)
    else:
        start.refresh_from_db()
    return start


def starts_settle(*, limit: int = 500) -> int:
    """Read back the pile's answer (or the session) of starts still open a few seconds
    after they were recorded — those no phone polled — so each ends recorded before its
    reply leaves Redis (`protocol.routing.REPLY_TTL`). Returns how many changed."""
    due = timezone.now() - dt.timedelta(seconds=5)
    changed = 0
    rows = DriverStart.objects.filter(state__in=OPEN_STATES, created_at__lt=due).order_by("pk")
    for start in rows.select_related("connector__pile", "member")[:limit]:
        before = start.state
        changed += start_refresh(start=start).state != before
    return changed
