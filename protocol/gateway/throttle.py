"""Handshake failure throttling, shared by every gateway node through Redis.

Each refused handshake counts once against its peer address and once against the pile
code it named, in counters that expire ``GATEWAY_LOGIN_FAILURE_WINDOW`` seconds after the
first failure of the window. Past ``GATEWAY_LOGIN_FAILURES_PER_PEER`` (one address guessing)
or ``GATEWAY_LOGIN_FAILURES_PER_CODE`` (many addresses guessing one pile; set higher, so a
single noisy address does not lock the real pile out) the gateway refuses with 429 before
it looks at the database. If Redis is unreachable the gateway does not throttle: the
password check itself is cheap.
"""

from __future__ import annotations

import ipaddress
import logging

import redis.asyncio as aioredis
from django.conf import settings
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

logger = logging.getLogger("protocol.gateway")


def _keys(code: str, peer: str) -> tuple[str, str]:
    prefix = f"{settings.GATEWAY_REDIS_PREFIX}login-fail"
    return f"{prefix}:peer:{peer}", f"{prefix}:code:{code}"


def peer_address(connection: ServerConnection, request: Request) -> str:
    """The pile's address: the socket's peer, or the last X-Forwarded-For hop when the
    peer is a trusted reverse proxy (TLS terminator)."""
    peer = connection.remote_address[0] if connection.remote_address else "?"
    if peer in settings.GATEWAY_TRUSTED_PROXIES:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            return peer
    return peer


async def login_throttled(redis: aioredis.Redis, *, code: str, peer: str) -> bool:
    try:
        peer_failures, code_failures = await redis.mget(_keys(code, peer))
    except Exception as exc:
        logger.warning("login throttle unavailable: %s", exc)
        return False
    return (
        int(peer_failures or 0) >= settings.GATEWAY_LOGIN_FAILURES_PER_PEER
        or int(code_failures or 0) >= settings.GATEWAY_LOGIN_FAILURES_PER_CODE
    )


async def login_failed(redis: aioredis.Redis, *, code: str, peer: str) -> None:
    window = settings.GATEWAY_LOGIN_FAILURE_WINDOW
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for key in _keys(code, peer):
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
            await pipe.execute()
    except Exception as exc:
        logger.warning("login failure not counted: %s", exc)
