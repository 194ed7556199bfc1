"""HTTP transport to partner platforms speaking T/CEC 102 (中电联互联互通).

It posts one envelope (already signed and encrypted by the interconnect adapter: the
codec is the adapter's, `interconnect.codec`) as JSON to ``<base URL>/<operation>`` with
the partner's token as ``Authorization: Bearer …``, and returns the answer envelope as a
dict. Anything but a JSON object back — refused connection, timeout, HTTP error — is a
`TcecError`; the push queue retries it later.

Connections are kept alive (HTTP/1.1), one per thread and partner host: the push worker
sends from a pool of threads, and a TCP (and TLS) handshake per push cost more than the
push. A kept connection the partner closed while idle is opened again once.

Never call it inside a database transaction: a slow partner would hold row locks.
"""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit


class TcecError(Exception):
    """The partner could not be reached or did not answer with an envelope."""


# What a kept-alive connection the server closed while idle looks like on first use.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class TcecClient:
    def __init__(self, *, timeout: float = 10.0):
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self, scheme: str, netloc: str, *, fresh: bool):
        pool = self._local.__dict__.setdefault("connections", {})
        key = (scheme, netloc)
        conn = pool.get(key)
        if conn is not None and fresh:
            conn.close()
            conn = None
        if conn is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = pool[key] = kind(netloc, timeout=self.timeout)
        return conn, conn.sock is not None

    def close(self) -> None:
        """Close this thread's kept connections."""
        for conn in self._local.__dict__.pop("connections", {}).values():
            conn.close()

    def post(self, url: str, envelope: dict, *, token: str = "") -> dict:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise TcecError(f"{url} is not an http(s) URL")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        fresh = False
        while True:
            conn, reused = self._connection(parts.scheme, parts.netloc, fresh=fresh)
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                status = response.status
                if response.will_close:
                    conn.close()
                break
            except _STALE as exc:
                conn.close()
                if reused and not fresh:
                    fresh = True  # closed by the partner while idle: once more, anew
                    continue
                raise TcecError(f"{url} unreachable: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise TcecError(f"{url} unreachable: {exc}") from exc
        if status >= 400:
            raise TcecError(f"{url} unreachable: HTTP Error {status}")
        try:
            answer = json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise TcecError(f"{url} answered something that is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise TcecError(f"{url} answered something that is not a JSON object")
        return answer
