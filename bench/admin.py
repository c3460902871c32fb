"""Console benchmark on PostgreSQL: 1,000,000 decisions, the decisions changelist, the dashboard, verify_ledger.

Targets (issue 5): the decisions changelist and the dashboard each under 150 ms median server time with at most
8 queries whatever the page size; ``verify_ledger`` over 1,000,000 events under 30 s.

Data: five models; 1,000,000 cases arriving in id order over the last 365 days, each with its decision (about 78 %
automatic, 22 % reviewed by two reviewers with a task, two assignments and two reviews each, a few adjudicated),
and 1,000,000 ``decision.made`` ledger events forming a valid chain. Rows are written with psycopg COPY;
history rows are not generated (no page measured here reads them). The dashboard reads its daily rollup, which
the bench rebuilds first (as the nightly beat job does) and times. Server time is measured in-process through
Django's test client (middleware, views, queries, template rendering; no network), as the median of repeated
requests after a warm-up.

    .venv/bin/python bench/admin.py [--rows N] [--reuse]

Its database, hitl_bench_admin on the server of BENCH_ADMIN_DATABASE_URL (default: the local PostgreSQL), is
dropped and recreated unless --reuse is given and it already holds the data.
"""

import argparse
import gc
import hashlib
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
import psycopg

from bench._common import database_url, recreate_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_platform.settings.test")
os.environ["DATABASE_URL"] = database_url("hitl_bench_admin")

MODELS = 5
REVIEWERS = 20
REVIEWED_SHARE = 0.22
SPAN_DAYS = 365
TARGET_MS = 150
TARGET_QUERIES = 8
TARGET_VERIFY_S = 30


def columns(model, *names: str) -> str:
    return ", ".join(model._meta.get_field(name).column for name in names)


