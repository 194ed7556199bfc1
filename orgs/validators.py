"""Validators for identifiers staff type into forms: each names the field and the rule."""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


def validate_vin(value: str) -> None:
    if not VIN_RE.fullmatch(value or ""):
        raise ValidationError(
            _(
                "A VIN is 17 characters, digits and capital letters without I, O or Q; "
                "got “%(value)s”."
            ),
            code="vin",
            params={"value": value},
        )


def validate_phone(value: str) -> None:
    if not PHONE_RE.fullmatch(value or ""):
        raise ValidationError(
            _("A mobile number is 11 digits starting with 1 (e.g. 13800138000); got “%(value)s”."),
            code="phone",
            params={"value": value},
        )
