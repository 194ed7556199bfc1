"""The partner page: scoped (another operator's partner is a 404, its rows absent), the
message log searchable by StartChargeSeq, the push queue's "retry now", new credentials
shown once (the old ones stop working at once), switch on/off audited."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from chargenet.models import AuditLog
from interconnect.models import Interconnection, Message, Push, PushState
from interconnect.services.inbound import token_issue
from interconnect.services.partners import interconnection_create
from orgs.models import PartnerAccess, Role
from tests.admin_forms import signed_in
from tests.factories import OperatorFactory, StaffFactory

pytestmark = pytest.mark.django_db


def _link(operator, wire_id):
    link, credentials = interconnection_create(
        name=f"partner {wire_id}",
        operator_id_wire=wire_id,
        base_url="http://127.0.0.1:9/evcs/v1",
        enabled=True,
        operator=operator,
    )
    return link, credentials.as_wire()


def _staff(operator):
    """An operator admin: the role's group opens the partner pages (orgs ROLE_PERMISSIONS)."""
    return StaffFactory(operator=operator)


@pytest.fixture
def two(client):
    mine, theirs = OperatorFactory(), OperatorFactory()
    link, credentials = _link(mine, "MINE00001")
    other, _ = _link(theirs, "THEIRS001")
    for row, seq in ((link, "SEQMINE"), (other, "SEQTHEIRS")):
        Message.objects.create(
            interconnection=row,
            operator=row.operator,
            at=timezone.now(),
            direction="in",
            operation="query_start_charge",
            start_charge_seq=seq,
            ret=0,
            request={"StartChargeSeq": seq},
            answer={"SuccStat": 0},
        )
    staff = _staff(mine)
    signed_in(client, staff)
    return link, other, credentials, staff


def test_pages_are_scoped(client, two):
    link, other, _credentials, _staff = two
    listing = client.get(reverse("admin:interconnect_interconnection_changelist"))
    assert listing.status_code == 200
    assert "MINE00001" in listing.content.decode() and "THEIRS001" not in listing.content.decode()
    page = reverse("admin:interconnect_interconnection_change", args=[other.pk])
    assert client.get(page).status_code in (302, 404)  # not yours = does not exist
    assert (
        client.get(reverse("admin:interconnect_interconnection_change", args=[link.pk])).status_code
        == 200
    )


def test_message_log_search_by_order(client, two):
    url = reverse("admin:interconnect_message_changelist")
    found = client.get(url, {"q": "SEQMINE"}).content.decode()
    assert "SEQMINE" in found
    other = client.get(url, {"q": "SEQTHEIRS"})
    assert other.context["cl"].result_count == 0


def test_new_credentials_are_shown_once_and_the_old_ones_stop(client, two):
    link, _other, credentials, staff = two
    old_token = token_issue(link=link, operator_secret=credentials["OperatorSecret"])
    assert old_token is not None
    response = client.post(
        reverse("admin:interconnect_interconnection_changelist"),
        {"action": "credentials_renew", "_selected_action": [link.pk]},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) == 1 and "DataSecretIV" in shown[0]
    assert credentials["DataSecret"] not in shown[0]
    link.refresh_from_db()
    assert token_issue(link=link, operator_secret=credentials["OperatorSecret"]) is None
    assert not link.tokens.filter(expires_at__gt=timezone.now()).exclude(
        created_at__gt=link.credentials_issued_at
    )
    assert (
        AuditLog.objects.filter(action="interconnection_credentials_renew", actor=staff).count()
        == 1
    )
    # The list shows no secret anywhere.
    listing = client.get(reverse("admin:interconnect_interconnection_changelist")).content.decode()
    assert credentials["SigSecret"] not in listing


def test_switch_off_is_audited(client, two):
    link, *_rest = two
    client.post(
        reverse("admin:interconnect_interconnection_changelist"),
        {"action": "switch_off", "_selected_action": [link.pk]},
    )
    assert not PartnerAccess.objects.get(partner=link.partner, operator=link.operator).enabled
    assert AuditLog.objects.filter(action="partner_off").count() == 1


def test_push_retry_now(client, two):
    link, *_rest = two
    push = Push.objects.create(
        interconnection=link,
        operator=link.operator,
        operation="notification_charge_order_info",
        key="1",
        data={"StartChargeSeq": "X"},
        state=PushState.GIVEN_UP,
        attempts=9,
        next_at=timezone.now(),
    )
    client.post(
        reverse("admin:interconnect_push_changelist"),
        {"action": "retry_now", "_selected_action": [push.pk]},
    )
    push.refresh_from_db()
    assert (push.state, push.attempts) == (PushState.PENDING, 9)
    assert AuditLog.objects.filter(action="partner_push_retry").count() == 1
    detail = client.get(reverse("admin:interconnect_push_change", args=[push.pk]))
    assert detail.status_code == 200


def test_changelists_answer_in_a_fixed_number_of_queries(
    client, two, django_assert_max_num_queries
):
    link, *_rest = two
    for n in range(20):
        Push.objects.create(
            interconnection=link,
            operator=link.operator,
            operation="notification_stationStatus",
            key=f"k{n}",
            data={},
            next_at=timezone.now(),
        )
    for name in ("push", "message", "interconnection", "partnerorder", "reconciliation"):
        with django_assert_max_num_queries(16):
            assert client.get(reverse(f"admin:interconnect_{name}_changelist")).status_code == 200


def test_interconnection_row_has_no_plain_secret(two):
    link, _other, credentials, _staff = two
    row = Interconnection.objects.filter(pk=link.pk).values().get()
    assert not [v for v in row.values() if credentials["DataSecret"] in str(v)]


@pytest.mark.parametrize(
    ("role", "pages"),
    [
        (Role.OPERATOR_ADMIN, {"interconnection": 200, "push": 200, "message": 200}),
        (Role.CUSTOMER_SERVICE, {"interconnection": 403, "push": 403, "message": 200}),
    ],
)
def test_each_role_opens_the_partner_pages_its_group_grants(client, role, pages):
    operator = OperatorFactory()
    _link(operator, "ROLE00001")
    staff = StaffFactory(operator=operator, role=role)
    signed_in(client, staff)
    opened = {
        name: client.get(reverse(f"admin:interconnect_{name}_changelist")).status_code
        for name in pages
    }
    assert opened == pages
