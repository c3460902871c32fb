"""Reconciliation benchmark on PostgreSQL: 1,000,000 decisions compared with their latest ledger events.

Target (the trust-gap issue): ``governed_rows_reconcile`` over 1,000,000 decisions under 60 s.

Data: one model registered through the services (so its version, promotions and routing policy have their
events), then 1,000,000 cases written with psycopg COPY, each with its decision (about 78 % automatic, 22 % by
consensus with an agreement, 1 % of those adjudicated by a named adjudicator) and its ``decision.made`` ledger
event carrying what the row holds, hashed and sealed into one valid chain; 1 % of the decisions are then
reversed on appeal (a later ``decision.reversed`` event, and the row holding the new label), so the latest
event wins for them. After the load, three decisions are edited behind the platform's back: the run must report
exactly those three, which shows that it compared every row. The full ``verify_ledger`` (chain, seals, recorded
heads and reconciliation) is timed too, for information.

    .venv/bin/python bench/reconcile.py [--rows N] [--reuse]

Its database, hitl_bench_reconcile on the server of BENCH_ADMIN_DATABASE_URL (default: the local PostgreSQL),
is dropped and recreated unless --reuse is given and it already holds the data.
"""

import argparse
import hashlib
import io
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
import psycopg

from bench._common import REPO, Figures, database_url, machine_line, recreate_database

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_platform.settings.test")
os.environ["DATABASE_URL"] = database_url("hitl_bench_reconcile")
# Its own anchor sink: verify_ledger compares the chain with the newest anchor there.
ANCHORS = REPO / "test-output" / "bench" / "reconcile-anchors.jsonl"
os.environ["LEDGER_ANCHOR_URL"] = str(ANCHORS)

TARGET_RECONCILE_S = 60.0
REVIEWED_SHARE = 0.22
ADJUDICATED_SHARE = 0.01
APPEALED_SHARE = 0.01
EDITED = 3
SPAN_DAYS = 365


def columns(model, *names: str) -> str:
    return ", ".join(model._meta.get_field(name).column for name in names)


def _setup_platform():
    """People and a model made through the services: their events start the chain."""
    from hitl_platform.roles import Role
    from hitl_platform.services import user_create_with_roles
    from models_registry.choices import Stage
    from models_registry.services import (
        ml_model_register,
        model_version_register,
        promotion_request_create,
        promotion_request_decide,
    )
    from reviews.services.policies import routing_policy_get_or_create_default

    owner = user_create_with_roles(username="bench_owner", password="bench-password-1", roles=[Role.ML_ENGINEER])
    officer = user_create_with_roles(
        username="bench_compliance", password="bench-password-1", roles=[Role.COMPLIANCE_OFFICER]
    )
    adjudicator = user_create_with_roles(
        username="bench_adjudicator", password="bench-password-1", roles=[Role.REVIEWER, Role.ADJUDICATOR]
    )
    model = ml_model_register(
        owner=owner,
        name="bench-credit",
        task="binary",
        labels=["approve", "deny"],
        positive_label="approve",
        intended_use="Benchmark.",
    )
    version = model_version_register(model=model, actor=owner, metrics={"accuracy": 0.9})
    request = promotion_request_create(version=version, actor=owner, target_stage=Stage.PRODUCTION, rationale="Bench.")
    promotion_request_decide(promotion_request=request, actor=officer, approve=True, reason="Bench.")
    routing_policy_get_or_create_default(model=model)
    return owner, adjudicator, model, version


