"""Charging from the phone: start on a connector, the live charge, stop, my sessions and
my bills (with their period lines; a fault bill is "being checked").

A start is checked by the core (`member_start_check`: every refusal that needs no pile
is a 4xx at once), recorded and sent towards the pile without waiting (`driverapi.starts`):
the answer is a 202 with the start's id. The pile's answer (accepted, rejected, no answer)
and then the session — which opens when the pile reports the start, as for any channel —
are read from ``starts/<id>/``, which the live page polls before ``sessions/current/``.
Starts carry an ``Idempotency-Key``: a retried request (a flaky 4G link) gets the same
start again and sends nothing twice.
"""

from __future__ import annotations

import datetime as dt

import django_filters
from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.live import session_live
from billing.models import Bill, BillLine, ChargingSession, PaymentState, Period, SessionState
from billing.models.sessions import ACTIVE_STATES
from billing.services.sessions.eligibility import member_start_check
from chargenet.errors import Conflict, DomainError
from protocol.intents import Outcome, session_stop_remote
from stations.public import connectors_open_to

from .models import DriverStart, StartState
from .starts import start_record, start_refresh, start_send, starts_of

IDEMPOTENCY_HEADER = "Idempotency-Key"


class PileTimeout(DomainError):
    code = "pile_timeout"
    http_status = status.HTTP_504_GATEWAY_TIMEOUT


# The pile's answer to a driver's command, as the driver's error.
_OUTCOME_ERRORS = {
    Outcome.REJECTED: ("pile_rejected", _("The pile refused; please check the plug and retry.")),
    Outcome.OFFLINE: ("pile_offline", _("The pile is offline; please use another one.")),
    Outcome.NOT_SUPPORTED: ("pile_not_supported", _("This pile cannot be started remotely.")),
    Outcome.INVALID: ("pile_invalid", _("The command could not be sent to the pile.")),
}


def _outcome_error(outcome: Outcome) -> DomainError:
    if outcome == Outcome.TIMEOUT:
        return PileTimeout(_("The pile did not answer in time; please try again."))
    code, message = _OUTCOME_ERRORS[outcome]
    return Conflict(message, code=code)


# --- output ----------------------------------------------------------------------------


class LiveOut(serializers.Serializer):
    energy_kwh = serializers.DecimalField(max_digits=12, decimal_places=3)
    power_kw = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    soc = serializers.IntegerField(allow_null=True)
    duration_s = serializers.IntegerField()
    amount_so_far = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, help_text="estimated, yuan"
    )
    sampled_at = serializers.DateTimeField(allow_null=True)


class SessionOut(serializers.Serializer):
    id = serializers.IntegerField()
    order_no = serializers.CharField()
    state = serializers.ChoiceField(choices=SessionState.choices)
    state_label = serializers.CharField()
    station_id = serializers.IntegerField()
    station_name = serializers.CharField()
    pile_code = serializers.CharField()
    connector_number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    bill_id = serializers.IntegerField(allow_null=True)
    live = LiveOut(allow_null=True, help_text="While the charge runs.")


def session_data(session: ChargingSession, *, live: bool) -> dict:
    running = session.state in ACTIVE_STATES
    bill = getattr(session, "bill", None) if not running else None
    return {
        "id": session.pk,
        "order_no": session.order_no,
        "state": session.state,
        "state_label": str(SessionState(session.state).label),
        "station_id": session.station_id,
        "station_name": session.station.name,
        "pile_code": session.pile.code,
        "connector_number": session.connector.number,
        "started_at": session.started_at,
        "stopped_at": session.stopped_at,
        "bill_id": bill.pk if bill else None,
        "live": session_live(session=session, at=timezone.now()) if live and running else None,
    }


START_STATES = [state.value for state in StartState]
# What the driver reads for each state of a start (failures: also the code of the refusal).
START_MESSAGES = {
    StartState.STARTING: _("Sent to the pile; waiting for its answer."),
    StartState.ACCEPTED: _("The pile accepted; charging is starting."),
    StartState.CHARGING: _("Charging has started."),
}


class StartOut(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.ChoiceField(
        choices=START_STATES,
        help_text="starting → accepted → charging; or rejected, offline, timeout, failed "
        "(then ``code`` and ``message`` say why).",
    )
    connector_id = serializers.IntegerField()
    session_id = serializers.IntegerField(allow_null=True, help_text="Once charging.")
    code = serializers.CharField(help_text="Why it failed; empty while it goes well.")
    message = serializers.CharField()


def start_data(start: DriverStart) -> dict:
    if start.state in START_MESSAGES:
        code, message = "", START_MESSAGES[start.state]
    else:
        error = _outcome_error(Outcome(start.outcome or Outcome.INVALID))
        code, message = error.code, error.message
    return {
        "id": start.pk,
        "state": start.state,
        "connector_id": start.connector_id,
        "session_id": start.session_id,
        "code": code,
        "message": str(message),
    }


class BillLineOut(serializers.Serializer):
    period = serializers.IntegerField()
    period_label = serializers.CharField()
    energy_kwh = serializers.DecimalField(max_digits=12, decimal_places=3)
    electricity_price = serializers.DecimalField(max_digits=10, decimal_places=5)
    service_price = serializers.DecimalField(max_digits=10, decimal_places=5)
    electricity_fee = serializers.DecimalField(max_digits=12, decimal_places=2)
    service_fee = serializers.DecimalField(max_digits=12, decimal_places=2)


BILL_STATES = {
    PaymentState.PAID: "paid",
    PaymentState.UNPAID: "unpaid",
    PaymentState.OWED: "owed",
    PaymentState.FAULT: "being_checked",
}
BILL_STATE_LABELS = {
    "paid": _("paid"),
    "unpaid": _("unpaid"),
    "owed": _("owed: please recharge"),
    "being_checked": _("being checked: you are not charged until customer service is done"),
}


BILL_STATE_CHOICES = list(BILL_STATE_LABELS)


class BillOut(serializers.Serializer):
    id = serializers.IntegerField()
    order_no = serializers.CharField()
    session_id = serializers.IntegerField()
    station_name = serializers.CharField()
    current_type = serializers.CharField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField()
    duration_s = serializers.IntegerField()
    energy_kwh = serializers.DecimalField(max_digits=12, decimal_places=3)
    electricity_fee = serializers.DecimalField(max_digits=12, decimal_places=2)
    service_fee = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    state = serializers.ChoiceField(choices=BILL_STATE_CHOICES)
    state_label = serializers.CharField()
    lines = BillLineOut(many=True, help_text="Empty while the bill is being checked.")


def _line_data(line: BillLine) -> dict:
    return {
        "period": line.period,
        "period_label": str(Period(line.period).label),
        "energy_kwh": line.energy_wh / 1000,
        "electricity_price": line.electricity_price,
        "service_price": line.service_price,
        "electricity_fee": line.electricity_fee,
        "service_fee": line.service_fee,
    }


def bill_data(bill: Bill) -> dict:
    state = BILL_STATES[bill.payment_state]
    checking = state == "being_checked"
    return {
        "id": bill.pk,
        "order_no": bill.order_no,
        "session_id": bill.session_id,
        "station_name": bill.station.name,
        "current_type": bill.current_type,
        "started_at": bill.started_at,
        "ended_at": bill.ended_at,
        "duration_s": bill.duration_s,
        "energy_kwh": bill.energy_wh / 1000,
        "electricity_fee": bill.electricity_fee,
        "service_fee": bill.service_fee,
        "total": bill.total,
        "state": state,
        "state_label": str(BILL_STATE_LABELS[state]),
        # A fault bill's figures are not final: the lines come with the repair.
        "lines": [] if checking else [_line_data(line) for line in bill.lines.all()],
    }


# --- reads -----------------------------------------------------------------------------


def my_sessions(member):
    return ChargingSession.objects.filter(member=member).select_related(
        "station", "pile", "connector", "bill"
    )


def my_bills(member):
    return (
        Bill.objects.filter(member=member)
        .select_related("station")
        .prefetch_related("lines")
        .order_by("-ended_at", "-pk")
    )


# --- views -----------------------------------------------------------------------------


class StartView(APIView):
    """Start charging on a connector. 202: recorded and on its way to the pile — follow
    it at ``starts/<id>/``; 4xx: refused at once, why in ``code`` (pile offline, connector
    occupied or not plugged in, station closed, balance, debt, another start on its way)."""

    @extend_schema(
        request=None,
        responses={202: StartOut},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="A fresh random value per start the driver asks for; the same "
                "value again answers with the same start and sends nothing.",
            )
        ],
        operation_id="charging_start",
    )
    def post(self, request, connector_id: int):
        member = request.user.member
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key or len(key) > 64:
            raise DomainError(
                _("The request needs an Idempotency-Key header (1 to 64 characters)."),
                code="idempotency_key_required",
            )
        start, under_way = starts_of(member=member, key=key)
        if start is None:
            connector = get_object_or_404(
                connectors_open_to(member)
                .select_related("pile__station")
                .prefetch_related("pile__station__opening_windows"),
                pk=connector_id,
            )
            member_start_check(member=member, connector=connector, at=timezone.now())
            start, recorded = start_record(
                member=member, connector=connector, key=key, under_way=under_way
            )
            if recorded:
                start = start_send(start=start, member=member)
        elif start.connector_id != connector_id:
            raise Conflict(
                _("This Idempotency-Key was used for another connector."),
                code="idempotency_key_reused",
            )
        else:
            start = start_refresh(start=start)
        if not start.request_id and start.state != StartState.STARTING:
            # Never sent (the pile is not connected, or cannot start remotely): a refusal
            # now, and the same refusal to a retry.
            raise _outcome_error(Outcome(start.outcome))
        return Response(
            StartOut(start_data(start)).data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": f"/api/v1/starts/{start.pk}/"},
        )


