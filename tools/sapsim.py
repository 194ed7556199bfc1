"""Our gateway against an independent OCPP 1.6J simulator: SAP's
e-mobility-charging-stations-simulator (../shared/TESTING.md). Not part of `make test`.

  export DATABASE_URL=… REDIS_URL=…
  python tools/sapsim.py config --sim DIR --gateway ws://127.0.0.1:9404/ocpp \
      --atg 44200100030001000011 --idle 44200100030001000013
      (a template per pile, named by its code, logging in with its demo password; ATG piles
      charge on the station's cards; writes DIR/dist/assets/config.json)
  (cd DIR && node dist/start.js)      # with `manage.py rungateway` and a celery worker up
  python tools/sapsim.py drive CODE --ftp ftp://127.0.0.1:2121/   # every feature command
  python tools/sapsim.py bills --since 2026-01-01T00:00:00Z       # starts against bills

Each command prints what the pile answered, for the closing note of the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chargenet.settings")

import django

django.setup()

from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from billing.models import Bill, ChargingSession  # noqa: E402
from billing.models.sessions import ACTIVE_STATES  # noqa: E402
from orgs.models import Card, Member  # noqa: E402
from protocol import intents  # noqa: E402
from protocol.sync import pile_local_list_sync  # noqa: E402
from stations.demo import pile_password  # noqa: E402
from stations.models import ChargingProfile, Pile, ProfilePurpose  # noqa: E402
from stations.services.charging_profiles import charging_profile_store  # noqa: E402
from stations.services.configuration import configuration_desired_set  # noqa: E402

PROFILES = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "SmartCharging",
    "RemoteTrigger",
    "Reservation",
)
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage")


def _template(pile: Pile, atg: bool) -> dict:
    connectors = {"0": {}}
    for c in pile.connectors.order_by("number"):
        connectors[str(c.number)] = {
            "MeterValues": [
                {"unit": "Wh"},
                {"unit": "W", "measurand": "Power.Active.Import"},
                {"unit": "A", "measurand": "Current.Import"},
                {"unit": "V", "measurand": "Voltage"},
            ]
        }
    dc = pile.current_type == "DC"
    profiles = ",".join(PROFILES)
    return {
        "$schemaVersion": 1,
        "fixedName": True,
        "baseName": pile.code,
        "supervisionUser": pile.code,
        "supervisionPassword": pile_password(pile.code),
        "idTagsFile": "idtags.json",
        "chargePointModel": pile.model or "SAP-SIM",
        "chargePointVendor": pile.vendor or "SAP",
        "firmwareVersion": "1.0.0",
        "power": int((pile.max_power_kw or 7) * 1000),
        "powerUnit": "W",
        "currentOutType": pile.current_type,
        "voltageOut": 400 if dc else 230,
        **({} if dc else {"numberOfPhases": 1}),
        "numberOfConnectors": len(connectors) - 1,
        "randomConnectors": False,
        "beginEndMeterValues": True,
        "outOfOrderEndMeterValues": False,
        "firmwareUpgrade": {"versionUpgrade": {"step": 1}, "reset": True},
        "Configuration": {
            "configurationKey": [
                {"key": "SupportedFeatureProfiles", "readonly": True, "value": profiles},
                {
                    "key": "MeterValuesSampledData",
                    "readonly": False,
                    "value": ",".join(MEASURANDS),
                },
                {"key": "MeterValueSampleInterval", "readonly": False, "value": "15"},
                {"key": "LocalAuthListEnabled", "readonly": False, "value": "false"},
                {"key": "AuthorizeRemoteTxRequests", "readonly": False, "value": "false"},
            ]
        },
        "AutomaticTransactionGenerator": {
            "enable": atg,
            "minDuration": 40,
            "maxDuration": 90,
            "minDelayBetweenTwoTransactions": 10,
            "maxDelayBetweenTwoTransactions": 20,
            "probabilityOfStart": 1,
            "stopAfterHours": 0.5,
            "requireAuthorize": True,
        },
        "Connectors": connectors,
    }


def config(args) -> None:
    assets = Path(args.sim) / "dist" / "assets"
    codes = [(code, True) for code in args.atg] + [(code, False) for code in args.idle]
    piles = {p.code: p for p in Pile.objects.filter(code__in=[c for c, _ in codes])}
    station_ids = {p.station_id for p in piles.values()}
    cards = Card.objects.filter(
        department__stations__in=station_ids, status="active", hidden_at__isnull=True
    )
    tags = sorted(set(cards.values_list("number", flat=True)))
    (assets / "idtags.json").write_text(json.dumps(tags))
    urls = []
    for code, atg in codes:
        name = f"chargenet-{code}.station-template.json"
        body = json.dumps(_template(piles[code], atg), indent=1)
        (assets / "station-templates" / name).write_text(body)
        urls.append({"file": name, "numberOfStations": 1})
    conf = {
        "$schemaVersion": 1,
        "supervisionUrls": [args.gateway],
        "supervisionUrlDistribution": "round-robin",
        "log": {"level": "warning", "file": "logs/combined.log", "errorFile": "logs/error.log"},
        "worker": {"processType": "workerSet"},
        "performanceStorage": {"enabled": False},
        "uiServer": {"enabled": False},
        "persistState": False,
        "stationTemplateUrls": urls,
    }
    (assets / "config.json").write_text(json.dumps(conf, indent=1))
    print(f"{len(urls)} piles, idTags {tags}")


def _say(label: str, result) -> None:
    if result is None:
        print(f"{label:<34} (nothing to send)")
        return
    answer = {
        k: v
        for k, v in vars(result.answer).items()
        if v not in (None, "", ()) and v is not False and k not in ("outcome", "reason")
    }
    print(f"{label:<34} {result.outcome:<14} {result.message} {answer or ''}")


def drive(args) -> None:
    pile = Pile.objects.select_related("station").get(code=args.code)
    connector = pile.connectors.order_by("number").first()
    now = timezone.now()
    # Local authorisation list: on (the worker pushes the key), then the version, a full
    # list, a difference.
    with transaction.atomic():
        configuration_desired_set(pile=pile, key="LocalAuthListEnabled", value="true")
    time.sleep(3)
    _say("GetConfiguration LocalAuth", intents.pile_configuration_get(
        pile=pile, keys=["LocalAuthListEnabled"]))  # fmt: skip
    _say("GetLocalListVersion", intents.pile_local_list_version(pile=pile))
    _say("SendLocalList (full)", pile_local_list_sync(pile=pile, full=True))
    _say("GetLocalListVersion", intents.pile_local_list_version(pile=pile))
    card = Card.objects.filter(department__stations=pile.station).order_by("number").last()
    card.status = "blocked"
    card.save(update_fields=["status"])
    try:
        _say("SendLocalList (differential)", pile_local_list_sync(pile=pile))
    finally:
        card.status = "active"
        card.save(update_fields=["status"])
    _say("SendLocalList (differential)", pile_local_list_sync(pile=pile))
    _say("GetLocalListVersion", intents.pile_local_list_version(pile=pile))
    # Reservations.
    member = Member.objects.filter(department__stations=pile.station).order_by("pk").first()
    reserved = intents.connector_reserve(
        connector=connector, member=member, expires_at=now + dt.timedelta(minutes=10)
    )
    _say("ReserveNow", reserved)
    held = connector.reservations.order_by("-pk").first()
    if held is not None:
        _say("CancelReservation", intents.reservation_cancel(reservation=held))
    # Smart charging.
    for purpose, limit, conn in (
        (ProfilePurpose.PILE_MAX, 50000, 0),
        (ProfilePurpose.TX_DEFAULT, 30000, connector.number),
    ):
        profile = charging_profile_store(
            pile=pile, purpose=purpose, periods=[(0, limit)],
            origin=ChargingProfile.Origin.STAFF, connector_number=conn, stack_level=1,
        )  # fmt: skip
        _say(f"SetChargingProfile {purpose}", intents.pile_charging_profile_set(profile=profile))
    for number in (0, connector.number):
        _say(f"GetCompositeSchedule c{number}", intents.pile_composite_schedule(
            pile=pile, connector_number=number, seconds=3600))  # fmt: skip
    _say("ClearChargingProfile (all)", intents.pile_charging_profile_clear(pile=pile))
    _say("GetCompositeSchedule c1", intents.pile_composite_schedule(
        pile=pile, connector_number=connector.number, seconds=3600))  # fmt: skip
    # Firmware and diagnostics: the statuses arrive as notifications.
    _say("GetDiagnostics", intents.pile_diagnostics_request(
        pile=pile, location=args.ftp, since=now - dt.timedelta(hours=1), until=now))  # fmt: skip
    _say("UpdateFirmware", intents.pile_firmware_update(
        pile=pile, location="http://127.0.0.1:9/fw.bin", retrieve_at=now, retries=1,
        retry_interval=30))  # fmt: skip
    time.sleep(args.wait)
    pile.refresh_from_db()
    reports = pile.maintenance_reports.order_by("pk").values_list("kind", "status", "at")
    for kind, status, at in reports:
        print(f"  {kind:<12} {status:<22} {at:%H:%M:%S}")
    print(f"pile firmware {pile.firmware_version!r} status {pile.firmware_status!r}, "
          f"diagnostics {pile.diagnostics_status!r}")  # fmt: skip


def bills(args) -> None:
    since = dt.datetime.fromisoformat(args.since)
    sessions = ChargingSession.objects.filter(started_at__gte=since)
    if args.codes:
        sessions = sessions.filter(pile__code__in=args.codes)
    by_state: dict[str, int] = {}
    for state in sessions.values_list("state", flat=True):
        by_state[state] = by_state.get(state, 0) + 1
    print("sessions by state", by_state)
    billed = Bill.objects.filter(session__in=sessions)
    print("bills", billed.count(), "by payment state",
          dict(sorted((s, billed.filter(payment_state=s).count())
                      for s in set(billed.values_list("payment_state", flat=True)))))  # fmt: skip
    for bill in billed.exclude(fault_codes=[]):
        print("  fault bill", bill.pk, bill.session_id, bill.fault_codes)
    stopped = sessions.exclude(state__in=[*ACTIVE_STATES, "refused"])
    missing = stopped.exclude(pk__in=billed.values("session_id"))
    print("stopped sessions without a bill", list(missing.values_list("pk", "state")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("config")
    p.add_argument("--sim", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument("--atg", nargs="*", default=[])
    p.add_argument("--idle", nargs="*", default=[])
    p.set_defaults(run=config)
    p = sub.add_parser("drive")
    p.add_argument("code")
    p.add_argument("--ftp", default="ftp://127.0.0.1:2121/")
    p.add_argument("--wait", type=float, default=40)
    p.set_defaults(run=drive)
    p = sub.add_parser("bills")
    p.add_argument("--since", required=True)
    p.add_argument("codes", nargs="*")
    p.set_defaults(run=bills)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
