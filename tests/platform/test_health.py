"""``/healthz`` names the dependency that fails; ``bin/serve`` refuses to start without its settings."""

import os
import subprocess
from unittest import mock

import pytest
from django.db import OperationalError, connections

from tests.conftest import REPO_ROOT

BIN_SERVE = REPO_ROOT / "bin" / "serve"
SERVE_REQUIRES = ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS", "LEDGER_ANCHOR_KEY")


def test_healthy_with_the_database_and_no_broker_in_the_embedded_mode(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "not used (tasks run in-process)"}
    # A load balancer asks every few seconds: it must not get a session each time.
    assert not response.cookies


def test_a_broker_nothing_listens_on_answers_503_naming_the_broker(client, db, broker_unreachable):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["broker"].startswith("unreachable: ")
    assert "127.0.0.1:9" in body["broker"]


def test_a_failing_database_answers_503_naming_the_database(client, db):
    failure = OperationalError("could not connect to server: Connection refused")
    with mock.patch.object(connections["default"], "cursor", side_effect=failure):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "unreachable: could not connect to server: Connection refused",
        "broker": "not used (tasks run in-process)",
    }


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("CELERY_BROKER_URL"), reason="needs a broker (CELERY_BROKER_URL)")
def test_healthy_on_postgresql_with_a_real_broker(client, db, settings, monkeypatch):
    from hitl_platform.celery import app as celery_app

    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    settings.CELERY_TASK_ALWAYS_EAGER = False

    response = client.get("/healthz")

    assert response.status_code == 200, response.json()
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_serve_without_a_database_url_refuses_to_start_and_says_what_production_needs():
    result = _serve({"PATH": os.environ["PATH"]})

    assert result.returncode != 0
    assert "not set: DATABASE_URL" in result.stderr
    for name in SERVE_REQUIRES:
        assert name in result.stderr
    assert "docs/deployment.md" in result.stderr


@pytest.mark.parametrize("missing", SERVE_REQUIRES)
def test_serve_names_the_one_required_setting_that_is_missing(missing):
    env = {"PATH": os.environ["PATH"], **{name: "set" for name in SERVE_REQUIRES if name != missing}}

    result = _serve(env)

    assert result.returncode != 0
    assert f"not set: {missing}." in result.stderr


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN_SERVE)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30)
