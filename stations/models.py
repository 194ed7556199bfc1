"""The network: stations, piles, connectors, their live state and history."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from chargenet.models import Hideable

from .validators import validate_pile_code, validate_positive_power


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("“%(value)s” is not a time zone name such as Asia/Shanghai."),
            code="time_zone",
            params={"value": value},
        ) from None


class Station(Hideable):
    """A charging station (站点/电站)."""

    operator = models.ForeignKey(
        "orgs.Operator",
        verbose_name=_("operator"),
        on_delete=models.PROTECT,
        related_name="stations",
    )
    code = models.CharField(_("station code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    address = models.CharField(_("address"), max_length=200)
    city = models.CharField(_("city"), max_length=50, db_index=True)
    region_code = models.CharField(_("region code"), max_length=6, blank=True)
    latitude = models.DecimalField(
        _("latitude"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        _("longitude"),
        max_digits=9,
        decimal_places=6,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[validate_time_zone]
    )
    is_public = models.BooleanField(_("open to the public"), default=True)
    power_limit_kw = models.DecimalField(
        _("grid power limit (kW)"),
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_positive_power],
        help_text=_(
            "The station's grid connection: shared among its active sessions (smart charging)."
        ),
    )
    peak_power_limit_kw = models.DecimalField(
        _("peak-period power limit (kW)"),
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_positive_power],
        help_text=_("The lower limit in the tariff's sharp and peak periods (time of use)."),
    )
    password = models.CharField(
        # Not the charging channel of the same English name (billing.Channel.PASSWORD).
        pgettext_lazy("station field", "station password"),
        max_length=16,
        blank=True,
        help_text=_("Typed on the pile to start a password charge (密码充电)."),
    )
    sub_operators = models.ManyToManyField(
        "orgs.SubOperator",
        verbose_name=_("authorised sub-operators"),
        blank=True,
        related_name="stations",
    )
    departments = models.ManyToManyField(
        "orgs.Department",
        verbose_name=_("bound departments"),
        blank=True,
        related_name="stations",
        help_text=_("Departments whose members may charge here on the company account."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # When what partner platforms are told about the station last changed (its details,
    # piles, connectors, what is published; `services.network`): their incremental
    # station queries (T/CEC 102 LastQueryTime) get it again.
    details_changed_at = models.DateTimeField(
        _("details changed at"), db_default=Now(), db_index=True, editable=False
    )

    class Meta:
        verbose_name = _("station")
        verbose_name_plural = _("stations")
        ordering = ["operator", "name"]
        constraints = [
            models.UniqueConstraint(fields=["operator", "code"], name="station_code_unique"),
        ]
        # Drivers' nearby search narrows to a bounding box first (stations.public).
        indexes = [models.Index(fields=["latitude", "longitude"], name="station_lat_lng")]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class OpeningWindow(models.Model):
    """A daily window a station is open; ``closes`` before ``opens`` means overnight
    (19:00–06:00). A station without windows is open around the clock."""

    station = models.ForeignKey(
        Station, verbose_name=_("station"), on_delete=models.CASCADE, related_name="opening_windows"
    )
    opens = models.TimeField(_("opens"))
    closes = models.TimeField(_("closes"))

    class Meta:
        verbose_name = _("opening window")
        verbose_name_plural = _("opening hours")
        ordering = ["opens"]
        constraints = [
            models.CheckConstraint(condition=~Q(opens=models.F("closes")), name="window_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.opens:%H:%M}–{self.closes:%H:%M}"

    def minutes(self) -> list[tuple[int, int]]:
        """The window as [start, end) minute ranges of one day (two when overnight)."""
        start = self.opens.hour * 60 + self.opens.minute
        end = self.closes.hour * 60 + self.closes.minute
        if end > start:
            return [(start, end)]
        return [(start, 24 * 60), (0, end)] if end else [(start, 24 * 60)]


class CurrentType(models.TextChoices):
    AC = "AC", _("AC")
    DC = "DC", _("DC")


class FirmwareStatus(models.TextChoices):
    """Where a firmware update stands, as the pile reports it."""

    IDLE = "Idle", _("idle")
    DOWNLOADING = "Downloading", _("downloading")
    DOWNLOADED = "Downloaded", _("downloaded")
    DOWNLOAD_FAILED = "DownloadFailed", _("download failed")
    INSTALLING = "Installing", _("installing")
    INSTALLED = "Installed", _("installed")
    INSTALLATION_FAILED = "InstallationFailed", _("installation failed")


class DiagnosticsStatus(models.TextChoices):
    """Where a diagnostics upload stands, as the pile reports it."""

    IDLE = "Idle", _("idle")
    UPLOADING = "Uploading", _("uploading")
    UPLOADED = "Uploaded", _("uploaded")
    UPLOAD_FAILED = "UploadFailed", _("upload failed")


class Pile(Hideable):
    """A charging pile (充电桩). Its code is an identifier: a string of 14 (YKC), 16 or
    20 digits."""

    class Protocol(models.TextChoices):
        OCPP16J = "ocpp1.6j", "OCPP 1.6J"
        YKC = "ykc1.6", "YKC 1.6"

    station = models.ForeignKey(
        Station, verbose_name=_("station"), on_delete=models.PROTECT, related_name="piles"
    )
    code = models.CharField(
        _("pile code"), max_length=20, unique=True, validators=[validate_pile_code]
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    vendor = models.CharField(_("vendor"), max_length=64, blank=True)
    model = models.CharField(_("model"), max_length=64, blank=True)
    serial_number = models.CharField(_("serial number"), max_length=64, blank=True)
    current_type = models.CharField(_("AC/DC"), max_length=2, choices=CurrentType.choices)
    max_power_kw = models.DecimalField(
        _("max power (kW)"),
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_positive_power],
    )
    firmware_version = models.CharField(_("firmware"), max_length=64, blank=True, db_index=True)
    # How a power limit in amperes (a pile answering GetCompositeSchedule in A) becomes
    # watts: A × voltage × phases (`protocol.ocpp16.commands.amperes_to_watts`).
    supply_phases = models.PositiveSmallIntegerField(
        _("supply phases"),
        choices=[(1, _("single phase")), (3, _("three phase"))],
        null=True,
        blank=True,
        help_text=_(
            "AC piles: the phases it charges on. Empty: what the pile says, else 3 (the OCPP "
            "1.6 default)."
        ),
    )
    phase_voltage_v = models.PositiveSmallIntegerField(
        _("voltage per phase (V)"),
        default=220,
        db_default=220,  # rows written in SQL (bulk loads, benchmarks) get it too
        validators=[MinValueValidator(100), MaxValueValidator(1000)],
        help_text=_(
            "Phase-to-neutral voltage of an AC pile's supply (220 V in China); for a DC pile, "
            "the output voltage its current limits are meant at."
        ),
    )
    protocol = models.CharField(
        _("protocol"), max_length=16, choices=Protocol.choices, default=Protocol.OCPP16J
    )
    credential_hash = models.CharField(
        _("credential (hashed)"),
        max_length=128,
        blank=True,
        help_text=_("Password the pile sends with HTTP Basic auth; stored hashed."),
    )
    is_published = models.BooleanField(
        _("published"),
        default=False,
        help_text=_(
            "Visible to drivers and partner platforms. Needs max power and every "
            "connector's rated power."
        ),
    )
    is_online = models.BooleanField(_("online"), default=False, db_index=True)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)
    last_boot_at = models.DateTimeField(_("last boot"), null=True, blank=True)
    # The latest progress the pile reported of a remote firmware update / diagnostics upload.
    firmware_status = models.CharField(
        _("firmware update status"), max_length=20, choices=FirmwareStatus.choices, blank=True
    )
    firmware_status_at = models.DateTimeField(_("firmware update status at"), null=True, blank=True)
    diagnostics_status = models.CharField(
        _("diagnostics status"), max_length=20, choices=DiagnosticsStatus.choices, blank=True
    )
    diagnostics_status_at = models.DateTimeField(_("diagnostics status at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("pile")
        verbose_name_plural = _("piles")
        ordering = ["station", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(code__regex=r"^([0-9]{14}|[0-9]{16}|[0-9]{20})$"),
                name="pile_code_digits",
            ),
            models.CheckConstraint(
                condition=Q(max_power_kw__isnull=True) | Q(max_power_kw__gt=0),
                name="pile_max_power_positive",
            ),
            models.CheckConstraint(
                condition=Q(is_published=False) | Q(max_power_kw__isnull=False),
                name="pile_published_needs_max_power",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class ConnectorState(models.TextChoices):
    """A connector's state in the core's words, Unknown before the first report.

    Each protocol adapter (in `protocol/`) maps its own words onto these. The
    stored codes are the ones history was written with; a label is what people read."""

    UNKNOWN = "Unknown", _("unknown")
    AVAILABLE = "Available", _("available")
    PREPARING = "Preparing", _("preparing (plugged in)")
    CHARGING = "Charging", _("charging")
    SUSPENDED_EVSE = "SuspendedEVSE", _("suspended by pile")
    SUSPENDED_EV = "SuspendedEV", _("suspended by vehicle (full, still plugged)")
    FINISHING = "Finishing", _("finishing")
    RESERVED = "Reserved", _("reserved")
    UNAVAILABLE = "Unavailable", _("unavailable")
    FAULTED = "Faulted", _("faulted")


class Connector(models.Model):
    """A connector (充电枪) of a pile, numbered from 1 on the pile."""

    class Standard(models.TextChoices):
        GBT_AC = "GB/T AC", "GB/T AC"
        GBT_DC = "GB/T DC", "GB/T DC"
        CCS2 = "CCS2", "CCS2"
        TYPE2 = "Type 2", "Type 2"
        CHADEMO = "CHAdeMO", "CHAdeMO"

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="connectors"
    )
    number = models.PositiveSmallIntegerField(
        _("connector number"), validators=[MinValueValidator(1), MaxValueValidator(99)]
    )
    rated_power_kw = models.DecimalField(
        _("rated power (kW)"),
        max_digits=7,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[validate_positive_power],
    )
    standard = models.CharField(_("standard"), max_length=16, choices=Standard.choices)
    status = models.CharField(
        _("state"), max_length=16, choices=ConnectorState.choices, default=ConnectorState.UNKNOWN
    )
    error_code = models.CharField(_("error code"), max_length=32, blank=True)
    status_at = models.DateTimeField(_("state since"), null=True, blank=True)

    class Meta:
        verbose_name = _("connector")
        verbose_name_plural = _("connectors")
        ordering = ["pile", "number"]
        constraints = [
            models.UniqueConstraint(fields=["pile", "number"], name="connector_number_unique"),
            models.CheckConstraint(condition=Q(number__gte=1), name="connector_number_positive"),
            models.CheckConstraint(
                condition=Q(rated_power_kw__isnull=True) | Q(rated_power_kw__gt=0),
                name="connector_rated_power_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pile.code}#{self.number}"


class FirmwareRecord(models.Model):
    """Firmware a pile reported at boot: bill loss clusters by firmware."""

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="firmware_history"
    )
    version = models.CharField(_("firmware"), max_length=64)
    first_seen_at = models.DateTimeField(_("first seen"))
    last_seen_at = models.DateTimeField(_("last seen"))

    class Meta:
        verbose_name = _("firmware record")
        verbose_name_plural = _("firmware history")
        ordering = ["pile", "-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.pile.code} {self.version}"


class StatusEvent(models.Model):
    """A connector state as the pile reported it (connector 0 = the pile itself)."""

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="status_events"
    )
    connector_number = models.PositiveSmallIntegerField(_("connector number"))
    status = models.CharField(_("state"), max_length=16, choices=ConnectorState.choices)
    error_code = models.CharField(_("error code"), max_length=32, blank=True)
    info = models.CharField(_("info"), max_length=100, blank=True)
    vendor_error_code = models.CharField(_("vendor error code"), max_length=64, blank=True)
    pile_time = models.DateTimeField(_("pile time"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), db_index=True)

    class Meta:
        verbose_name = _("status event")
        verbose_name_plural = _("status history")
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["pile", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.pile_id}#{self.connector_number} {self.status}"


class HeartbeatSample(models.Model):
    """Bounded heartbeat history (pile state over time) for customer service.

    Last-seen is batched onto `Pile.last_heartbeat_at`; this table keeps a sample every
    few minutes per pile, pruned by retention, so it never becomes a row per heartbeat.
    """

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="heartbeats"
    )
    at = models.DateTimeField(_("time"))
    state = models.CharField(_("pile state"), max_length=16, blank=True)

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeat history")
        ordering = ["-at"]
        indexes = [models.Index(fields=["pile", "-at"])]

    def __str__(self) -> str:
        return f"{self.pile_id} {self.at:%Y-%m-%d %H:%M:%S} {self.state}"


class StationOutage(models.Model):
    """Several piles of one station dropping in the same minute: the network, not the piles."""

    station = models.ForeignKey(
        Station, verbose_name=_("station"), on_delete=models.CASCADE, related_name="outages"
    )
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    pile_count = models.PositiveIntegerField(_("piles affected"), default=0)

    class Meta:
        verbose_name = _("network outage")
        verbose_name_plural = _("network outages")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.station} {self.started_at:%Y-%m-%d %H:%M} ({self.pile_count})"


class PileFault(models.Model):
    """A pile fault record: an offline period or an error the pile reported."""

    class Kind(models.TextChoices):
        OFFLINE = "offline", _("offline")
        ERROR = "error", _("error reported")

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="faults"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    connector_number = models.PositiveSmallIntegerField(_("connector number"), default=0)
    error_code = models.CharField(_("error code"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started at"), db_index=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    outage = models.ForeignKey(
        StationOutage,
        verbose_name=_("network outage"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pile_faults",
    )

    class Meta:
        verbose_name = _("pile fault record")
        verbose_name_plural = _("pile fault records")
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["pile", "kind", "connector_number"],
                condition=Q(ended_at__isnull=True),
                name="pile_fault_one_open_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pile_id} {self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> dt.timedelta | None:
        return self.ended_at - self.started_at if self.ended_at else None


# --- OCPP 1.6 feature profiles: desired configuration, local lists, reservations, smart
# charging, firmware campaigns (issue 15). Protocol-neutral: adapters translate them.


class ConfigurationSetting(models.Model):
    """A configuration key the operator wants piles to have: for every pile of a station,
    or for one pile (which overrides its station's). Pushed when a pile connects and when
    it changes (`protocol.sync`)."""

    station = models.ForeignKey(
        Station,
        verbose_name=_("station"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="configuration",
    )
    pile = models.ForeignKey(
        Pile,
        verbose_name=_("pile"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="configuration",
    )
    key = models.CharField(_("key"), max_length=50)
    value = models.CharField(pgettext_lazy("configuration", "value"), max_length=500)
    updated_at = models.DateTimeField(_("changed at"), auto_now=True)

    class Meta:
        verbose_name = _("configuration setting")
        verbose_name_plural = _("configuration settings")
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=Q(station__isnull=True, pile__isnull=False)
                | Q(station__isnull=False, pile__isnull=True),
                name="configuration_station_or_pile",
            ),
            models.UniqueConstraint(
                fields=["station", "key"],
                condition=Q(pile__isnull=True),
                name="configuration_station_key_unique",
            ),
            models.UniqueConstraint(
                fields=["pile", "key"],
                condition=Q(station__isnull=True),
                name="configuration_pile_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class PileLocalList(models.Model):
    """The local authorisation list a pile holds: its version and the entries the pile
    acknowledged (id tag → {"status", "expires"}), so the next update can be a difference."""

    pile = models.OneToOneField(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="local_list"
    )
    version = models.PositiveIntegerField(_("list version"), default=0)
    entries = models.JSONField(_("entries"), default=dict, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("local authorisation list")
        verbose_name_plural = _("local authorisation lists")

    def __str__(self) -> str:
        return f"{self.pile_id} v{self.version}"


class ReservationState(models.TextChoices):
    ACTIVE = "active", _("active")
    USED = "used", _("used")
    CANCELLED = "cancelled", _("cancelled")
    EXPIRED = "expired", _("expired")
    REFUSED = "refused", _("refused by the pile")


class Reservation(models.Model):
    """A connector held for one driver until ``expires_at``: only the driver's credential
    starts a charge there; the start ends it (`billing.services.reservations`)."""

    connector = models.ForeignKey(
        Connector,
        verbose_name=_("connector"),
        on_delete=models.CASCADE,
        related_name="reservations",
    )
    member = models.ForeignKey(
        "orgs.Member",
        verbose_name=_("member"),
        on_delete=models.PROTECT,
        related_name="reservations",
    )
    id_tag = models.CharField(_("credential"), max_length=20)
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=ReservationState.choices,
        default=ReservationState.ACTIVE,
    )
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    session_id = models.BigIntegerField(_("session"), null=True, blank=True)

    class Meta:
        verbose_name = _("reservation")
        verbose_name_plural = _("reservations")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector"],
                condition=Q(state="active"),
                name="reservation_one_active_per_connector",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connector} → {self.id_tag} ({self.get_state_display()})"


class ProfilePurpose(models.TextChoices):
    PILE_MAX = "pile_max", _("pile maximum")
    TX_DEFAULT = "tx_default", _("default for new sessions")
    TX = "tx", _("one session")


class ChargingProfile(models.Model):
    """A power schedule a pile was given (OCPP 1.6 smart charging, in the core's words):
    a limit in watts from each ``periods`` offset (seconds from ``starts_at``, or from the
    session's start, or from local midnight daily when ``daily``)."""

    class Origin(models.TextChoices):
        STAFF = "staff", _("set by staff")
        STATION_LIMIT = "station_limit", _("station power limit")

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="charging_profiles"
    )
    connector_number = models.PositiveSmallIntegerField(
        _("connector number"), default=0, help_text=_("0: the whole pile.")
    )
    profile_id = models.PositiveIntegerField(_("profile id"))
    stack_level = models.PositiveSmallIntegerField(_("stack level"), default=0)
    purpose = models.CharField(_("purpose"), max_length=16, choices=ProfilePurpose.choices)
    session_id = models.BigIntegerField(_("session"), null=True, blank=True)
    daily = models.BooleanField(_("repeats daily"), default=False)
    starts_at = models.DateTimeField(_("starts at"), null=True, blank=True)
    periods = models.JSONField(_("limits (W) from offsets (s)"), default=list)
    origin = models.CharField(_("origin"), max_length=16, choices=Origin.choices)
    outcome = models.CharField(_("pile answer"), max_length=16, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now=True)

    class Meta:
        verbose_name = _("charging profile")
        verbose_name_plural = _("charging profiles")
        ordering = ["pile", "connector_number", "-stack_level"]
        constraints = [
            models.UniqueConstraint(
                fields=["pile", "profile_id"], name="charging_profile_id_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pile_id}#{self.connector_number} {self.get_purpose_display()}"


class MaintenanceReport(models.Model):
    """Each firmware / diagnostics status a pile reported, in order (the pile keeps the
    latest in ``firmware_status`` / ``diagnostics_status``)."""

    class Kind(models.TextChoices):
        FIRMWARE = "firmware", _("firmware update")
        DIAGNOSTICS = "diagnostics", _("diagnostics upload")

    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="maintenance_reports"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=20)
    at = models.DateTimeField(_("received at"))

    class Meta:
        verbose_name = _("maintenance report")
        verbose_name_plural = _("maintenance reports")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["pile", "kind", "-at"])]

    def __str__(self) -> str:
        return f"{self.pile_id} {self.kind} {self.status}"


class FirmwareCampaign(models.Model):
    """One firmware update sent to a filtered set of piles; its progress is each pile's
    latest firmware status since the campaign was sent."""

    operator = models.ForeignKey(
        "orgs.Operator",
        verbose_name=_("operator"),
        on_delete=models.PROTECT,
        related_name="firmware_campaigns",
    )
    name = models.CharField(_("name"), max_length=100)
    location = models.CharField(_("firmware URL"), max_length=512)
    retrieve_at = models.DateTimeField(_("download from"))
    retries = models.PositiveSmallIntegerField(_("retries"), null=True, blank=True)
    retry_interval = models.PositiveIntegerField(_("retry interval (s)"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # Cancelled: piles not sent the update yet are not sent it (those sent keep going).
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("cancelled by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("firmware campaign")
        verbose_name_plural = _("firmware campaigns")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class FirmwareCampaignPile(models.Model):
    """A pile of a campaign: what the pile answered to the update, and where it stands."""

    campaign = models.ForeignKey(
        FirmwareCampaign,
        verbose_name=_("firmware campaign"),
        on_delete=models.CASCADE,
        related_name="targets",
    )
    pile = models.ForeignKey(
        Pile, verbose_name=_("pile"), on_delete=models.CASCADE, related_name="campaign_targets"
    )
    sent_outcome = models.CharField(_("answer to the update"), max_length=16, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("campaign pile")
        verbose_name_plural = _("campaign piles")
        ordering = ["campaign", "pile"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "pile"], name="campaign_pile_unique"),
        ]

    def __str__(self) -> str:
        return str(self.pile)
