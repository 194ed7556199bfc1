"""A local partner platform speaking T/CEC 102 for real, for tests and development.

It serves, on 127.0.0.1 (a free port), what a partner serves us: query_token for our
calls, and every notification we push plus check_charge_orders — checking our token, our
signature (with the ``Push`` secrets), the clock and replays, decrypting, answering signed
and encrypted. And it calls our endpoints as a partner does, with its own secrets,
checking the signature of every answer. ``down = True`` makes it answer HTTP 503, as a
platform under maintenance does.

It lives in the adapter (not in ``integrations/``) because it speaks through the
adapter's codec.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import secrets
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .codec import (
    Answer,
    CodecError,
    Ret,
    Secrets,
    answer_open,
    answer_seal,
    envelope_read,
    request_open,
    request_seal,
)

ACK_ONLY = {"notification_stationStatus": {"Status": 0}}
ORDER_ACKS = (
    "notification_start_charge_result",
    "notification_equip_charge_status",
    "notification_stop_charge_result",
)


def _secrets(wire: dict) -> Secrets:
    return Secrets(
        wire["OperatorID"],
        wire["OperatorSecret"],
        wire["DataSecret"],
        wire["DataSecretIV"],
        wire["SigSecret"],
    )


class FakePartnerPlatform:
    def __init__(self, credentials: dict, *, our_url: str = "", confirm_result: int = 0):
        """``credentials`` is what `partner_add` printed; ``our_url`` our ``…/evcs/v1``."""
        self.mine = _secrets(credentials)  # its calls to us
        self.ours = _secrets(credentials["Push"])  # our calls to it
        self.our_url = our_url.rstrip("/")
        self.confirm_result = confirm_result
        self.disputes: list[dict] = []
        self.down = False
        self.received: list[tuple[str, dict]] = []
        self.refused: list[tuple[str, int]] = []
        self.http_calls = 0
        self._tokens: set[str] = set()
        self._seen: set[tuple[str, str]] = set()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.token = ""
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    # --- serving our pushes -----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/evcs/v1"

    def start(self) -> FakePartnerPlatform:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            # Keeps connections alive, as partner platforms do (our client pools them).
            protocol_version = "HTTP/1.1"
            timeout = 30  # an idle kept connection is closed after this
            # Headers and body leave in two writes: without this, Nagle's algorithm holds
            # the body back for the client's delayed ACK (40 ms a push on a kept
            # connection), as no real platform's server does.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with platform._lock:
                    platform.http_calls += 1
                if platform.down:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                operation = self.path.rstrip("/").rsplit("/", 1)[-1]
                answer = platform._answer(operation, body, self.headers.get("Authorization", ""))
                raw = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False  # kept-alive connections are cut in stop() instead
            request_queue_size = 128  # a burst of new connections is not refused

            def process_request(self, request, client_address):
                with platform._lock:
                    platform._connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with platform._lock:
                    platform._connections.discard(request)
                super().shutdown_request(request)

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and cut the connections kept alive: a stopped platform answers
        nothing more."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                kept, self._connections = list(self._connections), set()
            for conn in kept:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakePartnerPlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, operation: str, body: bytes, authorization: str) -> dict:
        try:
            envelope = envelope_read(body)
            if envelope.get("OperatorID") != self.ours.operator_id:
                raise CodecError(Ret.ENVELOPE, "unknown OperatorID")
            request = request_open(envelope, secrets=self.ours)
            with self._lock:
                if (request.timestamp, request.seq) in self._seen:
                    raise CodecError(Ret.ENVELOPE, "replayed")
                self._seen.add((request.timestamp, request.seq))
            if operation == "query_token":
                return self._sealed(self._token_for(request.data))
            if authorization.removeprefix("Bearer ").strip() not in self._tokens:
                raise CodecError(Ret.TOKEN, "token")
            data = self._ack(operation, request.data)
        except CodecError as exc:
            with self._lock:
                self.refused.append((operation, int(exc.ret)))
            return answer_seal(ret=exc.ret, msg=str(exc), data=None, secrets=self.ours)
        with self._lock:
            self.received.append((operation, request.data))
        return self._sealed(data)

    def _sealed(self, data: dict) -> dict:
        return answer_seal(ret=Ret.OK, msg="", data=data, secrets=self.ours)

    def _token_for(self, data: dict) -> dict:
        if data.get("OperatorSecret") != self.ours.operator_secret:
            return {"OperatorID": self.ours.operator_id, "SuccStat": 1, "FailReason": 2}
        token = secrets.token_hex(16)
        with self._lock:
            self._tokens.add(token)
        return {
            "OperatorID": self.ours.operator_id,
            "SuccStat": 0,
            "AccessToken": token,
            "TokenAvailableTime": 7200,
            "FailReason": 0,
        }

    def _ack(self, operation: str, data: dict) -> dict:
        if operation in ACK_ONLY:
            return ACK_ONLY[operation]
        if operation in ORDER_ACKS:
            return {"StartChargeSeq": data.get("StartChargeSeq"), "SuccStat": 0, "FailReason": 0}
        if operation == "notification_charge_order_info":
            return {
                "StartChargeSeq": data.get("StartChargeSeq"),
                "ConnectorID": data.get("ConnectorID"),
                "ConfirmResult": self.confirm_result,
            }
        if operation == "check_charge_orders":
            return {
                "CheckOrderSeq": data.get("CheckOrderSeq"),
                "StartTime": data.get("StartTime"),
                "EndTime": data.get("EndTime"),
                "TotalDisputeOrder": len(self.disputes),
                "TotalDisputePower": sum(d.get("TotalPower", 0) for d in self.disputes),
                "TotalDisputeMoney": sum(d.get("TotalMoney", 0) for d in self.disputes),
                "DisputeOrders": self.disputes,
            }
        raise CodecError(Ret.DATA, f"no operation {operation}")

    def pushes(self, operation: str) -> list[dict]:
        with self._lock:
            return [data for op, data in self.received if op == operation]

    # --- calling our endpoints ----------------------------------------------------------

    def envelope(self, data: dict, *, at: dt.datetime | None = None, seq: int | None = None):
        """A request as this partner signs it (tests alter it to attack us)."""
        return request_seal(
            data,
            secrets=self.mine,
            at=at or dt.datetime.now(dt.UTC),
            seq=next(self._seq) if seq is None else seq,
        )

    def send(self, operation: str, envelope: dict, *, token: str | None = None) -> Answer | dict:
        """Post ``envelope`` to our ``operation``; the opened answer (its signature checked
        with this partner's secrets), or the raw answer when it is unsigned."""
        token = self.token if token is None else token
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"{self.our_url}/{operation}",
            data=json.dumps(envelope, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = json.loads(response.read().decode("utf-8"))
        if not raw.get("Sig"):
            return raw
        return answer_open(raw, secrets=self.mine)

    def call(self, operation: str, data: dict, **kwargs) -> Answer:
        return self.send(operation, self.envelope(data), **kwargs)

    def login(self) -> Answer:
        answer = self.call(
            "query_token",
            {"OperatorID": self.mine.operator_id, "OperatorSecret": self.mine.operator_secret},
            token="",
        )
        self.token = answer.data.get("AccessToken", "")
        return answer


def post_json(url: str, body: dict) -> dict:
    """A plain POST (for requests no partner would sign)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        return {"http_status": exc.code}
