"""Point django-celery-beat rows at the reviews tasks' stable names.

The reviews tasks used to be registered under their module paths; they now carry explicit names. A beat row
still naming the old path would never run (its task is no longer registered), so the rows are renamed here.
"""

from django.db import migrations
from django.utils import timezone

RENAMED_TASKS = {
    "reviews.tasks.send_webhook_deliveries": "reviews.send_webhook_deliveries",
    "reviews.tasks.send_due_webhook_deliveries": "reviews.send_due_webhook_deliveries",
    "reviews.tasks.sweep_review_queue": "reviews.sweep_review_queue",
}


def _rename(apps, renames: dict[str, str]) -> None:
    periodic_task = apps.get_model("django_celery_beat", "PeriodicTask")
    changed = 0
    for old, new in renames.items():
        changed += periodic_task.objects.filter(task=old).update(task=new)
    if changed:
        # A running beat reloads its schedule only when this marker moves (queryset updates send no signals).
        apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


def use_stable_names(apps, schema_editor) -> None:
    _rename(apps, RENAMED_TASKS)


def use_module_paths(apps, schema_editor) -> None:
    _rename(apps, {new: old for old, new in RENAMED_TASKS.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0005_decision_reviewers_and_reason"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(use_stable_names, use_module_paths, elidable=False)]
