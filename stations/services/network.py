"""Editing the network: stations, opening hours, piles, connectors, publishing, hiding.

The rules here are shared by the services and the admin forms (the admin calls the same
`*_problems` / `validate_*` functions in its form clean, so a rule lives in one place).
Every message names the field and the rule; bad input changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet import audit
from chargenet.audit import audit_record, snapshot
from chargenet.errors import Conflict, DomainError, full_clean_or_raise
from chargenet.events import event_publish
from chargenet.models import AuditLog
from orgs.models import Department, Operator, SubOperator

from ..events import STATION_POWER_CHANGED
from ..models import Connector, OpeningWindow, Pile, Station

# --- opening hours -------------------------------------------------------------------


def _hhmm(value: dt.time) -> str:
    return f"{value:%H:%M}"


def _minute_ranges(opens: dt.time, closes: dt.time) -> list[tuple[int, int]]:
    return OpeningWindow(opens=opens, closes=closes).minutes()


def opening_windows_problems(windows: Sequence[tuple[dt.time, dt.time]]) -> list[str]:
    """Messages for empty or overlapping daily windows (overnight 19:00–06:00 included)."""
    problems: list[str] = []
    for opens, closes in windows:
        if opens == closes:
            problems.append(
                str(
                    _(
                        "Opening hours: a window must not open and close at the same time "
                        "(%(time)s); leave the hours empty for a station open 24 hours."
                    )
                    % {"time": _hhmm(opens)}
                )
            )
    valid = [(o, c) for o, c in windows if o != c]
    for i, (opens_a, closes_a) in enumerate(valid):
        for opens_b, closes_b in valid[i + 1 :]:
            ranges_a = _minute_ranges(opens_a, closes_a)
            ranges_b = _minute_ranges(opens_b, closes_b)
            if any(a0 < b1 and b0 < a1 for a0, a1 in ranges_a for b0, b1 in ranges_b):
                problems.append(
                    str(
                        _(
                            "Opening hours: the windows %(a)s and %(b)s overlap; "
                            "windows of one station must not overlap."
                        )
                        % {
                            "a": f"{_hhmm(opens_a)}–{_hhmm(closes_a)}",
                            "b": f"{_hhmm(opens_b)}–{_hhmm(closes_b)}",
                        }
                    )
                )
    return problems


@transaction.atomic
def station_set_opening_windows(
    *, station: Station, windows: Sequence[tuple[dt.time, dt.time]], actor=None
) -> list[OpeningWindow]:
    """Replace the station's opening hours (empty = open around the clock)."""
    problems = opening_windows_problems(windows)
    if problems:
        raise DomainError(" ".join(problems), code="opening_hours")
    before = [str(w) for w in station.opening_windows.all()]
    station.opening_windows.all().delete()
    created = [
        OpeningWindow.objects.create(station=station, opens=opens, closes=closes)
        for opens, closes in sorted(windows)
    ]
    after = [str(w) for w in created]
    if actor is not None and before != after:
        audit_record(
            actor=actor,
            action="station_hours",
            obj=station,
            before={"opening_hours": before},
            after={"opening_hours": after},
            operator_id=station.operator_id,
        )
    return created


# --- stations ------------------------------------------------------------------------


@dataclass(frozen=True)
class StationData:
    code: str
    name: str
    address: str
    city: str
    latitude: Decimal
    longitude: Decimal
    region_code: str = ""
    time_zone: str = "Asia/Shanghai"
    is_public: bool = True
    password: str = ""
    # Smart charging (issue 15): the grid connection shared by the station's sessions, and
    # the lower limit of the tariff's sharp and peak periods (kW; None: no limit).
    power_limit_kw: Decimal | None = None
    peak_power_limit_kw: Decimal | None = None


# Changing one of these re-sends piles their power profiles (`STATION_POWER_CHANGED`).
POWER_FIELDS = ("power_limit_kw", "peak_power_limit_kw")
STATION_FIELDS = [f for f in StationData.__dataclass_fields__]
_STATION_FIELDS = STATION_FIELDS


def _bindings_check(
    *, operator_id: int, sub_operators: Iterable[SubOperator], departments: Iterable[Department]
) -> None:
    for row in [*sub_operators, *departments]:
        if row.operator_id != operator_id:
            raise DomainError(
                _("%(kind)s: “%(name)s” belongs to another operator.")
                % {"kind": row._meta.verbose_name, "name": row},
                code="other_operator",
            )


