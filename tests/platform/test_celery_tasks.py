"""Celery task names: stable, explicit names for every task of ours, which the beat schedule and its rows use."""

import importlib

import pytest
from django.apps import apps
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from hitl_platform.celery import app

OUR_APPS = ("reviews.", "audits.", "models_registry.", "hitl_platform.")


def our_tasks() -> dict:
    app.loader.import_default_modules()
    return {
        name: task
        for name, task in app.tasks.items()
        if name.startswith(OUR_APPS) or getattr(task.run, "__module__", "").startswith(OUR_APPS)
    }


def test_every_task_of_ours_has_a_name_of_its_own_not_its_module_path():
    tasks = our_tasks()
    assert {"reviews.sweep_review_queue", "reviews.send_due_webhook_deliveries", "audits.ledger_check"} <= set(tasks)
    named_by_path = sorted(name for name, task in tasks.items() if name == f"{task.run.__module__}.{task.run.__name__}")
    assert named_by_path == []


def test_every_beat_schedule_entry_names_a_registered_task():
    registered = set(our_tasks())
    scheduled = {key: entry["task"] for key, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert {key: task for key, task in scheduled.items() if task not in registered} == {}


@pytest.mark.django_db
def test_beat_rows_naming_the_old_module_paths_are_renamed_and_still_run():
    migration = importlib.import_module("reviews.migrations.0006_periodic_tasks_use_stable_task_names")
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    sweep = PeriodicTask.objects.create(name="sweep", task="reviews.tasks.sweep_review_queue", interval=every_minute)
    send = PeriodicTask.objects.create(
        name="operator's send", task="reviews.tasks.send_due_webhook_deliveries", interval=every_minute
    )
    other = PeriodicTask.objects.create(name="refresh", task="audits.dashboard_refresh", interval=every_minute)

    migration.use_stable_names(apps, schema_editor=None)

    renamed = {row.name: row.task for row in PeriodicTask.objects.filter(pk__in=[sweep.pk, send.pk, other.pk])}
    assert renamed == {
        "sweep": "reviews.sweep_review_queue",
        "operator's send": "reviews.send_due_webhook_deliveries",
        "refresh": "audits.dashboard_refresh",
    }
    assert set(renamed.values()) <= set(our_tasks())

    migration.use_module_paths(apps, schema_editor=None)
    assert PeriodicTask.objects.get(pk=sweep.pk).task == "reviews.tasks.sweep_review_queue"
