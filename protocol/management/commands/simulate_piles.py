"""`python manage.py simulate_piles --url ws://127.0.0.1:9000/ocpp --count 12 --scenario demo
--forever`: simulated piles for the existing piles in the database (see protocol/simulator).

``--protocol ykc --url tcp://127.0.0.1:27600`` simulates the YKC piles instead
(`protocol.ykc.simulator`), starting charges with the cards of the piles' operator."""

from __future__ import annotations

import asyncio
import signal
from functools import partial

from django.core.management.base import BaseCommand, CommandError

from orgs.models import Card, CardStatus, Member, MemberStatus
from protocol.simulator import SCENARIOS
from protocol.ykc import simulator as ykc_simulator
from stations.models import Pile


def demo_credentials() -> dict[str, str]:
    """Pile code → password: from `stations.demo` when it is there, else the demo convention
    ("demo-" + the code's last 4 digits)."""
    try:
        from stations.demo import demo_pile_credentials
    except ImportError:
        return {}
    creds = demo_pile_credentials()
    return dict(creds.items() if isinstance(creds, dict) else creds)


class Command(BaseCommand):
    help = "Simulate OCPP 1.6J piles against a gateway."

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="ws://HOST:PORT/ocpp")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument(
            "--scenario", choices=sorted({*SCENARIOS, *ykc_simulator.SCENARIOS}), default="normal"
        )
        parser.add_argument("--protocol", choices=["ocpp", "ykc"], default="ocpp")
        parser.add_argument("--forever", action="store_true", help="Repeat until SIGTERM.")
        parser.add_argument("--codes", nargs="*", help="Pile codes (default: from the database).")

    def handle(self, *args, url, count, scenario, forever, codes, protocol, **options):
        if scenario not in (ykc_simulator.SCENARIOS if protocol == "ykc" else SCENARIOS):
            raise CommandError(f"No scenario {scenario!r} for {protocol} piles.")
        wire = Pile.Protocol.YKC if protocol == "ykc" else Pile.Protocol.OCPP16J
        piles = list(
            Pile.objects.visible()
            .select_related("station")
            .filter(protocol=wire, **({"code__in": codes} if codes else {}))
            .order_by("code")[:count]
        )
        if not piles:
            raise CommandError("No piles to simulate: load the demo data (manage.py load_demo).")
        if protocol == "ykc":
            return self._ykc(url, piles, scenario, forever)
        known = demo_credentials()
        plan = []
        members: dict[int, list[str]] = {}
        for i, pile in enumerate(piles):
            password = (
                known.get(pile.code, f"demo-{pile.code[-4:]}") if pile.credential_hash else None
            )
            operator_id = pile.station.operator_id
            if operator_id not in members:
                members[operator_id] = list(
                    Member.objects.filter(
                        operator_id=operator_id, status=MemberStatus.ACTIVE, is_virtual=False
                    )
                    .order_by("pk")
                    .values_list("token", flat=True)[:500]
                )
            tokens = members[operator_id]
            # One member per pile where possible: a member has one active session at a time.
            id_tag = tokens[i % len(tokens)] if tokens else (pile.station.password or "DEMO")
            # The demo charges within the power of connector 1 (the one it charges on).
            rated = pile.connectors.filter(number=1).values_list("rated_power_kw", flat=True)
            kw = [p for p in (pile.max_power_kw, *rated) if p]
            power_w = int(min(kw) * 1000) if kw else 7000
            plan.append((pile.code, password, id_tag, power_w))
        self.stdout.write(f"simulating {len(plan)} piles, scenario {scenario}")
        asyncio.run(self._run(url, plan, scenario, forever))

    def _ykc(self, url, piles, scenario, forever):
        """YKC piles start by card (0x31): one active card of the operator per pile."""
        play = ykc_simulator.SCENARIOS[scenario]
        calls = []
        cards: dict[int, list[str]] = {}
        for i, pile in enumerate(piles):
            operator_id = pile.station.operator_id
            if operator_id not in cards:
                cards[operator_id] = list(
                    Card.objects.filter(operator_id=operator_id, status=CardStatus.ACTIVE)
                    .order_by("pk")
                    .values_list("number", flat=True)[:500]
                )
            numbers = cards[operator_id] or ["00"]
            kwargs = {}
            if scenario == "demo":
                guns = pile.connectors.count() or 1
                power_w = int((pile.max_power_kw or 7) * 1000 // guns)
                ac = pile.current_type == "AC"
                kwargs = {"forever": True, "guns": guns, "ac": ac, "power_w": power_w}
            number = numbers[i % len(numbers)]
            calls.append((pile.code, partial(play, url, pile.code, number, **kwargs)))
        self.stdout.write(f"simulating {len(calls)} YKC piles, scenario {scenario}")
        asyncio.run(self._play(calls, forever))

    async def _run(self, url, plan, scenario, forever):
        play = SCENARIOS[scenario]
        calls = []
        for code, password, id_tag, power_w in plan:
            kwargs = {"forever": True, "power_w": power_w} if scenario == "demo" else {}
            calls.append((code, partial(play, url, code, password, id_tag, **kwargs)))
        await self._play(calls, forever)

    async def _play(self, calls, forever: bool = False):
        """Play each pile's scenario (``calls``: (code, coroutine function)) until done, or
        until SIGTERM; with ``forever`` again and again."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        async def one(code, call):
            while True:
                try:
                    await call()
                except Exception as exc:
                    self.stderr.write(f"{code}: {type(exc).__name__}: {exc}")
                    if not forever:
                        return
                    await asyncio.sleep(5)
                if not forever:
                    return

        tasks = [asyncio.create_task(one(code, call)) for code, call in calls]
        done = asyncio.create_task(asyncio.wait(tasks))
        await asyncio.wait([done, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
