"""Personas and clients shared by the whole suite, and the switches CI uses to refuse a partial run.

The personas are the people of DESIGN.md's role table: an ML engineer, two reviewers, an adjudicator, a
compliance officer, an administrator, and an outsider with an account but no role.
"""

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import kombu.pools
import pytest
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

from hitl_platform.roles import Role
from tests.factories import UserFactory

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_OUTPUT = REPO_ROOT / "test-output"
REQUIRE_FULL_RUN = os.environ.get("HITL_REQUIRE_FULL_RUN") == "1"


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    uses_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    has_broker = bool(os.environ.get("CELERY_BROKER_URL"))
    for item in items:
        if "postgres" in item.keywords and not uses_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "celery_worker" in item.keywords and not (has_broker and uses_postgres):
            item.add_marker(pytest.mark.skip(reason="needs a broker (CELERY_BROKER_URL) and PostgreSQL"))


def pytest_sessionfinish(session, exitstatus):
    """In CI's full run a skipped test is a failure: PostgreSQL, worker and browser tests must all run."""
    if not REQUIRE_FULL_RUN or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        names = ", ".join(report.nodeid for report in skipped[:10])
        sys.stderr.write(f"\nHITL_REQUIRE_FULL_RUN: {len(skipped)} test(s) were skipped: {names}\n")
        session.exitstatus = 1


@pytest.fixture
def ml_engineer(db):
    return UserFactory(username="mia_ml", roles=[Role.ML_ENGINEER])


@pytest.fixture
def other_ml_engineer(db):
    return UserFactory(username="oscar_ml", roles=[Role.ML_ENGINEER])


@pytest.fixture
def reviewer_a(db):
    return UserFactory(username="rita_reviewer", roles=[Role.REVIEWER])


@pytest.fixture
def reviewer_b(db):
    return UserFactory(username="ravi_reviewer", roles=[Role.REVIEWER])


@pytest.fixture
def adjudicator(db):
    return UserFactory(username="ada_adjudicator", roles=[Role.REVIEWER, Role.ADJUDICATOR])


@pytest.fixture
def compliance_officer(db):
    return UserFactory(username="carla_compliance", roles=[Role.COMPLIANCE_OFFICER])


@pytest.fixture
def other_compliance_officer(db):
    return UserFactory(username="colin_compliance", roles=[Role.COMPLIANCE_OFFICER])


@pytest.fixture
def admin_user(db):
    user = UserFactory(username="alice_admin")
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def outsider(db):
    return UserFactory(username="olga_outsider")


@pytest.fixture
def api_client_for(db):
    """An API client that sends a fresh token of the given user, the way an ML engineer's script does."""

    def make(user) -> APIClient:
        client = APIClient()
        _, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return client

    return make


@pytest.fixture
def anonymous_api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def celery_queue(transactional_db, settings, worker_id) -> Iterator[str]:
    """This test's queue: what the test queues goes through the broker to it (eager off) and waits for a worker.

    Each pytest-xdist worker has its own test database, so each gets its own queue too.
    """
    from hitl_platform.celery import app as celery_app

    queue = f"hitl-test-{worker_id}-{os.getpid()}"
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        yield queue
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous


@pytest.fixture
def broker_unreachable(settings) -> Iterator[Callable[[], None]]:
    """The task queue is down: eager off and a broker URL nothing listens on, so sending a task fails at once.

    It yields ``back()``, which brings the queue back (eager Celery, as on a laptop) within the test.
    """
    from hitl_platform.celery import app as celery_app

    # broker_read_url and broker_write_url: Celery prefers a CELERY_BROKER_URL in the environment (CI's) to
    # broker_url, but not to these.
    names = (
        "task_always_eager",
        "broker_url",
        "broker_read_url",
        "broker_write_url",
        "task_publish_retry",
        "broker_connection_timeout",
    )
    previous = {name: celery_app.conf[name] for name in names}
    _celery_pools_drop(celery_app)
    celery_app.conf.update(
        task_always_eager=False,
        broker_url="redis://127.0.0.1:9/0",
        broker_read_url="redis://127.0.0.1:9/0",
        broker_write_url="redis://127.0.0.1:9/0",
        task_publish_retry=False,
        broker_connection_timeout=1,
    )
    settings.CELERY_TASK_ALWAYS_EAGER = False
    restored = False

    def back() -> None:
        nonlocal restored
        if not restored:
            restored = True
            _celery_pools_drop(celery_app)
            celery_app.conf.update(previous)

    try:
        yield back
    finally:
        back()


def _celery_pools_drop(celery_app) -> None:
    """Forget every cached broker connection and producer (the app's and kombu's), so the next send connects to
    the broker configured now."""
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def celery_worker_start(celery_queue, worker_id) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start real `celery worker` processes on this test's database and queue, each stopped after the test.

    ``start(extra_env={...})`` gives one worker more environment (e.g. its EMAIL_BACKEND); it returns the
    process, which a test may kill as a crash would.
    """
    names = itertools.count(1)
    with ExitStack() as workers:

        def start(extra_env: dict[str, str] | None = None) -> subprocess.Popen:
            name = f"{worker_id}-{next(names)}"
            return workers.enter_context(_celery_worker_running(celery_queue, name=name, extra_env=extra_env or {}))

        yield start


@pytest.fixture
def celery_worker_process(celery_worker_start) -> subprocess.Popen:
    """A real `celery worker` process on this test's database, fed through the configured broker."""
    return celery_worker_start()


@contextmanager
def _celery_worker_running(queue: str, *, name: str, extra_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    from hitl_platform.celery import app as celery_app

    db = connection.settings_dict
    database_url = (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "DATABASE_URL": database_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        **extra_env,
    }
    node = f"{queue}-{name}"
    log_path = TEST_OUTPUT / f"celery-worker-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hitl_platform",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "-Q",
                queue,
                "-n",
                f"{node}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_worker(celery_app, queue, node, process, log_path)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_worker(celery_app, queue: str, node: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
        consuming = [queues for hostname, queues in replies.items() if hostname.startswith(f"{node}@")]
        if any(q["name"] == queue for queues in consuming for q in queues):
            return
    raise RuntimeError(f"celery worker did not start within 60 s:\n{log_path.read_text()[-3000:]}")


def wait_until(predicate, *, timeout: float = 60.0, interval: float = 0.2):
    """Poll until predicate() returns something truthy (for work done by another process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
