"""Where a pile is connected, and how a command reaches it: Redis keys shared by every
gateway node and every caller of `protocol.services.send_command`.

- ``pile:<code>``        → "<node>|<connection token>" of the connection holding the pile;
                           it expires (PILE_TTL, refreshed by the node's alive loop while
                           it holds the pile), so a dead node's entries go away
- ``node:<node>:alive``  → set with a short TTL while the node runs (refreshed)
- ``node:<node>:cmd``    → list of commands for the node (BLPOP by its listener);
                           also carries "kick" messages: another node took over a pile.
                           It expires (COMMAND_TTL, refreshed by the node while it runs,
                           set again by every push), so a dead node's list goes away
- ``reply:<request id>`` → list the node pushes the pile's answer to (BLPOP by the caller)
"""

from __future__ import annotations

import json
import os
import uuid

import redis
from django.conf import settings
from django.utils import timezone

ALIVE_TTL = 15  # seconds; a node refreshes every ALIVE_TTL / 3
# Longer than ALIVE_TTL: a kick pushed to a node that just died is still there to be
# found unread once the node's liveness has expired (see `Gateway._check_kick_read`).
COMMAND_TTL = 2 * ALIVE_TTL
REPLY_TTL = 120
PILE_TTL = 2 * ALIVE_TTL


def pile_key(code: str, prefix: str | None = None) -> str:
    """Where a pile's owner node is registered (``prefix``: another deployment's keys)."""
    return f"{settings.GATEWAY_REDIS_PREFIX if prefix is None else prefix}pile:{code}"


def alive_key(node: str) -> str:
    return f"{settings.GATEWAY_REDIS_PREFIX}node:{node}:alive"


def command_key(node: str) -> str:
    return f"{settings.GATEWAY_REDIS_PREFIX}node:{node}:cmd"


def command_push(pipe, node: str, text: str) -> None:
    """Queue ``text`` for ``node`` on a Redis pipeline (sync or async; the caller executes
    it) with the list's expiry: a push to a node that died meanwhile must not leave a list
    that nobody reads and that never expires."""
    key = command_key(node)
    pipe.rpush(key, text)
    pipe.expire(key, COMMAND_TTL)


def reply_key(request_id: str) -> str:
    return f"{settings.GATEWAY_REDIS_PREFIX}reply:{request_id}"


def owner_value(node: str, token: str) -> str:
    return f"{node}|{token}"


def parse_owner(value: bytes | str | None) -> tuple[str, str] | None:
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    node, _sep, token = text.partition("|")
    return node, token


def command_request(*, code: str, action: str, payload: dict, timeout: float) -> dict | None:
    """Push a command for pile ``code`` to the node holding it and wait for the node's
    reply: ``{"outcome": "result" | "error" | "offline" | "timeout", ...}`` (whatever the
    protocol), or None when no live node holds the pile. Works from web, worker and shell
    (blocking Redis)."""
    request_id = command_send(code=code, action=action, payload=payload, timeout=timeout)
    if request_id is None:
        return None
    return command_reply(request_id=request_id, wait=timeout + 2) or {"outcome": "timeout"}


_clients: dict[tuple[int, str], redis.Redis] = {}


def _client() -> redis.Redis:
    """This process's Redis client (its pool is thread-safe): a web thread sending a
    command reuses a connection instead of opening one. Keyed by process id too, so a
    forked worker never shares its parent's sockets."""
    key = (os.getpid(), settings.REDIS_URL)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None)
    return client


def command_send(*, code: str, action: str, payload: dict, timeout: float) -> str | None:
    """Push a command for pile ``code`` to the node holding it without waiting: its request
    id (the node gives up after ``timeout`` seconds and replies under it, see
    `command_reply`), or None when no live node holds the pile."""
    client = _client()
    owner = parse_owner(client.get(pile_key(code)))
    if owner is None or not client.exists(alive_key(owner[0])):
        return None
    request_id = uuid.uuid4().hex
    command = {
        "kind": "call",
        "id": request_id,
        "pile": code,
        "action": action,
        "payload": payload,
        "expires": timezone.now().timestamp() + timeout,
    }
    with client.pipeline(transaction=False) as pipe:
        command_push(pipe, owner[0], json.dumps(command))
        pipe.execute()
    return request_id


def command_reply(*, request_id: str, wait: float) -> dict | None:
    """The node's reply to ``request_id``, or None when none came (yet). ``wait`` > 0
    waits up to that many seconds and takes the reply; ``wait`` = 0 only looks and leaves
    it for the next reader (it expires after REPLY_TTL), so a page polling a command sent
    earlier can ask as often as it likes."""
    client = _client()
    if wait > 0:
        answer = client.blpop([reply_key(request_id)], timeout=wait)
        text = answer[1] if answer is not None else None
    else:
        text = client.lindex(reply_key(request_id), 0)
    return json.loads(text) if text is not None else None
