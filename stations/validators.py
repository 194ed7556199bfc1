import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

PILE_CODE_RE = re.compile(r"^(\d{14}|\d{16}|\d{20})$")  # 14: YKC's 7-byte BCD code


def validate_pile_code(value: str) -> None:
    if not isinstance(value, str) or not PILE_CODE_RE.fullmatch(value):
        raise ValidationError(
            _(
                "A pile code is 14 (YKC), 16 or 20 digits, e.g. 44200100020001000012; "
                "got “%(value)s”."
            ),
            code="pile_code",
            params={"value": value},
        )


def validate_positive_power(value: Decimal) -> None:
    if value is not None and value <= 0:
        raise ValidationError(
            _("Power must be greater than 0 kW; got %(value)s."),
            code="power",
            params={"value": value},
        )
