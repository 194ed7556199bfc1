"""`python manage.py rungateway --host 127.0.0.1 --port 9000`: one OCPP 1.6J gateway node."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand

from protocol.gateway.server import Gateway


class Command(BaseCommand):
    help = "Run an OCPP 1.6J gateway node: piles connect to ws://HOST:PORT/ocpp/<pile code>."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.GATEWAY_HOST)
        parser.add_argument("--port", type=int, default=settings.GATEWAY_PORT)
        parser.add_argument("--node", default=None, help="Node name (default host-pid-random).")

    def handle(self, *args, host, port, node, **options):
        asyncio.run(Gateway(host=host, port=port, node=node).run())
