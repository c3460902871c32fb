"""Training-data export benchmark on PostgreSQL: 1,000,000 human-decided cases streamed through the real view.

Targets (the training-data issue): ``GET /api/v1/models/{name}/training-data/`` streams 1,000,000 rows at
50,000 rows/s or more, in flat memory: the serving process's peak resident set grows by less than 100 MB while
it streams them.

Data: one model registered through the services, with a feature schema of four features, two sensitive
attributes and one version, then 1,000,000 cases written with psycopg COPY (every concrete column written, those
the export does not read at their model defaults), every one decided by reviewer consensus and 20 % with a
reported outcome (which becomes its training label).

Each export runs in a child process under the production settings (DEBUG off, persistent connections, the
start-up heap frozen as ``hitl_platform/wsgi.py`` does), which calls Django's real WSGI application with an API
token, exactly as gunicorn would, and reads the streamed body to its end, counting the rows. The clock runs from
the call to the last byte. Memory is the child's own: its peak resident set (VmHWM) is reset to the current one
just before the call (``/proc/self/clear_refs``), and the growth is the peak after the stream less the resident
set before it. Three exports are timed: CSV (the default), JSON Lines, and CSV with the sensitive attributes
(by an administrator: that one is sealed in the ledger, which the run checks).

    .venv/bin/python bench/training_export.py [--rows N] [--reuse]

Its database, hitl_bench_training_export on the server of BENCH_ADMIN_DATABASE_URL (default: the local
PostgreSQL), is dropped and recreated unless --reuse is given and it already holds the data.
"""

import argparse
import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql

from bench._common import (
    REPO,
    VENV_BIN,
    Figures,
    current_rss_mb,
    database_url,
    machine_line,
    peak_rss_mb,
    production_environment,
    recreate_database,
)

DATABASE_URL = database_url("hitl_bench_training_export")
# The parent registers the model (its events start the chain) and a child seals the sensitive export: one key.
os.environ.setdefault("LEDGER_ANCHOR_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("LEDGER_ANCHOR_URL", str(REPO / "test-output" / "bench" / "training-export-anchors.jsonl"))

TARGET_ROWS_PER_S = 50_000.0
TARGET_GROWTH_MB = 100.0

MODEL_NAME = "bench-credit"
OWNER = "bench_owner"
ADMIN = "bench_admin"
POSITIVE = "approve"
NEGATIVE = "deny"
FEATURE_ORDER = ["credit_amount", "duration", "age", "purpose"]
PURPOSES = ("car", "furniture", "education", "business", "repairs")
FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0},
        "duration": {"type": "integer", "minimum": 1},
        "age": {"type": "integer", "minimum": 18},
        "purpose": {"enum": list(PURPOSES)},
    },
    "required": FEATURE_ORDER,
    "additionalProperties": False,
    "x-feature-order": FEATURE_ORDER,
}
SEXES = ("female", "male")
AGE_BANDS = ("18-34", "35-50", "51+")
OUTCOME_SHARE = 0.20
OVERRIDE_SHARE = 0.10
SPAN_DAYS = 365
SEED = 7
RUNS = (
    ("CSV", {"format": "csv"}, OWNER),
    ("JSON Lines", {"format": "jsonl"}, OWNER),
    ("CSV with sensitive attributes", {"format": "csv", "include_sensitive": "true"}, ADMIN),
)


def peak_rss_reset() -> bool:
    """Make VmHWM the current resident set (Linux 4.0+); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# The load


def _copy_value(value):
    """A model default as COPY takes it: JSON fields as JSON text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _setup_platform():
    """People and a model made through the services, as in production."""
    from hitl_platform.roles import Role
    from hitl_platform.services import user_create_with_roles
    from models_registry.services import ml_model_register, model_version_register

    owner = user_create_with_roles(username=OWNER, password=secrets.token_urlsafe(16), roles=[Role.ML_ENGINEER])
    admin = user_create_with_roles(username=ADMIN, password=secrets.token_urlsafe(16), roles=[])
    admin.is_staff = admin.is_superuser = True
    admin.save(update_fields=["is_staff", "is_superuser"])
    model = ml_model_register(
        owner=owner,
        name=MODEL_NAME,
        task="binary",
        labels=[POSITIVE, NEGATIVE],
        positive_label=POSITIVE,
        feature_schema=FEATURE_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        intended_use="Benchmark.",
    )
    version = model_version_register(model=model, actor=owner, metrics={"accuracy": 0.8})
    return owner, model, version


