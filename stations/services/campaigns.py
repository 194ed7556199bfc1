"""Firmware campaigns: one firmware update for a filtered set of piles (a vendor's model,
a station, an old version), with its progress: what each pile answered to the update and
the firmware status it reported since (`MaintenanceReport`). Sending is the adapters'
(`protocol.campaigns`), in a worker."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
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


class CampaignCancelled(DomainError):
    code = "firmware_campaign_cancelled"


@transaction.atomic
def firmware_campaign_cancel(*, campaign: FirmwareCampaign, acting_user) -> int:
    """Stop ``campaign``: its piles not sent the update yet (or to be tried again) are not
    sent it; piles already downloading or installing carry on. Audited; returns how many
    piles will not be sent the update."""
    campaign = FirmwareCampaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.cancelled_at is not None:
        raise CampaignCancelled(
            _("Campaign “%(name)s” was cancelled already.") % {"name": campaign.name}
        )
    campaign.cancelled_at = timezone.now()
    campaign.cancelled_by = acting_user if getattr(acting_user, "pk", None) else None
    campaign.save(update_fields=["cancelled_at", "cancelled_by"])
    unsent = firmware_campaign_unsent(campaign=campaign).count()
    audit_record(
        actor=acting_user,
        action="firmware_campaign_cancel",
        obj=campaign,
        after={"not_sent": unsent},
        operator_id=campaign.operator_id,
    )
    return unsent


# Answers to the update worth another try (the pile was offline or did not answer).
RETRY_OUTCOMES = ("offline", "timeout")


def firmware_campaign_unsent(*, campaign: FirmwareCampaign) -> QuerySet[FirmwareCampaignPile]:
    """The campaign's piles still to be sent the update: never sent, or to be tried again."""
    return campaign.targets.filter(Q(sent_outcome="") | Q(sent_outcome__in=RETRY_OUTCOMES))


def firmware_campaign_target_sent(*, target: FirmwareCampaignPile, outcome: str) -> None:
    FirmwareCampaignPile.objects.filter(pk=target.pk).update(
        sent_outcome=outcome[:16], sent_at=timezone.now()
    )


# A pile's place in a campaign when it has not reported a firmware status since: not sent
# yet, sent and the pile has said nothing yet, or never to be sent (campaign cancelled).
NOT_SENT, WAITING, CANCELLED = "not_sent", "waiting", "cancelled"


@dataclass(frozen=True)
class CampaignProgress:
    total: int
    by_state: dict[str, int]  # a firmware status, an outcome of sending, or NOT_SENT/WAITING

    @property
    def installed(self) -> int:
        return self.by_state.get("Installed", 0)


def firmware_campaign_targets(
    *, campaign: FirmwareCampaign, piles: QuerySet[Pile] | None = None
) -> QuerySet[FirmwareCampaignPile]:
    """The campaign's piles (those among ``piles`` when given: what a sub-operator sees),
    each with the latest firmware status reported since the campaign began
    (``latest_status``), in one query."""
    latest = MaintenanceReport.objects.filter(
        pile_id=OuterRef("pile_id"),
        kind=MaintenanceReport.Kind.FIRMWARE,
        at__gte=campaign.created_at,
    ).order_by("-at", "-pk")
    targets = campaign.targets.all() if piles is None else campaign.targets.filter(pile__in=piles)
    return (
        targets.select_related("pile__station", "campaign")
        .annotate(latest_status=Subquery(latest.values("status")[:1]))
        .order_by("pile__code")
    )


def target_state(target) -> str:
    unsent = not target.sent_outcome or target.sent_outcome in RETRY_OUTCOMES
    if unsent and target.campaign.cancelled_at is not None:
        return CANCELLED
    if not target.sent_outcome:
        return NOT_SENT
    if target.sent_outcome != "accepted":
        return target.sent_outcome
    return target.latest_status or WAITING


def firmware_campaign_progress(
    *, campaign: FirmwareCampaign, piles: QuerySet[Pile] | None = None
) -> CampaignProgress:
    targets = list(firmware_campaign_targets(campaign=campaign, piles=piles))
    return CampaignProgress(len(targets), dict(Counter(target_state(t) for t in targets)))
