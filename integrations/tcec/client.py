"""HTTP transport to partner platforms speaking T/CEC 102 (中电联互联互通).

It posts one envelope (already signed and encrypted by the interconnect adapter: the
codec is the adapter's, `interconnect.codec`) as JSON to ``<base URL>/<operation>`` with
the partner's token as ``Authorization: Bearer …``, and returns the answer envelope as a
dict. Anything but a JSON object back — refused connection, timeout, HTTP error — is a
`TcecError`; the push queue retries it later.

Never call it inside a database transaction: a slow partner would hold row locks.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class TcecError(Exception):
    """The partner could not be reached or did not answer with an envelope."""


class TcecClient:
    def __init__(self, *, timeout: float = 10.0):
        self.timeout = timeout

    def post(self, url: str, envelope: dict, *, token: str = "") -> dict:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps(envelope, ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
            raise TcecError(f"{url} unreachable: {exc}") from exc
        if not isinstance(answer, dict):
            raise TcecError(f"{url} answered something that is not a JSON object")
        return answer
