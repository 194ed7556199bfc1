"""Service-fee share rates: versions added by the operator's admin (audited), never edited,
seen by a sub-operator only for itself."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.urls import reverse

from chargenet.errors import Conflict, DomainError
from chargenet.models import AuditLog
from reports.models import ServiceFeeShare
from reports.services.shares import fee_share_set
from tests.world import client_as

pytestmark = pytest.mark.django_db


def test_operator_admin_adds_a_version_through_the_admin(client, world):
    signed = client_as(client, world, "admin_a")
    response = signed.post(
        reverse("admin:reports_servicefeeshare_add"),
        {"sub_operator": world["sub_x"].pk, "rate": "0.3000", "effective_from": "2019-10-01"},
    )
    assert response.status_code == 302
    share = ServiceFeeShare.objects.get()
    assert (share.operator, share.rate, share.created_by) == (
        world["op_a"],
        D("0.3000"),
        world["admin_a"],
    )
    assert AuditLog.objects.filter(action="fee_share_set", actor=world["admin_a"]).count() == 1
    change = signed.get(reverse("admin:reports_servicefeeshare_change", args=[share.pk]))
    assert b'name="rate"' not in change.content  # a version is read-only


# Sub-operator staff may not add; another operator's admin may, but not for sub X (the
# choice is refused by the form).
@pytest.mark.parametrize(("user", "status"), [("subop_x", 403), ("admin_b", 200)])
def test_others_cannot_add_or_see_foreign_versions(client, world, user, status):
    fee_share_set(sub_operator=world["sub_x"], rate=D("0.2"), effective_from=dt.date(2019, 1, 1),
                  acting_user=world["admin_a"])  # fmt: skip
    signed = client_as(client, world, user)
    response = signed.post(
        reverse("admin:reports_servicefeeshare_add"),
        {"sub_operator": world["sub_x"].pk, "rate": "0.9", "effective_from": "2019-10-01"},
    )
    assert response.status_code == status
    if status == 200:
        assert "sub_operator" in response.context["adminform"].form.errors
    assert ServiceFeeShare.objects.count() == 1
    listed = signed.get(reverse("admin:reports_servicefeeshare_changelist"))
    assert listed.context["cl"].result_count == (1 if user == "subop_x" else 0)


def test_a_second_version_on_the_same_day_or_a_rate_above_one_is_refused(world):
    args = {"sub_operator": world["sub_x"], "effective_from": dt.date(2019, 10, 1)}
    fee_share_set(rate=D("0.3"), acting_user=world["admin_a"], **args)
    with pytest.raises(Conflict):
        fee_share_set(rate=D("0.4"), acting_user=world["admin_a"], **args)
    with pytest.raises(DomainError, match="between 0 and 1"):
        fee_share_set(
            rate=D("1.5"),
            acting_user=world["admin_a"],
            sub_operator=world["sub_x"],
            effective_from=dt.date(2019, 11, 1),
        )
    assert ServiceFeeShare.objects.count() == 1
