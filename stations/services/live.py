"""A pile's live life as the gateway reports it: boot, heartbeats, status, online/offline.

Heartbeats are cheap at scale: the gateway collects last-seen times in memory and calls
`piles_seen` once every few seconds for all piles (one UPDATE), and keeps a bounded
history (`HeartbeatSample`, one sample per pile every few minutes, pruned by age).

Offline: `piles_sweep_offline` marks piles silent for N heartbeat intervals offline and
opens a `PileFault(kind=offline)`; piles of one station whose silence began in the same
minute (at least ``GATEWAY_OUTAGE_MIN_PILES``) share one `StationOutage`: the operator's
4G network, not the piles. Hearing from the pile again (`pile_connected`, `piles_seen`)
closes the fault, and the outage when its last pile is back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.cursors import statement_run
from chargenet.errors import DomainError
from chargenet.events import event_publish, events_publish
from stations.models import (
    Connector,
    ConnectorState,
    CurrentType,
    FirmwareRecord,
    HeartbeatSample,
    Pile,
    PileFault,
    StationOutage,
    StatusEvent,
)

from ..events import PILE_OFFLINE, PILE_STATUS_CHANGED
from .credentials import pile_credential_check, pile_credential_is_legacy

# --- Handshake ------------------------------------------------------------------------


@dataclass(frozen=True)
class PileLogin:
    pile: Pile | None  # with its station: the connection keeps it; None when refused
    reason: str = ""  # why it was refused, for the log
    # A pile whose stored credential is a legacy Django hash: refused until the caller
    # verifies the password with `pile_credential_check_legacy` (slow: off the database
    # threads) and upgrades it (`pile_credential_upgrade`).
    legacy: Pile | None = None

    @property
    def pile_id(self) -> int | None:
        return self.pile.pk if self.pile is not None else None


def pile_login(*, code: str, password: str | None) -> PileLogin:
    """Check a pile's HTTP Basic credentials (security profile 1). A pile without a stored
    credential connects without a password; hidden or unknown piles are refused.

    One indexed lookup and exactly one HMAC whatever the outcome: an unknown code, a
    hidden pile and a wrong password cannot be told apart by timing."""
    return piles_login([{"code": code, "password": password}])[0]


def piles_login(calls: list[dict]) -> list[PileLogin]:
    """`pile_login` for many handshakes at once (the logins of one group-commit batch, a
    reconnect storm's): one lookup for all their codes, then one HMAC each, as alone."""
    codes = {call["code"] for call in calls}
    piles = {p.code: p for p in Pile.objects.filter(code__in=codes).select_related("station")}
    return [_login_decision(piles.get(call["code"]), call["password"]) for call in calls]


pile_login.many = piles_login


def _login_decision(pile: Pile | None, password: str | None) -> PileLogin:
    encoded = pile.credential_hash if pile is not None else ""
    matched = pile_credential_check(password=password or "", encoded=encoded)
    if pile is None:
        return PileLogin(None, "unknown pile code")
    if pile.hidden_at is not None:
        return PileLogin(None, "pile is hidden")
    if not encoded:
        return PileLogin(pile)
    if password is None:
        return PileLogin(None, "credentials missing")
    if pile_credential_is_legacy(encoded=encoded):
        return PileLogin(None, "legacy credential not verified", legacy=pile)
    if not matched:
        return PileLogin(None, "wrong password")
    return PileLogin(pile)


class UnknownConnector(DomainError):
    code = "connector_unknown"


def connector_for(*, pile: Pile, number: int, create: bool = False) -> Connector:
    """The pile's connector ``number``.

    Only a reported connector state creates one we do not know yet (``create``: the pile reports
    its connectors when it boots, the record must not be lost; staff then fill in its
    rated power). A transaction on a connector the pile does not have raises
    `UnknownConnector` and creates nothing: a pile cannot grow connectors by starting."""
    if not create:
        connector = Connector.objects.filter(pile=pile, number=number).first()
        if connector is None:
            raise UnknownConnector(
                _("Pile %(code)s has no connector %(number)s.")
                % {"code": pile.code, "number": number}
            )
        return connector
    standard = (
        Connector.Standard.GBT_DC
        if pile.current_type == CurrentType.DC
        else Connector.Standard.GBT_AC
    )
    connector, _created = Connector.objects.get_or_create(
        pile=pile, number=number, defaults={"standard": standard}
    )
    return connector


# --- Boot -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BootResult:
    status: str  # Accepted | Pending | Rejected
    interval: int


def pile_boot(
    *,
    pile_id: int,
    vendor: str,
    model: str,
    serial_number: str = "",
    firmware_version: str = "",
    now: dt.datetime | None = None,
) -> BootResult:
    """Record what a pile says about itself at boot, with its firmware history.

    Policy: published piles are Accepted; unpublished ones too unless
    ``GATEWAY_ACCEPT_UNPUBLISHED`` is off, then they get Pending (commissioning)."""
    boot = dict(pile_id=pile_id, vendor=vendor, model=model, serial_number=serial_number,
                firmware_version=firmware_version, now=now)  # fmt: skip
    return piles_boot([boot])[0]


def piles_boot(calls: list[dict]) -> list[BootResult]:
    """`pile_boot` for the boots of one group-commit batch (a reconnect storm boots
    thousands of piles at once): one UPDATE for all of them, no row read back and written
    again, then the firmware history of each that reports a version. A pile that is not
    there fails the whole call (the batch then runs each boot alone)."""
    now = timezone.now()
    ids = [call["pile_id"] for call in calls]
    columns = [
        [call.get(name, "")[:64] for call in calls]
        for name in ("vendor", "model", "serial_number", "firmware_version")
    ]
    times = [call.get("now") or now for call in calls]
    with transaction.atomic():
        # A pile that booted twice in the batch keeps its last boot (DISTINCT ON, by
        # position): an UPDATE … FROM takes one source row per target row, any of them.
        returned = statement_run(
            f"UPDATE {Pile._meta.db_table} AS p SET vendor = v.vendor, model = v.model, "
            "serial_number = v.serial, firmware_version = v.firmware, last_boot_at = v.at "
            "FROM (SELECT DISTINCT ON (id) * FROM unnest(%s::bigint[], %s::text[], "
            "%s::text[], %s::text[], %s::text[], %s::timestamptz[]) WITH ORDINALITY "
            "AS u(id, vendor, model, serial, firmware, at, n) ORDER BY id, n DESC) AS v "
            "WHERE p.id = v.id RETURNING p.id, p.is_published",
            [ids, *columns, times],
        )
        published = dict(returned.fetchall())
        if len(published) != len(set(ids)):
            raise Pile.DoesNotExist(f"piles {sorted(set(ids) - set(published))} not found")
        for pile_id, firmware, at in zip(ids, columns[3], times, strict=True):
            if firmware:
                _firmware_seen(pile_id, firmware, at)
    return [_boot_result(published[pile_id]) for pile_id in ids]


pile_boot.many = piles_boot


def _firmware_seen(pile_id: int, firmware: str, now: dt.datetime) -> None:
    """The pile's firmware history: its latest record seen again, or a new one."""
    latest = FirmwareRecord.objects.filter(pile_id=pile_id).order_by("-last_seen_at", "-pk")
    seen_again = FirmwareRecord.objects.filter(
        pk__in=latest.values("pk")[:1], version=firmware
    ).update(last_seen_at=now)
    if not seen_again:
        FirmwareRecord.objects.create(
            pile_id=pile_id, version=firmware, first_seen_at=now, last_seen_at=now
        )


def _boot_result(is_published: bool) -> BootResult:
    interval = settings.GATEWAY_HEARTBEAT_INTERVAL
    if not is_published and not settings.GATEWAY_ACCEPT_UNPUBLISHED:
        return BootResult("Pending", interval)
    return BootResult("Accepted", interval)


# --- Online / offline -----------------------------------------------------------------


@transaction.atomic
def pile_connected(*, pile_id: int, now: dt.datetime | None = None) -> None:
    """The pile is heard from (connection opened): online, and its offline fault closed."""
    now = now or timezone.now()
    Pile.objects.filter(pk=pile_id).update(is_online=True, last_heartbeat_at=now)
    _close_offline(pile_ids=[pile_id], now=now)


def _close_offline(*, pile_ids: list[int], now: dt.datetime) -> None:
    faults = list(
        PileFault.objects.select_for_update()
        .filter(pile_id__in=pile_ids, kind=PileFault.Kind.OFFLINE, ended_at__isnull=True)
        .order_by("pk")
    )
    if not faults:
        return
    PileFault.objects.filter(pk__in=[f.pk for f in faults]).update(ended_at=now)
    outage_ids = {f.outage_id for f in faults if f.outage_id}
    for outage_id in outage_ids:
        still_open = PileFault.objects.filter(outage_id=outage_id, ended_at__isnull=True).exists()
        if not still_open:
            StationOutage.objects.filter(pk=outage_id, ended_at__isnull=True).update(ended_at=now)


def piles_seen(
    *,
    seen: dict[int, dt.datetime],
    samples: list[tuple[int, dt.datetime, str]] | None = None,
) -> int:
    """Batch of last-seen times (one UPDATE) and heartbeat history samples from a gateway.

    A pile swept offline while it was in fact still talking comes back online here."""
    if not seen and not samples:
        return 0
    with transaction.atomic():
        updated = 0
        if seen:
            # One statement for the whole batch: GREATEST keeps the newest time when
            # two gateway nodes report the same pile.
            from django.db import connection

            ids = list(seen)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Pile._meta.db_table} AS p SET last_heartbeat_at = "
                    "GREATEST(p.last_heartbeat_at, v.at) "
                    "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at) WHERE p.id = v.id",
                    [ids, [seen[i] for i in ids]],
                )
                updated = cursor.rowcount
            back = list(
                Pile.objects.filter(pk__in=ids, is_online=False).values_list("pk", flat=True)
            )
            if back:
                now = timezone.now()
                Pile.objects.filter(pk__in=back).update(is_online=True)
                _close_offline(pile_ids=back, now=now)
        if samples:
            HeartbeatSample.objects.bulk_create(
                [HeartbeatSample(pile_id=p, at=at, state=state[:16]) for p, at, state in samples]
            )
    return updated