def _details_changed(*station_ids: int) -> None:
    """What partners are told about these stations changed (`Station.details_changed_at`)."""
    Station.objects.filter(pk__in=station_ids).update(details_changed_at=timezone.now())


@transaction.atomic
def station_create(
    *,
    operator: Operator,
    data: StationData,
    windows: Sequence[tuple[dt.time, dt.time]] = (),
    sub_operators: Sequence[SubOperator] = (),
    departments: Sequence[Department] = (),
    actor=None,
) -> Station:
    station = Station(operator=operator, **{f: getattr(data, f) for f in _STATION_FIELDS})
    full_clean_or_raise(station, exclude=["operator"])
    if Station.objects.filter(operator=operator, code=data.code).exists():
        raise Conflict(
            _("Station code: the operator already has a station with code “%(code)s”.")
            % {"code": data.code}
        )
    _bindings_check(operator_id=operator.pk, sub_operators=sub_operators, departments=departments)
    station.save()
    station.sub_operators.set(sub_operators)
    station.departments.set(departments)
    station_set_opening_windows(station=station, windows=windows)
    if actor is not None:
        audit_record(actor=actor, action="station_create", obj=station, after=snapshot(station))
    return station


@transaction.atomic
def station_update(*, station: Station, changes: dict, actor=None) -> Station:
    """Change station fields named in ``changes`` (StationData field names)."""
    unknown = set(changes) - set(_STATION_FIELDS)
    if unknown:
        raise DomainError(
            _("These station fields cannot be changed here: %(fields)s.")
            % {"fields": ", ".join(sorted(unknown))}
        )
    station = Station.objects.select_for_update().get(pk=station.pk)
    before = snapshot(station, list(changes))
    for name, value in changes.items():
        setattr(station, name, value)
    full_clean_or_raise(station, exclude=["operator"])
    station.save(update_fields=list(changes))
    _details_changed(station.pk)
    after = snapshot(station, list(changes))
    if actor is not None and before != after:
        audit_record(actor=actor, action="station_update", obj=station, before=before, after=after)
    if any(before.get(f) != after.get(f) for f in POWER_FIELDS):
        payload = {"station_id": station.pk}
        event_publish(kind=STATION_POWER_CHANGED, key=station.pk, payload=payload)
    return station


def _latest_hide_entry(station: Station) -> AuditLog | None:
    from django.contrib.contenttypes.models import ContentType

    return (
        AuditLog.objects.filter(
            content_type=ContentType.objects.get_for_model(Station),
            object_id=str(station.pk),
            action="hide",
        )
        .order_by("-at", "-id")
        .first()
    )


@transaction.atomic
def station_hide(*, station: Station, actor, reason: str = "") -> Station:
    """Hide a station (the back office's "delete"): its sub-operator and department
    bindings are removed in the same audited action, so every count of bound stations
    equals the rows behind it. `station_restore` puts the bindings back."""
    station = Station.objects.select_for_update().get(pk=station.pk)
    if station.is_hidden:
        return station
    bindings = {
        "sub_operators": sorted(station.sub_operators.values_list("pk", flat=True)),
        "departments": sorted(station.departments.values_list("pk", flat=True)),
    }
    station.sub_operators.clear()
    station.departments.clear()
    audit.hide(obj=station, actor=actor, reason=reason, extra_before=bindings)
    _details_changed(station.pk)
    return station


@transaction.atomic
def station_restore(*, station: Station, actor, reason: str = "") -> Station:
    """Show a hidden station again, with the bindings it had when it was hidden (those
    sub-operators and departments that are not hidden themselves meanwhile)."""
    station = Station.objects.select_for_update().get(pk=station.pk)
    if not station.is_hidden:
        return station
    entry = _latest_hide_entry(station)
    before = (entry.before or {}) if entry else {}
    station.sub_operators.add(
        *SubOperator.objects.visible().filter(
            pk__in=before.get("sub_operators", []), operator_id=station.operator_id
        )
    )
    station.departments.add(
        *Department.objects.visible().filter(
            pk__in=before.get("departments", []), operator_id=station.operator_id
        )
    )
    audit.restore(obj=station, actor=actor, reason=reason)
    _details_changed(station.pk)
    return station


# --- piles and connectors ------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorData:
    number: int
    standard: str
    rated_power_kw: Decimal | None


