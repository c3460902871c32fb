"""Retraining benchmark on PostgreSQL: a logistic-regression candidate learnt from 100,000 human-decided cases.

Targets (the retraining issue), over 100,000 cases decided by humans, with a scikit-learn pipeline
(``StandardScaler`` then ``LogisticRegression``) as the base version:

- a retraining job finishes in under 30 s end to end: from the call of ``retraining_run`` on a queued job to its
  stored SUCCEEDED row (candidate version registered, its holdout audit sealed, its promotion request pending);
- of that, building the training set from the database (the job's own ``timings["training_set_s"]``: loading
  the base model file, then the training-set query and its snapshot) takes under 5 s;
- the job's process peaks under 1 GB of resident memory.

A job with a demographic-parity constraint on sex (fairlearn's ``ExponentiatedGradient``, which refits the
pipeline many times) is timed once too, for information: it has no target.

Data: an ML engineer and a binary credit model registered through the services, with version 1 holding a real
fitted pipeline (a skops file) in production, then the predictions and their decisions written with psycopg COPY
(every concrete column written, those retraining does not read at their model defaults). Every case was decided
by reviewer consensus (agreement 1.0); its three features are a credit amount, a duration and an age, its
sensitive attributes a sex and an age band. The model's label and the human final label each follow the rule
"approve when credit_amount / duration < 300", each with 5 % of the cases flipped (independent draws); 10 % of
the cases carry a reported outcome (the same rule, its own 5 % flipped), which becomes their training label.

Each timed job runs in a child process under the production settings (DEBUG off, persistent connections, a real
broker configured though nothing is enqueued), as a Celery worker would run it: the child starts Django, requests
the job through the service (its queue message suppressed), takes the time, calls ``retraining_run`` and reads
back the stored row. Its peak memory is the child's VmHWM (the peak resident set of its own address space, from
/proc/self/status). Every job leaves a candidate version and a pending promotion request behind; one job at a
time per model, so the children run one after another.

    .venv/bin/python bench/retrain.py [--rows N] [--repeats R] [--reuse]

Its database, hitl_bench_retrain on the server of BENCH_ADMIN_DATABASE_URL (default: the local PostgreSQL), is
dropped and recreated unless --reuse is given and it already holds the data. Model files go to
test-output/bench/retrain-media, emptied with the database.
"""

import argparse
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

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

DATABASE_URL = database_url("hitl_bench_retrain")
# The parent registers the model (its events start the chain) and the children seal the jobs' events: one key.
os.environ.setdefault("LEDGER_ANCHOR_KEY", secrets.token_urlsafe(40))
os.environ.setdefault("LEDGER_ANCHOR_URL", str(REPO / "test-output" / "bench" / "retrain-anchors.jsonl"))
MEDIA_ROOT = REPO / "test-output" / "bench" / "retrain-media"
# The production settings read it from the environment; the parent's test settings fix their own, set after setup.
os.environ["MEDIA_ROOT"] = str(MEDIA_ROOT)

TARGET_JOB_S = 30.0
TARGET_TRAINING_SET_S = 5.0
TARGET_PEAK_MB = 1024.0

MODEL_NAME = "bench-credit"
OWNER = "bench_owner"
POSITIVE = "approve"
NEGATIVE = "deny"
FEATURES = ("credit_amount", "duration", "age")
FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0},
        "duration": {"type": "integer", "minimum": 1},
        "age": {"type": "integer", "minimum": 18},
    },
    "required": list(FEATURES),
    "additionalProperties": False,
}
SEXES = ("female", "male")
AGE_BANDS = (("18-34", 18, 34), ("35-50", 35, 50), ("51+", 51, 75))
APPROVE_BELOW_MONTHLY_AMOUNT = 300
FLIP_SHARE = 0.05
OUTCOME_SHARE = 0.10
BASE_TRAINING_ROWS = 400
SPAN_DAYS = 365
SEED = 17
MITIGATION = "demographic_parity"
MITIGATION_ATTRIBUTE = "sex"


# The load


