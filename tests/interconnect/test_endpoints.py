"""The endpoints partners call, over a real socket, driven by the fake partner platform
with its own secrets: partner_add, tokens, published stations, states and prices; every
refused request gets its Ret and changes nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import CommandError
from django.utils import timezone

from billing.models import ChargingSession
from interconnect.codec import CHINA, Ret
from interconnect.models import (
    AccessToken,
    Interconnection,
    Message,
    PartnerOrder,
    Push,
    SeenRequest,
)
from interconnect.wire import stations_info
from orgs.models import PartnerAccess
from stations.models import Station
from stations.services.network import (
    connector_update,
    pile_publish,
    pile_unpublish,
    pile_update,
    station_update,
)

from .conftest import partner_add
from .world import network, operator_id

pytestmark = pytest.mark.usefixtures("live_db")

KEYS = {"OperatorID", "OperatorSecret", "DataSecret", "DataSecretIV", "SigSecret"}


def _add(net, *extra: str) -> tuple[dict, Interconnection]:
    wire_id = operator_id()
    credentials = partner_add(
        "--name", "滴滴", "--operator-id", wire_id, "--base-url", "http://127.0.0.1:9/evcs/v1",
        "--operator", net.operator.code, *extra,
    )  # fmt: skip
    return credentials, Interconnection.objects.get(operator_id_wire=wire_id)


def _rows(link: Interconnection) -> dict:
    """What a refused request must leave alone."""
    return {
        "tokens": AccessToken.objects.filter(interconnection=link).count(),
        "seen": SeenRequest.objects.filter(interconnection=link).count(),
        "orders": PartnerOrder.objects.filter(interconnection=link).count(),
        "pushes": Push.objects.filter(interconnection=link).count(),
        "sessions": ChargingSession.objects.filter(station__operator=link.operator).count(),
    }


def test_partner_add_prints_the_credentials_once_and_stores_them_sealed():
    net = network()
    credentials, link = _add(net)
    assert set(credentials) == KEYS | {"Push"}
    assert set(credentials["Push"]) == KEYS
    assert credentials["OperatorID"] == link.operator_id_wire
    assert credentials["Push"]["OperatorID"] == "CHARGENET"
    secrets = [credentials[k] for k in KEYS - {"OperatorID"}]
    secrets += [credentials["Push"][k] for k in KEYS - {"OperatorID"}]
    assert all(len(s) == 16 for s in secrets) and len(set(secrets)) == 8
    stored = " ".join(
        str(v) for v in Interconnection.objects.filter(pk=link.pk).values().get().values()
    )
    assert not [s for s in secrets if s in stored]
    assert list(link.stations.all()) == [net.station]  # the publishable one only
    assert PartnerAccess.objects.get(partner=link.partner, operator=net.operator).enabled


def test_partner_add_disabled_and_duplicate():
    net = network()
    _credentials, link = _add(net, "--disabled")
    assert not PartnerAccess.objects.get(partner=link.partner, operator=net.operator).enabled
    with pytest.raises(CommandError, match="exists already"):
        partner_add(
            "--name", "x", "--operator-id", link.operator_id_wire, "--base-url", "http://x/",
            "--operator", net.operator.code,
        )  # fmt: skip


def test_token_then_published_stations_paged(platform_for):
    net = network()
    credentials, _link = _add(net)
    platform = platform_for(credentials)
    token = platform.login()
    assert (token.ret, token.data["SuccStat"], token.data["FailReason"]) == (0, 0, 0)
    assert 7100 < token.data["TokenAvailableTime"] <= 7200
    answer = platform.call("query_stations_info", {"PageNo": 1, "PageSize": 10})
    assert answer.ret == Ret.OK
    assert (answer.data["PageNo"], answer.data["PageCount"], answer.data["ItemSize"]) == (1, 1, 1)
    (info,) = answer.data["StationInfos"]
    assert info["StationID"] == net.station.code
    assert (info["StationLat"], info["StationLng"]) == (22.5, 113.4)
    assert [
        (
            e["EquipmentID"],
            e["EquipmentType"],
            e["Power"],
            [c["Power"] for c in e["ConnectorInfos"]],
        )
        for e in info["EquipmentInfos"]
    ] == sorted((p.code, 1, 60.0, [60.0]) for p in net.piles)
    assert info["EquipmentInfos"][0]["ConnectorInfos"][0]["ConnectorID"] == (
        min(p.code for p in net.piles) + "01"
    )


def test_stations_info_reads_a_page_in_four_queries(django_assert_num_queries):
    net = network()
    _credentials, link = _add(net)
    with django_assert_num_queries(4):  # count, stations, piles, connectors
        page = stations_info(link, page=1, page_size=100)
    assert page["ItemSize"] == 1


def test_status_policy_and_auth(platform_for):
    net = network()
    credentials, link = _add(net)
    platform = platform_for(credentials)
    platform.login()
    status = platform.call("query_station_status", {"StationIDs": [net.station.code, "nope"]})
    assert status.data["Total"] == 1
    assert {c["Status"] for c in status.data["StationStatusInfos"][0]["ConnectorStatusInfos"]} == {
        0  # the piles are offline
    }
    connector_id = net.piles[0].code + "01"
    policy = platform.call(
        "query_equip_business_policy", {"EquipBizSeq": "B1", "ConnectorID": connector_id}
    )
    assert policy.data["SuccStat"] == 0
    assert policy.data["PolicyInfos"] == [
        {"StartTime": "000000", "ElecPrice": 0.38, "SevicePrice": 0.6},
        {"StartTime": "080000", "ElecPrice": 0.7, "SevicePrice": 0.7},
        {"StartTime": "140000", "ElecPrice": 1.05, "SevicePrice": 0.8},
        {"StartTime": "170000", "ElecPrice": 0.7, "SevicePrice": 0.7},
        {"StartTime": "190000", "ElecPrice": 1.05, "SevicePrice": 0.8},
        {"StartTime": "220000", "ElecPrice": 0.7, "SevicePrice": 0.7},
    ]
    auth = platform.call("query_equip_auth", {"EquipAuthSeq": "A1", "ConnectorID": connector_id})
    assert (auth.data["SuccStat"], auth.data["FailReason"]) == (1, 2)
    start = platform.call(
        "query_start_charge", {"StartChargeSeq": "X1", "ConnectorID": connector_id, "QRCode": ""}
    )
    assert (start.data["SuccStat"], start.data["FailReason"]) == (1, 2)  # pile offline
    assert not PartnerOrder.objects.filter(interconnection=link).exists()


def test_a_partner_spelling_service_gets_service(platform_for):
    net = network()
    credentials, link = _add(net)
    Interconnection.objects.filter(pk=link.pk).update(spells_sevice=False)
    platform = platform_for(credentials)
    platform.login()
    raw = platform.call(
        "query_equip_business_policy",
        {"EquipBizSeq": "B2", "ConnectorID": net.piles[0].code + "01"},
    )
    # Read back in the standard's spelling by the codec; on the wire it was "ServicePrice".
    assert raw.data["PolicyInfos"][0]["SevicePrice"] == 0.6
    logged = Message.objects.filter(interconnection=link, operation="query_equip_business_policy")
    assert logged.get().answer["PolicyInfos"][0]["SevicePrice"] == 0.6


def test_switched_off_hides_stations_and_refuses_starts(platform_for):
    net = network(online=True)
    credentials, link = _add(net, "--disabled")
    platform = platform_for(credentials)
    platform.login()
    stations = platform.call("query_stations_info", {"PageNo": 1, "PageSize": 10})
    assert (stations.data["ItemSize"], stations.data["StationInfos"]) == (0, [])
    start = platform.call(
        "query_start_charge",
        {"StartChargeSeq": "OFF1", "ConnectorID": net.piles[0].code + "01", "QRCode": ""},
    )
    assert (start.data["SuccStat"], start.data["FailReason"]) == (1, 3)
    assert not PartnerOrder.objects.filter(interconnection=link).exists()


def _expired(link):
    AccessToken.objects.filter(interconnection=link).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )


@pytest.mark.parametrize(
    ("attack", "ret"),
    [
        ("bad_signature", Ret.SIGNATURE),
        ("tampered_data", Ret.SIGNATURE),
        ("expired_token", Ret.TOKEN),
        ("unknown_token", Ret.TOKEN),
        ("replayed_seq", Ret.ENVELOPE),
        ("stale_timestamp", Ret.ENVELOPE),
        ("malformed_data", Ret.DATA),
        ("not_json", Ret.ENVELOPE),
    ],
)
def test_refused_requests_change_nothing(platform_for, attack, ret):
    net = network(online=True)
    credentials, link = _add(net)
    platform = platform_for(credentials)
    platform.login()
    start = {"StartChargeSeq": "ATTACK1", "ConnectorID": net.piles[0].code + "01", "QRCode": ""}
    envelope = platform.envelope(start)
    token = None
    if attack == "bad_signature":
        envelope["Sig"] = "0" * 32
    elif attack == "tampered_data":
        envelope["Data"] = platform.envelope({**start, "StartChargeSeq": "OTHER"})["Data"]
    elif attack == "expired_token":
        _expired(link)
    elif attack == "unknown_token":
        token = "not-a-token"
    elif attack == "replayed_seq":
        seen = platform.envelope({"StationIDs": [net.station.code]})
        assert platform.send("query_station_status", seen).ret == Ret.OK
        envelope = seen
    elif attack == "stale_timestamp":
        envelope = platform.envelope(start, at=timezone.now() - dt.timedelta(minutes=10))
    elif attack == "malformed_data":
        envelope = platform.envelope({"StartChargeSeq": ["X"], "ConnectorID": 5})
    elif attack == "not_json":
        envelope = "{"
    before = _rows(link)
    operation = "query_station_status" if attack == "replayed_seq" else "query_start_charge"
    if attack == "not_json":
        from interconnect.fake import post_json

        answer = post_json(f"{platform.our_url}/{operation}", envelope)
        assert (answer["Ret"], answer["Sig"]) == (ret, "")
    else:
        answer = platform.send(operation, envelope, token=token)
        got = answer.ret if hasattr(answer, "ret") else answer["Ret"]
        assert got == ret
    assert _rows(link) == before
    last = Message.objects.filter(direction="in").order_by("-pk").first()
    assert (last.operation, last.ret) == (operation, ret)


def test_message_log_keeps_secrets_out(platform_for):
    net = network()
    credentials, link = _add(net)
    platform = platform_for(credentials)
    platform.login()
    logged = Message.objects.get(interconnection=link, operation="query_token")
    assert logged.request == {"OperatorID": link.operator_id_wire, "OperatorSecret": "***"}
    assert logged.answer["AccessToken"] == "***"
    assert (logged.ret, logged.direction) == (0, "in")


def test_last_query_time_gives_only_the_stations_changed_since(platform_for):
    net = network()
    other_pile = net.other_station.piles.get()
    pile_update(pile=other_pile, changes={"max_power_kw": Decimal(60)})
    connector_update(connector=other_pile.connectors.get(), rated_power_kw=Decimal(60))
    pile_publish(pile=other_pile)
    credentials, link = _add(net)
    assert set(link.stations.all()) == {net.station, net.other_station}
    platform = platform_for(credentials)
    platform.login()
    long_ago = timezone.now() - dt.timedelta(days=2)
    Station.objects.filter(pk__in=[net.station.pk, net.other_station.pk]).update(
        details_changed_at=long_ago
    )

    def since(moment: dt.datetime) -> dict:
        text = moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        answer = platform.call(
            "query_stations_info", {"LastQueryTime": text, "PageNo": 1, "PageSize": 10}
        )
        assert answer.ret == Ret.OK
        return {s["StationID"]: s for s in answer.data["StationInfos"]}

    yesterday = timezone.now() - dt.timedelta(days=1)
    assert since(yesterday) == {}
    station_update(station=net.station, changes={"name": "中山站 新"})
    changed = since(yesterday)
    assert list(changed) == [net.station.code]
    info = changed[net.station.code]
    assert (info["StationName"], info["StationStatus"]) == ("中山站 新", 50)
    # The partner's clock may be ahead, the change committed after it was stamped: a
    # LastQueryTime up to the accepted skew and a minute after the change still gets it.
    assert list(since(timezone.now() + dt.timedelta(minutes=5))) == [net.station.code]
    assert since(timezone.now() + dt.timedelta(minutes=7)) == {}
    pile_unpublish(pile=other_pile)
    changed = since(yesterday)
    assert sorted(changed) == sorted([net.station.code, net.other_station.code])
    closed = changed[net.other_station.code]
    assert (closed["StationStatus"], closed["EquipmentInfos"]) == (5, [])  # 关闭下线
    everything = platform.call("query_stations_info", {"PageNo": 1, "PageSize": 10})
    assert [s["StationID"] for s in everything.data["StationInfos"]] == [net.station.code]
    seen = SeenRequest.objects.filter(interconnection=link).count()
    bad = platform.call("query_stations_info", {"LastQueryTime": "yesterday", "PageNo": 1})
    assert (bad.ret, bad.msg) == (Ret.DATA, "LastQueryTime must be a time yyyy-MM-dd HH:mm:ss")
    assert SeenRequest.objects.filter(interconnection=link).count() == seen
