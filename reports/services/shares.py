"""Service-fee share rates (结算单): a new version from a day on; versions are never edited."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError

from ..models import ServiceFeeShare


class ShareRateInvalid(DomainError):
    code = "share_rate_invalid"


@transaction.atomic
def fee_share_set(
    *, sub_operator, rate: Decimal, effective_from: dt.date, acting_user
) -> ServiceFeeShare:
    """The sub-operator's share of the service fee is ``rate`` for bills from
    ``effective_from`` on (until a later version); audited."""
    if not Decimal(0) <= rate <= Decimal(1):
        raise ShareRateInvalid(_("A share rate is between 0 and 1 (0.3000 = 30%)."))
    try:
        with transaction.atomic():
            share = ServiceFeeShare.objects.create(
                operator_id=sub_operator.operator_id,
                sub_operator=sub_operator,
                rate=rate,
                effective_from=effective_from,
                created_by=acting_user if getattr(acting_user, "pk", None) else None,
            )
    except IntegrityError:
        raise Conflict(
            _("%(sub)s has a share rate from %(day)s already; add a version from another day.")
            % {"sub": sub_operator, "day": effective_from}
        ) from None
    audit_record(
        actor=acting_user,
        action="fee_share_set",
        obj=share,
        after={"sub_operator": sub_operator.pk, "rate": str(rate), "from": str(effective_from)},
    )
    return share
