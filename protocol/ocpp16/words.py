"""OCPP 1.6 words ↔ the core's: connector states, authorisation answers, credentials and
transaction references."""

from __future__ import annotations

from ocpp.v16.enums import AuthorizationStatus, ChargePointErrorCode, ChargePointStatus

from billing.services.sessions import AuthDecision, Credential, CredentialKind
from stations.models import ConnectorState

CONNECTOR_STATES: dict[str, ConnectorState] = {
    ChargePointStatus.available: ConnectorState.AVAILABLE,
    ChargePointStatus.preparing: ConnectorState.PREPARING,
    ChargePointStatus.charging: ConnectorState.CHARGING,
    ChargePointStatus.suspended_evse: ConnectorState.SUSPENDED_EVSE,
    ChargePointStatus.suspended_ev: ConnectorState.SUSPENDED_EV,
    ChargePointStatus.finishing: ConnectorState.FINISHING,
    ChargePointStatus.reserved: ConnectorState.RESERVED,
    ChargePointStatus.unavailable: ConnectorState.UNAVAILABLE,
    ChargePointStatus.faulted: ConnectorState.FAULTED,
}

ID_TAG_STATUS: dict[AuthDecision, str] = {
    AuthDecision.ACCEPTED: AuthorizationStatus.accepted,
    AuthDecision.BLOCKED: AuthorizationStatus.blocked,
    AuthDecision.EXPIRED: AuthorizationStatus.expired,
    AuthDecision.INVALID: AuthorizationStatus.invalid,
    AuthDecision.CONCURRENT: AuthorizationStatus.concurrent_tx,
    # OCPP 1.6 has no word for "reserved for someone else": the idTag is not valid here.
    AuthDecision.RESERVED: AuthorizationStatus.invalid,
}


def connector_state(status: str) -> ConnectorState:
    """A ChargePointStatus (the schema let only these through) in the core's words."""
    return CONNECTOR_STATES[status]


def connector_error(error_code: str) -> str:
    """A ChargePointErrorCode as the core keeps it: the pile's code, none for NoError."""
    return "" if error_code == ChargePointErrorCode.no_error else error_code


def id_tag_info(decision: AuthDecision) -> dict:
    return {"status": str(ID_TAG_STATUS[decision])}


def credential(id_tag: str) -> Credential:
    """An idTag does not say what it is (a member token, a card, a station password, a
    partner order, a VIN): the core classifies it."""
    return Credential(CredentialKind.PRESENTED, id_tag)


def protocol_ref(transaction_id: int | None) -> str | None:
    """The core's reference of a session for the transactionId the central system gave."""
    return None if transaction_id is None else str(transaction_id)


def transaction_id(protocol_ref: str) -> int:
    """The transactionId answered to the pile: the platform assigned the reference as a
    number (`billing.services.sessions.start`)."""
    return int(protocol_ref)
