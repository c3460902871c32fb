"""Prediction intake over real HTTP on PostgreSQL: throughput, batch latency, ratio to raw inserts, hosted scoring.

    .venv/bin/python bench/ingest.py                         # 100,000 predictions in batches of 1,000 (targets)
    .venv/bin/python bench/ingest.py -n 10000 --scoring-batches 4     # a quick run

What it does:
1. Drops and recreates its own database (hitl_bench_ingest on BENCH_ADMIN_DATABASE_URL's server, default
   the local PostgreSQL), migrates it, and registers an ML engineer with an API token, a caller-scored credit
   model (production version, routing policy with a business rule and a 5% QA sample) and a hosted model whose
   production version is a real scikit-learn pipeline in a skops file.
2. Starts gunicorn from .venv on 127.0.0.1 (production settings, DEBUG off, persistent connections).
3. Sends N predictions in batches through POST /api/v1/models/{name}/predictions/ from as many keep-alive
   client threads as there are server workers (bodies are encoded before the clock starts). Every batch is
   validated, routed, and stored with history rows, decisions or review tasks and ledger events.
4. Checks the database: N predictions, one decision or review task each, one ledger event per prediction
   and per decision, and an intact ledger chain.
5. Inserts the same rows again with a plain ``Prediction.objects.bulk_create`` (no validation, routing,
   history or ledger), batches of the same size, once from one process and once from as many processes as
   server workers: the ratio is taken against the latter, the same parallelism the API had.
6. Hosted scoring: the time of one vectorised ``predict_proba`` over 1,000 rows in-process, and the HTTP
   latency of 1,000-row batches sent without labels against the same inputs sent with the very labels and
   scores the platform computes (so both route and store alike), one request at a time.

Targets (issue 3): >= 5,000 predictions/s sustained; p99 batch latency < 500 ms; ratio to raw bulk_create
>= 0.35; hosted scoring adds < 100 ms to a 1,000-row batch. Figures go to test-output/bench/ingest.json.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    REPO,
    Figures,
    database_url,
    drop_database,
    free_port,
    gunicorn,
    machine_line,
    manage,
    percentile,
    production_environment,
    recreate_database,
)

TARGET_RATE = 5000.0
TARGET_P99_MS = 500.0
TARGET_RATIO = 0.35
TARGET_SCORING_MS = 100.0
CREDIT_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0},
        "duration": {"type": "integer", "minimum": 1},
        "age": {"type": "integer", "minimum": 18},
        "purpose": {"type": "string", "enum": ["car", "furniture", "education", "business", "repairs"]},
    },
    "required": ["credit_amount", "duration", "age", "purpose"],
    "additionalProperties": False,
}
FEATURE_ORDER = ["credit_amount", "duration", "age"]
HOSTED_SCHEMA = {
    "type": "object",
    "properties": {name: CREDIT_SCHEMA["properties"][name] for name in FEATURE_ORDER},
    "required": FEATURE_ORDER,
    "x-feature-order": FEATURE_ORDER,
    "additionalProperties": False,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--predictions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="predictions per request")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (and client threads)")
    parser.add_argument("--scoring-batches", type=int, default=10, help="1,000-row batches per hosted-scoring leg")
    parser.add_argument("--keep-database", action="store_true", help="leave hitl_bench_ingest for inspection")
    return parser.parse_args()


def make_item(rng: random.Random, external_id: str, *, labelled: bool = True) -> dict:
    features = {
        "credit_amount": round(rng.uniform(250, 20000), 2),
        "duration": rng.randint(4, 72),
        "age": rng.randint(19, 75),
        "purpose": rng.choice(CREDIT_SCHEMA["properties"]["purpose"]["enum"]),
    }
    item = {
        "external_id": external_id,
        "features": features,
        "attributes": {"sex": rng.choice(["female", "male"]), "age_band": rng.choice(["18-34", "35-50", "51+"])},
    }
    if labelled:
        confidence = round(rng.uniform(0.55, 1.0), 4)
        label = rng.choice(["approve", "deny"])
        item.update(
            label=label,
            confidence=confidence,
            scores={label: confidence, ("deny" if label == "approve" else "approve"): round(1 - confidence, 4)},
            explanation={
                "credit_amount": round(rng.uniform(-0.3, 0.3), 3),
                "duration": round(rng.uniform(-0.2, 0.2), 3),
            },
        )
    return item


def set_up_platform() -> dict:
    """Users, token, models, versions and routing policy, through the platform's own services."""
    import hashlib
    import io

    import numpy as np
    import skops.io as sio
    from django.core.files.base import ContentFile
    from knox.models import AuthToken
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hitl_platform.roles import Role
    from hitl_platform.services import user_create_with_roles
    from models_registry.models import MLModel, ModelVersion
    from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update

    engineer = user_create_with_roles(username="bench-ml", password=os.urandom(16).hex(), roles=[Role.ML_ENGINEER])
    officer = user_create_with_roles(
        username="bench-compliance", password=os.urandom(16).hex(), roles=[Role.COMPLIANCE_OFFICER]
    )
    _, token = AuthToken.objects.create(user=engineer)

    credit = MLModel.objects.create(
        name="bench-credit",
        labels=["approve", "deny"],
        positive_label="approve",
        feature_schema=CREDIT_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        owner=engineer,
    )
    ModelVersion.objects.create(model=credit, number=1, stage="production", created_by=engineer)
    routing_policy_update(
        policy=routing_policy_get_or_create_default(model=credit),
        changes={
            "qa_sample_rate": 0.05,
            "rules": [
                {
                    "field": "credit_amount",
                    "operator": ">",
                    "value": 15000,
                    "action": "review",
                    "reason": "large loans need review",
                },
                {
                    "field": "purpose",
                    "operator": "in",
                    "value": ["business"],
                    "action": "escalate",
                    "reason": "business loans need a senior look",
                },
            ],
        },
        actor=officer,
        reason="Benchmark policy",
    )

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(250, 20000, 2000), rng.integers(4, 72, 2000), rng.integers(19, 75, 2000)])
    y = np.where(X[:, 0] / X[:, 1] < 300, "approve", "deny")
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    buffer = io.BytesIO()
    sio.dump(pipeline, buffer)
    content = buffer.getvalue()
    hosted = MLModel.objects.create(
        name="bench-hosted",
        labels=["approve", "deny"],
        feature_schema=HOSTED_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        owner=engineer,
    )
    version = ModelVersion(
        model=hosted,
        number=1,
        stage="production",
        created_by=engineer,
        artifact_sha256=hashlib.sha256(content).hexdigest(),
        artifact_size=len(content),
    )
    version.artifact.save("model.skops", ContentFile(content), save=False)
    version.save()
    routing_policy_get_or_create_default(model=hosted)
    return {"token": token, "engineer_id": engineer.pk, "credit_id": credit.pk, "hosted_id": hosted.pk}


