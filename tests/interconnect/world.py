"""A small operator network for partner tests: station A (tariffed, two published DC piles
and one unpublished pile without power figures) and station B (nothing published)."""

from __future__ import annotations

import datetime as dt
import random
import string
from dataclasses import dataclass
from decimal import Decimal

from billing.services.tariffs import (
    station_tariff_assign,
    tariff_plan_create,
    tariff_version_create,
)
from orgs.models import Operator
from stations.models import Pile, Station
from tests.billing.factories import DOMAIN_SCHEDULE, prices
from tests.protocol import world


def operator_id() -> str:
    """A fresh 9-character OperatorID (rows stay committed for the whole module)."""
    return "".join(random.choices(string.ascii_uppercase + string.digits, k=9))


@dataclass
class Network:
    operator: Operator
    station: Station
    other_station: Station
    piles: list[Pile]
    unpublished: Pile


def network(*, online: bool = False) -> Network:
    op = world.operator()
    station = world.station(op)
    since = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    plan = tariff_plan_create(operator=op, name=f"plan {station.code}")
    tariff_version_create(
        plan=plan, schedule=DOMAIN_SCHEDULE, prices=prices(), effective_from=since
    )
    station_tariff_assign(station=station, plan=plan, effective_from=since)
    piles = []
    for _n in range(2):
        pile = world.pile(station, max_power_kw=Decimal(60), is_published=True, is_online=online)
        pile.connectors.update(rated_power_kw=Decimal(60))
        piles.append(pile)
    unpublished = world.pile(station)
    other = world.station(op)
    world.pile(other)
    return Network(op, station, other, piles, unpublished)
