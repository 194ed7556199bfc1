"""`python manage.py simulate_piles --url ws://127.0.0.1:9000/ocpp --count 12 --scenario demo
--forever`: simulated piles for the existing piles in the database (see protocol/simulator)."""

from __future__ import annotations

import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from orgs.models import Member, MemberStatus
from protocol.simulator import SCENARIOS
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
        parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="normal")
        parser.add_argument("--forever", action="store_true", help="Repeat until SIGTERM.")
        parser.add_argument("--codes", nargs="*", help="Pile codes (default: from the database).")

    def handle(self, *args, url, count, scenario, forever, codes, **options):
        piles = list(
            Pile.objects.visible()
            .select_related("station")
            .filter(**({"code__in": codes} if codes else {}))
            .order_by("code")[:count]
        )
        if not piles:
            raise CommandError("No piles to simulate: load the demo data (manage.py load_demo).")
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

    async def _run(self, url, plan, scenario, forever):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        play = SCENARIOS[scenario]

        async def one(code, password, id_tag, power_w):
            while True:
                kwargs = {"forever": True, "power_w": power_w} if scenario == "demo" else {}
                try:
                    await play(url, code, password, id_tag, **kwargs)
                except Exception as exc:
                    self.stderr.write(f"{code}: {type(exc).__name__}: {exc}")
                    if not forever:
                        return
                    await asyncio.sleep(5)
                if not forever:
                    return

        tasks = [asyncio.create_task(one(*p)) for p in plan]
        done = asyncio.create_task(asyncio.wait(tasks))
        await asyncio.wait([done, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
