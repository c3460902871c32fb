"""Settings of the real `celery worker` processes the worker tests start (``celery_worker_start`` in conftest.py).

The test settings, but as a deployed worker runs: the tasks a task queues (an audit's run, a webhook delivery)
go through the broker to the test's queue instead of running inline, and mail goes where the test says. A test
cannot change these in another process's memory, so they come from the worker's environment.
"""

from hitl_platform.env import env_str
from hitl_platform.settings.test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH") or None
