"""Settings for the test suite: SQLite and eager Celery unless DATABASE_URL / CELERY_BROKER_URL say otherwise."""

from hitl_platform.env import env_str
from hitl_platform.settings.base import *  # noqa: F403
from hitl_platform.settings.base import BASE_DIR

DEBUG = False
SECRET_KEY = env_str("SECRET_KEY", "test-only-not-a-secret")
LEDGER_ANCHOR_KEY = env_str("LEDGER_ANCHOR_KEY", "test-only-ledger-key-not-a-secret")
# The audits tests point this at a file of their own (tests/audits/conftest.py).
LEDGER_ANCHOR_URL = env_str("LEDGER_ANCHOR_URL", str(BASE_DIR / "test-output" / "ledger-anchors.jsonl"))
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = BASE_DIR / "test-output" / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests run tasks eagerly; tests marked celery_worker switch to a real worker themselves.
CELERY_TASK_ALWAYS_EAGER = True
# The webhook tests' receivers listen on 127.0.0.1; the tests of the address check turn this off.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