def _cases(rows: int) -> dict[str, list]:
    """Every case's features, group, labels and outcome, drawn at once (seeded)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    drawn = {
        "amount": rng.integers(250, 20000, rows),
        "duration": rng.integers(4, 73, rows),
        "age": rng.integers(18, 80, rows),
        "purpose": rng.integers(0, len(PURPOSES), rows),
        "sex": rng.integers(0, len(SEXES), rows),
        "approved": rng.random(rows) < 0.6,
        "confidence": np.round(rng.uniform(0.5, 0.8, rows), 4),
        "overridden": rng.random(rows) < OVERRIDE_SHARE,
        "outcome": rng.random(rows) < OUTCOME_SHARE,
        "outcome_approve": rng.random(rows) < 0.55,
        "offset": rng.random(rows),
    }
    return {name: values.tolist() for name, values in drawn.items()}


def _age_band(age: int) -> str:
    return AGE_BANDS[0] if age < 35 else AGE_BANDS[1] if age <= 50 else AGE_BANDS[2]


def load(rows: int) -> None:
    """Migrate, make the platform's own records through the services, then COPY the million-row tables."""
    from django.core.management import call_command
    from django.db import connection

    from reviews.models import Decision, Prediction

    call_command("migrate", verbosity=0)
    owner, model, version = _setup_platform()
    started = time.perf_counter()
    drawn = _cases(rows)
    now = datetime.now(UTC)
    raw = connection.connection  # psycopg 3 connection under Django's
    with raw.cursor() as cursor:
        # Every column of both tables, those this benchmark does not care about at their model defaults, so the
        # load keeps working when a column is added.
        prediction_fields = Prediction._meta.concrete_fields
        prediction_defaults = {field.attname: _copy_value(field.get_default()) for field in prediction_fields}
        decision_fields = Decision._meta.concrete_fields
        decision_defaults = {field.attname: _copy_value(field.get_default()) for field in decision_fields}
        prediction_cols = ", ".join(field.column for field in prediction_fields)
        decision_cols = ", ".join(field.column for field in decision_fields)
        decisions = []
        with cursor.copy(f"COPY reviews_prediction ({prediction_cols}) FROM STDIN") as copy:
            for index in range(rows):
                pk = index + 1
                created = now - timedelta(seconds=(rows - index - drawn["offset"][index]) * SPAN_DAYS * 86400 / rows)
                age = drawn["age"][index]
                features = json.dumps(
                    {
                        "credit_amount": drawn["amount"][index],
                        "duration": drawn["duration"][index],
                        "age": age,
                        "purpose": PURPOSES[drawn["purpose"][index]],
                    }
                )
                digest = hashlib.sha256(features.encode()).hexdigest()
                label = POSITIVE if drawn["approved"][index] else NEGATIVE
                confidence = drawn["confidence"][index]
                values = {
                    **prediction_defaults,
                    "id": pk,
                    "model_id": model.pk,
                    "version_id": version.pk,
                    "external_id": f"application-{pk}",
                    "payload_sha256": digest,
                    "input_sha256": digest,
                    "features": features,
                    "sensitive_attributes": json.dumps({"sex": SEXES[drawn["sex"][index]], "age_band": _age_band(age)}),
                    "predicted_label": label,
                    "confidence": confidence,
                    "scores": json.dumps({label: confidence, flipped(label): round(1 - confidence, 4)}),
                    "route": "review",
                    "submitted_by_id": owner.pk,
                    "created_at": created,
                }
                if drawn["outcome"][index]:
                    values["outcome_label"] = POSITIVE if drawn["outcome_approve"][index] else NEGATIVE
                    values["outcome_reported_at"] = created + timedelta(days=30)
                    values["outcome_reported_by_id"] = owner.pk
                copy.write_row([values[field.attname] for field in prediction_fields])
                final = flipped(label) if drawn["overridden"][index] else label
                decisions.append((pk, final, created + timedelta(hours=2)))
        with cursor.copy(f"COPY reviews_decision ({decision_cols}) FROM STDIN") as copy:
            for pk, final, decided_at in decisions:
                values = {
                    **decision_defaults,
                    "id": pk,
                    "prediction_id": pk,
                    "model_id": model.pk,
                    "final_label": final,
                    "source": "consensus",
                    "agreement": 1.0 if pk % 3 else 2 / 3,
                    "decided_at": decided_at,
                }
                copy.write_row([values[field.attname] for field in decision_fields])
        for table in ("reviews_prediction", "reviews_decision"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    print(f"  predictions and decisions: {rows:,} each in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def flipped(label: str) -> str:
    return NEGATIVE if label == POSITIVE else POSITIVE


# The timed export, in a child process


def _api_token(username: str) -> str:
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken

    return AuthToken.objects.create(user=get_user_model().objects.get(username=username))[1]


def child_stream(*, username: str, query: str) -> dict:
    """Under the production settings: one export through the WSGI application, read to its last byte."""
    from wsgiref.util import setup_testing_defaults

    from hitl_platform.wsgi import application  # sets Django up and freezes the start-up heap, as served

    token = _api_token(username)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/v1/models/{MODEL_NAME}/training-data/",
        "QUERY_STRING": query,
        "HTTP_HOST": "localhost",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.input": io.BytesIO(),
    }
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(headers)

    reset = peak_rss_reset()
    rss_before = current_rss_mb()
    started = time.perf_counter()
    body = application(environ, start_response)
    first_byte = None
    size = lines = 0
    head = b""
    try:
        for chunk in body:
            if first_byte is None:
                first_byte = time.perf_counter() - started
                head = chunk[:2000]
            size += len(chunk)
            lines += chunk.count(b"\n")
    finally:
        body.close()
    elapsed = time.perf_counter() - started
    if not answer["status"].startswith("200"):
        raise SystemExit(f"export answered {answer['status']}: {head[:500]!r}")
    return {
        "seconds": elapsed,
        "first_byte_seconds": first_byte,
        "bytes": size,
        "lines": lines,
        "head": head.decode(errors="replace").splitlines()[:2],
        "content_type": answer["headers"].get("Content-Type"),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "peak_was_reset": reset,
        "settings": os.environ["DJANGO_SETTINGS_MODULE"],
    }


def run_child(*args: str, environment: dict[str, str]) -> dict:
    """Run this script as a child (``--child ...``) and return the JSON it prints last."""
    completed = subprocess.run(
        [str(VENV_BIN / "python"), str(Path(__file__).resolve()), *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{completed.stderr[-4000:]}{completed.stdout[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def explain_export() -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the CSV export's query, as the selector has PostgreSQL COPY it (with the
    settings the export's transaction takes)."""
    from django.db import connection, transaction

    from audits.selectors.training_data import EXPORT_SETTINGS, TrainingDataFilter, training_csv_query
    from audits.services.training_data import training_feature_names
    from models_registry.models import MLModel

    model = MLModel.objects.get(name=MODEL_NAME)
    query = training_csv_query(TrainingDataFilter(model_id=model.pk), feature_names=training_feature_names(model))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(EXPORT_SETTINGS)
        cursor.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) {}").format(query))
        return [row[0] for row in cursor.fetchall()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="Keep the database if it already holds --rows cases.")
    parser.add_argument("--child", choices=("stream",), help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--query", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child == "stream":
        print(json.dumps(child_stream(username=args.user, query=args.query)))
        return 0

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_platform.settings.test")
    os.environ["DATABASE_URL"] = DATABASE_URL
    print(machine_line())
    reuse = False
    if args.reuse:
        try:
            with psycopg.connect(DATABASE_URL) as conn:
                reuse = conn.execute("SELECT count(*) FROM reviews_decision").fetchone()[0] == args.rows
        except psycopg.Error:
            reuse = False
    if not reuse:
        recreate_database(DATABASE_URL)
    django.setup()
    if not reuse:
        print(f"Loading {args.rows:,} consensus-decided cases into {DATABASE_URL.rsplit('/', 1)[1]}...", flush=True)
        load(args.rows)

    from urllib.parse import urlencode

    from audits.events import LedgerEvent
    from audits.models import DecisionEvent

    # Warms the caches for the timed runs that follow, and shows where the database spends its time.
    print("\nThe CSV export's query, as the selector has PostgreSQL COPY it:")
    for line in explain_export():
        print(f"    {line}")

    production = production_environment(
        DATABASE_URL,
        LEDGER_ANCHOR_KEY=os.environ["LEDGER_ANCHOR_KEY"],
        LEDGER_ANCHOR_URL=os.environ["LEDGER_ANCHOR_URL"],
    )
    sealed_before = DecisionEvent.objects.filter(event_type=LedgerEvent.TRAINING_DATA_EXPORTED).count()
    figures = Figures()
    print("\nExports through the WSGI application, each in its own process under the production settings:")
    for label, params, username in RUNS:
        run = run_child("--child", "stream", "--user", username, "--query", urlencode(params), environment=production)
        rows = run["lines"] - (1 if params["format"] == "csv" else 0)
        print(
            f"\n  {label} ({run['content_type']}, by {username}): {rows:,} rows, {run['bytes'] / 2**20:,.1f} MiB in "
            f"{run['seconds']:.2f} s; first byte after {run['first_byte_seconds']:.3f} s"
        )
        for line in run["head"]:
            print(f"    {line[:150]}")
        if rows != args.rows:
            raise SystemExit(f"  MISSED: {label} streamed {rows:,} rows, not {args.rows:,}")
        figures.add(f"{label}: rows per second", rows / run["seconds"], "rows/s", target=TARGET_ROWS_PER_S)
        figures.add(
            f"{label}: peak RSS growth while streaming",
            run["peak_rss_mb"] - run["rss_before_mb"],
            "MB",
            target=TARGET_GROWTH_MB,
            higher_is_better=False,
        )
        figures.add("  resident set before the request", run["rss_before_mb"], "MB")
        if not run["peak_was_reset"]:
            print("    (VmHWM could not be reset: the growth counts any earlier peak too, so it may be overstated)")
    sealed = DecisionEvent.objects.filter(event_type=LedgerEvent.TRAINING_DATA_EXPORTED).count() - sealed_before
    print(f"\n  training_data.exported events written: {sealed} (one expected, for the sensitive export)")
    if sealed != 1:
        raise SystemExit("  MISSED: the sensitive export must leave exactly one ledger event")
    print(f"  exports ran in child processes under {production['DJANGO_SETTINGS_MODULE']}")
    print(f"\n{figures.summary()}")
    return 1 if figures.missed else 0


if __name__ == "__main__":
    sys.exit(main())
