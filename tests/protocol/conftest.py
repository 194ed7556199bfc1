"""Real gateway processes for the protocol tests.

Each gateway is `manage.py rungateway` in a subprocess on a free port, pointed at the
pytest test database (read from the live connection settings) and at this run's own Redis
key prefix, so parallel test workers and a running `make run` never meet.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("GATEWAY_REDIS_PREFIX", f"chargenet-test-{uuid.uuid4().hex[:8]}:")
# Settings were read before this file: this process uses the gateways' prefix too.
settings.GATEWAY_REDIS_PREFIX = os.environ["GATEWAY_REDIS_PREFIX"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{s['NAME']}"


class GatewayProcess:
    def __init__(self, *, node: str, env: dict[str, str] | None = None):
        self.node = node
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "GATEWAY_SEEN_FLUSH_SECONDS": "0.2",
            "GATEWAY_SWEEP_SECONDS": "0",
            "GATEWAY_MAX_CALLS_PER_MINUTE": "300",
            "GATEWAY_MAX_FRAME_BYTES": "8192",
            "DB_CONN_MAX_AGE": "0",
            # Every test connects from 127.0.0.1: refusals in one test must not throttle
            # the next. test_pile_auth starts gateways with its own small limits.
            "GATEWAY_LOGIN_FAILURES_PER_PEER": "1000",
            "GATEWAY_LOGIN_FAILURES_PER_CODE": "1000",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rungateway", "--host", "127.0.0.1",
             "--port", str(self.port), "--node", self.node],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()  # "gateway … listening on …" once ready
        if "listening" not in line:
            self.proc.kill()
            raise RuntimeError(f"gateway did not start: {line}{self.proc.stdout.read()}")
        # Keep draining its output (a full pipe would block the gateway); kept for debugging.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="session")
def _gateway_test_database(django_db_setup, django_db_blocker):
    """pytest-django creates the test database only when a collected test is marked
    django_db; when only the gateway modules run, create it here (once per session)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        created = None
        if not connection.settings_dict["NAME"].startswith("test_"):
            created = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        assert connection.settings_dict["NAME"].startswith("test_")
        yield
        # Connections left in helper threads (asyncio.to_thread) would keep the test
        # database from being dropped. Only here, at the end of the session: done when a
        # module ends, it would cut the connections of gateways other modules still use
        # (xdist interleaves modules on a worker).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        if created is not None:
            connection.close()
            teardown_databases(created, verbosity=0)


@pytest.fixture(scope="module")
def live_db(_gateway_test_database, django_db_blocker):
    """Committed rows for the whole module, flushed once at its end.

    A gateway is another process, so it sees only committed data; flushing after every
    test (``transactional_db``) cost more than the tests themselves. Tests stay apart by
    building their own operator/station/piles with unique codes."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        yield
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def gateway(live_db):
    gw = GatewayProcess(node=f"gw-a-{uuid.uuid4().hex[:6]}").start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def second_gateway(live_db):
    gw = GatewayProcess(node=f"gw-b-{uuid.uuid4().hex[:6]}").start()
    yield gw
    gw.stop()


@pytest.fixture
def own_gateway(live_db):
    """Start gateways with their own settings (``own_gateway(NAME="value")``); each is
    stopped at the end of the test."""
    gateways: list[GatewayProcess] = []

    def start(**env) -> GatewayProcess:
        gw = GatewayProcess(node=f"gw-k-{uuid.uuid4().hex[:6]}", env=env).start()
        gateways.append(gw)
        return gw

    yield start
    for gw in gateways:
        gw.stop()


def wait_for(predicate, *, timeout: float = 10.0, every: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value (the gateway works in the
    background: batches, other processes). Returns the value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(every)
