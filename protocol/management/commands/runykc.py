"""`python manage.py runykc --host 0.0.0.0 --port 27600 [--workers N]`: YKC (云快充) 1.5/1.6
gateway nodes for piles speaking the YKC binary protocol over TCP. Same process model as
`rungateway`: one node per process, ``--workers N`` runs N sharing the port
(SO_REUSEPORT), piles and commands find their node through Redis."""

import asyncio
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from protocol.db import statements_prepared
from protocol.gateway.collector import collector_tuned
from protocol.management.commands.rungateway import argparse_suppress
from protocol.ykc.server import HEARTBEAT_SECONDS, MISSED_HEARTBEATS, PORT, YkcGateway


class Command(BaseCommand):
    help = "Run a YKC 1.6 gateway node: piles connect over TCP to HOST:PORT."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=PORT)
        parser.add_argument("--node", default=None, help="Node name (default ykc-host-pid-random).")
        parser.add_argument("--workers", type=int, default=1, help="Node processes (1).")
        parser.add_argument(
            "--idle-timeout",
            type=float,
            default=HEARTBEAT_SECONDS * MISSED_HEARTBEATS,
            help="Seconds without a frame before a pile's link is down (3 missed heartbeats).",
        )
        parser.add_argument("--reuse-port", action="store_true", help=argparse_suppress())

    def handle(self, *args, host, port, node, workers, idle_timeout, reuse_port, **options):
        if workers > 1:
            return self._supervise(host, port, workers, idle_timeout)
        settings.DEBUG = False  # a long-lived process: do not record every query
        statements_prepared()
        collector_tuned()
        gateway = YkcGateway(
            host=host, port=port, node=node, reuse_port=reuse_port, idle_timeout=idle_timeout
        )
        asyncio.run(gateway.run())

    def _supervise(self, host: str, port: int, workers: int, idle_timeout: float) -> None:
        command = [sys.executable, sys.argv[0], "runykc", "--host", host, "--port", str(port),
                   "--idle-timeout", str(idle_timeout), "--reuse-port"]  # fmt: skip
        children = [subprocess.Popen(command, env=os.environ.copy()) for _ in range(workers)]

        def forward(signum, _frame):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            child.wait()