def piles_sweep_offline(*, now: dt.datetime | None = None) -> list[int]:
    """Mark piles silent for ``GATEWAY_OFFLINE_AFTER_INTERVALS`` heartbeat intervals
    offline, each with an offline fault record; group same-minute drops per station
    into one network outage. Safe to run from several processes at once."""
    now = now or timezone.now()
    interval = settings.GATEWAY_HEARTBEAT_INTERVAL
    silent_for = dt.timedelta(seconds=interval * settings.GATEWAY_OFFLINE_AFTER_INTERVALS)
    min_piles = settings.GATEWAY_OUTAGE_MIN_PILES
    with transaction.atomic():
        piles = list(
            Pile.objects.select_for_update(skip_locked=True)
            .filter(is_online=True)
            .filter(Q(last_heartbeat_at__lt=now - silent_for) | Q(last_heartbeat_at__isnull=True))
            .only("pk", "station_id", "last_heartbeat_at")
            .order_by("pk")
        )
        return _piles_offline(piles=piles, now=now, min_piles=min_piles)


def piles_went_silent(
    *, silent: dict[int, dt.datetime], now: dt.datetime | None = None
) -> list[int]:
    """Piles their gateway heard nothing from for their protocol's allowance (a YKC pile:
    three missed heartbeats, ``silent`` maps each to the time of its last frame) go
    offline now, the way the sweep takes piles offline (`piles_sweep_offline`): offline
    fault from the last frame, outage grouping, ``pile.offline`` event; their connectors
    show offline with them. A pile heard of since (a newer last-seen: it reconnected,
    perhaps to another node) stays online."""
    now = now or timezone.now()
    if not silent:
        return []
    quiet = Q()
    for pile_id, at in silent.items():
        quiet |= Q(pk=pile_id) & (Q(last_heartbeat_at__isnull=True) | Q(last_heartbeat_at__lte=at))
    with transaction.atomic():
        piles = list(
            Pile.objects.select_for_update(skip_locked=True)
            .filter(quiet, is_online=True)
            .only("pk", "station_id", "last_heartbeat_at")
            .order_by("pk")
        )
        for pile in piles:  # its gateway writes last-seen times coarsely: the exact one
            pile.last_heartbeat_at = silent[pile.pk]
            Pile.objects.filter(pk=pile.pk).update(last_heartbeat_at=pile.last_heartbeat_at)
        return _piles_offline(piles=piles, now=now, min_piles=settings.GATEWAY_OUTAGE_MIN_PILES)


