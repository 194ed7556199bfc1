"""The store-nothing OCPP 1.6 central system the gateway benchmark compares against:
`python -m bench.baseline --port 9100`.

Built on the same `ocpp` library and `websockets` server as the gateway, it answers every
CALL a pile sends, Accepted, straight away: no database, no journal, no Redis. Whatever
the gateway serves beyond what this serves is the cost of keeping every frame and every
transaction. Not part of the product, and it needs no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import logging
import signal

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import serve

logging.getLogger("ocpp").setLevel(logging.WARNING)
_transactions = itertools.count(1)
_ACCEPTED = {"status": AuthorizationStatus.accepted}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class NothingStored(ChargePoint):
    """Answers a pile's CALLs as a central system would, keeping nothing."""

    @on(Action.boot_notification)
    def on_boot(self, **_kwargs):
        return call_result.BootNotification(
            current_time=_now(), interval=60, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **_kwargs):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status(self, **_kwargs):
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **_kwargs):
        return call_result.Authorize(id_tag_info=_ACCEPTED)

    @on(Action.start_transaction)
    def on_start(self, **_kwargs):
        return call_result.StartTransaction(
            transaction_id=next(_transactions), id_tag_info=_ACCEPTED
        )

    @on(Action.meter_values)
    def on_meter(self, **_kwargs):
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop(self, **_kwargs):
        return call_result.StopTransaction(id_tag_info=_ACCEPTED)


async def _handler(websocket) -> None:
    code = websocket.request.path.rstrip("/").rsplit("/", 1)[-1]
    try:
        await NothingStored(code, websocket).start()
    except Exception:  # the pile went away
        return


async def serve_forever(host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The gateway's own server options, so both pay the same for the WebSocket layer.
    async with serve(
        _handler, host, port, subprotocols=["ocpp1.6"], compression=None, ping_interval=None
    ) as server:
        sockets = ", ".join(str(s.getsockname()) for s in server.sockets)
        print(f"store-nothing server listening on {sockets}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
