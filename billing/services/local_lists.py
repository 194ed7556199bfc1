"""Local authorisation lists: the credentials a pile may accept on its own when it cannot
reach the platform (bus depots charging on cards while the network is down).

Who is on a pile's list: the members of the departments bound to the pile's station
(`Station.departments`), their cards and the cards and VINs of those departments' vehicles,
each with the core's decision for it (`identity`: accepted, blocked, expired) and its
validity. Hidden members, cards and vehicles are left off. A pile's list is versioned
(`stations.PileLocalList`): the platform keeps what the pile acknowledged, so the next
update is the difference, or the whole list when the pile holds another version.

Starts a pile made from its list while offline arrive later as ordinary starts and are
billed like any other (`session_start` decides again with the rules of that moment).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.services.sessions.identity import AuthDecision, _card_status, _member_status
from orgs.models import Card, Member, Vehicle
from stations.models import Pile, PileLocalList


@dataclass(frozen=True)
class LocalListEntry:
    """One credential of a local list; ``decision`` None removes it (a difference)."""

    id_tag: str
    decision: AuthDecision | None
    expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class LocalListPlan:
    """What to send a pile: ``version`` of its list, whole (``full``) or the changes."""

    version: int
    full: bool
    entries: tuple[LocalListEntry, ...]


def _earliest(*times: dt.datetime | None) -> dt.datetime | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def local_list_entries(*, pile: Pile) -> dict[str, LocalListEntry]:
    """The credentials allowed at ``pile``'s station, by id tag (three queries)."""
    departments = pile.station.departments.values("pk")
    entries: dict[str, LocalListEntry] = {}
    members = Member.objects.visible().filter(department__in=departments)
    for member in members.only("token", "status", "hidden_at", "expires_at"):
        entries[member.token] = LocalListEntry(
            member.token, _member_status(member), member.expires_at
        )
    cards = (
        Card.objects.visible()
        .filter(
            Q(department__in=departments)
            | Q(member__department__in=departments)
            | Q(vehicle__department__in=departments)
        )
        .select_related("member")
    )
    for card in cards:
        decision = _card_status(card)
        if decision != AuthDecision.INVALID:
            expires = _earliest(card.expires_at, card.member.expires_at)
            entries[card.number] = LocalListEntry(card.number, decision, expires)
    vehicles = (
        Vehicle.objects.visible()
        .filter(department__in=departments, vin__isnull=False)
        .select_related("member")
    )
    for vehicle in vehicles:
        owner = vehicle.member
        decision = _member_status(owner) if owner else AuthDecision.ACCEPTED
        if decision != AuthDecision.INVALID:
            expires = owner.expires_at if owner else None
            entries[vehicle.vin] = LocalListEntry(vehicle.vin, decision, expires)
    return entries


def _stored(entry: LocalListEntry) -> list:
    return [entry.decision, entry.expires_at.isoformat() if entry.expires_at else None]


def pile_local_list_plan(*, pile: Pile, pile_version: int | None) -> LocalListPlan | None:
    """What ``pile`` needs, given the version it says it holds: the whole list when that
    is not the version the platform last gave it, else the changes since (None: none)."""
    held = PileLocalList.objects.filter(pile=pile).first()
    version = held.version if held else 0
    target = local_list_entries(pile=pile)
    if held is None or pile_version != version:
        return LocalListPlan(version + 1, True, tuple(target.values()))
    changes = [e for tag, e in target.items() if held.entries.get(tag) != _stored(e)]
    changes += [LocalListEntry(tag, None) for tag in held.entries if tag not in target]
    if not changes:
        return None
    return LocalListPlan(version + 1, False, tuple(changes))


@transaction.atomic
def pile_local_list_record(*, pile: Pile, plan: LocalListPlan) -> PileLocalList:
    """The pile stored ``plan``: remember its version and entries for the next difference."""
    held, _created = PileLocalList.objects.select_for_update().get_or_create(pile=pile)
    entries = {} if plan.full else dict(held.entries)
    for entry in plan.entries:
        if entry.decision is None:
            entries.pop(entry.id_tag, None)
        else:
            entries[entry.id_tag] = _stored(entry)
    held.version, held.entries, held.sent_at = plan.version, entries, timezone.now()
    held.save()
    return held
