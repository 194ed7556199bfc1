"""A real `manage.py runykc` process for the YKC tests, and the network they charge on."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import uuid

import pytest

from orgs.models import Card, Member
from stations.models import Connector, Pile
from tests.billing.factories import tariffed_station
from tests.protocol.conftest import ROOT, GatewayProcess


class YkcProcess(GatewayProcess):
    """`manage.py runykc` on a free port, with the OCPP gateway's test settings."""

    def __init__(self, *, node: str, env: dict[str, str] | None = None, idle_timeout=30.0):
        super().__init__(node=node, env=env)
        self.idle_timeout = idle_timeout
        self.url = f"tcp://127.0.0.1:{self.port}"

    def start(self) -> YkcProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runykc", "--host", "127.0.0.1",
             "--port", str(self.port), "--node", self.node,
             "--idle-timeout", str(self.idle_timeout)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"runykc did not start: {line}{self.proc.stdout.read()}")
        threading.Thread(target=self._drain, daemon=True).start()
        return self


@pytest.fixture(scope="module")
def ykc(live_db):
    gw = YkcProcess(node=f"ykc-a-{uuid.uuid4().hex[:6]}").start()
    yield gw
    gw.stop()


@pytest.fixture
def own_ykc(live_db):
    """Start gateways of a test's own (e.g. with a short heartbeat allowance)."""
    started: list[YkcProcess] = []

    def start(idle_timeout: float = 30.0, **env) -> YkcProcess:
        gw = YkcProcess(node=f"ykc-k-{len(started)}", env=env, idle_timeout=idle_timeout)
        started.append(gw.start())
        return gw

    yield start
    for gw in started:
        gw.stop()


def ykc_pile(station=None, *, guns: int = 1, current_type: str = "DC") -> Pile:
    """A YKC pile (14-digit code, no password) on a station with a tariff since 2019."""
    station = station or tariffed_station()
    pile = Pile.objects.create(
        station=station,
        code=f"{random.randint(10**13, 10**14 - 1)}",
        current_type=current_type,
        protocol=Pile.Protocol.YKC,
    )
    for number in range(1, guns + 1):
        Connector.objects.create(pile=pile, number=number, standard=Connector.Standard.GBT_DC)
    return pile


def card(pile: Pile) -> Card:
    """A card of a member of the pile's operator, its number hex digits as YKC reads it."""
    operator = pile.station.operator
    n = random.randint(10**7, 10**8 - 1)
    member = Member.objects.create(operator=operator, token=f"T{n}", nickname=f"m{n}")
    return Card.objects.create(operator=operator, number=f"88{n}", member=member)
