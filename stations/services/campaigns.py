"""Firmware campaigns: one firmware update for a filtered set of piles (a vendor's model,
a station, an old version), with its progress: what each pile answered to the update and
the firmware status it reported since (`MaintenanceReport`). Sending is the adapters'
(`protocol.campaigns`), in a worker."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import DomainError
from stations.models import FirmwareCampaign, FirmwareCampaignPile, MaintenanceReport, Pile


class CampaignInvalid(DomainError):
    code = "firmware_campaign_invalid"


@transaction.atomic
def firmware_campaign_create(
    *,
    operator_id: int,
    name: str,
    piles: QuerySet[Pile],
    location: str,
    retrieve_at: dt.datetime,
    retries: int | None = None,
    retry_interval: int | None = None,
    acting_user=None,
) -> FirmwareCampaign:
    """A campaign over ``piles`` (those of the operator that are not hidden)."""
    targets = list(
        piles.filter(station__operator_id=operator_id, hidden_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not targets:
        raise CampaignInvalid(_("No pile matches the campaign's filter."))
    campaign = FirmwareCampaign.objects.create(
        operator_id=operator_id,
        name=name,
        location=location,
        retrieve_at=retrieve_at,
        retries=retries,
        retry_interval=retry_interval,
    )
    FirmwareCampaignPile.objects.bulk_create(
        [FirmwareCampaignPile(campaign=campaign, pile_id=pile_id) for pile_id in targets]
    )
    audit_record(
        actor=acting_user,
        action="firmware_campaign_create",
        obj=campaign,
        after={"name": name, "location": location, "piles": len(targets)},
        operator_id=operator_id,
    )
    return campaign


def firmware_campaign_target_sent(*, target: FirmwareCampaignPile, outcome: str) -> None:
    FirmwareCampaignPile.objects.filter(pk=target.pk).update(
        sent_outcome=outcome[:16], sent_at=timezone.now()
    )


# A pile's place in a campaign when it has not reported a firmware status since: not sent
# yet, or sent and the pile has said nothing yet.
NOT_SENT, WAITING = "not_sent", "waiting"


@dataclass(frozen=True)
class CampaignProgress:
    total: int
    by_state: dict[str, int]  # a firmware status, an outcome of sending, or NOT_SENT/WAITING

    @property
    def installed(self) -> int:
        return self.by_state.get("Installed", 0)


def firmware_campaign_targets(*, campaign: FirmwareCampaign) -> QuerySet[FirmwareCampaignPile]:
    """The campaign's piles, each with the latest firmware status reported since the
    campaign began (``latest_status``), in one query."""
    latest = MaintenanceReport.objects.filter(
        pile_id=OuterRef("pile_id"),
        kind=MaintenanceReport.Kind.FIRMWARE,
        at__gte=campaign.created_at,
    ).order_by("-at", "-pk")
    return (
        campaign.targets.select_related("pile__station")
        .annotate(latest_status=Subquery(latest.values("status")[:1]))
        .order_by("pile__code")
    )


def target_state(target) -> str:
    if not target.sent_outcome:
        return NOT_SENT
    if target.sent_outcome != "accepted":
        return target.sent_outcome
    return target.latest_status or WAITING


def firmware_campaign_progress(*, campaign: FirmwareCampaign) -> CampaignProgress:
    targets = list(firmware_campaign_targets(campaign=campaign))
    return CampaignProgress(len(targets), dict(Counter(target_state(t) for t in targets)))
