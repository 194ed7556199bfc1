"""The outbox: events commit with their change, reach each consumer once in effect."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from chargenet import events
from chargenet.models import AuditLog, EventDelivery, OutboxEvent


@pytest.fixture
def registry():
    """A clean consumer registry for the test; the apps' own consumers come back after."""
    saved = dict(events._CONSUMERS)
    events._CONSUMERS.clear()
    yield events
    events._CONSUMERS.clear()
    events._CONSUMERS.update(saved)


def _audit_consumer(registry, name="test.audit", kind="thing.happened"):
    """A consumer whose effect is a row in this database (an audit entry per event)."""

    @registry.consumer(kind, name=name)
    def handle(event):
        AuditLog.objects.create(action=name, object_id=event.key)

    return handle


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_is_refused(registry):
    with pytest.raises(RuntimeError):
        events.event_publish(kind="thing.happened", key=1)
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_event_rolls_back_with_its_change(registry):
    _audit_consumer(registry)
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        events.event_publish(kind="thing.happened", key=7)
        1 / 0  # noqa: B018 — the change fails after the event was written
    assert OutboxEvent.objects.count() == 0


@pytest.mark.django_db
def test_delivery_runs_each_consumer_once(registry, django_capture_on_commit_callbacks):
    _audit_consumer(registry, name="test.a")
    _audit_consumer(registry, name="test.b")
    _audit_consumer(registry, name="test.other", kind="other.kind")
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        event = events.event_publish(kind="thing.happened", key=42, payload={"x": "1.50"})
    assert len(callbacks) == 1  # one delivery task queued on commit

    assert events.event_deliver(event_id=event.pk) == ["test.a", "test.b"]
    assert events.event_deliver(event_id=event.pk) == []  # a repeat is harmless
    event.refresh_from_db()
    assert event.delivered_at is not None
    assert event.payload == {"x": "1.50"}
    assert sorted(AuditLog.objects.values_list("action", "object_id")) == [
        ("test.a", "42"),
        ("test.b", "42"),
    ]


@pytest.mark.django_db
def test_a_failing_consumer_stays_due_and_the_others_still_run(registry):
    _audit_consumer(registry, name="test.ok")
    broken = {"on": True}

    @registry.consumer("thing.happened", name="test.flaky")
    def flaky(event):
        AuditLog.objects.create(action="test.flaky", object_id=event.key)
        if broken["on"]:
            raise ValueError("downstream bug")

    with transaction.atomic():
        event = events.event_publish(kind="thing.happened", key=3)
    assert events.event_deliver(event_id=event.pk) == ["test.ok"]
    event.refresh_from_db()
    assert (event.delivered_at, event.attempts) == (None, 1)
    # The failed consumer's own writes rolled back with its delivery row.
    assert list(AuditLog.objects.values_list("action", flat=True)) == ["test.ok"]
    assert list(EventDelivery.objects.values_list("consumer", flat=True)) == ["test.ok"]

    broken["on"] = False
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - dt.timedelta(60))
    assert events.events_deliver_pending() == 1
    event.refresh_from_db()
    assert event.delivered_at is not None
    assert sorted(AuditLog.objects.values_list("action", flat=True)) == ["test.flaky", "test.ok"]


@pytest.mark.django_db
def test_sweep_leaves_fresh_events_to_their_task_and_gives_up_at_the_limit(registry):
    @registry.consumer("thing.happened", name="test.broken")
    def broken(event):
        raise ValueError("always")

    with transaction.atomic():
        fresh = events.event_publish(kind="thing.happened", key="fresh")
        stuck = events.event_publish(kind="thing.happened", key="stuck")
    OutboxEvent.objects.filter(pk=stuck.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5), attempts=events.MAX_ATTEMPTS - 1
    )
    assert events.events_deliver_pending() == 1  # only the old one
    assert events.events_deliver_pending() == 0  # it reached the limit: left for a person
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert (stuck.attempts, fresh.attempts) == (events.MAX_ATTEMPTS, 0)


@pytest.mark.django_db
def test_an_event_nobody_consumes_is_delivered_at_once(registry):
    with transaction.atomic():
        event = events.event_publish(kind="nobody.listens", key=1)
        batch = events.events_publish(kind="nobody.listens", events=[(2, {}), (3, {"a": 1})])
    assert event.delivered_at is not None
    assert [e.delivered_at is not None for e in batch] == [True, True]
    assert events.events_deliver_pending(older_than=dt.timedelta(0)) == 0