def _piles_offline(*, piles: list[Pile], now: dt.datetime, min_piles: int) -> list[int]:
    """Take ``piles`` (locked, online) offline: fault records, outages, events."""
    if not piles:
        return []
    Pile.objects.filter(pk__in=[p.pk for p in piles]).update(is_online=False)
    faults = PileFault.objects.bulk_create(
        [
            PileFault(
                pile_id=p.pk,
                kind=PileFault.Kind.OFFLINE,
                started_at=p.last_heartbeat_at or now,
            )
            for p in piles
        ],
        ignore_conflicts=True,
    )
    _group_outages(piles=piles, min_piles=min_piles)
    events_publish(
        kind=PILE_OFFLINE,
        events=[
            (
                p.pk,
                {
                    "pile_id": p.pk,
                    "station_id": p.station_id,
                    "last_heartbeat_at": p.last_heartbeat_at and p.last_heartbeat_at.isoformat(),
                },
            )
            for p in piles
        ],
    )
    return [p.pk for p in piles] if faults else []


def _minute(at: dt.datetime) -> dt.datetime:
    return at.replace(second=0, microsecond=0)


def _group_outages(*, piles: list[Pile], min_piles: int) -> None:
    """Same station, silence beginning in the same minute → one outage (also joining
    an outage a previous sweep opened for that minute)."""
    groups: dict[tuple[int, dt.datetime], list[int]] = {}
    for p in piles:
        if p.last_heartbeat_at is None:
            continue
        groups.setdefault((p.station_id, _minute(p.last_heartbeat_at)), []).append(p.pk)
    for (station_id, minute), pile_ids in groups.items():
        outage = StationOutage.objects.filter(
            station_id=station_id, started_at=minute, ended_at__isnull=True
        ).first()
        if outage is None:
            same_minute = PileFault.objects.filter(
                pile__station_id=station_id,
                kind=PileFault.Kind.OFFLINE,
                ended_at__isnull=True,
                outage__isnull=True,
                started_at__gte=minute,
                started_at__lt=minute + dt.timedelta(minutes=1),
            )
            if same_minute.count() < min_piles:
                continue
            outage = StationOutage.objects.create(station_id=station_id, started_at=minute)
            linked = same_minute.update(outage=outage)
        else:
            linked = PileFault.objects.filter(
                pile_id__in=pile_ids, kind=PileFault.Kind.OFFLINE, ended_at__isnull=True
            ).update(outage=outage)
        StationOutage.objects.filter(pk=outage.pk).update(pile_count=F("pile_count") + linked)


