"""Celery delivery: a task killed with its worker comes back within minutes, never while
it may still be running; every task has a time limit; beat does not pile up runs."""

from chargenet.celery import app


def _registered():
    app.loader.import_default_modules()
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_acks_late_and_redelivery_after_a_few_minutes():
    conf = app.conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.broker_transport_options == {"visibility_timeout": 600}
    assert (conf.task_time_limit, conf.task_soft_time_limit) == (300, 240)
    assert conf.worker_prefetch_multiplier == 1


def test_every_task_ends_before_it_could_be_delivered_again():
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    # Tasks acknowledged on receipt (acks_late=False: the exports, which may outlive the
    # timeout) are never delivered again; a beat sweep resumes the ones whose worker died.
    limits = {
        name: (task.time_limit or app.conf.task_time_limit)
        for name, task in _registered().items()
        if task.acks_late is not False
    }
    assert set(limits) >= {
        "billing.sessions_settle",
        "billing.sessions_settle_pending",
        "faults.lost_bills_sweep",
        "faults.lost_bills_settle",
        "protocol.piles_sweep_offline",
        "chargenet.events_deliver",
        "chargenet.events_deliver_pending",
        "chargenet.events_prune",
    }
    assert max(limits.values()) < visibility, limits
    # A retry's countdown is an ETA the broker also holds unacknowledged.
    backoffs = {
        name: task.retry_backoff_max
        for name, task in _registered().items()
        if getattr(task, "autoretry_for", ())
    }
    assert backoffs == {
        "billing.sessions_settle": 120,
        "billing.sessions_settle_pending": 120,
        "faults.lost_bills_settle": 120,
        "chargenet.events_deliver": 120,
        "reports.export_job_run": 120,
        "billing.recharges_reconcile_pending": 120,
        "billing.refunds_send": 120,
        "billing.refunds_reconcile_pending": 120,
        "driverapi.starts_settle": 120,
    }


def test_periodic_runs_expire_at_their_next_tick():
    frequent = {
        name: (entry["schedule"], entry["options"]["expires"])
        for name, entry in app.conf.beat_schedule.items()
        if isinstance(entry["schedule"], float)
    }
    assert frequent == {
        "settle-pending-sessions": (10.0, 10.0),
        "piles-sweep-offline": (60.0, 60.0),
        "lost-bills-sweep": (300.0, 300.0),
        "notifications-retry": (300.0, 300.0),
        "events-deliver-pending": (30.0, 30.0),
        "exports-resume-stale": (300.0, 300.0),
        "recharges-reconcile": (60.0, 60.0),
        "refunds-reconcile": (300.0, 300.0),
        "interconnect-pushes": (20.0, 20.0),
        "interconnect-starts-dispatch": (30.0, 30.0),
        "interconnect-charge-status": (60.0, 60.0),
        "interconnect-orders-check": (600.0, 600.0),
        "piles-sync": (300.0, 300.0),
        "reservations-expire": (60.0, 60.0),
        "driver-starts-settle": (60.0, 60.0),
        "time-of-use-refresh": (1800.0, 1800.0),
    }
