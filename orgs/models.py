"""Who runs the network and who charges on it: operators, sub-operators, departments,
staff accounts with their scope, members (drivers), vehicles, cards and partners."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from chargenet.models import Hideable

from .validators import validate_phone, validate_vin


class Operator(models.Model):
    """A charging-network operator (运营商): the tenant everything else belongs to."""

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    rounding_mode = models.CharField(
        _("bill rounding"),
        max_length=16,
        choices=[("ROUND_DOWN", _("truncate to the fen")), ("ROUND_HALF_UP", _("round half up"))],
        default="ROUND_DOWN",
    )
    start_min_balance = models.DecimalField(
        _("minimum balance to start (yuan)"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text=_("A driver's wallet must hold at least this much to start a charge."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("operator")
        verbose_name_plural = _("operators")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SubOperator(Hideable):
    """A slice of the operator's business (子运营商), authorised on some stations."""

    operator = models.ForeignKey(
        Operator, verbose_name=_("operator"), on_delete=models.PROTECT, related_name="sub_operators"
    )
    code = models.SlugField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    contact = models.CharField(_("contact"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("sub-operator")
        verbose_name_plural = _("sub-operators")
        ordering = ["operator", "name"]
        constraints = [
            models.UniqueConstraint(fields=["operator", "code"], name="suboperator_code_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Department(Hideable):
    """A fleet or company (企业部门), a tree per operator."""

    operator = models.ForeignKey(
        Operator, verbose_name=_("operator"), on_delete=models.PROTECT, related_name="departments"
    )
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    name = models.CharField(_("name"), max_length=100)
    sub_operator = models.ForeignKey(
        SubOperator,
        verbose_name=_("sub-operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="departments",
    )

    class Meta:
        verbose_name = _("department")
        verbose_name_plural = _("departments")
        ordering = ["operator", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["operator", "parent", "name"],
                name="department_name_unique_in_parent",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="department_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OPERATOR_ADMIN = "operator_admin", _("operator admin")
    SUB_OPERATOR_STAFF = "sub_operator_staff", _("sub-operator staff")
    CUSTOMER_SERVICE = "customer_service", _("customer service")


class Staff(AbstractUser):
    """A back-office account. Its scope is the whole operator, or one sub-operator."""

    operator = models.ForeignKey(
        Operator,
        verbose_name=_("operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
    )
    sub_operator = models.ForeignKey(
        SubOperator,
        verbose_name=_("sub-operator"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        help_text=_("Set for sub-operator staff: they see only this sub-operator's business."),
    )
    role = models.CharField(_("role"), max_length=32, choices=Role.choices, blank=True)

    class Meta:
        verbose_name = _("staff account")
        verbose_name_plural = _("staff accounts")
        constraints = [
            models.CheckConstraint(
                condition=Q(sub_operator__isnull=True) | Q(operator__isnull=False),
                name="staff_sub_operator_needs_operator",
            ),
            models.CheckConstraint(
                condition=~Q(role="sub_operator_staff") | Q(sub_operator__isnull=False),
                name="staff_sub_operator_role_needs_sub_operator",
            ),
        ]


class MemberStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    BLOCKED = "blocked", _("blocked")


class Member(Hideable):
    """A driver account (会员). One phone ↔ one WeChat identity, enforced by the database.

    Card accounts (一卡一车) are virtual members named after the plate, without a phone.
    """

    operator = models.ForeignKey(
        Operator, verbose_name=_("operator"), on_delete=models.PROTECT, related_name="members"
    )
    phone = models.CharField(
        _("mobile number"), max_length=11, null=True, blank=True, validators=[validate_phone]
    )
    wechat_openid = models.CharField(_("WeChat openid"), max_length=64, null=True, blank=True)
    wechat_unionid = models.CharField(
        _("WeChat unionid"),
        max_length=64,
        null=True,
        blank=True,
        help_text=_("The driver's id across the operator's WeChat apps (open platform)."),
    )
    nickname = models.CharField(_("nickname"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=MemberStatus.choices, default=MemberStatus.ACTIVE
    )
    is_virtual = models.BooleanField(
        _("card account"),
        default=False,
        help_text=_("A one-card-one-vehicle account named after the plate."),
    )
    department = models.ForeignKey(
        Department,
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
    )
    token = models.CharField(
        _("charging token"),
        max_length=20,
        unique=True,
        help_text=_("The idTag the platform sends to piles for this member's remote starts."),
    )
    expires_at = models.DateTimeField(
        _("valid until"),
        null=True,
        blank=True,
        help_text=_("After this time piles answer the member's token and cards as expired."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["phone"], name="member_phone_unique"),
            models.UniqueConstraint(fields=["wechat_openid"], name="member_openid_unique"),
            models.UniqueConstraint(fields=["wechat_unionid"], name="member_unionid_unique"),
        ]

    def __str__(self) -> str:
        return self.nickname or self.phone or self.token


class Vehicle(Hideable):
    operator = models.ForeignKey(
        Operator, verbose_name=_("operator"), on_delete=models.PROTECT, related_name="vehicles"
    )
    plate = models.CharField(_("plate"), max_length=16)
    vin = models.CharField(
        _("VIN"), max_length=17, null=True, blank=True, validators=[validate_vin]
    )
    department = models.ForeignKey(
        Department,
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="vehicles",
    )
    member = models.ForeignKey(
        Member,
        verbose_name=_("member"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="vehicles",
    )

    class Meta:
        verbose_name = _("vehicle")
        verbose_name_plural = _("vehicles")
        ordering = ["plate"]
        constraints = [
            models.UniqueConstraint(fields=["operator", "plate"], name="vehicle_plate_unique"),
            models.UniqueConstraint(fields=["vin"], name="vehicle_vin_unique"),
        ]

    def __str__(self) -> str:
        return self.plate


class CardStatus(models.TextChoices):
    ACTIVE = "active", _("active")
    BLOCKED = "blocked", _("blocked")
    LOST = "lost", _("reported lost")


class Card(Hideable):
    """An RFID card (一卡一车) bound to a virtual member account named after the plate."""

    operator = models.ForeignKey(
        Operator, verbose_name=_("operator"), on_delete=models.PROTECT, related_name="cards"
    )
    number = models.CharField(_("card number"), max_length=20, unique=True)
    member = models.ForeignKey(
        Member, verbose_name=_("member account"), on_delete=models.PROTECT, related_name="cards"
    )
    vehicle = models.ForeignKey(
        Vehicle,
        verbose_name=_("vehicle"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cards",
    )
    department = models.ForeignKey(
        Department,
        verbose_name=_("department"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cards",
    )
    status = models.CharField(
        _("status"), max_length=16, choices=CardStatus.choices, default=CardStatus.ACTIVE
    )
    expires_at = models.DateTimeField(
        _("valid until"),
        null=True,
        blank=True,
        help_text=_("After this time piles answer the card as expired."),
    )

    class Meta:
        verbose_name = _("card")
        verbose_name_plural = _("cards")
        ordering = ["number"]

    def __str__(self) -> str:
        return self.number


class Partner(models.Model):
    """A partner platform (provincial platform) or app (Didi) that interconnects with us."""

    class Kind(models.TextChoices):
        PLATFORM = "platform", _("data platform")
        APP = "app", _("charging app")

    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)

    class Meta:
        verbose_name = _("partner")
        verbose_name_plural = _("partners")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PartnerAccess(models.Model):
    """The per-operator switch of a partnership; switching it off takes effect at once."""

    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="accesses"
    )
    operator = models.ForeignKey(
        Operator,
        verbose_name=_("operator"),
        on_delete=models.PROTECT,
        related_name="partner_accesses",
    )
    enabled = models.BooleanField(_("enabled"), default=False)
    changed_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("partnership")
        verbose_name_plural = _("partnerships")
        constraints = [
            models.UniqueConstraint(fields=["partner", "operator"], name="partner_access_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.partner} @ {self.operator}"


class DriverToken(models.Model):
    """An API token a driver's phone holds (WeChat H5 pages). Only its SHA-256 is stored:
    a database dump gives nobody a driver's session. Expired tokens are refused."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="driver_tokens"
    )
    key_hash = models.CharField(_("token hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)

    class Meta:
        verbose_name = _("driver token")
        verbose_name_plural = _("driver tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.member} · {self.expires_at:%Y-%m-%d}"


class PhoneCode(models.Model):
    """A verification code texted to a phone a driver wants to bind. Only a keyed hash of
    the code is stored; it expires, and a few wrong tries use it up."""

    member = models.ForeignKey(
        Member, verbose_name=_("member"), on_delete=models.CASCADE, related_name="phone_codes"
    )
    phone = models.CharField(_("mobile number"), max_length=11, validators=[validate_phone])
    code_hash = models.CharField(_("code hash"), max_length=64)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    expires_at = models.DateTimeField(_("expires at"))
    attempts = models.PositiveSmallIntegerField(_("wrong attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("phone verification code")
        verbose_name_plural = _("phone verification codes")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["phone", "-created_at"], name="phonecode_phone_recent")]

    def __str__(self) -> str:
        return f"{self.phone} · {self.created_at:%Y-%m-%d %H:%M}"
