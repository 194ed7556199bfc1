"""Production mode refuses to start without its secrets; development has safe defaults."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


STRONG_KEY = "k3Yq-9vR_2mZpL7wXc4TnB8sHd1GfJ6aVe0UoIy5rKt3NhQ-PlMz"


def _load_settings(**env: str) -> subprocess.CompletedProcess:
    return _print_settings("s.DEBUG, s.TIME_ZONE, s.LANGUAGE_CODE", **env)


def _print_settings(expression: str, **env: str) -> subprocess.CompletedProcess:
    names = {"SECRET_KEY", "ALLOWED_HOSTS", "CHARGENET_ENV", "DEBUG"}
    clean = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("SECURE_")}
    return subprocess.run(
        [sys.executable, "-c", f"import chargenet.settings as s; print({expression})"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"ALLOWED_HOSTS": "example.com"}, "SECRET_KEY"),
        ({"SECRET_KEY": STRONG_KEY}, "ALLOWED_HOSTS"),
    ],
)
def test_production_fails_hard_without_required_settings(env, missing):
    result = _load_settings(CHARGENET_ENV="production", **env)
    assert result.returncode != 0
    assert f"{missing} must be set when CHARGENET_ENV=production" in result.stderr


def test_production_with_settings_loads_without_debug():
    result = _load_settings(
        CHARGENET_ENV="production", SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="example.com"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "Asia/Shanghai", "zh-hans"]


def test_development_defaults():
    result = _load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "Asia/Shanghai", "zh-hans"]


@pytest.mark.parametrize("value", ["prod", "Production", "production ", "", "staging"])
def test_an_unknown_environment_refuses_to_start(value):
    result = _load_settings(CHARGENET_ENV=value, SECRET_KEY=STRONG_KEY, ALLOWED_HOSTS="x.cn")
    assert result.returncode != 0
    assert (
        f"CHARGENET_ENV must be one of development, test, production; got {value!r}"
        in result.stderr
    )


@pytest.mark.parametrize("value", ["development", "test"])
def test_known_non_production_environments_run_with_debug(value):
    result = _load_settings(CHARGENET_ENV=value)
    assert (result.returncode, result.stdout.split()) == (0, ["True", "Asia/Shanghai", "zh-hans"])


@pytest.mark.parametrize("key", [" ", "   \t", "short-key", "ab" * 30])
def test_production_refuses_a_blank_or_weak_secret_key(key):
    result = _load_settings(CHARGENET_ENV="production", SECRET_KEY=key, ALLOWED_HOSTS="x.cn")
    assert result.returncode != 0
    expected = (
        "SECRET_KEY must be set when CHARGENET_ENV=production"
        if not key.strip()
        else "SECRET_KEY is too weak for CHARGENET_ENV=production"
    )
    assert expected in result.stderr


def test_production_turns_on_https_and_the_csp():
    result = _print_settings(
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.CSP_ENABLED,"
        " s.SESSION_COOKIE_SECURE",
        CHARGENET_ENV="production",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="x.cn",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https') True True"


def test_production_https_settings_are_configurable():
    result = _print_settings(
        "s.SECURE_SSL_REDIRECT, s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS",
        CHARGENET_ENV="production",
        SECRET_KEY=STRONG_KEY,
        ALLOWED_HOSTS="x.cn",
        SECURE_SSL_REDIRECT="off",
        SECURE_PROXY_SSL_HEADER="",
        SECURE_HSTS_SECONDS="60",
    )
    assert result.stdout.strip() == "False None 60"


def test_the_image_runs_in_production():
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    assert "ENV CHARGENET_ENV=production" in dockerfile


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
