"""Production: PostgreSQL, a real broker, HTTPS. Refuses to start without the settings it cannot guess."""

from django.core.exceptions import ImproperlyConfigured

from hitl_platform.env import env_bool, env_int
from hitl_platform.settings.base import *  # noqa: F403
from hitl_platform.settings.base import ALLOWED_HOSTS, CELERY_BROKER_URL, LEDGER_ANCHOR_KEY, SECRET_KEY

DEBUG = False

if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be set to a random value of at least 50 characters.")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the host names this service answers to.")
if not CELERY_BROKER_URL:
    raise ImproperlyConfigured("CELERY_BROKER_URL must be set: production never runs tasks inline.")
if len(LEDGER_ANCHOR_KEY) < 32 or len(set(LEDGER_ANCHOR_KEY)) < 5:
    raise ImproperlyConfigured(
        "LEDGER_ANCHOR_KEY must be set to a random value of at least 32 characters: it seals the decision ledger."
    )

CELERY_TASK_ALWAYS_EAGER = False

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
