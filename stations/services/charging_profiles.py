"""Charging profiles the platform gives piles (smart charging), stored per pile so staff
see what each pile was told and the next change knows what to replace. Protocol-neutral:
a limit in watts from each offset; adapters translate (`protocol.smart_charging`)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import DomainError
from stations.models import ChargingProfile, Pile, ProfilePurpose

# Profile ids the platform keeps for itself: the station power share of connector n is
# STATION_SHARE_ID + n, the time-of-use profile of a pile TIME_OF_USE_ID; staff's are below.
STATION_SHARE_ID = 90000
TIME_OF_USE_ID = 89999


class ProfileInvalid(DomainError):
    code = "charging_profile_invalid"


def _check_periods(periods: list[tuple[int, int]]) -> list[list[int]]:
    offsets = [start for start, _limit in periods]
    if not periods or offsets[0] != 0 or offsets != sorted(set(offsets)):
        raise ProfileInvalid(_("A schedule starts at offset 0 and its offsets increase."))
    if any(limit <= 0 for _start, limit in periods):
        raise ProfileInvalid(_("Every power limit must be above 0 W."))
    return [[int(start), int(limit)] for start, limit in periods]


@transaction.atomic
def charging_profile_store(
    *,
    pile: Pile,
    purpose: ProfilePurpose,
    periods: list[tuple[int, int]],
    origin: ChargingProfile.Origin,
    connector_number: int = 0,
    profile_id: int | None = None,
    stack_level: int = 0,
    session_id: int | None = None,
    daily: bool = False,
    starts_at: dt.datetime | None = None,
    acting_user=None,
) -> ChargingProfile:
    """Store (or replace, by ``profile_id``) a profile for ``pile``; a new staff profile
    gets the next free id. Audited when a person set it."""
    if purpose == ProfilePurpose.TX and session_id is None:
        raise ProfileInvalid(_("A profile for one session names the session."))
    if daily and starts_at is None:
        raise ProfileInvalid(_("A daily profile needs the time its day starts."))
    stored = _check_periods(periods)
    if profile_id is None:
        Pile.objects.select_for_update().filter(pk=pile.pk).first()  # one new id at a time
        highest = ChargingProfile.objects.filter(
            pile=pile, profile_id__lt=TIME_OF_USE_ID
        ).aggregate(top=Max("profile_id"))["top"]
        profile_id = (highest or 0) + 1
    profile, _created = ChargingProfile.objects.update_or_create(
        pile=pile,
        profile_id=profile_id,
        defaults={
            "connector_number": connector_number,
            "stack_level": stack_level,
            "purpose": purpose,
            "session_id": session_id,
            "daily": daily,
            "starts_at": starts_at,
            "periods": stored,
            "origin": origin,
            "outcome": "",
        },
    )
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="charging_profile_store",
            obj=pile,
            after={"profile_id": profile_id, "purpose": purpose, "periods": stored,
                   "connector": connector_number},
            operator_id=pile.station.operator_id,
        )  # fmt: skip
    return profile


def charging_profile_answered(*, profile: ChargingProfile, outcome: str) -> None:
    """What the pile answered when given ``profile``."""
    ChargingProfile.objects.filter(pk=profile.pk).update(outcome=outcome[:16])


def charging_profiles_forget(
    *,
    pile: Pile,
    profile_id: int | None = None,
    connector_number: int | None = None,
    purpose: str | None = None,
) -> int:
    """The pile cleared these profiles (OCPP ClearChargingProfile's matching rules)."""
    rows = ChargingProfile.objects.filter(pile=pile)
    if profile_id is not None:
        rows = rows.filter(profile_id=profile_id)
    if connector_number is not None:
        rows = rows.filter(connector_number=connector_number)
    if purpose:
        rows = rows.filter(purpose=purpose)
    return rows.delete()[0]
