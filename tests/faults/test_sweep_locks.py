"""Periodic jobs cannot be blocked: overlapping sweeps skip each other's sessions, and a
run waits only briefly on rows someone else holds (chargenet.celery.lock_bounded)."""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from billing.models import ChargingSession
from chargenet.celery import lock_bounded
from faults.models import FaultCase
from faults.services import sweep
from faults.tasks import lost_bills_sweep_task
from stations.models import Station

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_queueing(monkeypatch):
    # Committed sweeps queue the lost bills' settlement on commit; no broker in these tests.
    monkeypatch.setattr(sweep, "_sessions_stoppeds", lambda ids: None)


def _hold(work, holding: threading.Event, release: threading.Event, outcome: dict):
    """Run ``work`` in a transaction of its own connection and keep it open (a stuck run
    or request) until ``release``; records whether it was released rather than gave up."""

    def run():
        try:
            with transaction.atomic():
                outcome["work"] = work()
                holding.set()
                outcome["released"] = release.wait(60)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert holding.wait(60)
    return thread


def test_a_second_sweep_proceeds_while_a_first_is_stuck_holding_its_sessions(make_session):
    stuck_on, other = make_session(), make_session()
    holding, release, outcome = threading.Event(), threading.Event(), {}
    thread = _hold(lambda: sweep.lost_bills_sweep(limit=1).lost, holding, release, outcome)
    try:
        second = lost_bills_sweep_task()
    finally:
        release.set()
        thread.join()
    # The second run finished while the first still held its session, and took the other.
    assert (outcome["work"], outcome["released"], second) == (1, True, {"candidates": 1, "lost": 1})
    assert sorted(FaultCase.objects.values_list("session_id", flat=True)) == sorted(
        [stuck_on.pk, other.pk]
    )


def test_a_sweep_gives_up_on_a_row_someone_holds_instead_of_waiting(make_session, settings):
    settings.CELERY_JOB_LOCK_TIMEOUT_MS = 200
    session = make_session()
    holding, release, outcome = threading.Event(), threading.Event(), {}
    # The fault case it writes references the station: a held station row makes it wait.
    station_lock = lambda: Station.objects.select_for_update().get(pk=session.station_id).pk  # noqa: E731
    thread = _hold(station_lock, holding, release, outcome)
    try:
        with pytest.raises(OperationalError) as gave_up:
            lost_bills_sweep_task()
    finally:
        release.set()
        thread.join()
    assert "lock timeout" in str(gave_up.value)
    assert outcome["released"] is True  # it did not wait for the holder to let go
    # Nothing of the failed run stays; the next run (the holder gone) takes the session.
    assert ChargingSession.objects.get(pk=session.pk).state == "charging"
    assert not FaultCase.objects.exists()
    assert lost_bills_sweep_task() == {"candidates": 1, "lost": 1}


def test_the_lock_bound_is_local_to_the_jobs_transaction(settings):
    settings.CELERY_JOB_LOCK_TIMEOUT_MS = 1234
    with lock_bounded(), connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        inside = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        after = cursor.fetchone()[0]
    assert (inside, after) == ("1234ms", "0")
