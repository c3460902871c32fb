"""The Celery application. Workers and beat find tasks in each app's tasks.py."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_platform.settings.local")

app = Celery("hitl_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
