"""Production mode refuses to start without its secrets; development has safe defaults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import chargenet.settings as s; print(s.DEBUG, s.TIME_ZONE, s.LANGUAGE_CODE)",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"ALLOWED_HOSTS": "example.com"}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 50}, "ALLOWED_HOSTS"),
    ],
)
def test_production_fails_hard_without_required_settings(env, missing):
    result = _load_settings(CHARGENET_ENV="production", **env)
    assert result.returncode != 0
    assert f"{missing} must be set when CHARGENET_ENV=production" in result.stderr


def test_production_with_settings_loads_without_debug():
    result = _load_settings(
        CHARGENET_ENV="production", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "Asia/Shanghai", "zh-hans"]


def test_development_defaults():
    result = _load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "Asia/Shanghai", "zh-hans"]


def _load_notification_settings(**env: str) -> subprocess.CompletedProcess:
    names = "FAULTS_NOTIFICATION_SENDER WECHAT_APP_ID WECHAT_TEMPLATE_BEING_CHECKED WECHAT_API_BASE"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("WECHAT_", "FAULTS_"))}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import chargenet.settings as s; print(*(getattr(s, n) for n in {names.split()!r}))",
        ],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


WECHAT_ENV = {
    "FAULTS_NOTIFICATION_SENDER": "wechat",
    "WECHAT_APP_ID": "wx-app",
    "WECHAT_APP_SECRET": "s3cret",
    "WECHAT_TEMPLATE_CHARGE_FINISHED": "TPL-FIN",
    "WECHAT_TEMPLATE_BEING_CHECKED": "TPL-CHK",
}


@pytest.mark.parametrize(
    ("env", "printed"),
    [
        ({}, "log   https://api.weixin.qq.com"),
        ({**WECHAT_ENV, "WECHAT_API_BASE": "http://fake"}, "wechat wx-app TPL-CHK http://fake"),
    ],
)
def test_notification_settings_come_from_the_environment(env, printed):
    result = _load_notification_settings(**env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == printed


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**WECHAT_ENV, "WECHAT_APP_SECRET": ""}, "WECHAT_APP_SECRET must be set when"),
        ({"FAULTS_NOTIFICATION_SENDER": "sms"}, 'FAULTS_NOTIFICATION_SENDER must be "log" or'),
    ],
)
def test_bad_notification_settings_fail_at_start(env, message):
    result = _load_notification_settings(**env)
    assert result.returncode != 0
    assert message in result.stderr
