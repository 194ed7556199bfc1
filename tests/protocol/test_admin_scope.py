"""Who may open the protocol log and the remote-command page, and which frames each sees:
one matrix over the two-operator world (tests/world.py), rows compared exactly."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from protocol.models import Direction, Frame, MessageType
from tests.factories import StaffFactory
from tests.world import client_as, world_rolled_back

pytestmark = pytest.mark.django_db

USERS = ["anonymous", "admin_b", "subop_y", "subop_x", "admin_a", "service_a"]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with world_rolled_back(django_db_blocker) as world:
        at = dt.datetime(2026, 11, 27, 8, tzinfo=dt.UTC)
        for name in ("p1", "p2", "p3"):
            world.rows[f"frame_{name}"] = Frame.objects.create(
                at=at,
                pile_code=world[name].code,
                direction=Direction.IN,
                message_type=MessageType.CALL,
                action="Heartbeat",
            )
        # A refused connection of a pile nobody registered: no operator's.
        world.rows["frame_unknown"] = Frame.objects.create(
            at=at, pile_code="unknown", direction=Direction.IN, message_type=MessageType.CALL
        )
        yield world


FRAMES_SHOWN = {
    "admin_b": {"frame_p3"},
    "subop_y": set(),
    "subop_x": {"frame_p1"},
    "admin_a": {"frame_p1", "frame_p2"},
    "service_a": {"frame_p1", "frame_p2"},
}


@pytest.mark.parametrize("user", USERS)
def test_protocol_log_lists_only_frames_of_visible_piles(client, world, user):
    response = client_as(client, world, user).get(reverse("admin:protocol_frame_changelist"))
    if user == "anonymous":
        assert (response.status_code, response.url.split("?")[0]) == (302, reverse("admin:login"))
        return
    assert response.status_code == 200
    shown = {frame.pk for frame in response.context["cl"].result_list}
    assert shown == {world[name].pk for name in FRAMES_SHOWN[user]}


@pytest.mark.parametrize(
    ("user", "status"),
    [("admin_b", 404), ("subop_y", 404), ("subop_x", 200), ("admin_a", 200), ("service_a", 200)],
)
def test_frame_detail_of_another_operators_pile_is_404(client, world, user, status):
    url = reverse("admin:protocol_frame_change", args=[world["frame_p1"].pk])
    assert client_as(client, world, user).get(url).status_code == status


@pytest.mark.parametrize(
    ("user", "status"),
    [
        ("anonymous", 302),
        ("admin_b", 404),  # another operator's pile: as if it did not exist
        ("subop_y", 404),  # not one of its stations' piles
        ("subop_x", 403),  # its pile, but sub-operator staff send no commands
        ("admin_a", 200),
        ("service_a", 200),
    ],
)
def test_remote_command_page_permission_matrix(client, world, user, status):
    url = reverse("admin:protocol_pileconsole_command", args=[world["p1"].pk])
    assert client_as(client, world, user).get(url).status_code == status


@pytest.mark.parametrize(
    ("user", "status", "shown"),
    [
        ("admin_b", 200, {"p3"}),
        ("subop_y", 403, None),
        ("subop_x", 403, None),
        ("admin_a", 200, {"p1", "p2"}),
        ("service_a", 200, {"p1", "p2"}),
    ],
)
def test_remote_control_list_permission_matrix(client, world, user, status, shown):
    response = client_as(client, world, user).get(reverse("admin:protocol_pileconsole_changelist"))
    assert response.status_code == status
    if shown is not None:
        assert {p.pk for p in response.context["cl"].result_list} == {
            world[name].pk for name in shown
        }


def test_remote_control_page_does_not_edit_the_pile(client, world):
    pile = world["p1"]
    url = reverse("admin:protocol_pileconsole_change", args=[pile.pk])
    response = client_as(client, world, "admin_a").post(url, {"code": "44200100000000000099"})
    assert response.status_code == 302
    pile.refresh_from_db()
    assert pile.code == "44200100000000000001"


def test_denied_page_is_in_chinese(client, world):
    """A staff account without a role: the admin's PermissionDenied renders 403.html."""
    nobody = StaffFactory(username="nobody", operator=world["op_a"], role="")
    client.force_login(nobody)
    response = client.get(
        reverse("admin:protocol_frame_changelist"), headers={"accept-language": "zh-hans"}
    )
    assert response.status_code == 403
    assert "<h1>没有权限</h1>" in response.content.decode()
    assert "您的账号无权打开此页面。" in response.content.decode()


def test_not_found_page_is_in_chinese(client, world):
    client.force_login(world["admin_b"])
    url = reverse("admin:protocol_frame_change", args=[world["frame_p1"].pk])
    response = client.get(url, headers={"accept-language": "zh-hans"})
    assert response.status_code == 404
    assert "<h1>未找到</h1>" in response.content.decode()
