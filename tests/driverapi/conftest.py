import uuid

import pytest
from rest_framework.throttling import SimpleRateThrottle


@pytest.fixture(autouse=True)
def _fresh_throttles(monkeypatch):
    """Each test counts its own requests: every client of a test run is 127.0.0.1, and
    the throttle counters live in the shared Redis cache."""
    monkeypatch.setattr(
        SimpleRateThrottle, "cache_format", f"throttle_{uuid.uuid4().hex[:8]}_%(scope)s_%(ident)s"
    )
