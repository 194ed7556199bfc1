"""The Celery app: workers and beat for settlement, sweeps, payment re-checks, notifications.

Delivery guarantees (acks late, redelivery after a visibility timeout, time limits) are
set in settings (CELERY_*). ``lock_bounded`` keeps a periodic job from waiting on row locks
held by someone else: see its docstring.
"""

import contextlib
import logging
import os
import queue
import threading
import time

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

app = Celery("chargenet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@contextlib.contextmanager
def lock_bounded():
    """A transaction whose lock waits fail after ``CELERY_JOB_LOCK_TIMEOUT_MS`` (an
    OperationalError), for periodic jobs. Their candidate rows are taken with SKIP LOCKED,
    so runs never wait for each other; this bounds the waits that remain (foreign-key
    checks, rows a stuck request holds): the run gives up and releases what it locked
    instead of holding it until its time limit, and the next tick tries again."""
    from django.conf import settings
    from django.db import connection, transaction

    timeout = int(settings.CELERY_JOB_LOCK_TIMEOUT_MS)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {timeout}")
        yield


# ---- Queueing tasks after commit -------------------------------------------------------

_gathering = threading.local()
logger = logging.getLogger(__name__)


def task_queue_on_commit(task, *args) -> None:
    """Queue ``task.delay(*args)`` once the current transaction commits. A broker that is
    down is logged, not raised: the change is committed and the beat sweeps catch up.

    Inside `tasks_gathered` the sends are kept instead, for its owner to make later in one
    go (`tasks_send`): the gateway's group commit uses it so that a batch of many piles'
    messages is answered without waiting for one broker round trip per message."""
    from django.db import transaction

    transaction.on_commit(lambda: _send_or_gather(task, args))


def _send_or_gather(task, args: tuple) -> None:
    gathered = getattr(_gathering, "sends", None)
    if gathered is not None:
        gathered.append((task, args))
    else:
        tasks_send([(task, args)])


@contextlib.contextmanager
def tasks_gathered():
    """Collect the sends `task_queue_on_commit` would make while inside; yields the list."""
    sends: list = []
    outer = getattr(_gathering, "sends", None)
    _gathering.sends = sends
    try:
        yield sends
    finally:
        _gathering.sends = outer


def tasks_send(sends: list) -> None:
    """Send gathered ``(task, args)`` pairs in the order they were gathered. Tasks marked
    ``merges_lists`` (one list argument, e.g. event ids) are sent once, where their first
    send was, with the lists joined."""
    ordered: list[tuple] = []
    joined: dict[str, list] = {}
    for task, args in sends:
        if not getattr(task, "merges_lists", False):
            ordered.append((task, args))
        elif task.name in joined:
            joined[task.name].extend(args[0])
        else:
            joined[task.name] = list(args[0])
            ordered.append((task, (joined[task.name],)))
    for task, args in ordered:
        _send(task, args)


def _send(task, args: tuple) -> None:
    try:
        task.delay(*args)
    except Exception:  # the broker is down: the beat sweeps pick the work up
        logger.warning("task %s%r not queued; its sweep will catch up", task.name, args[:1])


class TasksSender:
    """Sends gathered task sends from a thread of its own, so that whoever gathered them
    (the gateway's group commit) answers its callers without waiting for the broker.

    Sends are made in the order they were added. The sends of batches that arrive while
    the thread waits ``linger`` seconds, or while it is sending, go together through
    `tasks_send`, which joins the ``merges_lists`` tasks: under load a handful of
    publishes serve many batches. A send that never happens (the process killed before
    it) is covered as any lost send is: the beat's sweeps find the committed work that
    no task announced (events not delivered, stopped sessions not settled).

    With ``CELERY_TASK_ALWAYS_EAGER`` (tests, tools) a "send" runs the task: it is made
    at once, in the caller's thread, so its effect is there when the caller answers."""

    def __init__(self, *, linger: float = 0.02):
        from django.conf import settings

        self.linger = linger
        self.eager = settings.CELERY_TASK_ALWAYS_EAGER
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tasks-sender", daemon=True)
        self._thread.start()

    def add(self, sends: list) -> None:
        if not sends:
            return
        if self.eager:
            tasks_send(sends)
        else:
            self._queue.put(sends)

    def close(self, timeout: float = 10.0) -> None:
        """Make the sends still queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        closing = False
        while not closing:
            sends = self._queue.get()
            if sends is None:
                return
            time.sleep(self.linger)
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                sends += more
            try:
                tasks_send(sends)
            except Exception:  # never let the thread die: later batches still need it
                logger.exception("sending %s gathered tasks failed", len(sends))
