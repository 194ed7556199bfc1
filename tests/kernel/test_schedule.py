"""Every job beat schedules names a task that exists (a typo would silently never run)."""

from django.conf import settings

from chargenet.celery import app


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
    assert {
        "protocol.piles_sweep_offline",
        "faults.lost_bills_sweep",
        "faults.notifications_send_pending",
        "protocol.journal_prune",
        "protocol.heartbeat_history_prune",
        "interconnect.messages_prune",
    } <= scheduled
