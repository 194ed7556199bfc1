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


def pile_time_of_use_push(*, pile: Pile) -> intents.IntentResult | None:
    """Give ``pile`` its daily time-of-use cap (its share of the station's peak limit in
    the tariff's sharp and peak half hours) as the pile's maximum profile; None when the
    station has no peak limit."""
    periods = pile_time_of_use_periods(pile=pile)
    if not periods:
        return None
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
