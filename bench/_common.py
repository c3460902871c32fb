"""Helpers shared by the benchmarks: a fresh PostgreSQL database, a real server process, timing and figures.

Every benchmark runs against its own freshly created database (never a development or test one) and prints
each figure next to its target as a ratio, so a reader sees at once how far a run is from the goal. The load
average of the machine is printed too: on a shared 2-core machine other work moves the figures.
"""

import contextlib
import math
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


def database_url(name: str, *, admin_url: str = "") -> str:
    """The URL of a benchmark database on the server of ``BENCH_ADMIN_DATABASE_URL`` (default: local)."""
    admin = admin_url or os.environ.get("BENCH_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL)
    return admin.rsplit("/", 1)[0] + "/" + name


def recreate_database(url: str) -> None:
    """Drop and create the database of ``url`` (its name must look like a benchmark's own: hitl_bench_*)."""
    import psycopg

    server, name = url.rsplit("/", 1)
    if not re.fullmatch(r"hitl_bench_[a-z0-9_]+", name):
        raise SystemExit(f"refusing to drop a database that is not a benchmark's own: {name!r}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def production_environment(url: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, persistent connections) over plain HTTP on 127.0.0.1."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hitl_platform.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        # Production requires the ledger key; a benchmark that verifies in-process shares the environment.
        "LEDGER_ANCHOR_KEY": os.environ.get("LEDGER_ANCHOR_KEY") or secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": url,
        "DATABASE_CONN_MAX_AGE": "600",
        # Production refuses to start without a broker; nothing in these benchmarks enqueues a task.
        "CELERY_BROKER_URL": os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/14"),
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def manage(environment: dict[str, str], *args: str) -> None:
    subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=REPO, env=environment, check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(environment: dict[str, str], *, workers: int, port: int, log: Path) -> Iterator[str]:
    """A real gunicorn process from the venv on 127.0.0.1; yields its base URL, stops it on exit."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "hitl_platform.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "120",
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"gunicorn exited early:\n{log.read_text()[-3000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not listen within 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figures:
    """Printed figures with their targets, kept so a run can end with a one-line verdict per target."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str, *, target: float | None = None, higher_is_better=True) -> None:
        decimals = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        # A tiny figure (a numerical difference) would read 0.00: it is shown in scientific notation.
        shown = f"{value:.2e} {unit}" if 0 < abs(value) < 0.01 else f"{value:,.{decimals}f} {unit}"
        if target is None:
            verdict = ""
        else:
            ratio = value / target if higher_is_better else (target / value if value > 0 else math.inf)
            sign = ">=" if higher_is_better else "<"
            met = value >= target if higher_is_better else value < target
            verdict = f"target {sign} {target:,g} {unit}: ratio {ratio:.2f} {'met' if met else 'MISSED'}"
            if not met:
                self.missed.append(name)
        self.rows.append((name, shown, verdict))
        print(f"  {name:<48} {shown:>16}   {verdict}", flush=True)

    def summary(self) -> str:
        return "all targets met" if not self.missed else "targets missed: " + ", ".join(self.missed)


def machine_line() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min); python {sys.version.split()[0]}"


def peak_rss_mb() -> float:
    """VmHWM: the peak resident set of this process's own address space (since exec, or the last reset)."""
    return _proc_status_kb("VmHWM") / 1024


def current_rss_mb() -> float:
    return _proc_status_kb("VmRSS") / 1024


def _proc_status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} is not in /proc/self/status")