@dataclass(frozen=True)
class PileData:
    code: str
    current_type: str
    max_power_kw: Decimal | None
    vendor: str = ""
    model: str = ""
    name: str = ""
    serial_number: str = ""
    firmware_version: str = ""
    credential_hash: str = ""
    protocol: str = Pile.Protocol.OCPP16J
    supply_phases: int | None = None
    phase_voltage_v: int = 220


PILE_FIELDS = [f for f in PileData.__dataclass_fields__]


MAX_POWER_REQUIRED = _("Max power (kW): required before the pile can be published.")


def pile_publish_problems(
    *, max_power_kw: Decimal | None, connector_powers: Sequence[Decimal | None]
) -> list[str]:
    """Why a pile cannot be published: partners show wrong data without these."""
    problems = []
    if max_power_kw is None:
        problems.append(str(MAX_POWER_REQUIRED))
    if not connector_powers:
        problems.append(
            str(_("Connectors: a pile needs at least one connector before it can be published."))
        )
    missing = [str(i) for i, power in enumerate(connector_powers, start=1) if power is None]
    if missing:
        problems.append(
            str(
                _(
                    "Rated power (kW): required on every connector before the pile can be "
                    "published; missing on connector %(numbers)s."
                )
                % {"numbers": ", ".join(missing)}
            )
        )
    return problems


def _connector_problems(connectors: Sequence[ConnectorData]) -> list[str]:
    numbers = [c.number for c in connectors]
    if len(numbers) != len(set(numbers)):
        return [str(_("Connector number: each connector of a pile needs its own number."))]
    return []


@transaction.atomic
def pile_create(
    *,
    station: Station,
    data: PileData,
    connectors: Sequence[ConnectorData] = (),
    publish: bool = False,
    actor=None,
) -> Pile:
    pile = Pile(station=station, **{f: getattr(data, f) for f in PILE_FIELDS})
    full_clean_or_raise(pile, exclude=["station"])
    if Pile.objects.filter(code=data.code).exists():
        raise Conflict(
            _("Pile code: a pile with code %(code)s already exists.") % {"code": data.code}
        )
    problems = _connector_problems(connectors)
    if problems:
        raise DomainError(" ".join(problems))
    pile.save()
    _details_changed(station.pk)
    for c in connectors:
        connector_create(pile=pile, data=c)
    if actor is not None:
        audit_record(
            actor=actor,
            action="pile_create",
            obj=pile,
            after=snapshot(pile, ["code", "current_type", "max_power_kw", "firmware_version"]),
            operator_id=station.operator_id,
        )
    if publish:
        pile = pile_publish(pile=pile, actor=actor)
    return pile


@transaction.atomic
def pile_update(*, pile: Pile, changes: dict, actor=None) -> Pile:
    unknown = set(changes) - set(PILE_FIELDS) - {"station"}
    if unknown:
        raise DomainError(
            _("These pile fields cannot be changed here: %(fields)s.")
            % {"fields": ", ".join(sorted(unknown))}
        )
    pile = Pile.objects.select_for_update().get(pk=pile.pk)
    before = snapshot(pile, [("station_id" if k == "station" else k) for k in changes])
    for name, value in changes.items():
        setattr(pile, name, value)
    if pile.is_published:
        problems = pile_publish_problems(
            max_power_kw=pile.max_power_kw,
            connector_powers=[c.rated_power_kw for c in pile.connectors.all()],
        )
        if problems:
            raise DomainError(" ".join(problems), code="publish")
    full_clean_or_raise(pile)
    pile.save(update_fields=list(changes))
    _details_changed(before.get("station_id", pile.station_id), pile.station_id)
    after = snapshot(pile, list(before))
    if "credential_hash" in before:  # never copy a credential into the log
        changed = before["credential_hash"] != after["credential_hash"]
        before["credential_hash"] = "…"
        after["credential_hash"] = str(_("(changed)")) if changed else "…"
    if actor is not None and before != after:
        audit_record(
            actor=actor,
            action="pile_update",
            obj=pile,
            before=before,
            after=after,
            operator_id=pile.station.operator_id,
        )
    return pile


