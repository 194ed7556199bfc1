"""Inbound YKC frames: translate the body into a core command, run it, translate the result
back. Each ``on_<Name>`` handler returns (answer body or None, order number) for the
journal; `protocol.ykc.connection` decodes, journals, answers (echoing the serial) and, for
the transaction-bearing frames (`TRANSACTION_TYPES`), answers only once the effect and
its frames are committed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing.models import ChargingSession
from billing.models.sessions import ACTIVE_STATES
from billing.pricing import TariffSpec
from billing.selectors import tariff_specs_for
from billing.services import sessions
from billing.services.sessions import AuthDecision, Credential
from billing.services.wallet import wallet_balance
from stations.models import ConnectorState, Pile
from stations.services import live

from ..gateway import bounds
from . import codec, words

# Answered only after their effect and their frames are committed: a start that opens a
# session (0x31) and the transaction record (0x3B).
TRANSACTION_TYPES = {codec.StartRequest.TYPE, codec.TransactionRecord.TYPE}

BALANCE_MAX = Decimal("42949672.95")  # 4 BIN bytes of fen


class NoAnswer(Exception):
    """Leave the frame unanswered (journaled with ``code``): the pile asks again."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def tariff_in_force(*, pile: Pile, at: dt.datetime) -> TariffSpec | None:
    """The station's tariff version in force for the pile's current type, or None."""
    specs = tariff_specs_for(station=pile.station, current_type=pile.current_type, start=at, end=at)
    spec = specs[-1] if specs else None
    if spec is None or spec.is_missing or spec.effective_from > at:
        return None
    return spec


def pile_login(*, code: str, firmware_version: str) -> tuple[Pile | None, str]:
    """A YKC login (0x01): the pile, booted with the firmware it reports, or None and why.
    One call, so a reconnect storm costs one group-commit slot per pile, not two."""
    login = live.pile_login(code=code, password=None)
    pile, reason = login.pile, login.reason
    if pile is not None and pile.protocol != Pile.Protocol.YKC:
        return None, f"the pile speaks {pile.get_protocol_display()}"
    if pile is not None:
        live.pile_boot(
            pile_id=pile.pk,
            vendor=pile.vendor,
            model=pile.model,
            serial_number=pile.serial_number,
            firmware_version=firmware_version,
        )
    return pile, reason


def credential_balance(*, pile: Pile, credential: Credential) -> Decimal:
    """What a pile shows the driver as the account balance (read only): the member's
    wallet, 0 when the credential names no member."""
    return _shown_balance(sessions.identify(pile=pile, credential=credential).member)


def _shown_balance(member) -> Decimal:
    balance = wallet_balance(member=member) if member is not None else Decimal(0)
    return min(max(balance, Decimal(0)), BALANCE_MAX).quantize(Decimal("0.01"))


def session_open(*, pile: Pile, gun: int, credential: Credential, serial: str):
    """Open the session of a start the platform agreed to, under the transaction serial
    the pile will report it by (its register starts at 0: YKC counts energy per charge)."""
    return sessions.session_start(
        pile=pile,
        connector_number=gun,
        credential=credential,
        meter_start_wh=0,
        started_at=timezone.now(),
        protocol_ref=serial,
    )


def start_requested(
    *, pile: Pile, gun: int, credential: Credential, serial: str
) -> tuple[AuthDecision, str, Decimal]:
    """A start the pile asks for (0x31): the decision, and when accepted the session opened
    under ``serial`` and the balance the pile shows. One call (one group-commit slot):
    a thousand piles starting at once wait for one commit each, not three."""
    # A card or VIN is authorised by `identify` alone (`session_authorize` does no more
    # for them); its member is the one whose balance the pile shows, identified once.
    identity = sessions.identify(pile=pile, credential=credential)
    if identity.status != AuthDecision.ACCEPTED:
        return identity.status, "", Decimal(0)
    start = session_open(pile=pile, gun=gun, credential=credential, serial=serial)
    return start.status, start.order_no, _shown_balance(identity.member)


def charge_ended(*, pile: Pile, gun: int, serial: str) -> str:
    """The pile ended the charge of transaction ``serial`` (0x19): its connector is
    finishing while the session, still open, waits for its record. The session's order
    number, or "" when no open session has that serial (already closed by its record)."""
    order_no = (
        ChargingSession.objects.filter(pile=pile, protocol_ref=serial, state__in=ACTIVE_STATES)
        .values_list("order_no", flat=True)
        .first()
    )
    if order_no is None:
        return ""
    live.connector_status_record(
        pile=pile, connector_number=gun, state=ConnectorState.FINISHING, info="charge end (0x19)"
    )
    return order_no


