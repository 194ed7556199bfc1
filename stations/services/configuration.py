"""The configuration operators want their piles to have (heartbeat interval, local list
and cache switches, …): per station, or per pile overriding its station. Adapters push it
to piles when they connect and when it changes (the ``pile.configuration_changed`` event)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chargenet.audit import audit_record
from chargenet.errors import DomainError
from chargenet.events import event_publish
from stations.models import ConfigurationSetting, Pile, Station

from ..events import PILE_CONFIGURATION_CHANGED

KEY_MAX, VALUE_MAX = 50, 500
# Keys whose value is a whole number of seconds, and the switches (true / false).
SECONDS_KEYS = {"HeartbeatInterval", "MeterValueSampleInterval", "ConnectionTimeOut"}
SWITCH_KEYS = {"AuthorizationCacheEnabled", "LocalAuthListEnabled", "LocalPreAuthorize",
               "LocalAuthorizeOffline", "AllowOfflineTxForUnknownId"}  # fmt: skip


class ConfigurationInvalid(DomainError):
    code = "configuration_invalid"


def configuration_value_check(*, key: str, value: str) -> str:
    """``value`` as stored for ``key`` (switches lower-cased); raises `ConfigurationInvalid`
    for a value the pile could not take or the platform cannot live with."""
    if not key or len(key) > KEY_MAX or len(value) > VALUE_MAX:
        raise ConfigurationInvalid(
            _("A configuration key is 1 to %(key)s characters, its value at most %(value)s.")
            % {"key": KEY_MAX, "value": VALUE_MAX}
        )
    if key in SWITCH_KEYS:
        if value.lower() not in ("true", "false"):
            raise ConfigurationInvalid(
                _("%(key)s is true or false; got “%(value)s”.") % {"key": key, "value": value}
            )
        return value.lower()
    if key in SECONDS_KEYS and not (value.isdigit() and int(value) > 0):
        raise ConfigurationInvalid(
            _("%(key)s is a number of seconds; got “%(value)s”.") % {"key": key, "value": value}
        )
    if key == "HeartbeatInterval" and int(value) > settings.GATEWAY_HEARTBEAT_INTERVAL:
        # A slower heartbeat would make the offline sweep take the pile for gone.
        raise ConfigurationInvalid(
            _("The heartbeat interval can be at most %(max)s s (GATEWAY_HEARTBEAT_INTERVAL).")
            % {"max": settings.GATEWAY_HEARTBEAT_INTERVAL}
        )
    return value


@transaction.atomic
def configuration_desired_set(
    *,
    key: str,
    value: str | None,
    station: Station | None = None,
    pile: Pile | None = None,
    acting_user=None,
) -> ConfigurationSetting | None:
    """Set (or, with ``value`` None, remove) a desired configuration key for every pile of
    ``station`` or for one ``pile``; audited, and published so piles get it now."""
    if (station is None) == (pile is None):
        raise ValueError("configuration_desired_set takes a station or a pile")
    where = {"station": station, "pile": None} if station else {"pile": pile, "station": None}
    existing = ConfigurationSetting.objects.select_for_update().filter(key=key, **where).first()
    before = existing.value if existing else None
    if value is None:
        if existing is not None:
            existing.delete()
        setting = None
    else:
        value = configuration_value_check(key=key, value=value)
        setting, _created = ConfigurationSetting.objects.update_or_create(
            key=key, **where, defaults={"value": value}
        )
    owner = station or pile
    audit_record(
        actor=acting_user,
        action="configuration_desired_set",
        obj=owner,
        before={"key": key, "value": before},
        after={"key": key, "value": value},
        operator_id=(station or pile.station).operator_id,
    )
    pile_ids = [pile.pk] if pile else list(station.piles.values_list("pk", flat=True))
    event_publish(
        kind=PILE_CONFIGURATION_CHANGED,
        key=owner.pk,
        payload={"pile_ids": pile_ids, "keys": [key]},
    )
    return setting