def load(rows: int) -> None:
    """Migrate, create people and models through the ORM, then COPY the million-row tables."""
    from django.core.management import call_command
    from django.db import connection

    from audits.ledger import GENESIS_HASH, canonical_json, event_hash
    from audits.models import DecisionEvent
    from hitl_platform.roles import Role
    from hitl_platform.services import user_create_with_roles
    from models_registry.models import MLModel, ModelVersion
    from reviews.models import Assignment, Decision, Prediction, Review, ReviewTask, RoutingPolicy

    call_command("migrate", verbosity=0)
    owner = user_create_with_roles(username="bench_owner", password="bench-password-1", roles=[Role.ML_ENGINEER])
    user_create_with_roles(username="bench_compliance", password="bench-password-1", roles=[Role.COMPLIANCE_OFFICER])
    reviewers = [
        user_create_with_roles(username=f"bench_reviewer_{n}", password="bench-password-1", roles=[Role.REVIEWER])
        for n in range(REVIEWERS)
    ]
    versions = []
    for n in range(MODELS):
        model = MLModel.objects.create(name=f"bench-model-{n}", labels=["approve", "deny"], owner=owner)
        RoutingPolicy.objects.create(model=model, stop_switch_on=n == 0)
        versions.append(ModelVersion.objects.create(model=model, number=1, stage="production", created_by=owner))

    rng = random.Random(5)
    now = datetime.now(UTC)
    started = time.perf_counter()
    raw = connection.connection  # psycopg 3 connection under Django's
    reviewed: list[tuple[int, int, datetime, str, str, str]] = []
    with raw.cursor() as cursor:
        prediction_cols = columns(
            Prediction,
            "id",
            "model",
            "version",
            "external_id",
            "payload_sha256",
            "input_sha256",
            "features",
            "sensitive_attributes",
            "predicted_label",
            "confidence",
            "scores",
            "scored_by_platform",
            "route",
            "route_reasons",
            "priority",
            "is_qa_sample",
            "is_gold",
            "gold_label",
            "outcome_label",
            "submitted_by",
            "created_at",
        )
        decision_cols = columns(
            Decision, "id", "prediction", "model", "final_label", "source", "agreement", "decided_at", "decided_by"
        )
        with cursor.copy(f"COPY reviews_prediction ({prediction_cols}) FROM STDIN") as copy_predictions:
            decisions = []
            for pk in range(1, rows + 1):
                version = versions[pk % MODELS]
                # Cases arrive in id order over the span, as they do in production: recent rows sit together.
                created = now - timedelta(seconds=(rows - pk + rng.random()) * SPAN_DAYS * 86400 / rows)
                features = {"credit_amount": rng.randint(250, 20000), "duration": rng.randint(4, 72), "age": 30}
                features_json = json.dumps(features)
                digest = hashlib.sha256(features_json.encode()).hexdigest()
                label = "approve" if rng.random() < 0.7 else "deny"
                review = rng.random() < REVIEWED_SHARE
                confidence = rng.uniform(0.5, 0.79) if review else rng.uniform(0.8, 0.99)
                outcome = (
                    (label if rng.random() < 0.85 else ("deny" if label == "approve" else "approve"))
                    if (rng.random() < 0.1)
                    else ""
                )
                copy_predictions.write_row(
                    (
                        pk,
                        version.model_id,
                        version.pk,
                        f"application-{pk}",
                        digest,
                        digest,
                        features_json,
                        '{"sex": "female"}',
                        label,
                        confidence,
                        "{}",
                        False,
                        "review" if review else "auto",
                        '["confidence below threshold"]' if review else "[]",
                        0,
                        review and rng.random() < 0.2,
                        False,
                        "",
                        outcome,
                        owner.pk,
                        created,
                    )
                )
                if review:
                    final = label if rng.random() < 0.8 else ("deny" if label == "approve" else "approve")
                    decided = created + timedelta(hours=rng.uniform(0.2, 30))
                    reviewed.append((pk, version.model_id, created, label, final, "consensus"))
                    decisions.append((pk, pk, version.model_id, final, "consensus", 1.0, decided, None))
                else:
                    decisions.append((pk, pk, version.model_id, label, "auto", None, created, None))
        with cursor.copy(f"COPY reviews_decision ({decision_cols}) FROM STDIN") as copy_decisions:
            for row in decisions:
                copy_decisions.write_row(row)
        del decisions
        print(f"  predictions and decisions: {rows:,} each in {time.perf_counter() - started:.1f} s", flush=True)

        started = time.perf_counter()
        task_cols = columns(
            ReviewTask,
            "id",
            "prediction",
            "model",
            "status",
            "reviews_required",
            "slots_taken",
            "needs_adjudication",
            "priority",
            "due_at",
            "sla_breached",
            "escalation_reason",
            "created_at",
            "decided_at",
        )
        assignment_cols = columns(
            Assignment,
            "id",
            "task",
            "reviewer",
            "status",
            "is_adjudication",
            "claimed_at",
            "finished_at",
            "release_reason",
        )
        review_cols = columns(
            Review,
            "id",
            "task",
            "assignment",
            "reviewer",
            "label",
            "rationale",
            "time_spent_seconds",
            "is_adjudication",
            "correction_reason",
            "created_at",
        )
        with cursor.copy(f"COPY reviews_reviewtask ({task_cols}) FROM STDIN") as copy_tasks:
            for task_id, (pk, model_id, created, _, _, _) in enumerate(reviewed, start=1):
                recent = (now - created).days < 2
                status = "open" if recent and rng.random() < 0.5 else "decided"
                decided = None if status == "open" else created + timedelta(hours=rng.uniform(0.2, 30))
                due = created + timedelta(hours=24)
                copy_tasks.write_row((task_id, pk, model_id, status, 2, 2, False, 0, due, False, "", created, decided))
        with cursor.copy(f"COPY reviews_assignment ({assignment_cols}) FROM STDIN") as copy_assignments:
            assignment_id = 0
            for task_id, (_, _, created, _, _, _) in enumerate(reviewed, start=1):
                for offset in (0, 1):
                    assignment_id += 1
                    reviewer_id = reviewers[(task_id + offset) % REVIEWERS].pk
                    copy_assignments.write_row(
                        (assignment_id, task_id, reviewer_id, "submitted", False, created, created, "")
                    )
        with cursor.copy(f"COPY reviews_review ({review_cols}) FROM STDIN") as copy_reviews:
            assignment_id = 0
            for task_id, (_, _, created, label, final, _) in enumerate(reviewed, start=1):
                # Reviewers agree on about 85 % of cases.
                for offset, given in enumerate((final, final if rng.random() < 0.85 else label)):
                    assignment_id += 1
                    reviewer_id = reviewers[(task_id + offset) % REVIEWERS].pk
                    copy_reviews.write_row(
                        (assignment_id, task_id, assignment_id, reviewer_id, given, "Checked.", 40, False, "", created)
                    )
        print(
            f"  review tasks: {len(reviewed):,}, assignments and reviews: {2 * len(reviewed):,} each "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        started = time.perf_counter()
        event_cols = columns(
            DecisionEvent,
            "event_type",
            "actor_id",
            "actor_label",
            "object_type",
            "object_id",
            "payload",
            "created_at",
            "previous_hash",
            "hash",
        )
        previous = GENESIS_HASH
        with cursor.copy(f"COPY audits_decisionevent ({event_cols}) FROM STDIN") as copy_events:
            for pk in range(1, rows + 1):
                payload = canonical_json({"decision_id": pk, "prediction_id": pk, "label": "approve", "source": "auto"})
                created = now - timedelta(seconds=rows - pk)
                digest = event_hash(
                    previous_hash=previous,
                    event_type="decision.made",
                    actor_id=None,
                    actor_label="system",
                    object_type="reviews.decision",
                    object_id=str(pk),
                    payload=payload,
                    created_at=created,
                )
                copy_events.write_row(
                    ("decision.made", None, "system", "reviews.decision", str(pk), payload, created, previous, digest)
                )
                previous = digest
        print(f"  ledger events: {rows:,} (hashed and copied) in {time.perf_counter() - started:.1f} s", flush=True)

        for table in (
            "reviews_prediction",
            "reviews_decision",
            "reviews_reviewtask",
            "reviews_assignment",
            "reviews_review",
        ):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # What autovacuum does on its own in production: statistics for the planner (and the row estimates the
        # changelists show), and the visibility map that lets index-only scans skip the heap.
        cursor.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def timed_get(client, url: str, params: dict, repeat: int) -> tuple[float, int, int]:
    """Median milliseconds of ``repeat`` requests after two warm-ups, with the query count of the last one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):
        client.get(url, params)
    times = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200, (url, params, response.status_code)
    return statistics.median(times), len(queries), response.status_code


def measure(repeat: int) -> list[tuple[str, float, int, bool]]:
    from django.contrib.admin.sites import site
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    from reviews.models import Decision

    # A served process freezes its start-up heap (hitl_platform/wsgi.py) so full collections skip it; this
    # process measures the same way, or it would time the collector walking the loader's leftovers.
    gc.freeze()
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench_compliance"))
    decision_admin = site._registry[Decision]
    results = []
    changelist = reverse("admin:reviews_decision_changelist")
    model_id = str(Decision.objects.order_by("id").values_list("model_id", flat=True).first())
    cases = [
        ("decisions changelist, 100 per page", {}, 100),
        ("decisions changelist, 500 per page", {}, 500),
        ("decisions changelist, 100 per page, page 50", {"p": "50"}, 100),
        ("decisions changelist, filtered by model", {"model__id__exact": model_id}, 100),
        ("decisions changelist, filtered: human, last 7 days", {"source": "consensus", "within": "7"}, 100),
        ("decisions changelist, search by external id", {"q": "application-123456"}, 100),
    ]
    for label, params, per_page in cases:
        decision_admin.list_per_page = per_page
        median_ms, queries, _ = timed_get(client, changelist, params, repeat)
        results.append((label, median_ms, queries, True))
    for days in (7, 30, 90):
        median_ms, queries, _ = timed_get(client, reverse("admin:index"), {"days": days}, repeat)
        results.append((f"dashboard, last {days} days", median_ms, queries, True))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--reuse", action="store_true", help="Keep the database if it already holds --rows cases.")
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    reuse = False
    if args.reuse:
        try:
            with psycopg.connect(url) as conn:
                reuse = conn.execute("SELECT count(*) FROM reviews_decision").fetchone()[0] == args.rows
        except psycopg.Error:
            reuse = False
    if not reuse:
        recreate_database(url)
    django.setup()
    if not reuse:
        print(f"Loading {args.rows:,} decisions into {url.rsplit('/', 1)[1]}...", flush=True)
        load(args.rows)

    from audits.services.dashboard import dashboard_refresh_recent

    started = time.perf_counter()
    written = dashboard_refresh_recent(days=90)
    elapsed = time.perf_counter() - started
    print(f"Dashboard rollup, 90 days rebuilt (the nightly job): {written} rows in {elapsed:.1f} s")
    started = time.perf_counter()
    dashboard_refresh_recent(days=2)
    print(f"Dashboard rollup, 2 days rebuilt (the 5-minute job): {time.perf_counter() - started:.2f} s")

    print(f"\nMedian server time of {args.repeat} requests (Django test client, in-process):")
    failures = 0
    for label, median_ms, queries, _ in measure(args.repeat):
        ok = median_ms < TARGET_MS and queries <= TARGET_QUERIES
        failures += not ok
        print(
            f"  {label:<52} {median_ms:7.1f} ms  {queries} queries  "
            f"({median_ms / TARGET_MS:.2f} of the {TARGET_MS} ms target){'' if ok else '  MISSED'}"
        )

    from django.core.management import call_command

    started = time.perf_counter()
    call_command("verify_ledger")
    elapsed = time.perf_counter() - started
    ok = elapsed < TARGET_VERIFY_S
    failures += not ok
    print(
        f"  verify_ledger over {args.rows:,} events: {elapsed:.1f} s "
        f"({elapsed / TARGET_VERIFY_S:.2f} of the {TARGET_VERIFY_S} s target){'' if ok else '  MISSED'}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
