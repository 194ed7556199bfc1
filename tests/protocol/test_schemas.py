"""The compiled OCPP 1.6 payload check (`protocol.ocpp16.schemas`) agrees with the `ocpp`
library's validator: it may only ever be a faster way to the library's answer."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

from protocol.ocpp16.handlers import INBOUND_ACTIONS
from protocol.ocpp16.schemas import _check, call_payload_validate

VALID = {
    "Authorize": {"idTag": "CARD0001"},
    "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
    "DataTransfer": {"vendorId": "cn.chargenet", "messageId": "vin", "data": "x"},
    "DiagnosticsStatusNotification": {"status": "Uploaded"},
    "FirmwareStatusNotification": {"status": "Installed"},
    "Heartbeat": {},
    "MeterValues": {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            {
                "timestamp": "2026-11-29T08:00:00Z",
                "sampledValue": [{"value": "1500", "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    },
    "StartTransaction": {
        "connectorId": 1,
        "idTag": "CARD0001",
        "meterStart": 0,
        "timestamp": "2026-11-29T08:00:00Z",
    },
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "StopTransaction": {
        "transactionId": 7,
        "meterStop": 1500,
        "timestamp": "2026-11-29T09:00:00Z",
        "reason": "Local",
    },
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([1.0, 0.0, -1.5, 2.0])
    | st.text(max_size=30) | st.sampled_from(["Local", "Accepted", "Available", "x" * 21, ""]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip


def library_accepts(action: str, payload: dict) -> bool:
    try:
        _validate_payload(Call("1", action, copy.deepcopy(payload)), "1.6")
    except OCPPError:
        return False
    return True


def compiled_accepts(action: str, payload: dict) -> bool:
    try:
        _check(action)(copy.deepcopy(payload))
    except Exception:
        return False
    return True


def paths(value, prefix=()):
    """Every place in a payload a mutation can hit: (path to a container, key)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix, key
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield prefix, i
            yield from paths(inner, (*prefix, i))


@st.composite
def mutated(draw):
    """A valid payload with one thing changed: a value replaced by any JSON, a key dropped,
    or an unknown key added, anywhere in it."""
    action = draw(st.sampled_from(sorted(VALID)))
    payload = copy.deepcopy(VALID[action])
    places = list(paths(payload))
    kind = draw(st.sampled_from(["replace", "drop", "add"] if places else ["add"]))
    if kind == "add":
        payload[draw(st.text(min_size=1, max_size=8))] = draw(JSON)
        return action, payload
    path, key = draw(st.sampled_from(places))
    container = payload
    for step in path:
        container = container[step]
    if kind == "drop":
        del container[key]
    else:
        container[key] = draw(JSON)
    return action, payload


def test_every_example_is_valid_for_both_and_every_inbound_action_has_one():
    assert set(VALID) == INBOUND_ACTIONS
    for action, payload in VALID.items():
        assert library_accepts(action, payload), action
        assert compiled_accepts(action, payload), action


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_compiled_check_accepts_exactly_what_the_library_accepts(case):
    action, payload = case
    assert compiled_accepts(action, payload) == library_accepts(action, payload), payload


@pytest.mark.parametrize(
    ("action", "payload", "error"),
    [
        ("StartTransaction", {**VALID["StartTransaction"], "connectorId": "1"},
         "TypeConstraintViolation"),
        # The gateway answers PropertyConstraintViolation (connection._spec_error).
        ("StopTransaction", {**VALID["StopTransaction"], "reason": "Bored"}, "FormatViolation"),
        ("Heartbeat", {"extra": 1}, "FormatViolation"),
        ("Authorize", {}, "ProtocolError"),
        ("Authorize", {"idTag": "X" * 21}, "TypeConstraintViolation"),
    ],
)  # fmt: skip
def test_an_invalid_payload_gets_the_library_s_own_error(action, payload, error):
    with pytest.raises(OCPPError) as raised:
        call_payload_validate("1", action, payload)
    assert raised.value.code == error
