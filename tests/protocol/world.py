"""Minimal network builders for the gateway's tests (plain functions, real rows)."""

from __future__ import annotations

import itertools
import random

from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.utils import timezone

from billing.models import ChargingSession
from orgs.models import Card, Department, Member, Operator, SubOperator, Vehicle
from stations.models import Connector, Pile, Station
from stations.services.credentials import pile_credential_encode

_seq = itertools.count(1)


def fast_hash(password: str) -> str:
    """A legacy pile credential: a real PBKDF2 hash with few iterations (the count is
    stored in the hash), so tests do not spend 0.4 s per pile on purpose-built slowness."""
    hasher = PBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt(), iterations=1000)


def _n() -> int:
    return next(_seq) + random.randint(0, 10**6) * 1000


def operator() -> Operator:
    n = _n()
    return Operator.objects.create(code=f"op{n}", name=f"Operator {n}")


def station(op: Operator | None = None, **kwargs) -> Station:
    op = op or operator()
    n = _n()
    defaults = dict(
        name=f"Station {n}",
        address="1 Road",
        city="Zhongshan",
        latitude=22.5,
        longitude=113.4,
        password="",
    )
    return Station.objects.create(operator=op, code=f"S{n}", **{**defaults, **kwargs})


def pile(st: Station | None = None, *, password: str | None = "secret-pw", connectors=1, **kw):
    st = st or station()
    code = f"4420{random.randint(0, 10**16 - 1):016d}"
    p = Pile.objects.create(
        station=st,
        code=code,
        current_type=kw.pop("current_type", "DC"),
        credential_hash=pile_credential_encode(password=password) if password else "",
        **kw,
    )
    for number in range(1, connectors + 1):
        Connector.objects.create(pile=p, number=number, standard=Connector.Standard.GBT_DC)
    p.password = password  # the clear password, for the simulated pile
    return p


def member(op: Operator, **kwargs) -> Member:
    n = _n()
    return Member.objects.create(operator=op, token=f"T{n}"[:20], nickname=f"m{n}", **kwargs)


def sub_operator(op: Operator) -> SubOperator:
    n = _n()
    return SubOperator.objects.create(operator=op, code=f"sub{n}", name=f"Sub {n}")


def department(op: Operator, sub: SubOperator | None = None) -> Department:
    return Department.objects.create(operator=op, name=f"Fleet {_n()}", sub_operator=sub)


def vehicle(op: Operator, *, vin: str, dept: Department | None = None, owner=None) -> Vehicle:
    return Vehicle.objects.create(
        operator=op, plate=f"粤T{_n() % 100000:05d}", vin=vin, department=dept, member=owner
    )


def card(op: Operator, *, owner: Member, veh: Vehicle | None = None, **kwargs) -> Card:
    return Card.objects.create(
        operator=op, number=f"C{_n()}"[:20], member=owner, vehicle=veh, **kwargs
    )


def session(p: Pile, *, connector: Connector | None = None, **kwargs) -> ChargingSession:
    """A session row as the gateway would have opened it (no pile needed)."""
    n = _n()
    session = ChargingSession.objects.create(
        order_no=kwargs.pop("order_no", f"20261129{n:012d}"[:20]),
        operator=p.station.operator,
        station=p.station,
        pile=p,
        connector=connector or p.connectors.first(),
        id_tag=kwargs.pop("id_tag", f"T{n}"[:20]),
        started_at=kwargs.pop("started_at", timezone.now()),
        meter_start_wh=0,
        **kwargs,
    )
    if not session.protocol_ref:  # as the core numbers an OCPP 1.6 start: its own id
        session.protocol_ref = str(session.pk)
        session.save(update_fields=["protocol_ref"])
    return session


def presented(token: str):
    """A token as a pile presents it (an OCPP idTag: its kind unsaid)."""
    from billing.services.sessions import Credential, CredentialKind

    return Credential(CredentialKind.PRESENTED, token)
