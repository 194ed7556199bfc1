"""Sending a firmware campaign (`stations.services.campaigns`) to its piles: one firmware
update intent per pile not sent yet, each in its own worker task (`protocol.tasks`), safe
to run again (piles that answered are skipped; offline ones are tried again)."""

from __future__ import annotations

from django.db.models import QuerySet

from stations.models import FirmwareCampaign, FirmwareCampaignPile
from stations.services.campaigns import firmware_campaign_target_sent

from . import intents
from .adapters import Outcome

# Outcomes worth another try on the next run.
RETRY = {Outcome.OFFLINE, Outcome.TIMEOUT}


def firmware_campaign_pending(*, campaign: FirmwareCampaign) -> QuerySet[FirmwareCampaignPile]:
    """The campaign's piles still to be sent the update (never sent, offline, no answer);
    none once the campaign is cancelled."""
    if campaign.cancelled_at is not None:
        return campaign.targets.none()
    done = [o for o in Outcome if o not in RETRY]
    return campaign.targets.exclude(sent_outcome__in=done).order_by("pk")


def firmware_campaign_target_send(*, target: FirmwareCampaignPile) -> intents.IntentResult | None:
    """Send the campaign's update to one of its piles and record the answer; None when the
    campaign was cancelled since the send was queued (read just before sending)."""
    campaign = FirmwareCampaign.objects.get(pk=target.campaign_id)
    if campaign.cancelled_at is not None:
        return None
    result = intents.pile_firmware_update(
        pile=target.pile,
        location=campaign.location,
        retrieve_at=campaign.retrieve_at,
        retries=campaign.retries,
        retry_interval=campaign.retry_interval,
    )
    firmware_campaign_target_sent(target=target, outcome=result.outcome)
    return result
