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
    FirmwareCampaignPile,
    MaintenanceReport,
    Reservation,
)

from . import world

pytestmark = pytest.mark.django_db


def staff_of(op, role_override="operator_admin", **kwargs):
    user = get_user_model().objects.create_user(
        username=f"admin-{op.code}-{len(kwargs)}", password="x", operator=op, is_staff=True,
        role=role_override, **kwargs,
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


def _campaign(op, name, piles):
    campaign = FirmwareCampaign.objects.create(
        operator=op, name=name, location="https://fw.example.com/a.bin", retrieve_at=timezone.now()
    )
    for pile in piles:
        FirmwareCampaignPile.objects.create(campaign=campaign, pile=pile)
    return campaign


def test_staff_cancel_a_campaign_with_feedback_and_it_is_audited():
    station = world.station()
    sent, unsent = world.pile(station), world.pile(station)
    campaign = _campaign(station.operator, "winter", [sent, unsent])
    campaign.targets.filter(pile=sent).update(sent_outcome="accepted", sent_at=timezone.now())
    user, browser = staff_of(station.operator)
    url = reverse("admin:stations_firmwarecampaign_changelist")
    form = {"action": "cancel_campaigns", "_selected_action": [campaign.pk]}
    answer = browser.post(url, form, follow=True)
    assert [str(m) for m in answer.context["messages"]] == [
        "Campaign “winter” cancelled: 1 piles will not be sent the update (piles already "
        "updating carry on)."
    ]
    again = browser.post(url, form, follow=True)
    assert [str(m) for m in again.context["messages"]] == [
        "Campaign “winter” was cancelled already."
    ]
    campaign.refresh_from_db()
    assert (campaign.cancelled_by, campaign.cancelled_at is not None) == (user, True)
    assert AuditLog.objects.get(action="firmware_campaign_cancel").actor == user
    page = browser.get(reverse("admin:stations_firmwarecampaign_change", args=[campaign.pk]))
    assert (
        "0 of 2 installed (cancelled, not sent 1, sent, no report yet 1)" in page.content.decode()
    )


def test_sub_operator_staff_see_campaigns_over_their_piles_only_and_cannot_cancel():
    station = world.station()
    op = station.operator
    other_station = world.station(op)
    sub = world.sub_operator(op)
    station.sub_operators.add(sub)
    theirs, not_theirs = world.pile(station), world.pile(other_station)
    mixed = _campaign(op, "mixed", [theirs, not_theirs])
    elsewhere = _campaign(op, "elsewhere", [not_theirs])
    _user, browser = staff_of(op, sub_operator=sub, role_override="sub_operator_staff")
    url = reverse("admin:stations_firmwarecampaign_changelist")
    page = browser.get(url)
    assert [c.name for c in page.context["cl"].result_list] == ["mixed"]
    assert page.context["action_form"] is None  # no action for them: no cancel
    detail = browser.get(reverse("admin:stations_firmwarecampaign_change", args=[mixed.pk]))
    text = detail.content.decode()
    assert "0 of 1 installed (not sent yet 1)" in text
    assert theirs.code in text and not_theirs.code not in text
    hidden = browser.get(reverse("admin:stations_firmwarecampaign_change", args=[elsewhere.pk]))
    assert hidden.status_code in (302, 404)
    refused = browser.post(
        url, {"action": "cancel_campaigns", "_selected_action": [mixed.pk]}, follow=True
    )
    assert refused.status_code == 200
    mixed.refresh_from_db()
    assert mixed.cancelled_at is None
