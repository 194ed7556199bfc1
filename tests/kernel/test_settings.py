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
        [sys.executable, "-c", "import chargenet.settings as s; print(s.DEBUG, s.TIME_ZONE)"],
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
    assert result.stdout.split() == ["False", "Asia/Shanghai"]


def test_development_defaults():
    result = _load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "Asia/Shanghai"]
