"""`python manage.py rungateway --host 127.0.0.1 --port 9000 [--workers N]`: OCPP 1.6J
gateway nodes. With ``--workers N`` it runs N node processes sharing the port
(SO_REUSEPORT; the kernel spreads connections), because one Python process is bound to
one core by the GIL; piles and commands find their node through Redis as with separate
hosts."""

import asyncio
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from protocol.db import statements_prepared
from protocol.gateway.collector import collector_tuned
from protocol.gateway.server import Gateway


class Command(BaseCommand):
    help = "Run an OCPP 1.6J gateway node: piles connect to ws://HOST:PORT/ocpp/<pile code>."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)
        parser.add_argument("--node", default=None, help="Node name (default host-pid-random).")
        parser.add_argument("--workers", type=int, default=1, help="Node processes (1).")
        parser.add_argument("--reuse-port", action="store_true", help=argparse_suppress())

    def handle(self, *args, host, port, node, workers, reuse_port, **options):
        if workers > 1:
            return self._supervise(host, port, workers)
        # A gateway is a long-lived process: with DEBUG on, Django would record every
        # query it runs (CPU and memory for nothing; ~20% of the gateway's throughput).
        settings.DEBUG = False
        statements_prepared()
        collector_tuned()
        asyncio.run(Gateway(host=host, port=port, node=node, reuse_port=reuse_port).run())

    def _supervise(self, host: str, port: int, workers: int) -> None:
        command = [sys.executable, sys.argv[0], "rungateway", "--host", host,
                   "--port", str(port), "--reuse-port"]  # fmt: skip
        children = [subprocess.Popen(command, env=os.environ.copy()) for _ in range(workers)]

        def forward(signum, _frame):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for child in children:
            child.wait()


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS
