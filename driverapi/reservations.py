"""Reservations from the phone: hold a connector for a few minutes while driving there,
see what I hold, and let it go.

A reservation is made by the remote intent `connector_reserve` (the core decides first —
`billing.services.reservations.reservation_create` — then the pile is asked to hold it,
outside any transaction) and released by `reservation_cancel`. A driver only reaches the
connectors open to them and only their own reservations; anything else is a 404.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.services.reservations import reservations_active
from chargenet.errors import Conflict, DomainError
from protocol.intents import Outcome, connector_reserve, reservation_cancel
from stations.models import Reservation
from stations.public import connectors_open_to

from .charging import PileTimeout

# How long a driver may hold a connector from the app (minutes).
MINUTES_MIN, MINUTES_MAX, MINUTES_DEFAULT = 1, 30, 15

# The pile's answer to a reservation, as the driver's error.
_OUTCOME_ERRORS = {
    Outcome.REJECTED: ("pile_rejected", _("The pile refused to hold the connector.")),
    Outcome.OFFLINE: ("pile_offline", _("The pile is offline; it cannot be reserved now.")),
    Outcome.NOT_SUPPORTED: ("pile_not_supported", _("This pile cannot be reserved.")),
}


class ReservationIn(serializers.Serializer):
    minutes = serializers.IntegerField(
        min_value=MINUTES_MIN, max_value=MINUTES_MAX, default=MINUTES_DEFAULT
    )


class ReservationOut(serializers.Serializer):
    id = serializers.IntegerField()
    connector_id = serializers.IntegerField()
    connector_number = serializers.IntegerField()
    pile_code = serializers.CharField()
    station_id = serializers.IntegerField()
    station_name = serializers.CharField()
    reserved_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    minutes_left = serializers.IntegerField()


def reservation_data(reservation: Reservation, *, now: dt.datetime) -> dict:
    connector = reservation.connector
    left = max(0, int((reservation.expires_at - now).total_seconds() // 60))
    return {
        "id": reservation.pk,
        "connector_id": connector.pk,
        "connector_number": connector.number,
        "pile_code": connector.pile.code,
        "station_id": connector.pile.station_id,
        "station_name": connector.pile.station.name,
        "reserved_at": reservation.created_at,
        "expires_at": reservation.expires_at,
        "minutes_left": left,
    }


def my_reservations(member):
    return reservations_active(member_id=member.pk).select_related("connector__pile__station")


def _refusal(result) -> DomainError:
    """Why the reservation was not made: the core's refusal (its own words), or the
    pile's outcome."""
    if result.outcome == Outcome.INVALID:
        return Conflict(result.answer.reason, code="reservation_refused")
    if result.outcome == Outcome.TIMEOUT:
        return PileTimeout(_("The pile did not answer in time; please try again."))
    code, message = _OUTCOME_ERRORS[result.outcome]
    return Conflict(message, code=code)


class ReservationListView(APIView):
    """My reservations holding a connector now, soonest to end first."""

    @extend_schema(responses=ReservationOut(many=True), operation_id="reservations_mine")
    def get(self, request):
        now = timezone.now()
        rows = my_reservations(request.user.member)
        return Response(
            ReservationOut([reservation_data(r, now=now) for r in rows], many=True).data
        )


class ReserveView(APIView):
    """Hold a connector for me for ``minutes``. 201: the pile holds it; 4xx/5xx: why not,
    in ``code`` (``reservation_refused``: charging, already reserved, or I may not charge
    here; ``pile_offline``, ``pile_rejected``, ``pile_timeout``: the pile's answer)."""

    @extend_schema(
        request=ReservationIn, responses={201: ReservationOut}, operation_id="connector_reserve"
    )
    def post(self, request, connector_id: int):
        member = request.user.member
        connector = get_object_or_404(
            connectors_open_to(member).select_related("pile__station"), pk=connector_id
        )
        body = ReservationIn(data=request.data)
        body.is_valid(raise_exception=True)
        now = timezone.now()
        result = connector_reserve(
            connector=connector,
            member=member,
            expires_at=now + dt.timedelta(minutes=body.validated_data["minutes"]),
            timeout=settings.DRIVER_COMMAND_TIMEOUT,
        )
        if result.outcome != Outcome.ACCEPTED:
            raise _refusal(result)
        reservation = get_object_or_404(my_reservations(member), connector_id=connector.pk)
        return Response(
            ReservationOut(reservation_data(reservation, now=now)).data,
            status=status.HTTP_201_CREATED,
        )


class ReservationView(APIView):
    """Cancel my reservation: the connector is free for others at once, whatever the pile
    answers (204)."""

    @extend_schema(request=None, responses={204: None}, operation_id="reservation_cancel")
    def delete(self, request, reservation_id: int):
        reservation = get_object_or_404(my_reservations(request.user.member), pk=reservation_id)
        reservation_cancel(reservation=reservation, timeout=settings.DRIVER_COMMAND_TIMEOUT)
        return Response(status=status.HTTP_204_NO_CONTENT)