# --- Status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusResult:
    full_still_plugged: bool  # suspended by the car/finishing while a session is open (满电占桩)


_FULL_STATES = {ConnectorState.SUSPENDED_EV, ConnectorState.FINISHING}
# The state that tells most about a pile as a whole, first: its heartbeat history shows it.
_SUMMARY_ORDER = [
    ConnectorState.FAULTED,
    ConnectorState.CHARGING,
    ConnectorState.SUSPENDED_EV,
    ConnectorState.SUSPENDED_EVSE,
    ConnectorState.FINISHING,
    ConnectorState.PREPARING,
    ConnectorState.RESERVED,
    ConnectorState.UNAVAILABLE,
    ConnectorState.AVAILABLE,
]


def pile_state_summary(states: Iterable[str]) -> ConnectorState:
    """One state for a pile from its connectors' states (Unknown before any report)."""
    states = set(states)
    return next((state for state in _SUMMARY_ORDER if state in states), ConnectorState.UNKNOWN)


@transaction.atomic
def connector_status_record(
    *,
    pile: Pile,
    connector_number: int,
    state: ConnectorState,
    error_code: str = "",
    info: str = "",
    vendor_error_code: str = "",
    pile_time: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> StatusResult:
    """A connector's (or, as connector 0, the pile's) reported state: history row, the
    connector's live state, and pile fault records for error codes (opened on an error,
    closed when the pile reports none: ``error_code`` empty)."""
    now = now or timezone.now()
    error = error_code[:32]
    StatusEvent.objects.create(
        pile=pile,
        connector_number=connector_number,
        status=state,
        error_code=error,
        info=info[:100],
        vendor_error_code=vendor_error_code[:64],
        pile_time=pile_time,
        received_at=now,
    )
    event_publish(
        kind=PILE_STATUS_CHANGED,
        key=pile.pk,
        payload={
            "pile_id": pile.pk,
            "station_id": pile.station_id,
            "connector_number": connector_number,
            "state": str(state),
            "error_code": error,
            "at": now.isoformat(),
        },
    )
    full = False
    if connector_number > 0:
        connector = connector_for(pile=pile, number=connector_number, create=True)
        Connector.objects.filter(pk=connector.pk).update(
            status=state, error_code=error, status_at=now
        )
        if state in _FULL_STATES:
            full = connector.sessions.filter(state__in=["started", "charging"]).exists()
    open_fault = (
        PileFault.objects.select_for_update()
        .filter(
            pile=pile,
            kind=PileFault.Kind.ERROR,
            connector_number=connector_number,
            ended_at__isnull=True,
        )
        .first()
    )
    if open_fault is not None and open_fault.error_code != error:
        open_fault.ended_at = now
        open_fault.save(update_fields=["ended_at"])
        open_fault = None
    if error and open_fault is None:
        PileFault.objects.create(
            pile=pile,
            kind=PileFault.Kind.ERROR,
            connector_number=connector_number,
            error_code=error,
            started_at=now,
        )
    return StatusResult(full_still_plugged=full)


def heartbeat_history_prune(*, before: dt.datetime) -> int:
    """Drop heartbeat samples older than ``before`` (the history stays bounded)."""
    deleted, _by_model = HeartbeatSample.objects.filter(at__lt=before).delete()
    return deleted


__all__ = [
    "BootResult",
    "PileLogin",
    "StatusResult",
    "UnknownConnector",
    "connector_for",
    "connector_status_record",
    "heartbeat_history_prune",
    "pile_boot",
    "pile_connected",
    "pile_login",
    "pile_state_summary",
    "piles_seen",
    "piles_sweep_offline",
]
