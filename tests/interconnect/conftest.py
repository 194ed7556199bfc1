"""A partner's world: our web app on a real socket, a fake partner platform speaking
T/CEC 102 (`interconnect.fake`), and the gateway fixtures of the protocol tests."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.core.management import call_command
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from interconnect.fake import FakePartnerPlatform
from tests.protocol.conftest import _gateway_test_database, gateway, live_db, wait_for

__all__ = ["_gateway_test_database", "gateway", "live_db", "wait_for"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web(live_db):
    """Our web app (the /evcs/v1 endpoints) served on 127.0.0.1, a free port."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _Quiet)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/evcs/v1"
    server.shutdown()
    server.server_close()


def partner_add(*args: str) -> dict:
    """Run ``manage.py partner_add`` and return the one JSON object it printed."""
    out = io.StringIO()
    call_command("partner_add", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.fixture
def platform_for(web):
    """``platform_for(credentials)``: a started fake partner platform calling ``web``."""
    started = []

    def make(credentials: dict, **kwargs) -> FakePartnerPlatform:
        platform = FakePartnerPlatform(credentials, our_url=web, **kwargs).start()
        started.append(platform)
        return platform

    yield make
    for platform in started:
        platform.stop()
