import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

VALID_PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "hitl_platform.settings.production",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "hitl.example.org",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "LEDGER_ANCHOR_KEY": secrets.token_urlsafe(40),
}


def run_django_setup(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "CELERY_BROKER_URL")}
    env.update({k: v for k, v in env_overrides.items() if v is not None})
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_starts_with_every_required_setting():
    result = run_django_setup(VALID_PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must list"),
        ("CELERY_BROKER_URL", "CELERY_BROKER_URL must be set"),
        ("LEDGER_ANCHOR_KEY", "LEDGER_ANCHOR_KEY must be set"),
    ],
)
def test_production_refuses_to_start_without(missing, message):
    result = run_django_setup({**VALID_PRODUCTION_ENV, missing: None})
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("weak_key", ["short", "k" * 60])
def test_production_refuses_a_weak_secret_key(weak_key):
    result = run_django_setup({**VALID_PRODUCTION_ENV, "SECRET_KEY": weak_key})
    assert result.returncode != 0
    assert "random value of at least 50 characters" in result.stderr


def test_production_passes_the_deployment_checklist():
    env = {**os.environ, **VALID_PRODUCTION_ENV}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_malformed_boolean_setting_is_refused_with_its_name():
    result = run_django_setup({"DJANGO_SETTINGS_MODULE": "hitl_platform.settings.local", "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr


def test_every_periodic_job_names_a_task_the_workers_know():
    from django.conf import settings

    from hitl_platform.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
    assert {"reviews.sweep_review_queue", "audits.retention_purge", "audits.ledger_check_scheduled"} <= scheduled
    assert "audits.ledger_anchor" in scheduled
