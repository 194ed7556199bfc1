"""The core's session commands: authorise, start, meter, stop, state table."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import translation

from billing.models import ChargingSession, MeterSample, OrphanStop, SessionState
from billing.services import sessions
from orgs.models import Partner, PartnerAccess
from tests.protocol import world

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


def presented(value: str) -> sessions.Credential:
    return sessions.Credential(sessions.CredentialKind.PRESENTED, value)


def test_order_number_is_local_creation_time_and_six_digits():
    order_no = sessions.new_order_no(dt.datetime(2019, 10, 19, 7, 4, 28, tzinfo=dt.UTC))
    assert order_no[:14] == "20191019150428"  # Asia/Shanghai
    assert len(order_no) == 20 and order_no.isdigit()


@pytest.mark.parametrize(
    "path, legal",
    [
        (["charging", "stopped", "settled"], True),
        (["stopped", "fault", "repaired", "settled"], True),
        (["stopped", "fault", "settled"], True),
        (["settled"], False),
        (["charging", "started"], False),
        (["stopped", "charging"], False),
        (["stopped", "settled", "fault"], False),
    ],
)
def test_state_table(path, legal):
    pile = world.pile(world.station(password="8642"))
    session = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("8642"), meter_start_wh=0, started_at=T0
    )
    obj = ChargingSession.objects.get(pk=session.session_id)
    moved = []
    try:
        for state in path:
            sessions.session_transition(session=obj, to_state=state)
            moved.append(state)
    except sessions.IllegalTransition as exc:
        assert not legal
        assert (
            str(exc)
            == f"A session cannot move from “{moved[-1] if moved else 'started'}” to “{state}”."
        )
    else:
        assert legal
    assert list(obj.transitions.values_list("to_state", flat=True)) == ["started", *moved]


def test_start_classifies_and_attributes_and_replays():
    st = world.station()
    station_sub, fleet_sub = world.sub_operator(st.operator), world.sub_operator(st.operator)
    st.sub_operators.add(station_sub)
    fleet = world.department(st.operator, fleet_sub)
    member = world.member(st.operator, department=fleet)
    pile = world.pile(st, connectors=2)

    scan = sessions.session_start(
        pile=pile,
        connector_number=1,
        credential=presented(member.token),
        meter_start_wh=100,
        started_at=T0,
    )
    again = sessions.session_start(
        pile=pile,
        connector_number=1,
        credential=presented(member.token),
        meter_start_wh=100,
        started_at=T0,
    )
    assert (again.session_id, again.order_no, again.replayed) == (
        scan.session_id,
        scan.order_no,
        True,
    )
    assert (scan.status, again.status) == ("accepted", "accepted")
    session = ChargingSession.objects.get(pk=scan.session_id)
    # A member without a known vehicle or card: the station's sub-operator.
    assert (session.channel, session.member_id, session.department_id, session.sub_operator_id) == (
        "scan",
        member.pk,
        fleet.pk,
        station_sub.pk,
    )
    second = sessions.session_start(
        pile=pile,
        connector_number=2,
        credential=presented(member.token),
        meter_start_wh=0,
        started_at=T0,
    )
    assert second.status == "concurrent"
    assert ChargingSession.objects.get(pk=second.session_id).member_id is None


@pytest.mark.parametrize("enabled, status", [(True, "accepted"), (False, "blocked")])
def test_partner_start_follows_the_partnership_switch(enabled, status):
    pile = world.pile()
    partner = Partner.objects.create(code=f"didi{enabled}", name="Didi", kind="app")
    PartnerAccess.objects.create(partner=partner, operator=pile.station.operator, enabled=enabled)
    tag = sessions.partner_credential(partner_id=partner.pk, reference="ORDER123456789")
    assert len(tag.value) <= 20
    result = sessions.session_start(
        pile=pile, connector_number=1, credential=tag, meter_start_wh=0, started_at=T0
    )
    session = ChargingSession.objects.get(pk=result.session_id)
    assert (result.status, session.channel, session.partner_id) == (
        status,
        "partner",
        partner.pk if enabled else None,
    )


def test_meter_samples_are_stored_once(django_capture_on_commit_callbacks):
    pile = world.pile()
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("X"), meter_start_wh=1000, started_at=T0
    )
    samples = [
        sessions.Sample(
            at=T0 + dt.timedelta(minutes=5),
            energy_wh=Decimal("1500.0"),
            power_w=Decimal("7200.0"),
            soc=80,
        )
    ]
    for _ in range(2):
        sessions.session_meter_record(
            pile=pile, connector_number=1, protocol_ref=start.protocol_ref, samples=samples
        )
    # Clock-aligned (no transaction id): the connector's active session.
    aligned = sessions.session_meter_record(
        pile=pile,
        connector_number=1,
        protocol_ref=None,
        samples=[sessions.Sample(at=T0 + dt.timedelta(minutes=1), energy_wh=Decimal(1100))],
    )
    assert aligned.session_id == start.session_id
    assert list(
        MeterSample.objects.filter(session_id=start.session_id)
        .order_by("at")
        .values_list("energy_wh", "power_w", "soc")
    ) == [(Decimal("1100.000"), None, None), (Decimal("1500.000"), Decimal("7200.0"), 80)]
    assert ChargingSession.objects.get(pk=start.session_id).state == SessionState.CHARGING


def test_stop_is_idempotent_queues_settlement_once_and_keeps_orphans(
    django_capture_on_commit_callbacks,
):
    pile = world.pile()
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("X"), meter_start_wh=1000, started_at=T0
    )
    with django_capture_on_commit_callbacks() as callbacks:
        first = sessions.session_stop(
            pile=pile, protocol_ref=start.protocol_ref, meter_stop_wh=9000, stopped_at=T0
        )
        second = sessions.session_stop(
            pile=pile, protocol_ref=start.protocol_ref, meter_stop_wh=9999, stopped_at=T0
        )
    assert (first.settle_queued, second.settle_queued, second.replayed) == (True, False, True)
    # After commit: the settlement, and the delivery of the session.stopped event (consumed
    # by protocol.station_power_rebalance).
    assert len(callbacks) == 2
    session = ChargingSession.objects.get(pk=start.session_id)
    assert (session.state, session.meter_stop_wh, session.energy_wh) == (
        "stopped",
        Decimal(9000),
        Decimal(8000),
    )
    other_pile = world.pile()
    orphan = sessions.session_stop(
        pile=other_pile, protocol_ref=start.protocol_ref, meter_stop_wh=5, stopped_at=T0
    )
    sessions.session_stop(
        pile=other_pile, protocol_ref=start.protocol_ref, meter_stop_wh=5, stopped_at=T0
    )
    assert orphan.session_id is None
    assert list(OrphanStop.objects.values_list("pile_id", "protocol_ref")) == [
        (other_pile.pk, start.protocol_ref)
    ]


def test_a_new_start_supersedes_the_lost_one_and_its_late_stop_is_kept():
    pile = world.pile(world.station(password="8642"))
    lost = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("8642"), meter_start_wh=0, started_at=T0
    )
    new = sessions.session_start(
        pile=pile,
        connector_number=1,
        credential=presented("8642"),
        meter_start_wh=5000,
        started_at=T0 + dt.timedelta(hours=1),
    )
    assert new.superseded_ids == (lost.session_id,)
    late = sessions.session_stop(
        pile=pile,
        protocol_ref=lost.protocol_ref,
        meter_stop_wh=4800,
        stopped_at=T0 + dt.timedelta(minutes=50),
    )
    assert late.settle_queued is True
    session = ChargingSession.objects.get(pk=lost.session_id)
    assert (session.state, session.meter_stop_wh, session.stop_reason) == (
        "stopped",
        Decimal(4800),
        "Local",
    )


def test_vin_links_vehicle_and_reattributes():
    st = world.station(password="2468")
    fleet_sub = world.sub_operator(st.operator)
    vehicle = world.vehicle(
        st.operator, vin="LSVAU2180N2183295", dept=world.department(st.operator, fleet_sub)
    )
    pile = world.pile(st)
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("2468"), meter_start_wh=0, started_at=T0
    )
    with pytest.raises(sessions.DomainError):
        sessions.session_link_vin(pile=pile, connector_number=1, vin="IIII")
    assert (
        sessions.session_link_vin(pile=pile, connector_number=1, vin="LSVAU2180N2183295")
        == start.session_id
    )
    session = ChargingSession.objects.get(pk=start.session_id)
    assert (session.channel, session.vehicle_id, session.sub_operator_id) == (
        "password",
        vehicle.pk,
        fleet_sub.pk,
    )


def _refused_start(pile, *, meter_start_wh=1000, at=T0):
    return sessions.session_start(
        pile=pile, connector_number=1, credential=presented("NOSUCHTAG"),
        meter_start_wh=meter_start_wh, started_at=at,
    )  # fmt: skip


def test_a_refused_start_is_recorded_refused_and_replays_get_the_same_answer():
    pile = world.pile()
    first = _refused_start(pile)
    again = _refused_start(pile)
    assert (first.status, again.status, again.session_id, again.replayed) == (
        "invalid",
        "invalid",
        first.session_id,
        True,
    )
    session = ChargingSession.objects.get(pk=first.session_id)
    assert (session.state, session.refused_as) == ("refused", "invalid")
    assert list(session.transitions.values_list("from_state", "to_state", "reason")) == [
        ("", "refused", "start refused: invalid")
    ]
    # Not live: the connector takes the next start without superseding anything.
    st_pile = world.pile(world.station(password="8642"))
    _refused_start(st_pile)
    accepted = sessions.session_start(
        pile=st_pile,
        connector_number=1,
        credential=presented("8642"),
        meter_start_wh=1000,
        started_at=T0,
    )
    assert (accepted.status, accepted.superseded_ids) == ("accepted", ())


@pytest.mark.parametrize(
    "meter_stop, state, queued, moves",
    [
        (1000, "refused", False, ["refused"]),  # the pile obeyed: nothing to bill
        (5500, "stopped", True, ["refused", "stopped"]),  # it charged anyway: settled
    ],
)
def test_the_stop_of_a_refused_start_is_settled_only_with_energy(
    django_capture_on_commit_callbacks, meter_stop, state, queued, moves
):
    pile = world.pile()
    start = _refused_start(pile)
    with django_capture_on_commit_callbacks() as callbacks:
        stop = sessions.session_stop(
            pile=pile, protocol_ref=start.protocol_ref, meter_stop_wh=meter_stop, stopped_at=T0,
            reason="DeAuthorized",
        )  # fmt: skip
        again = sessions.session_stop(
            pile=pile, protocol_ref=start.protocol_ref, meter_stop_wh=9999, stopped_at=T0
        )
    assert (stop.settle_queued, again.settle_queued, again.replayed) == (queued, False, True)
    assert len(callbacks) == 2 * int(queued)  # settlement + session.stopped delivery
    session = ChargingSession.objects.get(pk=start.session_id)
    assert (session.state, session.meter_stop_wh, session.stop_reason, session.refused_as) == (
        state,
        Decimal(meter_stop),
        "DeAuthorized",
        "invalid",
    )
    assert list(session.transitions.values_list("to_state", flat=True)) == moves


def test_a_meter_value_on_a_charging_session_updates_its_row_in_place():
    """The meter's update touches no indexed column and the table leaves room on its
    pages: PostgreSQL updates the row in place (HOT), not in its twenty-odd indexes."""
    from django.db import connection

    pile = world.pile()
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("X"), meter_start_wh=0, started_at=T0
    )
    _energy(pile, start, 500)  # energy flows: charging (a state change, indexed)

    def updates() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_updated(%s::regclass),"
                " pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
                [ChargingSession._meta.db_table] * 2,
            )
            return cursor.fetchone()

    before = updates()
    for minute in (6, 7, 8):
        sessions.session_meter_record(
            pile=pile, connector_number=1, protocol_ref=start.protocol_ref,
            samples=[sessions.Sample(at=T0 + dt.timedelta(minutes=minute), energy_wh=minute)],
        )  # fmt: skip
    after = updates()
    assert (after[0] - before[0], after[1] - before[1]) == (3, 3)
    session = ChargingSession.objects.get(pk=start.session_id)
    assert session.last_sample_at == T0 + dt.timedelta(minutes=8)


def _energy(pile, start, wh):
    return sessions.session_meter_record(
        pile=pile,
        connector_number=1,
        protocol_ref=start.protocol_ref,
        samples=[sessions.Sample(at=T0 + dt.timedelta(minutes=5), energy_wh=Decimal(wh))],
    )


def test_a_started_session_charges_from_the_first_sample_above_its_meter_start():
    """The meter's own statement makes the move (`states.energy_move_sql`): samples at the
    meter start, or without energy, leave the session started; the first above it moves
    it once, and later samples record no second move."""
    pile = world.pile()
    member = world.member(pile.station.operator)
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented(member.token),
        meter_start_wh=1000, started_at=T0,
    )  # fmt: skip
    record = {"pile": pile, "connector_number": 1, "protocol_ref": start.protocol_ref}
    at = [T0 + dt.timedelta(minutes=n) for n in range(1, 5)]
    for samples in (
        [sessions.Sample(at=at[0], energy_wh=Decimal(1000))],
        [sessions.Sample(at=at[1], power_w=Decimal(7000))],
    ):
        sessions.session_meter_record(**record, samples=samples)
        assert ChargingSession.objects.get(pk=start.session_id).state == "started"
    for wh in (1000.001, 2000):
        sample = sessions.Sample(at=at[2 if wh < 2000 else 3], energy_wh=Decimal(str(wh)))
        sessions.session_meter_record(**record, samples=[sample])
        assert ChargingSession.objects.get(pk=start.session_id).state == "charging"
    session = ChargingSession.objects.get(pk=start.session_id)
    assert list(session.transitions.values_list("from_state", "to_state", "reason")) == [
        ("", "started", ""),
        ("started", "charging", "energy delivered"),
    ]
    assert session.last_sample_at == at[3]
    assert MeterSample.objects.filter(session=session).count() == 4


def test_energy_on_a_refused_start_makes_it_live():
    pile = world.pile()
    start = _refused_start(pile)
    _energy(pile, start, 1000)  # no energy yet: still refused
    assert ChargingSession.objects.get(pk=start.session_id).state == "refused"
    _energy(pile, start, 2500)
    session = ChargingSession.objects.get(pk=start.session_id)
    assert session.state == "charging"
    assert list(session.transitions.values_list("to_state", "reason")) == [
        ("refused", "start refused: invalid"),
        ("charging", "energy delivered although the start was refused"),
    ]


def test_energy_on_a_refused_start_while_another_is_live_closes_it_for_settlement(
    django_capture_on_commit_callbacks,
):
    pile = world.pile(world.station(password="8642"))
    refused = _refused_start(pile)
    live = sessions.session_start(
        pile=pile,
        connector_number=1,
        credential=presented("8642"),
        meter_start_wh=2600,
        started_at=T0,
    )
    with django_capture_on_commit_callbacks() as callbacks:
        _energy(pile, refused, 2500)  # queued samples of before the new start
    assert len(callbacks) == 2  # settlement + session.stopped delivery
    states = dict(
        ChargingSession.objects.filter(pk__in=[refused.session_id, live.session_id]).values_list(
            "pk", "state"
        )
    )
    assert states == {refused.session_id: "stopped", live.session_id: "started"}


def test_the_refused_state_reads_in_chinese():
    session = ChargingSession(state=SessionState.REFUSED)
    with translation.override("zh-hans"):
        assert (
            session.get_state_display(),
            str(ChargingSession._meta.get_field("refused_as").verbose_name),
        ) == (
            "拒绝启动",
            "拒绝启动的应答",
        )


def test_a_reference_the_pile_chose_finds_its_session_on_that_pile_only():
    """A YKC serial (32 hex digits), a 2.0.1 string id or a partner's 27-character order:
    the session is found by (pile, reference), and another pile may use the same one."""
    ref = "0123456789abcdef0123456789abcdef"
    first, second = world.pile(world.station(password="8642")), world.pile()
    start = sessions.session_start(
        pile=first, connector_number=1, credential=presented("8642"), meter_start_wh=1000,
        started_at=T0, protocol_ref=ref,
    )  # fmt: skip
    again = sessions.session_start(
        pile=first, connector_number=1, credential=presented("8642"), meter_start_wh=1000,
        started_at=T0, protocol_ref=ref,
    )  # fmt: skip
    assert (start.protocol_ref, again.session_id, again.replayed) == (ref, start.session_id, True)
    sessions.session_meter_record(
        pile=first, connector_number=1, protocol_ref=ref,
        samples=[sessions.Sample(at=T0 + dt.timedelta(minutes=5), energy_wh=Decimal(2000))],
    )  # fmt: skip
    orphan = sessions.session_stop(
        pile=second, protocol_ref=ref, meter_stop_wh=5, stopped_at=T0 + dt.timedelta(hours=1)
    )
    stop = sessions.session_stop(
        pile=first, protocol_ref=ref, meter_stop_wh=3000, stopped_at=T0 + dt.timedelta(hours=1)
    )
    assert (orphan.session_id, stop.session_id) == (None, start.session_id)
    session = ChargingSession.objects.get(pk=start.session_id)
    assert (session.protocol_ref, session.state, session.energy_wh) == (ref, "stopped", 2000)
    assert list(session.transitions.values_list("to_state", flat=True)) == [
        "started",
        "charging",
        "stopped",
    ]
    assert list(OrphanStop.objects.values_list("pile_id", "protocol_ref")) == [(second.pk, ref)]


@pytest.mark.parametrize(
    "kind, names, decision, channel",
    [
        ("member_token", "token", "accepted", "scan"),
        ("driver_app", "token", "accepted", "scan"),
        ("card", "card", "accepted", "card"),
        ("station_password", "password", "accepted", "password"),
        ("vin", "vin", "accepted", "password"),
        # A credential that says its kind is only that kind: a card number is no token.
        ("member_token", "card", "invalid", "unknown"),
        ("card", "password", "invalid", "unknown"),
    ],
)
def test_a_credential_of_a_stated_kind_is_resolved_as_that_kind(kind, names, decision, channel):
    st = world.station(password="8642")
    member = world.member(st.operator)
    values = {
        "token": member.token,
        "card": world.card(st.operator, owner=member).number,
        "password": "8642",
        "vin": world.vehicle(st.operator, vin="LSVAU2180N2183295").vin,
    }
    credential = sessions.Credential(sessions.CredentialKind(kind), values[names])
    identity = sessions.identify(pile=world.pile(st), credential=credential)
    assert (identity.status, identity.channel) == (decision, channel)


def test_meter_samples_in_any_number_are_stored_once_each():
    """A message's samples go as rows of values (up to four) or as arrays (more, or
    none): the same samples stored either way, the last given for a moment kept."""
    pile = world.pile()
    start = sessions.session_start(
        pile=pile, connector_number=1, credential=presented("X"), meter_start_wh=0, started_at=T0
    )

    def record(minutes, wh=100):
        samples = [
            sessions.Sample(at=T0 + dt.timedelta(minutes=m), energy_wh=Decimal(m * wh), soc=m)
            for m in minutes
        ]
        return sessions.session_meter_record(
            pile=pile, connector_number=1, protocol_ref=start.protocol_ref, samples=samples
        ).stored

    assert record([]) == 0
    assert record([1, 2, 3, 4, 5, 6]) == 6  # arrays
    assert record([5, 6, 7, 8]) == 2  # rows: 5 and 6 were stored
    assert record([9, 9], wh=200) == 1  # the last given for 9 minutes
    assert list(
        MeterSample.objects.filter(session_id=start.session_id)
        .order_by("at")
        .values_list("energy_wh", "soc")
    ) == [(Decimal(m * 100), m) for m in range(1, 9)] + [(Decimal(1800), 9)]
    session = ChargingSession.objects.get(pk=start.session_id)
    assert session.last_sample_at == T0 + dt.timedelta(minutes=9)
