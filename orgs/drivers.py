"""Drivers' API identity: tokens issued to a member's phone and the principal a request
authenticated with one carries.

A driver is never a Django staff account: `request.user` of a driver API request is a
`DriverPrincipal` whose ``member`` is the `orgs.Member`. Tokens are random, shown once and
stored as their SHA-256 (`DriverToken.key_hash`), valid for ``DRIVER_TOKEN_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import DriverToken, Member, MemberStatus


def _token_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    key: str  # shown to the driver once; only its hash is kept
    expires_at: dt.datetime


class DriverPrincipal:
    """The authenticated driver of a request (what DRF puts in ``request.user``)."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, member: Member):
        self.member = member

    @property
    def pk(self) -> int:
        return self.member.pk

    def __str__(self) -> str:
        return str(self.member)


@transaction.atomic
def driver_token_issue(*, member: Member) -> IssuedToken:
    """A new API token for ``member`` (its login); expired tokens of the member go."""
    now = timezone.now()
    DriverToken.objects.filter(member=member, expires_at__lte=now).delete()
    key = secrets.token_urlsafe(32)
    expires_at = now + dt.timedelta(days=settings.DRIVER_TOKEN_DAYS)
    DriverToken.objects.create(member=member, key_hash=_token_hash(key), expires_at=expires_at)
    return IssuedToken(key=key, expires_at=expires_at)


def driver_token_member(*, key: str) -> Member | None:
    """The active, visible member a still-valid token belongs to; None for anything else."""
    token = (
        DriverToken.objects.select_related("member")
        .filter(
            key_hash=_token_hash(key),
            expires_at__gt=timezone.now(),
            member__status=MemberStatus.ACTIVE,
            member__hidden_at__isnull=True,
        )
        .first()
    )
    return token.member if token else None


@transaction.atomic
def driver_token_revoke(*, member: Member, key: str) -> None:
    """Log out: the token stops working at once."""
    DriverToken.objects.filter(member=member, key_hash=_token_hash(key)).delete()