def test_two_consumers_cannot_share_a_name(registry):
    registry.consumer("a", name="test.same")(lambda event: None)
    with pytest.raises(ValueError):
        registry.consumer("b", name="test.same")(lambda event: None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_take_the_event_once(registry):
    """Two workers deliver the same event at the same moment: the second waits on the
    first's delivery row, then skips; the consumer's effect is there once."""
    entered = threading.Event()
    release = threading.Event()

    @registry.consumer("thing.happened", name="test.slow")
    def slow(event):
        AuditLog.objects.create(action="test.slow", object_id=event.key)
        entered.set()
        release.wait(10)

    with transaction.atomic():
        event = events.event_publish(kind="thing.happened", key=9)
    results = {}

    def deliver(name):
        try:
            results[name] = events.event_deliver(event_id=event.pk)
        finally:
            connection.close()

    first = threading.Thread(target=deliver, args=("first",))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=deliver, args=("second",))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # blocked on the first's uncommitted delivery row
    release.set()
    first.join(10)
    second.join(10)
    assert results == {"first": ["test.slow"], "second": []}
    assert AuditLog.objects.filter(action="test.slow").count() == 1


@pytest.mark.django_db
def test_admin_lists_stuck_events_and_delivers_them_again(registry, admin_client):
    fixed = {"yet": False}

    @registry.consumer("thing.happened", name="test.fixed_later")
    def later(event):
        if not fixed["yet"]:
            raise ValueError("not yet")

    with transaction.atomic():
        event = events.event_publish(kind="thing.happened", key="k1")
    OutboxEvent.objects.filter(pk=event.pk).update(attempts=events.MAX_ATTEMPTS)
    url = "/admin/chargenet/outboxevent/"
    page = admin_client.get(url, {"delivery": "stuck"}, headers={"accept-language": "en"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [event]

    fixed["yet"] = True
    response = admin_client.post(
        url,
        {"action": "deliver_again", "_selected_action": [event.pk]},
        headers={"accept-language": "en"},
        follow=True,
    )
    assert "1 of 1 due events delivered" in response.content.decode()
    event.refresh_from_db()
    assert (event.delivered_at is not None, event.attempts) == (True, 0)


@pytest.mark.django_db
def test_staff_who_are_not_superusers_do_not_see_events(client, django_user_model):
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/chargenet/outboxevent/").status_code == 403


@pytest.mark.django_db
def test_a_batch_consumer_takes_a_burst_in_one_transaction_and_the_others_one_by_one(
    registry, django_assert_max_num_queries
):
    calls = []

    @registry.consumer("thing.happened", name="test.batch", batch=True)
    def handle_many(evts):
        calls.append(sorted(e.key for e in evts))
        AuditLog.objects.bulk_create([AuditLog(action="test.batch", object_id=e.key) for e in evts])

    _audit_consumer(registry, name="test.single", kind="other.kind")
    with transaction.atomic():
        burst = events.events_publish(kind="thing.happened", events=[(i, {}) for i in range(50)])
        other = events.event_publish(kind="other.kind", key="x")
    ids = [e.pk for e in burst] + [other.pk]
    # select, savepoint + rows + one insert + savepoint end, mark delivered, the other event
    with django_assert_max_num_queries(15):
        assert events.events_deliver(event_ids=ids) == 51
    assert calls == [sorted(str(i) for i in range(50))]
    assert AuditLog.objects.filter(action="test.batch").count() == 50
    assert AuditLog.objects.filter(action="test.single").count() == 1
    assert not OutboxEvent.objects.filter(pk__in=ids, delivered_at__isnull=True).exists()
    assert EventDelivery.objects.filter(consumer="test.batch").count() == 50
    # Again: nothing is taken twice.
    assert events.events_deliver(event_ids=ids) == 0
    assert events.event_deliver(event_id=burst[0].pk) == []
    assert AuditLog.objects.filter(action="test.batch").count() == 50


@pytest.mark.django_db
def test_a_failing_batch_falls_back_to_one_event_at_a_time(registry):
    @registry.consumer("thing.happened", name="test.batch", batch=True)
    def handle_many(evts):
        if any(e.key == "13" for e in evts):
            raise ValueError("bad event")
        AuditLog.objects.bulk_create([AuditLog(action="test.batch", object_id=e.key) for e in evts])

    with transaction.atomic():
        burst = events.events_publish(kind="thing.happened", events=[(i, {}) for i in range(20)])
    assert events.events_deliver(event_ids=[e.pk for e in burst]) == 19
    assert AuditLog.objects.filter(action="test.batch").count() == 19
    bad = OutboxEvent.objects.get(key="13")
    assert (bad.delivered_at, bad.attempts) == (None, 1)  # stays due, for the sweep
    assert OutboxEvent.objects.filter(delivered_at__isnull=True).count() == 1