@transaction.atomic
def connector_create(*, pile: Pile, data: ConnectorData, actor=None) -> Connector:
    connector = Connector(
        pile=pile, number=data.number, standard=data.standard, rated_power_kw=data.rated_power_kw
    )
    full_clean_or_raise(connector, exclude=["pile"])
    if Connector.objects.filter(pile=pile, number=data.number).exists():
        raise Conflict(
            _("Connector number: pile %(code)s already has connector %(number)s.")
            % {"code": pile.code, "number": data.number}
        )
    connector.save()
    _details_changed(pile.station_id)
    if actor is not None:
        audit_record(
            actor=actor,
            action="connector_create",
            obj=connector,
            after=snapshot(connector, ["number", "standard", "rated_power_kw"]),
            operator_id=pile.station.operator_id,
        )
    return connector


def connector_power_problems(*, pile: Pile, rated_power_kw) -> list[str]:
    """A connector of a published pile must keep its rated power."""
    if pile.is_published and rated_power_kw is None:
        return [
            str(
                _(
                    "Rated power (kW): pile %(code)s is published, so every connector needs "
                    "its rated power; unpublish the pile first."
                )
                % {"code": pile.code}
            )
        ]
    return []


@transaction.atomic
def connector_update(*, connector: Connector, rated_power_kw=None, standard=None, actor=None):
    connector = Connector.objects.select_for_update().select_related("pile").get(pk=connector.pk)
    fields = ["rated_power_kw", "standard"]
    before = snapshot(connector, fields)
    connector.rated_power_kw = rated_power_kw
    if standard is not None:
        connector.standard = standard
    full_clean_or_raise(connector)
    problems = connector_power_problems(pile=connector.pile, rated_power_kw=rated_power_kw)
    if problems:
        raise DomainError(" ".join(problems), code="publish")
    connector.save(update_fields=fields)
    _details_changed(connector.pile.station_id)
    after = snapshot(connector, fields)
    if actor is not None and before != after:
        audit_record(
            actor=actor,
            action="connector_update",
            obj=connector,
            before=before,
            after=after,
            operator_id=connector.pile.station.operator_id,
        )
    return connector


@transaction.atomic
def pile_publish(*, pile: Pile, actor=None) -> Pile:
    """Make a pile visible to drivers and partners; refused without max power and every
    connector's rated power (and at least one connector)."""
    pile = Pile.objects.select_for_update().get(pk=pile.pk)
    problems = pile_publish_problems(
        max_power_kw=pile.max_power_kw,
        connector_powers=[c.rated_power_kw for c in pile.connectors.order_by("number")],
    )
    if problems:
        raise DomainError(
            _("Pile %(code)s cannot be published. %(problems)s")
            % {"code": pile.code, "problems": " ".join(problems)},
            code="publish",
        )
    if not pile.is_published:
        pile.is_published = True
        pile.save(update_fields=["is_published"])
        _details_changed(pile.station_id)
        if actor is not None:
            audit_record(
                actor=actor,
                action="pile_publish",
                obj=pile,
                before={"is_published": False},
                after={"is_published": True},
                operator_id=pile.station.operator_id,
            )
    return pile


@transaction.atomic
def pile_unpublish(*, pile: Pile, actor=None) -> Pile:
    pile = Pile.objects.select_for_update().get(pk=pile.pk)
    if pile.is_published:
        pile.is_published = False
        pile.save(update_fields=["is_published"])
        _details_changed(pile.station_id)
        if actor is not None:
            audit_record(
                actor=actor,
                action="pile_unpublish",
                obj=pile,
                before={"is_published": True},
                after={"is_published": False},
                operator_id=pile.station.operator_id,
            )
    return pile


@transaction.atomic
def pile_hide(*, pile: Pile, actor, reason: str = "") -> Pile:
    """Hide a pile (the back office's "delete"). A hidden pile is no longer published:
    drivers and partners must not be offered it. Restoring does not republish."""
    pile = Pile.objects.select_for_update().get(pk=pile.pk)
    if pile.is_hidden:
        return pile
    was_published = pile.is_published
    if was_published:
        pile.is_published = False
        pile.save(update_fields=["is_published"])
    audit.hide(obj=pile, actor=actor, reason=reason, extra_before={"is_published": was_published})
    _details_changed(pile.station_id)
    return pile


@transaction.atomic
def pile_restore(*, pile: Pile, actor, reason: str = "") -> Pile:
    pile = Pile.objects.select_for_update().get(pk=pile.pk)
    audit.restore(obj=pile, actor=actor, reason=reason)
    _details_changed(pile.station_id)
    return pile
