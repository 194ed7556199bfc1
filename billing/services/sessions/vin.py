"""The VIN a pile reports during a session: link the vehicle and its department."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext_lazy as _

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from chargenet.errors import DomainError
from orgs.models import Vehicle
from orgs.validators import VIN_RE
from stations.models import Pile


def session_link_vin(
    *, pile: Pile, connector_number: int, vin: str, protocol_ref: str | None = None
) -> int | None:
    """Link the VIN a pile reported to its session: the vehicle, its
    department and, through it, the attributed sub-operator. Returns the session id.
    Piles send VINs with stray spaces or in lower case: they are read as written on the car."""
    vin = (vin or "").strip().upper()
    if not VIN_RE.fullmatch(vin):
        raise DomainError(
            _("A VIN is 17 characters, digits and capital letters without I, O or Q."),
            code="vin_invalid",
        )
    with transaction.atomic():
        qs = ChargingSession.objects.select_for_update().filter(pile=pile)
        if protocol_ref is not None:
            session = qs.filter(protocol_ref=protocol_ref).first()
        else:
            session = qs.filter(connector__number=connector_number, state__in=ACTIVE_STATES).first()
        if session is None:
            return None
        session.vin = vin
        fields = ["vin", "updated_at"]
        vehicle = (
            Vehicle.objects.filter(vin=vin, operator_id=session.operator_id)
            .select_related("department")
            .first()
        )
        if vehicle is not None and session.vehicle_id is None:
            session.vehicle = vehicle
            fields.append("vehicle")
            if vehicle.department is not None:
                session.department = vehicle.department
                fields.append("department")
                if vehicle.department.sub_operator_id:
                    session.sub_operator_id = vehicle.department.sub_operator_id
                    fields.append("sub_operator")
        session.save(update_fields=fields)
    return session.pk
