"""Settings shared by every environment. Deployment-specific values come from the environment only."""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF, UNSAFE_HASHES

from hitl_platform.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "hitl_platform.apps.GovernanceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_celery_beat",
    "axes",
    "csp",
    "hitl_platform.apps.HitlPlatformConfig",
    "models_registry",
    "reviews",
    "audits",
]

MIDDLEWARE = [
    # Outermost: whatever answers an API path with an HTML error page, the client gets the API's JSON.
    "hitl_platform.errors.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: it turns a lockout signalled by its backend into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "hitl_platform.urls"
WSGI_APPLICATION = "hitl_platform.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        # A persistent connection is checked before reuse, so a database restart costs no failed request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves a reviewer page and an API call at once: wait for the writer instead of
    # failing with "database is locked", and take the write lock up front so read-then-write never deadlocks.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
# One date-time format on every page, the admin's own fields included ("2026-03-14 09:26"; hitl_platform.humanize).
FORMAT_MODULE_PATH = ["hitl_platform.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# None in local and test settings, which serve static files from the apps.
STATIC_ROOT: Path | None = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# django-axes first: it refuses a locked-out username or address before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "hitl_platform.auth_backends.ModelBackendOneQuery"]

# How many proxies in front of the platform append to X-Forwarded-For (hitl_platform.client_address); 0 trusts
# none of it, so a client cannot choose the address it is throttled or locked out under.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Login brute force (django-axes), on the console, the reviewer login and the API token endpoint: after
# LOGIN_FAILURE_LIMIT wrong passwords for one username, or from one address, logins are refused for
# LOGIN_LOCKOUT_MINUTES. An administrator unlocks earlier in the console (Axes > Access attempts: delete them).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "hitl_platform.client_address.client_ip"
AXES_LOCKOUT_CALLABLE = "hitl_platform.lockout.lockout_response"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Request bodies: a 5,000-item prediction batch is a few MB; model files are uploaded as multipart files.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MODEL_FILE_MAX_BYTES = env_int("MODEL_FILE_MAX_BYTES", 200 * 1024 * 1024)
# A zip archive may expand far beyond its own size: what a model file may expand to, checked before expanding it.
MODEL_FILE_MAX_EXPANDED_BYTES = env_int("MODEL_FILE_MAX_EXPANDED_BYTES", 200 * 1024 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hitl_platform.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "hitl_platform.api.schema.HitlAutoSchema",
    # JSON only: people read the API in its docs (/api/v1/docs/); DRF's browsable pages would be a second,
    # inline-styled HTML surface under the Content-Security-Policy.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["hitl_platform.api.filters.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "hitl_platform.api.pagination.StandardCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "hitl_platform.api.exceptions.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "hitl_platform.api.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("API_TOKEN_THROTTLE", "20/minute")},
    # DRF's own reading of X-Forwarded-For, for any throttle not built on hitl_platform.client_address.
    "NUM_PROXIES": env_int("TRUSTED_PROXY_COUNT", 0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env_int("API_TOKEN_TTL_HOURS", 24 * 30)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": None,
}
# knox's token model is swappable: a model pointing at it (hitl_platform.ApiTokenDetails) needs the setting named.
KNOX_TOKEN_MODEL = "knox.AuthToken"

SPECTACULAR_SETTINGS = {
    "TITLE": "hitl_platform API",
    "DESCRIPTION": (
        "Register models and versions and request their promotion, submit predictions and report their outcomes, "
        "fetch final decisions, subscribe webhooks, and request exports and bias audits. Every prediction is routed "
        "(decided automatically or sent to human review) and every decision is recorded in the ledger."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a "status" of their own choices: each gets a named enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ExportStatusEnum": "audits.choices.JobStatus",
        "AuditStatusEnum": "audits.choices.AuditStatus",
        "AuditTriggerEnum": "audits.choices.AuditTrigger",
        "RetrainingTriggerEnum": "audits.choices.RetrainingTrigger",
        "ReviewTaskStatusEnum": "reviews.choices.TaskStatus",
    },
    # Bodies are documented as JSON, the way to send them; the version upload declares its multipart form itself.
    "PARSER_WHITELIST": ["hitl_platform.api.parsers.JSONParser"],
    # One tag per area, in the order an ML engineer meets them; every operation has exactly one.
    "TAGS": [
        {
            "name": "Auth",
            "description": "Exchange a username and password for an API token, and revoke it. Send the token on "
            "every other call as `Authorization: Token <token>` or `Authorization: Bearer <token>`.",
        },
        {
            "name": "Models",
            "description": "Register a model (labels, feature schema, sensitive attributes, risk tier, model card), "
            "list the models you may read and change your own.",
        },
        {
            "name": "Versions",
            "description": "Register a model's versions, each with its skops file and/or evaluation metrics, and read "
            "their stage, file hash, library versions and lineage.",
        },
        {
            "name": "Promotions",
            "description": "Ask for a version to move to staging or production. Someone other than the requester "
            "decides (four-eyes), in the console; the promotion gates run when it is approved.",
        },
        {
            "name": "Predictions",
            "description": "Submit predictions (cases) to be routed: decided automatically or sent to human review. "
            "Read them back and report their real-world outcomes.",
        },
        {
            "name": "Decisions",
            "description": "The feed of final decisions, oldest first by id, for the systems that act on them.",
        },
        {
            "name": "Webhooks",
            "description": "Receive final decisions as they are made: HMAC-SHA256-signed POSTs to your URL.",
        },
        {
            "name": "Routing",
            "description": "The auto-decide threshold a model's reviewed cases support, with its automation rate and "
            "review load. Read only: a person applies it in the console.",
        },
        {
            "name": "Audits",
            "description": "Bias audits of a model's decisions: queued, run in the background, and polled until they "
            "give a verdict and per-group figures.",
        },
        {
            "name": "Retraining",
            "description": "Retrain a model on its human-verified cases: a background job that registers a candidate "
            "version and requests its promotion.",
        },
        {
            "name": "Exports",
            "description": "Export one case's whole trail or a model's decisions over a period (CSV or JSON), "
            "written in the background and downloaded by their requester.",
        },
        {
            "name": "Training data",
            "description": "Stream a model's human-decided cases with their training labels, as CSV or JSON Lines.",
        },
    ],
}

# The decision ledger. LEDGER_ANCHOR_KEY seals every event (HMAC-SHA256 of its hash) and signs the head anchors:
# someone with database access but without this key cannot forge an event or an anchor. Production requires it;
# local and test settings use a development value. LEDGER_ANCHOR_URL is the append-only JSON Lines file, outside
# the database, that the anchor task adds a signed head to every LEDGER_ANCHOR_INTERVAL_SECONDS when the chain grew.
LEDGER_ANCHOR_KEY = env_str("LEDGER_ANCHOR_KEY")
LEDGER_ANCHOR_URL = env_str("LEDGER_ANCHOR_URL", str(BASE_DIR / "var" / "ledger-anchors.jsonl"))
LEDGER_ANCHOR_INTERVAL_SECONDS = env_int("LEDGER_ANCHOR_INTERVAL_SECONDS", 60)

# Celery: with no broker configured, tasks run eagerly in-process (the embedded default). Production
# settings refuse to start without a broker, so work never silently runs inline there.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 60 * 60)
# Redis redelivers an unacknowledged message after the visibility timeout: longer than the longest task may run,
# or a task still running near its limit would be delivered to a second worker (acks are late).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# The periodic work. django-celery-beat copies these into its tables, where operators can pause or retime them.
CELERY_BEAT_SCHEDULE = {
    "reviews-send-due-webhook-deliveries": {"task": "reviews.send_due_webhook_deliveries", "schedule": 60.0},
    "reviews-sweep-review-queue": {"task": "reviews.sweep_review_queue", "schedule": 60.0},
    "audits-dashboard-refresh-recent": {"task": "audits.dashboard_refresh", "schedule": 300.0, "kwargs": {"days": 2}},
    "audits-dashboard-refresh-window": {
        "task": "audits.dashboard_refresh",
        "schedule": crontab(hour=1, minute=15),
        "kwargs": {"days": 90},
    },
    "audits-retention-purge": {"task": "audits.retention_purge", "schedule": crontab(hour=2, minute=30)},
    "audits-ledger-check": {"task": "audits.ledger_check_scheduled", "schedule": crontab(hour=3, minute=0)},
    "audits-ledger-anchor": {"task": "audits.ledger_anchor", "schedule": float(LEDGER_ANCHOR_INTERVAL_SECONDS)},
    # A bias audit whose worker died is silent for STALE_AFTER (10 min): found within five more.
    "audits-bias-audits-requeue-stale": {"task": "audits.bias_audits_requeue_stale", "schedule": 300.0},
    # A retraining job beats at each stage; one silent for STALE_AFTER (15 min) lost its worker.
    "audits-retraining-requeue-stale": {"task": "audits.retraining_requeue_stale", "schedule": 300.0},
    # Models whose audit policy retrains after N new human labels.
    "audits-retraining-after-new-labels": {"task": "audits.retraining_after_new_labels", "schedule": 3600.0},
    "audits-drift-checks": {"task": "audits.drift_checks_daily", "schedule": crontab(hour=4, minute=30)},
}

# Webhooks go only to public addresses unless this is on (a laptop or test receiver on localhost).
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)

# Mail: a failed bias audit emails the model's owner and the compliance officers. SMTP unless EMAIL_BACKEND says
# otherwise; the local settings print mail to the console.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "hitl-platform@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where the console is reached, for links in mail (a worker has no request to take it from).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

# How long decisions and their history are kept. audits.checks refuses anything under 183 days (EU AI Act
# art. 19 and 26(6)); models under legal hold are never purged.
RETENTION_DAYS = env_int("RETENTION_DAYS", 365)

SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (django-csp 4) on every response: scripts, styles, images and fonts come from this
# server only (no CDN), no inline script and no eval, nothing may frame a page. There is no nonce: every script
# is a static file, including the API docs' init script (drf-spectacular's split view).
# Inline styles are refused too, so an injected <style> or style="" cannot restyle a page. The one exception is
# one fixed attribute in django-simple-history's history list (`style="border-top: 0"`), allowed by its hash
# rather than `'unsafe-inline'`; style-src-attr only covers attributes, never a <style> element.
# The API docs page alone adds `img-src data:` for Swagger UI's icons (its route in hitl_platform/urls.py).
CSP_HISTORY_PAGINATOR_STYLE = "'sha256-XMXSevYjgSjXgRafBFDvtjwX+yyWLrxfso9DcNZ9UXM='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": [UNSAFE_HASHES, CSP_HISTORY_PAGINATOR_STYLE],
        "img-src": [SELF],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
