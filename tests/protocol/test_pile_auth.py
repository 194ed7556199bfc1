"""Pile passwords at the handshake, through a real gateway: keyed-hash check, legacy
hashes upgraded on first login, failures throttled per peer address and per pile code."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from websockets.exceptions import InvalidStatus

from protocol.models import Frame
from stations.models import Pile
from stations.services.credentials import pile_credential_encode

from . import world
from .clients import serving
from .conftest import GatewayProcess, wait_for

pytestmark = [pytest.mark.gateway, pytest.mark.usefixtures("live_db")]

PER_PEER, PER_CODE = 3, 5


@pytest.fixture(scope="module")
def strict_gateway(live_db):
    gw = GatewayProcess(
        node=f"gw-auth-{uuid.uuid4().hex[:6]}",
        env={
            "GATEWAY_LOGIN_FAILURES_PER_PEER": str(PER_PEER),
            "GATEWAY_LOGIN_FAILURES_PER_CODE": str(PER_CODE),
            # Its own counters: other modules' refusals never count here.
            "GATEWAY_REDIS_PREFIX": f"chargenet-test-auth-{uuid.uuid4().hex[:8]}:",
        },
    ).start()
    yield gw
    gw.stop()


async def _attempt(gateway, code: str, password: str, *, source: str) -> int | str:
    """Connect from address ``source`` (any 127.x.y.z is this machine); the HTTP status of
    a refusal, or the BootNotification status once connected."""
    try:
        async with serving(
            gateway.url,
            code,
            password,
            registry_prefix=gateway.env["GATEWAY_REDIS_PREFIX"],
            local_addr=(source, 0),
        ) as pile:
            return (await pile.boot()).status
    except InvalidStatus as refused:
        return refused.response.status_code


def attempt(gateway, code, password, *, source="127.0.0.1"):
    return asyncio.run(_attempt(gateway, code, password, source=source))


def test_right_password_connects_wrong_and_unknown_are_refused(strict_gateway):
    pile = world.pile()
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.1.1") == "Accepted"
    assert attempt(strict_gateway, pile.code, "wrong-pw", source="127.0.1.2") == 401
    assert attempt(strict_gateway, "44209999999999999999", "x", source="127.0.1.3") == 401


def test_failures_from_one_address_throttle_it_but_not_the_pile(strict_gateway):
    pile = world.pile()
    attacker, owner = "127.0.2.1", "127.0.2.2"
    refusals = [attempt(strict_gateway, pile.code, f"guess-{n}", source=attacker) for n in range(3)]
    assert refusals == [401, 401, 401]
    # Past the limit the address is refused before any database work, the right password
    # of a pile this node never admitted included.
    assert attempt(strict_gateway, pile.code, "secret-pw", source=attacker) == 429
    assert attempt(strict_gateway, pile.code, "secret-pw", source=owner) == "Accepted"
    # Throttled attempts are not looked up, so not journaled as refusals either (the
    # journal is written in order: the owner's later connection shows it is flushed).
    wait_for(lambda: Frame.objects.filter(pile_code=pile.code, action="connected").exists())
    assert Frame.objects.filter(pile_code=pile.code, action="refused").count() == 3


def test_failures_on_one_code_from_many_addresses_throttle_the_code(strict_gateway):
    pile = world.pile()
    sources = [f"127.0.3.{n}" for n in range(1, PER_CODE + 1)]
    assert [attempt(strict_gateway, pile.code, "guess", source=s) for s in sources] == [401] * 5
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.3.99") == 429
    other = world.pile()
    assert attempt(strict_gateway, other.code, "secret-pw", source="127.0.3.99") == "Accepted"


def test_a_legacy_hash_is_verified_once_and_upgraded(strict_gateway):
    pile = world.pile()
    legacy = world.fast_hash("secret-pw")
    Pile.objects.filter(pk=pile.pk).update(credential_hash=legacy)
    assert attempt(strict_gateway, pile.code, "wrong-pw", source="127.0.4.1") == 401
    pile.refresh_from_db()
    assert pile.credential_hash == legacy  # a wrong password upgrades nothing
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.4.2") == "Accepted"
    pile.refresh_from_db()
    assert pile.credential_hash == pile_credential_encode(password="secret-pw")
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.4.2") == "Accepted"
    refused = wait_for(lambda: Frame.objects.filter(pile_code=pile.code, action="refused").first())
    assert refused.raw.startswith("wrong password")


def test_strangers_cannot_lock_out_a_pile_the_gateway_knows(strict_gateway):
    """Guessing from the pile's own address (a shared NAT) and at its code from many
    addresses throttles the guessers, not the pile: a node lets a pile it admitted before
    back in with that same credential."""
    pile = world.pile()
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.5.1") == "Accepted"
    guesses = [
        attempt(strict_gateway, pile.code, "guess", source=f"127.0.5.{n}")
        for n in (1, 1, 1, 2, 3, 4)
    ]
    assert guesses == [401] * PER_CODE + [429]
    assert attempt(strict_gateway, pile.code, "guess", source="127.0.5.1") == 429
    # Its own address and a new one: throttled for guessers, open to the pile.
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.5.1") == "Accepted"
    assert attempt(strict_gateway, pile.code, "secret-pw", source="127.0.5.9") == "Accepted"
    # A pile the node never admitted is not let through on the throttled address.
    stranger = world.pile()
    assert attempt(strict_gateway, stranger.code, "secret-pw", source="127.0.5.1") == 429


def test_a_handshake_left_unfinished_is_closed_after_the_open_timeout(live_db):
    """A peer that starts a handshake and never finishes it holds a socket only for
    GATEWAY_OPEN_TIMEOUT seconds: then the gateway closes it, answering nothing. (2 s
    here; websockets' own default, 10 s, would outlast the wait.)"""
    gw = GatewayProcess(
        node=f"gw-open-{uuid.uuid4().hex[:6]}", env={"GATEWAY_OPEN_TIMEOUT": "2"}
    ).start()

    async def half_a_request() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write(b"GET /ocpp/44200000000000000001 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(), 8)
        finally:
            writer.close()

    try:
        assert asyncio.run(half_a_request()) == b""
    finally:
        gw.stop()
