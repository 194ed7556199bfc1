"""Drivers' API identity: WeChat login, phone binding by SMS code, the tokens issued to a
member's phone and the principal a request authenticated with one carries.

A driver is never a Django staff account: `request.user` of a driver API request is a
`DriverPrincipal` whose ``member`` is the `orgs.Member`. Tokens are random, shown once and
stored as their SHA-256 (`DriverToken.key_hash`), valid for ``DRIVER_TOKEN_DAYS``.

Login is WeChat's web-page OAuth: the openid (or, from another app of the operator, the
unionid) finds the member; a first login creates one without a phone. Binding a phone
checks a texted code (`PhoneCode`: ``SMS_CODE_MINUTES`` to live, ``SMS_CODE_ATTEMPTS``
wrong tries, one text per phone every ``SMS_CODE_RESEND_SECONDS``). A member that already
has the phone (created by staff, or before WeChat) gets the WeChat identity: the account
is linked, never duplicated, and the empty login account goes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import status

from chargenet.audit import audit_record
from chargenet.errors import Conflict, DomainError, NotFound
from integrations.sms import SmsError, SmsSender
from integrations.wechat import OAuthIdentity

from .models import DriverToken, Member, MemberStatus, Operator, PhoneCode
from .services import member_create
from .validators import validate_phone


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
        DriverToken.objects.select_related("member__operator")  # most requests read it
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


class LoginRefused(DomainError):
    code = "login_refused"
    http_status = status.HTTP_403_FORBIDDEN


class TooManyCodes(DomainError):
    code = "sms_too_soon"
    http_status = status.HTTP_429_TOO_MANY_REQUESTS


class SmsUnavailable(DomainError):
    code = "sms_unavailable"
    http_status = status.HTTP_503_SERVICE_UNAVAILABLE


def driver_operator() -> Operator:
    """The operator whose official account drivers log in to: ``DRIVER_OPERATOR_CODE``, or
    the only operator there is."""
    operators = Operator.objects.all()
    if settings.DRIVER_OPERATOR_CODE:
        operators = operators.filter(code=settings.DRIVER_OPERATOR_CODE)
    found = list(operators[:2])
    if len(found) != 1:
        raise NotFound(_("This service is not set up for driver logins yet."))
    return found[0]


def _check_may_log_in(member: Member) -> None:
    if member.status != MemberStatus.ACTIVE or member.hidden_at is not None:
        raise LoginRefused(_("This account is blocked; please call customer service."))


@transaction.atomic
def driver_wechat_login(*, operator: Operator, identity: OAuthIdentity) -> Member:
    """The member a WeChat identity belongs to, created (without a phone) at its first
    login. Found by openid, else by unionid (then the openid is recorded on it)."""
    member = Member.objects.select_for_update().filter(wechat_openid=identity.openid).first()
    if member is None and identity.unionid:
        member = Member.objects.select_for_update().filter(wechat_unionid=identity.unionid).first()
        if member is not None and not member.wechat_openid:
            member.wechat_openid = identity.openid
            member.save(update_fields=["wechat_openid"])
    if member is None:
        try:
            with transaction.atomic():
                member = member_create(operator=operator, wechat_openid=identity.openid)
        except (IntegrityError, DomainError):
            # The same driver's other tab logged in at the same moment and won.
            member = Member.objects.get(wechat_openid=identity.openid)
    if identity.unionid and not member.wechat_unionid:
        member.wechat_unionid = identity.unionid
        member.save(update_fields=["wechat_unionid"])
    _check_may_log_in(member)
    return member


def _code_hash(phone: str, code: str) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"{phone}:{code}".encode(), hashlib.sha256
    ).hexdigest()


def _phone_checked(phone: str) -> str:
    phone = (phone or "").strip()
    try:
        validate_phone(phone)
    except ValidationError:
        raise DomainError(
            _("Mobile number: enter the 11-digit number of a mainland China mobile phone."),
            code="phone_invalid",
        ) from None
    return phone


@transaction.atomic
def _phone_code_create(*, member: Member, phone: str) -> str:
    now = timezone.now()
    # One text per phone at a time, whoever asks (a phone is not a free SMS gateway).
    Member.objects.select_for_update().filter(pk=member.pk).first()
    recent = PhoneCode.objects.filter(
        phone=phone,
        created_at__gt=now - dt.timedelta(seconds=settings.SMS_CODE_RESEND_SECONDS),
    ).exists()
    today = PhoneCode.objects.filter(phone=phone, created_at__gt=now - dt.timedelta(days=1))
    if recent or today.count() >= settings.SMS_CODES_PER_DAY:
        raise TooManyCodes(_("A code was sent to this number just now; please wait a moment."))
    code = f"{secrets.randbelow(10**6):06d}"
    PhoneCode.objects.create(
        member=member,
        phone=phone,
        code_hash=_code_hash(phone, code),
        expires_at=now + dt.timedelta(minutes=settings.SMS_CODE_MINUTES),
    )
    return code


def driver_phone_code_send(*, member: Member, phone: str, sender: SmsSender) -> None:
    """Text a fresh code to ``phone`` for ``member`` to bind it (the text goes after the
    code is committed: no network call inside the transaction)."""
    phone = _phone_checked(phone)
    code = _phone_code_create(member=member, phone=phone)
    try:
        sender.send_code(phone=phone, code=code)
    except SmsError:
        PhoneCode.objects.filter(member=member, phone=phone, used_at__isnull=True).update(
            expires_at=timezone.now()
        )
        raise SmsUnavailable(
            _("The text message could not be sent; please try again later.")
        ) from None


def _code_problem(row: PhoneCode | None, *, phone: str, code: str) -> DomainError | None:
    """What is wrong with ``code`` for the latest code row (a wrong code is counted)."""
    if row is None or row.used_at is not None or row.expires_at <= timezone.now():
        return DomainError(
            _("The code has expired; please ask for a new one."), code="sms_code_expired"
        )
    if row.attempts >= settings.SMS_CODE_ATTEMPTS:
        return DomainError(
            _("Too many wrong codes; please ask for a new one."), code="sms_code_attempts"
        )
    if not hmac.compare_digest(row.code_hash, _code_hash(phone, (code or "").strip())):
        row.attempts += 1
        row.save(update_fields=["attempts"])
        return DomainError(_("The code is not right."), code="sms_code_wrong")
    return None


def _member_link(*, login: Member, phone: str) -> Member:
    """Give ``login`` the phone; if a member already has it, that member takes over the
    WeChat identity of ``login`` (which must still be empty) instead."""
    owner = Member.objects.select_for_update().filter(phone=phone).exclude(pk=login.pk).first()
    if owner is None:
        before = {"phone": login.phone}
        login.phone = phone
        login.save(update_fields=["phone"])
        audit_record(
            actor=None, action="member_phone_bind", obj=login, before=before, after={"phone": phone}
        )
        return login
    if owner.operator_id != login.operator_id or (
        owner.wechat_openid and owner.wechat_openid != login.wechat_openid
    ):
        raise Conflict(
            _("This mobile number belongs to another WeChat account."), code="phone_taken"
        )
    _check_may_log_in(owner)
    identity = {"wechat_openid": login.wechat_openid, "wechat_unionid": login.wechat_unionid}
    try:
        with transaction.atomic():
            login.delete()  # its tokens and codes go with it; anything else protects it
    except ProtectedError:
        raise Conflict(
            _(
                "This WeChat account already has charges of its own and cannot be joined "
                "to the account of this number; please call customer service."
            ),
            code="phone_merge_refused",
        ) from None
    before = {k: getattr(owner, k) for k in identity}
    for field, value in identity.items():
        setattr(owner, field, value)
    owner.save(update_fields=list(identity))
    audit_record(actor=None, action="member_link_wechat", obj=owner, before=before, after=identity)
    return owner


def driver_phone_bind(*, member: Member, phone: str, code: str) -> Member:
    """Bind ``phone`` after checking its texted code; returns the member the driver is
    from now on (``member``, or the existing member of that phone, linked). A wrong code
    is counted even though the binding fails."""
    phone = _phone_checked(phone)
    with transaction.atomic():
        row = (
            PhoneCode.objects.select_for_update()
            .filter(member=member, phone=phone)
            .order_by("-created_at")
            .first()
        )
        problem = _code_problem(row, phone=phone, code=code)
        if problem is None:
            row.used_at = timezone.now()
            row.save(update_fields=["used_at"])
            return _member_link(login=member, phone=phone)
    raise problem