class Client(threading.Thread):
    """One keep-alive HTTP connection posting batches taken from a shared list until it is empty."""

    def __init__(self, base_url: str, token: str, path: str, bodies: list[bytes], lock: threading.Lock):
        super().__init__(daemon=True)
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=300)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.path, self.bodies, self.lock = path, bodies, lock
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def post(self, body: bytes) -> tuple[int, bytes]:
        self.connection.request("POST", self.path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def run(self) -> None:
        while True:
            with self.lock:
                if not self.bodies:
                    return
                body = self.bodies.pop(0)
            started = time.perf_counter()
            status, content = self.post(body)
            self.latencies.append(time.perf_counter() - started)
            if status != 201:
                self.failures.append(f"{status}: {content[:300]!r}")


def run_clients(base_url: str, token: str, path: str, bodies: list[bytes], clients: int) -> tuple[float, list, list]:
    lock = threading.Lock()
    threads = [Client(base_url, token, path, bodies, lock) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return elapsed, [x for t in threads for x in t.latencies], [x for t in threads for x in t.failures]


def raw_rows(items: list[dict], ids: dict) -> list[dict]:
    """The column values the API stores for these items, ready for a plain bulk_create."""
    from audits.ledger import canonical_json, sha256_hex

    return [
        {
            "model_id": ids["credit_id"],
            "version_id": ids["credit_version_id"],
            "external_id": f"raw-{item['external_id']}",
            "payload_sha256": sha256_hex(canonical_json(item)),
            "input_sha256": sha256_hex(canonical_json(item["features"])),
            "features": item["features"],
            "sensitive_attributes": item["attributes"],
            "predicted_label": item["label"],
            "confidence": item["confidence"],
            "scores": item["scores"],
            "explanation": item["explanation"],
            "route": "review",
            "route_reasons": ["confidence 0.62 is below the 0.80 auto-decide threshold"],
            "priority": 1038,
            "submitted_by_id": ids["engineer_id"],
        }
        for item in items
    ]


def raw_insert(batches: list[list[dict]]) -> float:
    """Plain bulk_create of prepared rows, one transaction per batch; returns the seconds spent."""
    from django.db import connection, transaction

    from reviews.models import Prediction

    connection.close()  # a forked child must not share its parent's connection
    started = time.perf_counter()
    for rows in batches:
        with transaction.atomic():
            Prediction.objects.bulk_create([Prediction(**row) for row in rows], batch_size=len(rows))
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main() -> int:
    args = parse_args()
    n, size = args.predictions, args.batch
    url = database_url("hitl_bench_ingest")
    environment = production_environment(url, MEDIA_ROOT=str(REPO / "test-output" / "bench" / "ingest-media"))
    os.environ.update(environment)
    print(machine_line())
    print(f"database {url.rsplit('/', 1)[1]}: recreating and migrating", flush=True)
    recreate_database(url)
    manage(environment, "migrate", "--noinput", "-v", "0")

    import django

    django.setup()
    from django.db import connection

    from audits.ledger import ledger_verify
    from audits.models import DecisionEvent
    from models_registry.models import MLModel, ModelVersion
    from models_registry.scoring import score_batch
    from reviews.models import Decision, Prediction, ReviewTask

    ids = set_up_platform()
    ids["credit_version_id"] = ModelVersion.objects.get(model_id=ids["credit_id"]).pk
    rng = random.Random(42)
    items = [make_item(rng, f"application-{i}") for i in range(n)]
    bodies = [json.dumps({"predictions": items[i : i + size]}).encode() for i in range(0, n, size)]
    warm_up = [
        json.dumps({"predictions": [make_item(rng, f"warm-up-{w}-{i}") for i in range(50)]}).encode()
        for w in range(args.workers * 2)
    ]
    figures = Figures()
    results: dict = {"predictions": n, "batch": size, "workers": args.workers, "machine": machine_line()}
    port = free_port()
    log = REPO / "test-output" / "bench" / "ingest-gunicorn.log"
    connection.close()

    with gunicorn(environment, workers=args.workers, port=port, log=log) as base_url:
        credit_path = "/api/v1/models/bench-credit/predictions/"
        hosted_path = "/api/v1/models/bench-hosted/predictions/"
        _, _, failures = run_clients(base_url, ids["token"], credit_path, warm_up, args.workers)
        if failures:
            raise SystemExit(f"warm-up failed: {failures[0]}")

        print(f"\nintake: {n:,} predictions in batches of {size:,}, {args.workers} workers and clients", flush=True)
        elapsed, latencies, failures = run_clients(base_url, ids["token"], credit_path, list(bodies), args.workers)
        if failures:
            raise SystemExit(f"{len(failures)} batches failed, first: {failures[0]}")
        rate = n / elapsed
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        figures.add("predictions/s (HTTP, routed, history, ledger)", rate, "/s", target=TARGET_RATE)
        figures.add("batch latency p50", p50, "ms")
        figures.add("batch latency p99", p99, "ms", target=TARGET_P99_MS, higher_is_better=False)
        results.update(rate=rate, p50_ms=p50, p99_ms=p99, elapsed_s=elapsed)

        stored = Prediction.objects.filter(external_id__startswith="application-")
        predictions = stored.count()
        decisions = Decision.objects.filter(prediction__in=stored).count()
        tasks = ReviewTask.objects.filter(prediction__in=stored).count()
        routed = DecisionEvent.objects.filter(event_type="prediction.routed").count()
        made = DecisionEvent.objects.filter(event_type="decision.made").count()
        started = time.perf_counter()
        verification = ledger_verify()
        verify_seconds = time.perf_counter() - started
        print(
            f"  stored: {predictions:,} predictions, {decisions:,} auto decisions, {tasks:,} review tasks; "
            f"ledger {routed:,} routed + {made:,} decided events, chain "
            f"{'intact' if verification.intact else 'BROKEN'} ({verification.checked:,} verified in "
            f"{verify_seconds:.1f} s)"
        )
        if predictions != n or decisions + tasks != n or not verification.intact:
            raise SystemExit("the stored rows do not match what was sent")
        results.update(auto_decisions=decisions, review_tasks=tasks, ledger_intact=verification.intact)

        print(f"\nraw bulk_create of the same {n:,} rows (no validation, routing, history or ledger)", flush=True)
        rows = raw_rows(items, ids)
        batches = [rows[i : i + size] for i in range(0, n, size)]
        connection.close()
        single = raw_insert(batches[: len(batches) // 2])
        Prediction.objects.filter(external_id__startswith="raw-").delete()
        connection.close()
        shares = [batches[w :: args.workers] for w in range(args.workers)]
        with get_context("fork").Pool(args.workers) as pool:
            started = time.perf_counter()
            pool.map(raw_insert, shares)
            parallel = time.perf_counter() - started
        raw_single_rate = (len(batches) // 2) * size / single
        raw_rate = n / parallel
        figures.add("raw bulk_create, 1 process", raw_single_rate, "rows/s")
        figures.add(f"raw bulk_create, {args.workers} processes", raw_rate, "rows/s")
        figures.add(f"ratio API / raw ({args.workers} processes each)", rate / raw_rate, "x", target=TARGET_RATIO)
        figures.add("ratio API / raw (raw from 1 process)", rate / raw_single_rate, "x")
        results.update(raw_rate=raw_rate, raw_single_rate=raw_single_rate, ratio=rate / raw_rate)

        print("\nhosted scoring of 1,000-row batches (scikit-learn pipeline in a skops file)", flush=True)
        hosted = MLModel.objects.get(pk=ids["hosted_id"])
        version = ModelVersion.objects.get(model=hosted)
        features = [
            {k: v for k, v in make_item(rng, "x")["features"].items() if k in FEATURE_ORDER} for _ in range(1000)
        ]
        score_batch(model=hosted, version=version, features=features)
        in_process = []
        for _ in range(7):
            started = time.perf_counter()
            score_batch(model=hosted, version=version, features=features)
            in_process.append(time.perf_counter() - started)
        figures.add(
            "hosted scoring adds (in-process, 1,000 rows, median)",
            statistics.median(in_process) * 1000,
            "ms",
            target=TARGET_SCORING_MS,
            higher_is_better=False,
        )

        def hosted_pair(round_number: int) -> tuple[bytes, bytes]:
            """The same 1,000 inputs twice: once for the platform to score, once already scored by the caller
            with exactly the platform's answers, so both route (and store) alike and only scoring differs."""
            rows = [
                {k: v for k, v in make_item(rng, "x")["features"].items() if k in FEATURE_ORDER} for _ in range(1000)
            ]
            answers = score_batch(model=hosted, version=version, features=rows)
            unscored = [{"external_id": f"hosted-{round_number}-{i}", "features": row} for i, row in enumerate(rows)]
            scored = [
                {
                    "external_id": f"caller-{round_number}-{i}",
                    "features": row,
                    "label": answer.label,
                    "confidence": answer.confidence,
                    "scores": answer.scores,
                }
                for i, (row, answer) in enumerate(zip(rows, answers, strict=True))
            ]
            return json.dumps({"predictions": unscored}).encode(), json.dumps({"predictions": scored}).encode()

        # Warm-up requests from as many clients as workers load the model file into each worker's cache.
        warm_bodies = [hosted_pair(-1 - w)[0] for w in range(args.workers * 2)]
        run_clients(base_url, ids["token"], hosted_path, warm_bodies, args.workers)
        labelled_latency, unlabelled_latency, differences = [], [], []
        for round_number in range(args.scoring_batches):
            unscored, scored = hosted_pair(round_number)
            # Alternate which goes first, and compare within each pair, so drift in the machine's load cancels.
            legs = [(scored, labelled_latency), (unscored, unlabelled_latency)]
            for body, sink in legs if round_number % 2 == 0 else reversed(legs):
                _, latency, failures = run_clients(base_url, ids["token"], hosted_path, [body], 1)
                if failures:
                    raise SystemExit(f"hosted scoring batch failed: {failures[0]}")
                sink.extend(latency)
            differences.append(unlabelled_latency[-1] - labelled_latency[-1])
        added = statistics.median(differences) * 1000
        figures.add("1,000-row batch, caller-scored (median)", statistics.median(labelled_latency) * 1000, "ms")
        figures.add("1,000-row batch, platform-scored (median)", statistics.median(unlabelled_latency) * 1000, "ms")
        figures.add(
            "hosted scoring adds (HTTP, median paired difference)",
            added,
            "ms",
            target=TARGET_SCORING_MS,
            higher_is_better=False,
        )
        results.update(
            scoring_in_process_ms=statistics.median(in_process) * 1000,
            scoring_added_ms=added,
        )

    print(f"\n{figures.summary()}")
    print(machine_line())
    output = REPO / "test-output" / "bench" / "ingest.json"
    output.write_text(json.dumps({**results, "figures": figures.rows, "missed": figures.missed}, indent=2))
    connection.close()
    if not args.keep_database:
        drop_database(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