def load(rows: int) -> None:
    """Migrate, make the platform's own records through the services, then COPY the million-row tables."""
    from django.core.management import call_command
    from django.db import connection

    from audits.ledger import canonical_json, event_hash, event_seal, ledger_key
    from audits.models import DecisionEvent
    from reviews.models import Decision, Prediction

    call_command("migrate", verbosity=0)
    owner, adjudicator, model, version = _setup_platform()
    previous = DecisionEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    key = ledger_key()
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    raw = connection.connection  # psycopg 3 connection under Django's
    decision_cols = columns(
        Decision,
        "id",
        "prediction",
        "model",
        "final_label",
        "source",
        "agreement",
        "decided_at",
        "decided_by",
        "reviewers",
        "reason",
    )
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
        "seal",
    )
    decisions = []
    with raw.cursor() as cursor:
        # Every column of the case, those this benchmark does not care about at their model defaults, so the load
        # keeps working when a column is added.
        fields = Prediction._meta.concrete_fields
        defaults = {field.attname: _copy_value(field.get_default()) for field in fields}
        prediction_cols = ", ".join(field.column for field in fields)
        with cursor.copy(f"COPY reviews_prediction ({prediction_cols}) FROM STDIN") as copy:
            for pk in range(1, rows + 1):
                created = now - timedelta(seconds=(rows - pk + rng.random()) * SPAN_DAYS * 86400 / rows)
                features = json.dumps({"credit_amount": rng.randint(250, 20000), "duration": rng.randint(4, 72)})
                digest = hashlib.sha256(features.encode()).hexdigest()
                label = "approve" if rng.random() < 0.7 else "deny"
                reviewed = rng.random() < REVIEWED_SHARE
                values = {
                    **defaults,
                    "id": pk,
                    "model_id": model.pk,
                    "version_id": version.pk,
                    "external_id": f"application-{pk}",
                    "payload_sha256": digest,
                    "input_sha256": digest,
                    "features": features,
                    "predicted_label": label,
                    "confidence": 0.6 if reviewed else 0.95,
                    "route": "review" if reviewed else "auto",
                    "submitted_by_id": owner.pk,
                    "created_at": created,
                }
                copy.write_row([values[field.attname] for field in fields])
                if not reviewed:
                    decisions.append((pk, label, "auto", None, created, None, digest))
                elif rng.random() < ADJUDICATED_SHARE / REVIEWED_SHARE:
                    decisions.append((pk, "deny", "adjudication", 0.5, created, adjudicator.pk, digest))
                else:
                    decisions.append((pk, label, "consensus", rng.choice([1.0, 2 / 3]), created, None, digest))
        appealed = set(rng.sample(range(1, rows + 1), int(rows * APPEALED_SHARE)))
        with cursor.copy(f"COPY reviews_decision ({decision_cols}) FROM STDIN") as copy:
            for pk, label, source, agreement, decided_at, decided_by, _ in decisions:
                if pk in appealed:
                    label, source, agreement, decided_by = flipped(label), "adjudication", None, adjudicator.pk
                copy.write_row((pk, pk, model.pk, label, source, agreement, decided_at, decided_by, "[]", ""))
        print(f"  predictions and decisions: {rows:,} each in {time.perf_counter() - started:.1f} s", flush=True)

        started = time.perf_counter()
        with cursor.copy(f"COPY audits_decisionevent ({event_cols}) FROM STDIN") as copy:

            def append(event_type, actor, object_id, payload, created):
                nonlocal previous
                actor_id, actor_label = (actor.pk, actor.username) if actor is not None else (None, "system")
                text = canonical_json(payload)
                digest = event_hash(
                    previous_hash=previous,
                    event_type=event_type,
                    actor_id=actor_id,
                    actor_label=actor_label,
                    object_type="reviews.decision",
                    object_id=str(object_id),
                    payload=text,
                    created_at=created,
                )
                copy.write_row(
                    (
                        event_type,
                        actor_id,
                        actor_label,
                        "reviews.decision",
                        str(object_id),
                        text,
                        created,
                        previous,
                        digest,
                        event_seal(digest, key=key),
                    )
                )
                previous = digest

            for pk, label, source, agreement, decided_at, decided_by, digest in decisions:
                payload = {
                    "decision_id": pk,
                    "prediction_id": pk,
                    "external_id": f"application-{pk}",
                    "model_id": model.pk,
                    "version_id": version.pk,
                    "label": label,
                    "source": source,
                    "agreement": agreement,
                    "decided_by_id": decided_by,
                    "input_sha256": digest,
                    "reason": "Decided.",
                }
                append("decision.made", adjudicator if decided_by else owner, pk, payload, decided_at)
            for pk, label, source, _, _, _, digest in decisions:
                if pk in appealed:
                    payload = {
                        "decision_id": pk,
                        "prediction_id": pk,
                        "model_id": model.pk,
                        "previous": {"label": label, "source": source},
                        "label": flipped(label),
                        "source": "adjudication",
                        "agreement": None,
                        "decided_by_id": adjudicator.pk,
                        "input_sha256": digest,
                        "reason": "Appeal upheld.",
                    }
                    append("decision.reversed", adjudicator, pk, payload, now)
        print(
            f"  ledger events: {rows + len(appealed):,} (hashed, sealed, copied; {len(appealed):,} reversals) "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        for table in ("reviews_prediction", "reviews_decision"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s", flush=True)


def _copy_value(value):
    """A model default as COPY takes it: JSON fields as JSON text."""
    return json.dumps(value) if isinstance(value, dict | list) else value


def flipped(label: str) -> str:
    return "deny" if label == "approve" else "approve"


def edit_behind_the_platforms_back(rows: int) -> list[int]:
    """Change a few decision labels directly in the database, as someone with table access would."""
    from django.db.models import Case, Value, When

    from reviews.models import Decision

    edited = [rows // 7, rows // 2, rows - 3]
    Decision.objects.filter(pk__in=edited).update(
        final_label=Case(When(final_label="approve", then=Value("deny")), default=Value("approve"))
    )
    return edited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="Keep the database if it already holds --rows cases.")
    args = parser.parse_args()
    url = os.environ["DATABASE_URL"]
    print(machine_line())
    reuse = False
    if args.reuse:
        try:
            with psycopg.connect(url) as conn:
                reuse = conn.execute("SELECT count(*) FROM reviews_decision").fetchone()[0] == args.rows
        except psycopg.Error:
            reuse = False
    if not reuse:
        recreate_database(url)
    ANCHORS.unlink(missing_ok=True)
    django.setup()
    if not reuse:
        print(f"Loading {args.rows:,} decisions into {url.rsplit('/', 1)[1]}...", flush=True)
        load(args.rows)

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from audits.services.reconciliation import governed_rows_reconcile

    figures = Figures()
    print("\nReconciliation (decisions, reviews, version stages, routing policies against their latest events):")
    started = time.perf_counter()
    clean = governed_rows_reconcile()
    elapsed = time.perf_counter() - started
    figures.add(
        f"reconcile {clean.rows_total:,} rows, untouched",
        elapsed,
        "s",
        target=TARGET_RECONCILE_S,
        higher_is_better=False,
    )
    figures.add("  rows per second", clean.rows_total / elapsed, "rows/s")
    if not clean.clean:
        print(f"  UNEXPECTED: {clean.mismatch_count} mismatches in untouched data, first {clean.mismatches[0]}")
        return 1

    edited = edit_behind_the_platforms_back(args.rows)
    started = time.perf_counter()
    found = governed_rows_reconcile()
    elapsed = time.perf_counter() - started
    figures.add(
        f"reconcile {found.rows_total:,} rows, {EDITED} edited",
        elapsed,
        "s",
        target=TARGET_RECONCILE_S,
        higher_is_better=False,
    )
    reported = sorted(mismatch.object_id for mismatch in found.mismatches)
    print(f"  edited decisions {sorted(edited)}; reported {reported} ({found.mismatch_count} mismatches)")
    if reported != sorted(edited):
        print("  MISSED: the reconciliation did not report exactly the edited decisions")
        return 1

    started = time.perf_counter()
    try:
        call_command("verify_ledger", stdout=io.StringIO(), stderr=io.StringIO())
    except CommandError as failure:
        outcome = str(failure).splitlines()[0]
    else:
        outcome = "no failure: UNEXPECTED"
    figures.add("verify_ledger: chain, seals, heads, reconciliation", time.perf_counter() - started, "s")
    print(f"  verify_ledger said: {outcome}")
    print(f"\n{figures.summary()}")
    return 1 if figures.missed else 0


if __name__ == "__main__":
    sys.exit(main())