def _copy_value(value):
    """A model default as COPY takes it: JSON fields as JSON text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def _rule_labels(amount, duration):
    import numpy as np

    return np.where(amount / duration < APPROVE_BELOW_MONTHLY_AMOUNT, POSITIVE, NEGATIVE)


def _flipped_share(rng, labels):
    """``labels`` with FLIP_SHARE of them, drawn at random, turned to the other label."""
    import numpy as np

    flip = rng.random(len(labels)) < FLIP_SHARE
    return np.where(flip, np.where(labels == POSITIVE, NEGATIVE, POSITIVE), labels)


def _base_model_file() -> bytes:
    """Version 1's model file: the real pipeline, fitted on a few hundred synthetic rows (an array, schema order)."""
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(SEED)
    amount = rng.uniform(250, 20000, BASE_TRAINING_ROWS)
    duration = rng.integers(4, 73, BASE_TRAINING_ROWS)
    age = rng.integers(18, 76, BASE_TRAINING_ROWS)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.fit(np.column_stack([amount, duration, age]), _rule_labels(amount, duration))
    return skops.io.dumps(pipeline)


def _setup_platform():
    """The owner, the model and its production version, made through the services as in production."""
    from django.core.files.base import ContentFile

    from hitl_platform.roles import Role
    from hitl_platform.services import user_create_with_roles
    from models_registry.choices import Stage
    from models_registry.models import ModelVersion
    from models_registry.services import ml_model_register, model_version_register

    owner = user_create_with_roles(username=OWNER, password=secrets.token_urlsafe(16), roles=[Role.ML_ENGINEER])
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
    version = model_version_register(
        model=model,
        actor=owner,
        metrics={"accuracy": 0.9},
        artifact=ContentFile(_base_model_file(), name="model.skops"),
    )
    # Benchmark setup: a real promotion takes a compliance officer's approval; the stage is set directly so the
    # jobs start from a production version, as they would in use.
    ModelVersion.objects.filter(pk=version.pk).update(stage=Stage.PRODUCTION)
    return owner, model, version