class StartStateView(APIView):
    """What became of my start: the pile's answer, then the session it opened."""

    @extend_schema(responses=StartOut, operation_id="charging_start_state")
    def get(self, request, start_id: int):
        start = get_object_or_404(
            DriverStart.objects.filter(member=request.user.member).select_related(
                "connector__pile", "member"
            ),
            pk=start_id,
        )
        return Response(StartOut(start_data(start_refresh(start=start))).data)


class _UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time with any offset the standard allows (±23:59), as UTC: the database
    takes offsets up to ±15:59 only."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcDateTimeField


class SessionFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=SessionState.choices)
    started_from = UtcDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_until = UtcDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = ChargingSession
        fields = ["state"]


class SessionListView(generics.ListAPIView):
    """My charges, newest first."""

    serializer_class = SessionOut
    filterset_class = SessionFilter

    queryset = ChargingSession.objects.none()  # the schema's model; rows: get_queryset

    def get_queryset(self):
        return my_sessions(self.request.user.member).order_by("-started_at", "-pk")

    def list(self, request, *args, **kwargs):
        rows = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(
            SessionOut([session_data(s, live=False) for s in page], many=True).data
        )


class CurrentSessionView(APIView):
    """My running charge with its live figures; 404 when none runs."""

    @extend_schema(responses=SessionOut, operation_id="session_current")
    def get(self, request):
        session = get_object_or_404(
            my_sessions(request.user.member)
            .filter(state__in=ACTIVE_STATES)
            .select_related("operator")
        )
        return Response(SessionOut(session_data(session, live=True)).data)


class SessionView(APIView):
    @extend_schema(responses=SessionOut, operation_id="session_detail")
    def get(self, request, session_id: int):
        session = get_object_or_404(
            my_sessions(request.user.member).select_related("operator"), pk=session_id
        )
        return Response(SessionOut(session_data(session, live=True)).data)


class StopView(APIView):
    """Stop my running charge. 202: the pile accepted; the bill follows the pile's stop."""

    @extend_schema(request=None, responses={202: SessionOut}, operation_id="session_stop")
    def post(self, request, session_id: int):
        session = get_object_or_404(
            my_sessions(request.user.member).select_related("operator"), pk=session_id
        )
        if session.state not in ACTIVE_STATES:
            raise Conflict(_("This charge has already ended."), code="session_ended")
        result = session_stop_remote(session=session, timeout=settings.DRIVER_COMMAND_TIMEOUT)
        if result.outcome != Outcome.ACCEPTED:
            raise _outcome_error(result.outcome)
        return Response(SessionOut(session_data(session, live=False)).data, status=202)


class BillFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=[(v, v) for v in BILL_STATE_CHOICES], method="by_state"
    )
    ended_from = UtcDateTimeFilter(field_name="ended_at", lookup_expr="gte")
    ended_until = UtcDateTimeFilter(field_name="ended_at", lookup_expr="lt")

    class Meta:
        model = Bill
        fields = ["state"]

    def by_state(self, rows, name, value):
        wanted = [k for k, v in BILL_STATES.items() if v == value]
        return rows.filter(payment_state__in=wanted)


class BillListView(generics.ListAPIView):
    """My bills, newest first, with their period lines."""

    serializer_class = BillOut
    filterset_class = BillFilter

    queryset = Bill.objects.none()  # the schema's model; rows: get_queryset

    def get_queryset(self):
        return my_bills(self.request.user.member)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(BillOut([bill_data(b) for b in page], many=True).data)


class BillView(APIView):
    @extend_schema(responses=BillOut, operation_id="bill_detail")
    def get(self, request, bill_id: int):
        bill = get_object_or_404(my_bills(request.user.member), pk=bill_id)
        return Response(BillOut(bill_data(bill)).data)