class YkcHandlers:
    """The ``on_<Name>`` handlers of a YKC connection (mixed into `YkcConnection`, which
    provides ``gw``, ``pile``, ``pile_id``, ``code`` and ``connector_states``)."""

    gw: Any
    pile: Pile
    pile_id: int
    code: str
    connector_states: dict[int, tuple[str, str]]

    async def on_Heartbeat(self, body: codec.Heartbeat):
        states = [state for state, _error in self.connector_states.values()]
        self.gw.heartbeat(self.pile_id, live.pile_state_summary(states))
        return codec.HeartbeatAnswer(pile_code=self.code, gun=body.gun, answer=0), ""

    async def on_BillingModelCheck(self, body: codec.BillingModelCheck):
        spec = await self.gw.db.run(tariff_in_force, pile=self.pile, at=timezone.now())
        same = spec is not None and words.model_number(spec) == body.model
        answer = codec.BillingModelCheckAnswer(
            pile_code=self.code, model=body.model, result=0 if same else 1
        )
        return answer, ""

    async def on_BillingModelRequest(self, body: codec.BillingModelRequest):
        spec = await self.gw.db.run(tariff_in_force, pile=self.pile, at=timezone.now())
        if spec is None:
            # Without a model the pile does not charge: better than charging at no price.
            raise NoAnswer("NoTariff", "no tariff in force at the pile's station")
        return words.billing_model(spec, pile_code=self.code, cls=codec.BillingModelAnswer), ""

    async def on_RealTimeData(self, body: codec.RealTimeData):
        gun = bounds.connector_number(body.gun, field="gun", pile_itself=True)
        state = words.connector_state(body.status, body.plugged)
        error = words.hardware_error(body.hardware_faults)
        if self.connector_states.get(gun) != (state, error):
            await self.gw.db.run(
                live.connector_status_record,
                pile=self.pile,
                connector_number=gun,
                state=state,
                error_code=error,
            )
            self.connector_states[gun] = (state, error)
        if not words.is_serial(body.serial) or body.status != words.STATUS_CHARGING:
            return None, ""
        sample = words.sample(body, at=timezone.now())
        result = await self.gw.db.run(
            sessions.session_meter_record,
            pile=self.pile,
            connector_number=gun,
            protocol_ref=body.serial,
            samples=bounds.samples([sample], field="real-time data"),
        )
        return None, result.order_no

    async def on_ChargeEnd(self, body: codec.ChargeEnd):
        """The charge is over (the BMS summary): the connector is finishing and the session
        shows it is ending; the record (0x3B) still closes it and makes the bill."""
        gun = bounds.connector_number(body.gun, field="gun", pile_itself=False)
        if not words.is_serial(body.serial):
            return None, ""
        order_no = await self.gw.db.run(charge_ended, pile=self.pile, gun=gun, serial=body.serial)
        if order_no:
            self.connector_states[gun] = (ConnectorState.FINISHING, "")
        return None, order_no

    async def on_StartRequest(self, body: codec.StartRequest):
        gun = bounds.connector_number(body.gun, field="gun", pile_itself=False)
        credential = words.credential(body)
        serial = words.new_serial(
            pile_code=self.code, gun=gun, at=timezone.localtime(timezone.now(), self.zone)
        )

        def answer(decision: AuthDecision, balance=Decimal(0)) -> codec.StartAnswer:
            accepted = decision == AuthDecision.ACCEPTED
            return codec.StartAnswer(
                serial=serial,
                pile_code=self.code,
                gun=body.gun,
                logical_card="0" * 16,
                balance=balance,
                accepted=int(accepted),
                reason=0 if accepted else words.refusal_reason(decision, credential),
            )

        if credential is None:
            return answer(AuthDecision.INVALID), ""
        try:
            decision, order_no, balance = await self.gw.db.run(
                start_requested, pile=self.pile, gun=gun, credential=credential, serial=serial
            )
        except live.UnknownConnector as exc:
            raise NoAnswer("UnknownGun", f"gun {gun} is not a connector of this pile") from exc
        return answer(decision, balance), order_no

    async def on_TransactionRecord(self, body: codec.TransactionRecord):
        zone = self.zone
        result = await self.gw.db.run(
            sessions.session_stop,
            pile=self.pile,
            protocol_ref=body.serial,
            meter_stop_wh=bounds.meter_wh(words.kwh_to_wh(body.total_energy), field="energy"),
            stopped_at=words.pile_time(body.ended, zone),
            reason=words.stop_reason(body.stop_reason),
            transaction_data=[body.fields()],
            pile_reported=words.record_reported(body, zone),
        )
        return codec.TransactionRecordAnswer(serial=body.serial, result=0), result.order_no

    @property
    def zone(self):
        return self.pile.station.zone