def _cases(rows: int) -> dict:
    """Every case's features, groups and labels, drawn at once (seeded)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    amount = np.round(rng.uniform(250, 20000, rows), 2)
    duration = rng.integers(4, 73, rows)
    band = rng.choice(len(AGE_BANDS), rows, p=(0.35, 0.40, 0.25))
    lows = np.asarray([low for _, low, _ in AGE_BANDS])
    highs = np.asarray([high for _, _, high in AGE_BANDS])
    age = lows[band] + (rng.random(rows) * (highs[band] - lows[band] + 1)).astype(int)
    rule = _rule_labels(amount, duration)
    return {
        "amount": amount,
        "duration": duration,
        "age": age,
        "band": band,
        "sex": rng.integers(0, len(SEXES), rows),
        "predicted": _flipped_share(rng, rule),
        "final": _flipped_share(rng, rule),
        "reported": rng.random(rows) < OUTCOME_SHARE,
        "outcome": _flipped_share(rng, rule),
        "confidence": np.round(rng.uniform(0.5, 1.0, rows), 4),
        "offset": rng.random(rows),
    }


def load(rows: int) -> None:
    """Migrate, make the platform's own records through the services, then COPY the predictions and decisions."""
    from django.core.management import call_command
    from django.db import connection

    from reviews.models import Decision, Prediction

    call_command("migrate", verbosity=0)
    owner, model, version = _setup_platform()
    started = time.perf_counter()
    drawn = {name: values.tolist() for name, values in _cases(rows).items()}
    now = datetime.now(UTC)
    groups = [[json.dumps({"sex": sex, "age_band": band}) for band, _, _ in AGE_BANDS] for sex in SEXES]
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
        created_at = []
        with cursor.copy(f"COPY reviews_prediction ({prediction_cols}) FROM STDIN") as copy:
            for index in range(rows):
                pk = index + 1
                created = now - timedelta(seconds=(rows - index - drawn["offset"][index]) * SPAN_DAYS * 86400 / rows)
                created_at.append(created)
                features = json.dumps(
                    {
                        "credit_amount": drawn["amount"][index],
                        "duration": drawn["duration"][index],
                        "age": drawn["age"][index],
                    }
                )
                digest = hashlib.sha256(features.encode()).hexdigest()
                label = drawn["predicted"][index]
                confidence = drawn["confidence"][index]
                other = NEGATIVE if label == POSITIVE else POSITIVE
                values = {
                    **prediction_defaults,
                    "id": pk,
                    "model_id": model.pk,
                    "version_id": version.pk,
                    "external_id": f"application-{pk}",
                    "payload_sha256": digest,
                    "input_sha256": digest,
                    "features": features,
                    "sensitive_attributes": groups[drawn["sex"][index]][drawn["band"][index]],
                    "predicted_label": label,
                    "confidence": confidence,
                    "scores": json.dumps({label: confidence, other: round(1 - confidence, 4)}),
                    "route": "review",
                    "submitted_by_id": owner.pk,
                    "created_at": created,
                }
                if drawn["reported"][index]:
                    values["outcome_label"] = drawn["outcome"][index]
                    values["outcome_reported_at"] = created + timedelta(days=30)
                    values["outcome_reported_by_id"] = owner.pk
                copy.write_row([values[field.attname] for field in prediction_fields])
        with cursor.copy(f"COPY reviews_decision ({decision_cols}) FROM STDIN") as copy:
            for index in range(rows):
                pk = index + 1
                values = {
                    **decision_defaults,
                    "id": pk,
                    "prediction_id": pk,
                    "model_id": model.pk,
                    "final_label": drawn["final"][index],
                    "source": "consensus",
                    "agreement": 1.0,
                    "decided_at": created_at[index] + timedelta(hours=2),
                }
                copy.write_row([values[field.attname] for field in decision_fields])
        for table in ("reviews_prediction", "reviews_decision"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    print(f"  predictions and decisions: {rows:,} each in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


# The jobs, through the services


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


def child_retrain(*, seed: int, mitigation: str, mitigation_attribute: str) -> dict:
    """In a child under the production settings: request a job, then run it, timed to its stored SUCCEEDED row."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from audits.choices import AuditStatus
    from audits.models import RetrainingJob
    from audits.services import retraining
    from models_registry.models import MLModel

    model = MLModel.objects.get(name=MODEL_NAME)
    # The benchmark runs the job itself, timed, in this worker-like process: no queue message is sent.
    with mock.patch.object(retraining.retraining_run_task, "delay"):
        job = retraining.retraining_request(
            actor=get_user_model().objects.get(username=OWNER),
            model=model,
            mitigation=mitigation,
            mitigation_attribute=mitigation_attribute,
            seed=seed,
        )
    before = current_rss_mb()
    started = time.perf_counter()
    retraining.retraining_run(job_id=job.pk)
    stored = RetrainingJob.objects.select_related("candidate_version").get(pk=job.pk)
    elapsed = time.perf_counter() - started
    if stored.status != AuditStatus.SUCCEEDED:
        raise SystemExit(f"retraining job {job.pk} ended {stored.status}: {stored.error}")
    return {
        "job_id": stored.pk,
        "seconds": elapsed,
        "timings": stored.timings,
        "row_count": stored.snapshot["row_count"],
        "training_count": stored.comparison["training_count"],
        "holdout_count": stored.comparison["holdout_count"],
        "metrics": stored.comparison["metrics"],
        "candidate_version": stored.candidate_version.number,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": before,
        "settings": os.environ["DJANGO_SETTINGS_MODULE"],
    }


def explain_training_query() -> tuple[list[str], float, int]:
    """EXPLAIN (ANALYZE, BUFFERS) of the training-set query, captured as the selector sends it; the time the
    selector's streamed read took, and its row count."""
    from django.db import connection
    from django.utils import timezone

    from audits.selectors.training_data import TrainingDataFilter, training_cases
    from models_registry.models import MLModel

    data_filter = TrainingDataFilter(model_id=MLModel.objects.get(name=MODEL_NAME).pk, until=timezone.now())
    captured = []

    def capture(execute, statement, params, many, context):
        captured.append((statement, params))
        return execute(statement, params, many, context)

    with connection.execute_wrapper(capture):
        started = time.perf_counter()
        count = sum(1 for _ in training_cases(data_filter).iterator(chunk_size=5000))
        elapsed = time.perf_counter() - started
    statement, params = next((statement, params) for statement, params in captured if "reviews_decision" in statement)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
        plan = [row[0] for row in cursor.fetchall()]
    return plan, elapsed, count


# The run


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed jobs without mitigation (median)")
    parser.add_argument("--reuse", action="store_true", help="Keep the database if it already holds --rows cases.")
    parser.add_argument("--child", choices=("retrain",), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mitigation", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--mitigation-attribute", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


def _print_run(label: str, run: dict) -> None:
    timings = run["timings"]
    accuracy = next(row for row in run["metrics"] if row["metric"] == "accuracy")
    print(
        f"  {label}: job {run['job_id']} -> version {run['candidate_version']}, {run['seconds']:.2f} s end to end "
        f"(training set {timings['training_set_s']:.2f} s, fit {timings['fit_s']:.2f} s, "
        f"total {timings['total_s']:.2f} s); holdout accuracy {accuracy['base']:.4f} -> "
        f"{accuracy['candidate']:.4f}; peak RSS {run['peak_rss_mb']:.0f} MB",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    if args.child == "retrain":
        figures = child_retrain(
            seed=args.seed, mitigation=args.mitigation, mitigation_attribute=args.mitigation_attribute
        )
        print(json.dumps(figures))
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
        shutil.rmtree(MEDIA_ROOT, ignore_errors=True)
    django.setup()
    from django.conf import settings

    settings.MEDIA_ROOT = MEDIA_ROOT
    if not reuse:
        print(f"Loading {args.rows:,} decisions into {DATABASE_URL.rsplit('/', 1)[1]}...", flush=True)
        load(args.rows)

    production = production_environment(
        DATABASE_URL,
        LEDGER_ANCHOR_KEY=os.environ["LEDGER_ANCHOR_KEY"],
        LEDGER_ANCHOR_URL=os.environ["LEDGER_ANCHOR_URL"],
        MEDIA_ROOT=str(MEDIA_ROOT),
        # A candidate's holdout audit may mail the owner and compliance; never over SMTP from a benchmark.
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    figures = Figures()

    # Warms the caches for every timed run that follows, and shows where the database spends its time.
    print("\nThe training-set query, as the selector sends it:")
    plan, selector_seconds, selected = explain_training_query()
    for line in plan:
        print(f"    {line}")
    execution_ms = next(float(line.split()[2]) for line in plan if line.startswith("Execution Time"))
    figures.add(f"training-set query, {selected:,} rows streamed (warm-up)", selector_seconds, "s")
    figures.add("training-set query under EXPLAIN ANALYZE", execution_ms / 1000, "s")

    print(f"\nRetraining jobs ({args.repeats} without mitigation, then one with {MITIGATION} on sex):")
    runs = []
    for seed in range(args.repeats):
        runs.append(run_child("--child", "retrain", "--seed", str(seed), environment=production))
        _print_run(f"run {seed + 1}", runs[-1])
    mitigated = run_child(
        "--child",
        "retrain",
        "--seed",
        "0",
        "--mitigation",
        MITIGATION,
        "--mitigation-attribute",
        MITIGATION_ATTRIBUTE,
        environment=production,
    )
    _print_run(f"{MITIGATION} on {MITIGATION_ATTRIBUTE}", mitigated)
    first = runs[0]
    print(
        f"  jobs ran in child processes under {first['settings']}; {first['row_count']:,} cases, "
        f"{first['training_count']:,} to train, {first['holdout_count']:,} held out"
    )

    def median_of(key: str) -> float:
        return statistics.median(run["timings"][key] for run in runs)

    print(f"\nMedians over {args.repeats} jobs:")
    figures.add(
        f"job over {first['row_count']:,} cases, end to end",
        statistics.median(run["seconds"] for run in runs),
        "s",
        target=TARGET_JOB_S,
        higher_is_better=False,
    )
    figures.add(
        "  training set build (timings.training_set_s)",
        median_of("training_set_s"),
        "s",
        target=TARGET_TRAINING_SET_S,
        higher_is_better=False,
    )
    figures.add("  fit (timings.fit_s)", median_of("fit_s"), "s")
    figures.add("  job's own total (timings.total_s)", median_of("total_s"), "s")
    figures.add(
        "job process peak RSS (largest)",
        max(run["peak_rss_mb"] for run in runs),
        "MB",
        target=TARGET_PEAK_MB,
        higher_is_better=False,
    )
    figures.add("  of which Django, imports and the request", max(run["rss_before_mb"] for run in runs), "MB")

    print(f"\nWith {MITIGATION} on {MITIGATION_ATTRIBUTE} (informational, one job):")
    figures.add("job with mitigation, end to end", mitigated["seconds"], "s")
    figures.add("  training set build", mitigated["timings"]["training_set_s"], "s")
    figures.add("  fit (ExponentiatedGradient)", mitigated["timings"]["fit_s"], "s")
    figures.add("  job's own total", mitigated["timings"]["total_s"], "s")
    figures.add("job with mitigation, process peak RSS", mitigated["peak_rss_mb"], "MB")
    print(f"\n{figures.summary()}")
    return 1 if figures.missed else 0


if __name__ == "__main__":
    sys.exit(main())
