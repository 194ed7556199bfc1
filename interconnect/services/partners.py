"""A partner's interconnection: created with fresh credentials for both directions, shown
once; its published stations; its spelling. The switch is the operator's partnership
switch (`orgs.services.partner_access_set`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError
from orgs.models import Operator, Partner
from orgs.services import partner_access_set
from stations.models import Pile, Station

from ..codec import KeyCase, Secrets, Spelling
from ..models import Interconnection
from ..vault import digest, random_secret, seal, unseal


@dataclass(frozen=True)
class Credentials:
    """Both directions' credentials, as the partner is handed them once."""

    inbound: Secrets  # its calls to us
    push: Secrets  # our calls to it

    def as_wire(self) -> dict:
        return {**self.inbound.as_wire(), "Push": self.push.as_wire()}


def _fresh(operator_id: str) -> Secrets:
    return Secrets(operator_id, random_secret(), random_secret(), random_secret(), random_secret())


def _seal_credentials(link: Interconnection, credentials: Credentials) -> None:
    inbound = credentials.inbound
    link.inbound_operator_secret_hash = digest(inbound.operator_secret)
    link.inbound_sealed = seal(
        {"data": inbound.data_secret, "iv": inbound.data_secret_iv, "sig": inbound.sig_secret}
    )
    link.push_operator_id = credentials.push.operator_id
    link.push_sealed = seal(credentials.push.as_wire())
    link.push_token_sealed, link.push_token_expires_at = "", None
    link.credentials_issued_at = timezone.now()


def inbound_secrets(link: Interconnection) -> Secrets:
    """The secrets the partner signs and encrypts its calls to us with (its OperatorSecret
    is only stored hashed: it is checked at query_token, never used)."""
    sealed = unseal(link.inbound_sealed)
    return Secrets(link.operator_id_wire, "", sealed["data"], sealed["iv"], sealed["sig"])


def spelling_of(link: Interconnection) -> Spelling:
    return Spelling(sevice=link.spells_sevice, key_case=KeyCase(link.key_case))


def push_secrets(link: Interconnection) -> Secrets:
    wire = unseal(link.push_sealed)
    return Secrets(
        wire["OperatorID"],
        wire["OperatorSecret"],
        wire["DataSecret"],
        wire["DataSecretIV"],
        wire["SigSecret"],
    )


def stations_newly_published(*, link: Interconnection, before: set[int]) -> int:
    """Stations just added to ``link``'s published ones (others than ``before``) count as
    changed, so the partner's next incremental query (LastQueryTime) gets them."""
    added = set(link.stations.values_list("pk", flat=True)) - before
    return Station.objects.filter(pk__in=added).update(details_changed_at=timezone.now())


def publishable_stations(operator: Operator) -> QuerySet[Station]:
    """Stations of ``operator`` with at least one published pile (a pile is published only
    with its max power and every connector's rated power: `stations.services.network`)."""
    published = Pile.objects.filter(station=OuterRef("pk"), is_published=True, hidden_at=None)
    return Station.objects.filter(operator=operator, hidden_at=None).filter(Exists(published))


@transaction.atomic
def interconnection_create(
    *,
    name: str,
    operator_id_wire: str,
    base_url: str,
    enabled: bool,
    operator: Operator,
    kind: str = Partner.Kind.APP,
    actor=None,
) -> tuple[Interconnection, Credentials]:
    """A partner (created if its code is new), its partnership switch, and its
    interconnection publishing the operator's publishable stations; the credentials are
    returned here and never again (their secrets are stored sealed or hashed)."""
    if not operator_id_wire.isalnum() or len(operator_id_wire) > 32:
        raise DomainError(_("OperatorID: letters and digits only, at most 32."))
    code = slugify(operator_id_wire.lower())[:32]
    partner, _created = Partner.objects.get_or_create(
        code=code, defaults={"name": name[:100], "kind": kind}
    )
    access = partner_access_set(partner=partner, operator=operator, enabled=enabled, actor=actor)
    credentials = Credentials(
        inbound=_fresh(operator_id_wire), push=_fresh(settings.INTERCONNECT_OPERATOR_ID)
    )
    link = Interconnection(
        partner=partner, operator=operator, operator_id_wire=operator_id_wire, base_url=base_url
    )
    _seal_credentials(link, credentials)
    try:
        with transaction.atomic():
            link.save()
    except IntegrityError:
        raise Conflict(
            _("A partner with OperatorID “%(id)s” exists already.") % {"id": operator_id_wire}
        ) from None
    link.stations.set(publishable_stations(operator))
    audit_record(
        actor=actor,
        action="interconnection_create",
        obj=link,
        after={
            "partner": partner.code,
            "operator_id": operator_id_wire,
            "base_url": base_url,
            "enabled": access.enabled,
            "stations": link.stations.count(),
        },
    )
    return link, credentials


@transaction.atomic
def interconnection_credentials_renew(*, link: Interconnection, actor) -> Credentials:
    """New credentials for both directions (the old ones stop working at once); returned
    once, for the staff member to hand over."""
    link = Interconnection.objects.select_for_update().get(pk=link.pk)
    credentials = Credentials(
        inbound=_fresh(link.operator_id_wire), push=_fresh(link.push_operator_id)
    )
    _seal_credentials(link, credentials)
    link.save()
    link.tokens.all().delete()
    audit_record(
        actor=actor,
        action="interconnection_credentials_renew",
        obj=link,
        after={"issued_at": link.credentials_issued_at},
    )
    return credentials
