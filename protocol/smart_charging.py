"""Smart charging carried to piles: the core's power decisions (`billing.services.power`)
stored as profiles (`stations.services.charging_profiles`) and sent with the intents.
Runs in Celery tasks (each step waits for a pile), never inside a transaction."""

from __future__ import annotations

from django.utils import timezone

from billing.services.power import pile_time_of_use_periods, station_power_shares
from stations.models import ChargingProfile, Pile, ProfilePurpose, Station
from stations.services.charging_profiles import (
    STATION_SHARE_ID,
    TIME_OF_USE_ID,
    charging_profile_answered,
    charging_profile_store,
    charging_profiles_forget,
)

from . import intents
from .adapters import Outcome


def _send(profile: ChargingProfile) -> intents.IntentResult:
    result = intents.pile_charging_profile_set(profile=profile)
    charging_profile_answered(profile=profile, outcome=result.outcome)
    return result


def _unchanged(pile: Pile, profile_id: int, periods, session_id) -> bool:
    """The pile already took this very profile: nothing to send."""
    held = ChargingProfile.objects.filter(pile=pile, profile_id=profile_id).first()
    return (
        held is not None
        and held.outcome == Outcome.ACCEPTED
        and held.session_id == session_id
        and held.periods == [list(p) for p in periods]
    )


def station_power_rebalance(*, station: Station) -> list[intents.IntentResult]:
    """Give each active session of ``station`` its share of the station's power limit
    (a profile for the session on its connector); unchanged shares are not sent again."""
    results = []
    piles = {p.pk: p for p in station.piles.select_related("station")}
    for share in station_power_shares(station=station):
        pile = piles[share.pile_id]
        profile_id = STATION_SHARE_ID + share.connector_number
        periods = [(0, share.limit_w)]
        if _unchanged(pile, profile_id, periods, share.session_id):
            continue
        profile = charging_profile_store(
            pile=pile,
            purpose=ProfilePurpose.TX,
            periods=periods,
            origin=ChargingProfile.Origin.STATION_LIMIT,
            connector_number=share.connector_number,
            profile_id=profile_id,
            stack_level=1,
            session_id=share.session_id,
        )
        results.append(_send(profile))
    return results


def pile_time_of_use_push(*, pile: Pile, only_changed: bool = False) -> intents.IntentResult | None:
    """Give ``pile`` its daily time-of-use cap (its share of the station's peak limit in
    the tariff's sharp and peak half hours) as the pile's maximum profile; when the
    station has no peak limit (any more), the cap it was given is cleared; None when there
    is nothing to send (``only_changed``: also when the pile took this very cap already;
    after a boot it is sent whatever the pile held before)."""
    periods = pile_time_of_use_periods(pile=pile)
    if only_changed and periods and _unchanged(pile, TIME_OF_USE_ID, periods, None):
        return None
    if not periods:
        if not ChargingProfile.objects.filter(pile=pile, profile_id=TIME_OF_USE_ID).exists():
            return None
        result = intents.pile_charging_profile_clear(pile=pile, profile_id=TIME_OF_USE_ID)
        if result.outcome in (Outcome.ACCEPTED, Outcome.REJECTED):  # rejected: not held
            charging_profiles_forget(pile=pile, profile_id=TIME_OF_USE_ID)
        return result
    midnight = timezone.localtime(timezone.now(), pile.station.zone).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    profile = charging_profile_store(
        pile=pile,
        purpose=ProfilePurpose.PILE_MAX,
        periods=periods,
        origin=ChargingProfile.Origin.STATION_LIMIT,
        profile_id=TIME_OF_USE_ID,
        daily=True,
        starts_at=midnight,
    )
    return _send(profile)


def station_power_push(*, station: Station) -> list[intents.IntentResult]:
    """The station's tariff or power limits changed: each of its connected piles gets its
    new time-of-use cap (offline ones get it when they boot, `protocol.sync`), and the
    active sessions their new shares."""
    results = []
    piles = station.piles.visible().filter(is_online=True, protocol=Pile.Protocol.OCPP16J)
    for pile in piles.select_related("station").order_by("code"):
        result = pile_time_of_use_push(pile=pile)
        if result is not None:
            results.append(result)
    return results + station_power_rebalance(station=station)


def time_of_use_refresh() -> int:
    """Connected piles of stations with a peak limit whose time-of-use cap is not the one
    of the tariff in force get it; returns how many were sent."""
    piles = Pile.objects.visible().filter(
        is_online=True,
        protocol=Pile.Protocol.OCPP16J,
        station__peak_power_limit_kw__isnull=False,
    )
    sent = 0
    for pile in piles.select_related("station").order_by("pk"):
        if pile_time_of_use_push(pile=pile, only_changed=True) is not None:
            sent += 1
    return sent
