"""Test-wide fixtures. Tests run on the real PostgreSQL and Redis that
`python -m chargenet.embedded run` resolved (the machine's, or the embedded engines)."""

import os
import uuid

import pytest

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
