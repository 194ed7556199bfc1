"""Test-wide fixtures. Tests run on the real PostgreSQL and Redis that
`python -m chargenet.embedded run` resolved (the machine's, or the embedded engines)."""

import os
import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Tests never assert wall-clock times: Hypothesis's per-example deadline (200 ms) failed
# a pure Decimal test that took 570 ms on a slow, shared machine; its too-slow health
# check times the generation of examples.
hypothesis_settings.register_profile(
    "chargenet", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("chargenet")

# Keep test keys apart from a running `make run` that shares the same Redis.
os.environ.setdefault("CACHE_KEY_PREFIX", f"chargenet-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture(autouse=True)
def _english(settings):
    """Assert messages in English unless a test switches language itself. The product
    defaults to zh-hans; LANGUAGE_CODE also covers threads and event loops the tests start
    (they do not inherit an activated language)."""
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def client():
    """A test client that asks for English (the product defaults to zh-hans)."""
    from django.test import Client

    return Client(headers={"accept-language": "en"})


@pytest.fixture(scope="module")
def settling_gateway(django_db_setup, django_db_blocker):
    """A real gateway process that settles right after a stop commits (Celery eager in
    that process), as a worker would."""
    from tests.protocol.conftest import GatewayProcess

    gw = GatewayProcess(
        node=f"gw-s-{uuid.uuid4().hex[:6]}", env={"CELERY_TASK_ALWAYS_EAGER": "1"}
    ).start()
    yield gw
    gw.stop()


@pytest.fixture
def gateway_quiet_after():
    """For transactional tests against a gateway process: before the test's flush
    (TRUNCATE), wait until no other connection is working in the test database. The
    gateway keeps writing for a moment after a test's last frame (journal, last-seen
    batches, settlement and event consumers): a TRUNCATE meeting those writes can
    deadlock."""
    import time

    from django.db import connection

    yield
    quiet_polls, deadline = 0, time.monotonic() + 15
    while quiet_polls < 3 and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state NOT IN ('idle')"
            )
            busy = cursor.fetchone()[0]
        quiet_polls = quiet_polls + 1 if busy == 0 else 0
        time.sleep(0.1)
