"""The embedded default: a laptop with only Python. SQLite, eager Celery, DEBUG on, localhost only."""

from hitl_platform.env import env_bool, env_list, env_str
from hitl_platform.settings.base import *  # noqa: F403

DEBUG = env_bool("DEBUG", True)
# A fixed development key is acceptable only here: local settings never serve beyond localhost.
SECRET_KEY = env_str("SECRET_KEY", "local-development-only-not-a-secret")
LEDGER_ANCHOR_KEY = env_str("LEDGER_ANCHOR_KEY", "local-development-ledger-key-not-a-secret")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Receivers under development usually listen on this same laptop.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", True)
# Mail is printed where `make demo` runs, not sent.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# Static files straight from the apps and static/ (no collectstatic on a laptop).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
