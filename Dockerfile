# The platform's one image: gunicorn by default; the Celery worker and beat run from it with their own commands
# (compose.yaml). docs/deployment.md explains the layout; .ci/run builds the same Python environment on every run.
FROM python:3.11-slim

# The code runs from /app (PYTHONPATH), where templates/ and static/ sit beside it: `pip install .` installs the
# pinned dependencies, and the copy of the package it also installs is never the one imported.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=hitl_platform.settings.production \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/var/lib/hitl/media \
    LEDGER_ANCHOR_URL=/var/lib/hitl/anchors/ledger-anchors.jsonl \
    WEB_CONCURRENCY=2

# The processes run as `hitl`, which owns only the folders they write; the code stays root's and read-only.
RUN groupadd --system --gid 10001 hitl \
    && useradd --system --uid 10001 --gid hitl --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin hitl \
    && install -d -o hitl -g hitl -m 0750 \
        /var/lib/hitl/media /var/lib/hitl/media/model_files /var/lib/hitl/media/exports /var/lib/hitl/anchors

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hitl_platform/ hitl_platform/
COPY models_registry/ models_registry/
COPY reviews/ reviews/
COPY audits/ audits/
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && python -m compileall -q hitl_platform models_registry reviews audits

COPY manage.py ./
COPY templates/ templates/
COPY static/ static/
# Production settings refuse to load without their secrets. These values exist for this one command, which signs
# nothing and opens no connection; they never reach the image's environment.
RUN SECRET_KEY=build-time-only-collectstatic-signs-nothing-with-this-value-0123456789 \
    LEDGER_ANCHOR_KEY=build-time-only-collectstatic-value-0123456789 \
    ALLOWED_HOSTS=build.invalid \
    CELERY_BROKER_URL=redis://build.invalid:6379/0 \
    python manage.py collectstatic --noinput

USER hitl
EXPOSE 8000
# Workers: WEB_CONCURRENCY, which gunicorn reads itself.
CMD ["gunicorn", "hitl_platform.wsgi", "--bind", "0.0.0.0:8000", "--timeout", "120"]
