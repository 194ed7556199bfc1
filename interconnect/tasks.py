"""Celery tasks of the partner adapter: thin, idempotent, each calls one service."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from .codec import CHINA
from .models import Interconnection, PartnerOrder
from .services.checks import orders_check
from .services.inbound import messages_prune
from .services.orders import (
    charge_status_enqueue,
    partner_order_dispatch,
    partner_orders_dispatch_due,
    partner_orders_never_started,
)
from .services.pushes import pushes_deliver_due as deliver
from .services.pushes import reconciliation_enqueue


@shared_task(name="interconnect.pushes_deliver_due", soft_time_limit=240, time_limit=300)
def pushes_deliver_due() -> dict:
    """Woken after each push is queued and by beat; workers never send the same push
    at once (claimed with SKIP LOCKED and a lease)."""
    return deliver()


@shared_task(name="interconnect.charge_status_enqueue", soft_time_limit=50, time_limit=60)
def charge_status_enqueue_task() -> int:
    return charge_status_enqueue(minute=timezone.now().strftime("%Y%m%d%H%M"))


@shared_task(name="interconnect.orders_check", soft_time_limit=240, time_limit=300)
def orders_check_task() -> int:
    return orders_check()


@shared_task(name="interconnect.reconciliations_enqueue", soft_time_limit=240, time_limit=300)
def reconciliations_enqueue() -> int:
    """Yesterday's check_charge_orders for every partner (local day)."""
    day = timezone.now().astimezone(CHINA).date() - dt.timedelta(days=1)
    queued = 0
    for link in Interconnection.objects.all():
        queued += reconciliation_enqueue(link=link, day=day) is not None
    return queued


@shared_task(name="interconnect.messages_prune", soft_time_limit=240, time_limit=300)
def messages_prune_task() -> int:
    """The message log's retention (INTERCONNECT_MESSAGE_RETENTION_DAYS), nightly."""
    return messages_prune()


@shared_task(name="interconnect.partner_order_dispatch", soft_time_limit=50, time_limit=60)
def partner_order_dispatch_task(order_id: int) -> bool:
    """After query_start_charge committed: ask the pile (whoever claims the order first
    sends it; a repeat does nothing). True when the pile accepted."""
    order = (
        PartnerOrder.objects.select_related("interconnection", "connector__pile")
        .filter(pk=order_id)
        .first()
    )
    return order is not None and partner_order_dispatch(order=order).succeeded


@shared_task(name="interconnect.partner_orders_dispatch_due", soft_time_limit=25, time_limit=30)
def partner_orders_dispatch_due_task() -> int:
    """Starts whose dispatch was lost, and starts the pile accepted but never began."""
    return partner_orders_dispatch_due() + partner_orders_never_started()
