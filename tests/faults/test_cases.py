"""Fault-bill state table: dismiss, escalate, reopen — audited, illegal moves refused."""

import pytest

from chargenet.errors import Conflict, DomainError
from chargenet.models import AuditLog
from faults.codes import FaultCode
from faults.facts import session_facts
from faults.rules import Finding, Reason
from faults.services.cases import (
    CaseOpening,
    case_record,
    fault_case_dismiss,
    fault_case_escalate,
    fault_case_reopen,
    fault_cases_open,
    session_scope,
)
from orgs.models import Staff

from .conftest import at


@pytest.fixture
def agent(operator):
    return Staff.objects.create_user(username="cs1", operator=operator, role="customer_service")


def fault_case_open(*, session, facts, findings):
    record = case_record(facts=facts, findings=findings, proposal=None, firmware="")
    opening = CaseOpening(session_id=session.pk, scope=session_scope(session), record=record)
    return fault_cases_open(openings=[opening])[0]


@pytest.fixture
def case(make_session):
    session = make_session(stopped_at=at(60), stop_received_at=at(60))
    finding = Finding(FaultCode.OCCUPANCY_MISMATCH, (Reason("occupancy_mismatch", {}),))
    return fault_case_open(
        session=session, facts=session_facts(session=session, now=at(70)), findings=[finding]
    )


def test_open_again_adds_codes_and_code_10_alone_does_not_block_payment(case):
    assert (case.codes, case.blocks_payment, case.state) == ([10], False, "open")
    again = fault_case_open(
        session=case.session,
        facts=session_facts(session=case.session, now=at(70)),
        findings=[Finding(FaultCode.BILL_LOST, ())],
    )
    # Settling a session the sweep recorded adds the new codes to the same case.
    assert again.pk == case.pk
    assert (again.codes, again.blocks_payment) == ([1, 10], True)
    assert list(case.actions.values_list("kind", "before", "after")) == [
        ("detect", None, {"codes": [10]}),
        ("detect", {"codes": [10]}, {"codes": [1, 10]}),
    ]
    assert case.pile_values["duration_s"] == 3600
    assert case.platform_values["energy_wh"] == "10000"


def test_escalate_reopen_dismiss_are_recorded(case, agent):
    fault_case_escalate(case=case, acting_user=agent, reason="pile vendor must check")
    fault_case_reopen(case=case, acting_user=agent, reason="vendor answered")
    dismissed = fault_case_dismiss(case=case, acting_user=agent, reason="occupancy only")
    assert (dismissed.state, dismissed.resolved_by) == ("dismissed", agent)
    assert list(
        case.actions.values_list("kind", "from_state", "to_state", "actor__username", "reason")
    ) == [
        ("detect", "", "open", None, ""),
        ("escalate", "open", "escalated", "cs1", "pile vendor must check"),
        ("reopen", "escalated", "open", "cs1", "vendor answered"),
        ("dismiss", "open", "dismissed", "cs1", "occupancy only"),
    ]
    assert list(AuditLog.objects.order_by("id").values_list("action", flat=True)) == [
        "fault_bill.escalate",
        "fault_bill.reopen",
        "fault_bill.dismiss",
    ]


def test_a_dismissed_bill_cannot_be_escalated(case, agent):
    fault_case_dismiss(case=case, acting_user=agent, reason="ok")
    with pytest.raises(Conflict, match="This fault bill is dismissed; it cannot be escalated"):
        fault_case_escalate(case=case, acting_user=agent, reason="late")
    assert case.actions.count() == 2


def test_reason_is_required(case, agent):
    with pytest.raises(DomainError, match="Reason"):
        fault_case_dismiss(case=case, acting_user=agent, reason="  ")
    case.refresh_from_db()
    assert case.state == "open"
