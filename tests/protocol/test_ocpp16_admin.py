"""Issue 15's back-office pages: the pile console's new forms, the reservation, profile,
maintenance history, desired configuration and firmware campaign pages; scoped (another
operator's rows are a 404), audited, and the lists within a query budget."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from chargenet.models import AuditLog
from stations.models import (
    ChargingProfile,
    ConfigurationSetting,
    FirmwareCampaign,
    MaintenanceReport,
    Reservation,
)

from . import world

pytestmark = pytest.mark.django_db


def staff_of(op, **kwargs):
    user = get_user_model().objects.create_user(
        username=f"admin-{op.code}-{len(kwargs)}", password="x", operator=op, is_staff=True,
        role="operator_admin", **kwargs,
    )  # fmt: skip
    from orgs.services import staff_assign_role

    staff_assign_role(staff=user)
    browser = Client(headers={"accept-language": "en"})
    browser.force_login(user)
    return user, browser


def test_the_console_offers_the_new_intents_and_an_offline_pile_says_so():
    pile = world.pile()
    _user, browser = staff_of(pile.station.operator)
    url = reverse("admin:protocol_pileconsole_command", args=[pile.pk])
    page = browser.get(url)
    assert page.status_code == 200
    for title in ("Local authorisation list", "Reserve a connector", "Cancel a reservation",
                  "Limit power (charging profile)", "Clear charging profiles",
                  "Read the power schedule"):  # fmt: skip
        assert title in page.content.decode()
    answer = browser.post(
        url,
        {"send": "profile_set", "profile_set-purpose": "pile_max", "profile_set-limit_kw": "22",
         "profile_set-stack_level": "0"},
        follow=True,
    )  # fmt: skip
    assert [str(m) for m in answer.context["messages"]] == [
        f"Pile {pile.code} is offline; not sent: limit power (pile maximum) to 22 kW."
    ]
    assert ChargingProfile.objects.get(pile=pile).outcome == "offline"
    local = browser.post(url, {"send": "local_list", "local_list-what": "changes"}, follow=True)
    assert [str(m) for m in local.context["messages"]] == [
        f"Not sent to pile {pile.code}: send the local list. Set LocalAuthListEnabled to true "
        "for the pile or its station first."
    ]


def test_desired_configuration_page_validates_saves_through_the_service_and_audits():
    pile = world.pile()
    user, browser = staff_of(pile.station.operator)
    url = reverse("admin:stations_configurationsetting_add")
    refused = browser.post(url, {"station": pile.station_id, "key": "HeartbeatInterval",
                                 "value": "900"})  # fmt: skip
    assert "The heartbeat interval can be at most 60 s" in refused.content.decode()
    browser.post(url, {"station": pile.station_id, "key": "LocalAuthListEnabled", "value": "TRUE"})
    setting = ConfigurationSetting.objects.get(station=pile.station)
    assert (setting.key, setting.value) == ("LocalAuthListEnabled", "true")
    assert AuditLog.objects.get(action="configuration_desired_set").actor == user


def test_campaign_page_creates_a_campaign_over_the_filtered_piles():
    station = world.station()
    world.pile(station, model="SIM-DC-60")
    world.pile(station, model="SIM-DC-60")
    world.pile(station, model="OLD")
    _user, browser = staff_of(station.operator)
    answer = browser.post(
        reverse("admin:stations_firmwarecampaign_add"),
        {"name": "winter", "location": "https://fw.example.com/a.bin",
         "retrieve_at_0": "2026-12-01", "retrieve_at_1": "02:00", "station": station.pk,
         "pile_model": "SIM-DC-60"},
    )  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]
    campaign = FirmwareCampaign.objects.get(name="winter")
    assert campaign.targets.count() == 2
    page = browser.get(reverse("admin:stations_firmwarecampaign_change", args=[campaign.pk]))
    assert "0 of 2 installed" in page.content.decode()


@pytest.mark.parametrize(
    "name",
    ["reservation", "chargingprofile", "maintenancereport", "configurationsetting",
     "firmwarecampaign"],
)  # fmt: skip
def test_the_lists_are_scoped_and_within_a_query_budget(name, django_assert_max_num_queries):
    pile = world.pile()
    gun = pile.connectors.get()
    member = world.member(pile.station.operator)
    Reservation.objects.create(connector=gun, member=member, id_tag=member.token,
                               expires_at=timezone.now() + dt.timedelta(minutes=5))  # fmt: skip
    ChargingProfile.objects.create(pile=pile, profile_id=1, purpose="pile_max",
                                   periods=[[0, 7000]], origin="staff")  # fmt: skip
    MaintenanceReport.objects.create(pile=pile, kind="firmware", status="Installed",
                                     at=timezone.now())  # fmt: skip
    ConfigurationSetting.objects.create(pile=pile, key="HeartbeatInterval", value="30")
    FirmwareCampaign.objects.create(operator=pile.station.operator, name="c", location="x",
                                    retrieve_at=timezone.now())  # fmt: skip
    url = reverse(f"admin:stations_{name}_changelist")
    _mine, browser = staff_of(pile.station.operator)
    _theirs, outsider = staff_of(world.operator())
    with django_assert_max_num_queries(20):
        assert browser.get(url).context["cl"].result_count == 1
    assert outsider.get(url).context["cl"].result_count == 0
