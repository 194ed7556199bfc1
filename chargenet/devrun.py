"""`make run`: migrate, load the demo network, then run every process of chargenet.

Runs under `python -m chargenet.embedded run`, which has put DATABASE_URL / REDIS_URL in
the environment. Ctrl-C (or SIGTERM) stops every child, then the wrapper stops the
embedded engines: nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
WEB_PORT = os.environ.get("WEB_PORT", "8000")
GATEWAY_PORT = os.environ.get("GATEWAY_PORT", "9000")
DEMO_PILES = os.environ.get("DEMO_PILES", "12")
YKC_PORT = os.environ.get("YKC_PORT", "27600")
LOGS = ROOT / "var" / "log"


def manage(*args: str) -> list[str]:
    return [PY, str(ROOT / "manage.py"), *args]


PROCESSES: dict[str, list[str]] = {
    "web": manage("runserver", f"127.0.0.1:{WEB_PORT}", "--noreload"),
    "gateway": manage("rungateway", "--host", "127.0.0.1", "--port", GATEWAY_PORT),
    "worker": [PY, "-m", "celery", "-A", "chargenet", "worker", "-l", "info", "-c", "2"],
    "beat": [
        PY, "-m", "celery", "-A", "chargenet", "beat", "-l", "info",
        "-s", str(ROOT / "var" / "celerybeat-schedule"),
    ],
    "piles": manage(
        "simulate_piles", "--url", f"ws://127.0.0.1:{GATEWAY_PORT}/ocpp",
        "--count", DEMO_PILES, "--scenario", "demo", "--forever",
    ),
    "ykc": manage("runykc", "--host", "127.0.0.1", "--port", YKC_PORT),
    "ykc-piles": manage(
        "simulate_piles", "--protocol", "ykc", "--url", f"tcp://127.0.0.1:{YKC_PORT}",
        "--count", DEMO_PILES, "--scenario", "demo", "--forever",
    ),
}  # fmt: skip

# The drivers' H5 pages log in through a local fake of WeChat's OAuth (unless a real
# official account is configured): the fake's user is a demo driver no simulated pile uses.
WECHAT_FAKE_PORT = os.environ.get("WECHAT_FAKE_PORT", "8010")
DEMO_DRIVER_OPENID = "oDemoWx0000000000000000020"


def demo_wechat() -> None:
    """Without a real official account, run the fake WeChat and point every process at it."""
    if os.environ.get("WECHAT_APP_ID"):
        return
    PROCESSES["wechat"] = [
        PY, "-m", "integrations.wechat.fake", "--port", WECHAT_FAKE_PORT,
        "--secret", "demo-secret", "--openid", DEMO_DRIVER_OPENID,
    ]  # fmt: skip
    base = f"http://127.0.0.1:{WECHAT_FAKE_PORT}"
    os.environ.update(
        WECHAT_APP_ID="wxdemo",
        WECHAT_APP_SECRET="demo-secret",
        WECHAT_API_BASE=base,
        WECHAT_OAUTH_AUTHORIZE_URL=f"{base}/connect/oauth2/authorize",
    )
    # The demo piles wait for a start before they "plug in".
    os.environ.setdefault("DRIVER_START_REQUIRES_PLUG", "0")


WECHATPAY_FAKE_PORT = os.environ.get("WECHATPAY_FAKE_PORT", "8011")


def dev_wechat_pay() -> str:
    """Without a real merchant (WECHATPAY_MCHID), recharges go to a local fake WeChat Pay
    with development keys under var/: its settings are put in the children's environment."""
    if os.environ.get("WECHATPAY_MCHID"):
        return "WeChat Pay (merchant " + os.environ["WECHATPAY_MCHID"] + ")"
    from integrations.wechat.pay_fake import PayKeys

    keys_path = ROOT / "var" / "wechatpay-dev-keys.json"
    url = f"http://127.0.0.1:{WECHATPAY_FAKE_PORT}"
    os.environ.update(PayKeys.load_or_generate(keys_path).settings_env(url=url))
    os.environ.setdefault("WECHATPAY_NOTIFY_BASE", f"http://127.0.0.1:{WEB_PORT}")
    PROCESSES["wechatpay"] = [
        PY, "-m", "integrations.wechat.pay_fake", "--port", WECHATPAY_FAKE_PORT,
        "--keys", str(keys_path),
    ]  # fmt: skip
    return f"fake, {url} (a recharge is paid from the wallet page)"


def main() -> int:
    os.chdir(ROOT)
    LOGS.mkdir(parents=True, exist_ok=True)
    demo_wechat()
    wechat_pay = dev_wechat_pay()
    subprocess.run(manage("migrate", "--no-input", "-v", "0"), check=True)
    subprocess.run(manage("load_demo"), check=True)

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, cmd in PROCESSES.items():
        log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        # Own process group: Ctrl-C reaches us once, and we stop children in order.
        children[name] = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    print(
        "\nchargenet is running\n"
        f"  back office : http://127.0.0.1:{WEB_PORT}/admin/\n"
        "  login       : admin / chargenet  (operator admin; also 'subop' and 'service')\n"
        f"  API docs    : http://127.0.0.1:{WEB_PORT}/api/docs/\n"
        f"  driver H5   : http://127.0.0.1:{WEB_PORT}/h5/  (open it: the fake WeChat logs you "
        "in as demo driver 车主20; its texted codes are in the web log)\n"
        f"  OCPP        : ws://127.0.0.1:{GATEWAY_PORT}/ocpp/<pile code>\n"
        f"  YKC 1.6     : tcp://127.0.0.1:{YKC_PORT}\n"
        f"  WeChat Pay  : {wechat_pay}\n"
        f"  logs        : {LOGS}/\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"chargenet: {name} exited with {proc.returncode}; see {LOGS / name}.log")
                stopping, code = True, 1
                break
        time.sleep(0.5)
    for proc in children.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print("chargenet: stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
