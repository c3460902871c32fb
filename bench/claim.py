"""Claim-next over real HTTP on PostgreSQL: latency at a paced rate, capacity, double claims, form render.

    .venv/bin/python bench/claim.py                      # 100,000 open tasks, 50 clients (the targets)
    .venv/bin/python bench/claim.py --tasks 5000 --paced-seconds 5 --capacity-seconds 5    # a quick run

What it does:
1. Drops and recreates its own database, hitl_bench_claim (on the server of BENCH_ADMIN_DATABASE_URL,
   default the local one), migrates it, and loads one model with N open review tasks (1-3 reviews required,
   priorities and due times spread like routed cases) plus the reviewer accounts and their sessions.
2. Starts a real server process: gunicorn from .venv with gthread workers under the production settings
   (DEBUG off, persistent database connections; plain HTTP on 127.0.0.1).
3. 50 reviewer clients (threads with keep-alive HTTP connections) POST to the "next task" page, the same
   request the reviewer's "Next case" button sends (session cookie + CSRF token); a claim is a 302 to the new
   assignment's form. Each claim is made by a reviewer account without a live claim (each client rotates
   through its own accounts), because a reviewer holding a claim gets that claim back without a new one.
   Phase 1 paces the clients to 50 claims/s in total and reports latency percentiles (measured from each
   request's scheduled time, so a stalled server cannot hide its queue). Phase 2 lets them run unpaced and
   reports capacity in claims/s.
4. Checks from the database that no task holds more live assignments than it needs, that every task's
   slots_taken equals its live assignments, that no reviewer holds a task twice, and that every claim
   answered over HTTP is an assignment of the account that asked for it.
5. Renders the review form in-process (Django test client on the same database: middleware, view, queries,
   template; no network) for a sample of the claimed assignments and for a case with many reviews: server
   time percentiles and the most queries.

During the unpaced phase it also reads the CPU time (Linux /proc) of the gunicorn processes, of the
PostgreSQL backends of the benchmark database and of itself, and prints the CPU each claim cost on each side
and the claims/s these cores could serve if nothing else ran on them.

Targets (issue 4): claim-next p99 < 50 ms at 50 claims/s; capacity >= 300 claims/s; zero double claims;
review form < 100 ms server time with <= 10 queries. Figures are printed with their ratio to the target and
written to test-output/bench/claim.json. The machine's cores and load average are printed with them: on a
shared 2-core machine other work moves the figures.
"""

import argparse
import gc
import http.client
import json
import os
import re
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    REPO,
    Figures,
    database_url,
    free_port,
    gunicorn,
    machine_line,
    manage,
    percentile,
    production_environment,
    recreate_database,
)

DATABASE_NAME = "hitl_bench_claim"
TARGET_P99_MS = 50.0
TARGET_CAPACITY = 300.0
TARGET_FORM_MS = 100.0
TARGET_FORM_QUERIES = 10
CROWDED_REVIEWS = 20
CLAIM_PATH = "/review/next/"
ASSIGNMENT_URL = re.compile(r"/review/assignments/(\d+)/$")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="open review tasks to load")
    parser.add_argument("--clients", type=int, default=50, help="concurrent reviewer clients")
    parser.add_argument("--paced-rate", type=float, default=50.0, help="claims/s of the paced phase, in total")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--capacity-seconds", type=float, default=15.0, help="length of the unpaced phase")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn worker processes (default: cores + 1)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--form-samples", type=int, default=200)
    return parser.parse_args()


def configure_this_process(url: str, secret_key: str) -> None:
    """This process loads data and renders the form in-process: same database and SECRET_KEY as the server
    (the sessions it writes must be valid there), settings without the collectstatic manifest."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "hitl_platform.settings.local",
            "DEBUG": "false",
            "SECRET_KEY": secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "DATABASE_URL": url,
            "DATABASE_CONN_MAX_AGE": "0",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()


@dataclass
class Account:
    user_id: int
    session_key: str


@dataclass
class Loaded:
    model_id: int
    accounts: list[list[Account]]
    csrf_token: str


def load(*, tasks: int, clients: int, accounts_per_client: int) -> Loaded:
    """One model with `tasks` open review tasks, and per client its reviewer accounts with live sessions."""
    import random

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import connection
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from hitl_platform.roles import Role
    from models_registry.choices import Stage
    from models_registry.models import MLModel, ModelVersion
    from reviews.choices import Route, TaskStatus
    from reviews.models import Prediction, ReviewTask, RoutingPolicy

    User = get_user_model()
    rng = random.Random(4)
    now = timezone.now()
    owner = User.objects.create_user(username="bench-owner", password=secrets.token_urlsafe(16))
    model = MLModel.objects.create(
        name="bench-credit",
        labels=["approve", "deny", "refer"],
        feature_schema={},
        sensitive_attributes=["sex"],
        owner=owner,
        review_guidelines="Deny when the instalment exceeds 40% of the monthly income.",
    )
    version = ModelVersion.objects.create(model=model, number=1, stage=Stage.PRODUCTION, created_by=owner)
    RoutingPolicy.objects.create(model=model)

    batch = 5000
    for start in range(0, tasks, batch):
        size = min(batch, tasks - start)
        predictions = Prediction.objects.bulk_create(
            [
                Prediction(
                    model=model,
                    version=version,
                    external_id=f"bench-{start + i}",
                    payload_sha256="0" * 64,
                    input_sha256="0" * 64,
                    features={"credit_amount": rng.randint(250, 20000), "duration": rng.randint(4, 72)},
                    sensitive_attributes={"sex": rng.choice(["female", "male"])},
                    predicted_label=rng.choice(["approve", "deny"]),
                    confidence=round(rng.uniform(0.5, 0.8), 3),
                    scores={},
                    explanation={"credit_amount": -0.3, "duration": 0.1},
                    route=Route.REVIEW,
                    route_reasons=["confidence is below the 0.80 auto-decide threshold"],
                    submitted_by=owner,
                    created_at=now,
                )
                for i in range(size)
            ]
        )
        ReviewTask.objects.bulk_create(
            [
                ReviewTask(
                    prediction=prediction,
                    model=model,
                    status=TaskStatus.OPEN,
                    reviews_required=rng.choice([1, 2, 2, 3]),
                    priority=rng.choice([0, 1000, 2000, 3000]) + rng.randint(0, 100),
                    due_at=now + timedelta(minutes=rng.randint(30, 48 * 60)),
                    created_at=now,
                )
                for prediction in predictions
            ]
        )
        print(f"  loaded {start + size:,} tasks", end="\r", flush=True)
    print()

    password = make_password(secrets.token_urlsafe(16))
    users = User.objects.bulk_create(
        [
            User(username=f"bench-reviewer-{n}", password=password, is_active=True)
            for n in range(clients * accounts_per_client)
        ],
        batch_size=5000,
    )
    reviewers = Group.objects.get(name=Role.REVIEWER.value)
    User.groups.through.objects.bulk_create(
        [User.groups.through(user_id=user.pk, group_id=reviewers.pk) for user in users], batch_size=5000
    )
    expire = now + timedelta(days=1)
    sessions = []
    for user in users:
        data = {
            "_auth_user_id": str(user.pk),
            "_auth_user_backend": settings.AUTHENTICATION_BACKENDS[0],
            "_auth_user_hash": user.get_session_auth_hash(),
        }
        sessions.append(
            Session(session_key=get_random_string(32), session_data=SessionStore().encode(data), expire_date=expire)
        )
    Session.objects.bulk_create(sessions, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    accounts = [
        Account(user_id=user.pk, session_key=session.session_key) for user, session in zip(users, sessions, strict=True)
    ]
    return Loaded(
        model_id=model.pk,
        accounts=[accounts[c * accounts_per_client : (c + 1) * accounts_per_client] for c in range(clients)],
        csrf_token=get_random_string(32),
    )


def claim_plan() -> str:
    """The claim query's plan, to show it walks the partial claim index."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from reviews.selectors.queue import claimable_tasks

    reviewer = get_user_model().objects.filter(username__startswith="bench-reviewer-").first()
    claim = claimable_tasks(reviewer).select_for_update(skip_locked=True, of=("self",))[:1]
    with transaction.atomic(), connection.cursor() as cursor:
        sql, params = claim.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@dataclass
class Claim:
    account: Account
    latency: float
    status: int
    assignment_id: int | None


@dataclass
class ClientRun:
    claims: list[Claim] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run_client(
    *, port: int, accounts: list[Account], csrf_token: str, schedule, deadline: float, run: ClientRun
) -> None:
    """Claim with one account after another; `schedule(k)` gives the k-th request's start time (or None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for k, account in enumerate(accounts):
        planned = schedule(k)
        if planned is not None:
            if planned >= deadline:
                break
            delay = planned - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        start = time.perf_counter() if planned is None else planned
        if start >= deadline:
            break
        headers = {
            "Cookie": f"sessionid={account.session_key}; csrftoken={csrf_token}",
            "X-CSRFToken": csrf_token,
            "Content-Length": "0",
        }
        try:
            connection.request("POST", CLAIM_PATH, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as error:
            run.errors.append(repr(error))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        latency = time.perf_counter() - start
        match = ASSIGNMENT_URL.search(response.getheader("Location") or "")
        run.claims.append(Claim(account, latency, response.status, int(match.group(1)) if match else None))
    connection.close()


@dataclass
class Phase:
    runs: list[ClientRun]
    elapsed: float


def run_phase(*, loaded: Loaded, port: int, offset: list[int], rate: float | None, seconds: float) -> Phase:
    """All clients at once, each from its next unused account; paced at `rate` claims/s in total, or not.

    No request starts after `seconds`; the phase lasts until the last answer, and rates are per that time.
    """
    clients = len(loaded.accounts)
    runs = [ClientRun() for _ in range(clients)]
    t0 = time.perf_counter() + 0.5
    deadline = t0 + seconds
    interval = clients / rate if rate else None
    threads = []
    for c in range(clients):
        accounts = loaded.accounts[c][offset[c] :]

        def schedule(k: int, c: int = c) -> float | None:
            if interval is None:
                return None if time.perf_counter() >= t0 else t0
            return t0 + (c / clients) * interval + k * interval

        threads.append(
            threading.Thread(
                target=run_client,
                kwargs={
                    "port": port,
                    "accounts": accounts,
                    "csrf_token": loaded.csrf_token,
                    "schedule": schedule,
                    "deadline": deadline,
                    "run": runs[c],
                },
            )
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t0
    for c, run in enumerate(runs):
        offset[c] += len(run.claims) + len(run.errors)
    return Phase(runs=runs, elapsed=elapsed)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_and_database_pids(port: int) -> tuple[list[int], list[int]]:
    """The gunicorn master and workers bound to `port`, and the PostgreSQL backends of the benchmark database."""
    from django.db import connection

    masters, parents = [], {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if "gunicorn" in command and f"127.0.0.1:{port}" in command:
            masters.append(int(entry.name))
    # Forked workers carry the master's command line too, so they match both tests: count each process once.
    server = sorted(set(masters) | {pid for pid, parent in parents.items() if parent in masters})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        database = [row[0] for row in cursor.fetchall()]
    return server, database


def cpu_per_claim(port: int, phase) -> tuple[Phase, dict]:
    """Run a phase and split the CPU it cost per claim between the server, PostgreSQL and the load generator."""
    server_before, database_before = server_and_database_pids(port)
    before = {pid: cpu_seconds(pid) for pid in server_before + database_before}
    client_before = time.process_time()
    result = phase()
    client_cpu = time.process_time() - client_before
    server_after, database_after = server_and_database_pids(port)

    def spent(pids: list[int]) -> float:
        return sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)

    claims = max(1, sum(1 for run in result.runs for claim in run.claims if claim.assignment_id))
    return result, {
        "server_ms": spent(server_after) * 1000 / claims,
        "database_ms": spent(database_after) * 1000 / claims,
        "load_generator_ms": client_cpu * 1000 / claims,
    }


def summarise(phase: Phase) -> dict:
    runs = phase.runs
    claims = [claim for run in runs for claim in run.claims]
    latencies_ms = [claim.latency * 1000 for claim in claims if claim.assignment_id is not None]
    return {
        "requests": len(claims),
        "claimed": len(latencies_ms),
        "non_claim_responses": sum(claim.assignment_id is None for claim in claims),
        "errors": sum(len(run.errors) for run in runs),
        "seconds": phase.elapsed,
        "claims_per_second": len(latencies_ms) / phase.elapsed,
        "p50_ms": percentile(latencies_ms, 50),
        "p95_ms": percentile(latencies_ms, 95),
        "p99_ms": percentile(latencies_ms, 99),
        "max_ms": max(latencies_ms),
    }


def double_claim_check(all_claims: list[Claim]) -> dict:
    """Read back from the database: no task over-handed, slots consistent, each claim the asker's own."""
    from django.db.models import Count, F, Q

    from reviews.choices import LIVE_ASSIGNMENT_STATUSES
    from reviews.models import Assignment, ReviewTask

    live = Count("assignments", filter=Q(assignments__status__in=LIVE_ASSIGNMENT_STATUSES))
    tasks = ReviewTask.objects.annotate(live=live).filter(Q(live__gt=F("reviews_required")) | ~Q(slots_taken=F("live")))
    duplicates = Assignment.objects.values("task_id", "reviewer_id").annotate(n=Count("id")).filter(n__gt=1).count()
    answered = {claim.assignment_id: claim.account.user_id for claim in all_claims if claim.assignment_id}
    owners = dict(Assignment.objects.filter(pk__in=answered).values_list("pk", "reviewer_id"))
    return {
        "assignments": Assignment.objects.count(),
        "claims_answered": len(answered),
        "tasks_over_handed_or_inconsistent": tasks.count(),
        "duplicate_task_reviewer_pairs": duplicates,
        "claims_not_owned_by_asker": sum(owners.get(pk) != user for pk, user in answered.items()),
        "claims_missing_in_database": len(set(answered) - set(owners)),
    }


def form_render(sample: list[int]) -> dict:
    """Render the review form in-process: server time and queries, for claimed cases and a many-review case."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from hitl_platform.roles import Role
    from reviews.choices import AssignmentStatus, TaskStatus
    from reviews.models import Assignment, Review, ReviewTask

    assignments = list(Assignment.objects.filter(pk__in=sample).select_related("reviewer"))
    # A case with many reviews already in and one live claim: the form of that claim must not grow with them.
    reviewers = Group.objects.get(name=Role.REVIEWER.value)
    crowd = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-crowd-{n}") for n in range(CROWDED_REVIEWS + 1)]
    )
    reviewers.user_set.add(*crowd)
    crowded = ReviewTask.objects.filter(status=TaskStatus.OPEN).first()
    crowded.reviews_required = CROWDED_REVIEWS + 1
    crowded.slots_taken = CROWDED_REVIEWS + 1
    crowded.status = TaskStatus.IN_REVIEW
    crowded.save()
    for reviewer in crowd[:-1]:
        done = Assignment.objects.create(task=crowded, reviewer=reviewer, status=AssignmentStatus.SUBMITTED)
        Review.objects.create(task=crowded, assignment=done, reviewer=reviewer, label="deny", rationale="x" * 200)
    crowded_assignment = Assignment.objects.create(
        task=crowded, reviewer=crowd[-1], lease_expires_at=timezone.now() + timedelta(minutes=15)
    )

    def measure(assignment: Assignment) -> tuple[float, int]:
        client = Client()
        client.force_login(assignment.reviewer)
        url = f"/review/assignments/{assignment.pk}/"
        client.get(url)  # warm the per-process caches (templates, URL resolver) once per client
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise SystemExit(f"the review form answered {response.status_code} for assignment {assignment.pk}")
        return elapsed, len(queries)

    timings = [measure(assignment) for assignment in assignments]
    crowded_ms, crowded_queries = measure(crowded_assignment)
    times = [ms for ms, _ in timings]
    return {
        "samples": len(timings),
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "max_queries": max(queries for _, queries in timings),
        "many_reviews_case": {"reviews": CROWDED_REVIEWS, "ms": crowded_ms, "queries": crowded_queries},
    }


def main() -> int:
    args = parse_args()
    url = database_url(DATABASE_NAME)
    workers = args.workers or (os.cpu_count() or 2) + 1
    # Enough accounts for both phases even at five times the capacity target.
    per_client = int(
        (args.paced_rate * args.paced_seconds + 5 * TARGET_CAPACITY * args.capacity_seconds) / args.clients
    )
    secret_key = secrets.token_urlsafe(50)
    environment = production_environment(
        url,
        SECRET_KEY=secret_key,
        GUNICORN_CMD_ARGS=f"--worker-class gthread --threads {args.threads} --keep-alive 30",
    )
    print(machine_line())
    print(f"recreating and migrating {DATABASE_NAME} ...", flush=True)
    recreate_database(url)
    manage(environment, "migrate", "--noinput", "--verbosity", "0")
    configure_this_process(url, secret_key)
    from django.db import connection

    print(f"loading {args.tasks:,} open tasks and {args.clients * per_client:,} reviewer accounts ...", flush=True)
    started = time.perf_counter()
    loaded = load(tasks=args.tasks, clients=args.clients, accounts_per_client=per_client)
    print(f"  loaded in {time.perf_counter() - started:.1f} s")
    plan = claim_plan()
    print("claim query plan:\n  " + plan.replace("\n", "\n  "))
    connection.close()

    port = free_port()
    log = REPO / "test-output" / "bench" / "claim-gunicorn.log"
    print(f"gunicorn: {workers} gthread workers x {args.threads} threads, production settings", flush=True)
    # This process loaded the data through Django: a full collection over that heap would stall every client
    # thread at once and be counted as server latency. Frozen, the collector skips it (as the server does).
    gc.freeze()
    with gunicorn(environment, workers=workers, port=port, log=log):
        offset = [0] * args.clients
        run_phase(loaded=loaded, port=port, offset=offset, rate=args.clients, seconds=1.0)  # warm-up
        print(f"phase 1: {args.clients} clients paced to {args.paced_rate:g} claims/s for {args.paced_seconds:g} s")
        paced_phase = run_phase(
            loaded=loaded, port=port, offset=offset, rate=args.paced_rate, seconds=args.paced_seconds
        )
        print(f"phase 2: {args.clients} clients unpaced for {args.capacity_seconds:g} s", flush=True)
        capacity_phase, cpu = cpu_per_claim(
            port, lambda: run_phase(loaded=loaded, port=port, offset=offset, rate=None, seconds=args.capacity_seconds)
        )
    load_after = os.getloadavg()[0]

    paced = summarise(paced_phase)
    capacity = summarise(capacity_phase)
    all_claims = [claim for run in paced_phase.runs + capacity_phase.runs for claim in run.claims]
    check = double_claim_check(all_claims)
    double_claims = sum(value for key, value in check.items() if key not in ("assignments", "claims_answered"))
    form = form_render([claim.assignment_id for claim in all_claims if claim.assignment_id][: args.form_samples])

    print(f"\nload average after the HTTP phases: {load_after:.2f} (other processes share these cores)")
    figures = Figures()
    figures.add(f"paced: claims/s achieved (of {args.paced_rate:g})", paced["claims_per_second"], "/s")
    figures.add("paced: claim latency p50", paced["p50_ms"], "ms")
    figures.add("paced: claim latency p99", paced["p99_ms"], "ms", target=TARGET_P99_MS, higher_is_better=False)
    figures.add("paced: claim latency max", paced["max_ms"], "ms")
    figures.add("capacity: claims/s unpaced", capacity["claims_per_second"], "/s", target=TARGET_CAPACITY)
    figures.add("capacity: claim latency p99", capacity["p99_ms"], "ms")
    per_claim_ms = cpu["server_ms"] + cpu["database_ms"] + cpu["load_generator_ms"]
    figures.add("CPU per claim: server (gunicorn)", cpu["server_ms"], "ms")
    figures.add("CPU per claim: PostgreSQL", cpu["database_ms"], "ms")
    figures.add("CPU per claim: load generator", cpu["load_generator_ms"], "ms")
    figures.add("ceiling if these cores ran nothing else", (os.cpu_count() or 1) * 1000 / per_claim_ms, "/s")
    figures.add("double claims (database check)", double_claims, "", target=1, higher_is_better=False)
    figures.add("errors and non-claim answers", paced["errors"] + capacity["errors"], "")
    figures.add("review form server time p50", form["p50_ms"], "ms")
    figures.add("review form server time p99", form["p99_ms"], "ms", target=TARGET_FORM_MS, higher_is_better=False)
    figures.add(
        "review form queries (most)", form["max_queries"], "", target=TARGET_FORM_QUERIES + 1, higher_is_better=False
    )
    crowded = form["many_reviews_case"]
    figures.add(f"review form, case with {crowded['reviews']} reviews", crowded["ms"], "ms")
    figures.add(f"review form queries, case with {crowded['reviews']} reviews", crowded["queries"], "")
    print(f"database check: {json.dumps(check)}")
    print(figures.summary())

    result = {
        "machine": machine_line(),
        "load_average_after": load_after,
        "tasks": args.tasks,
        "clients": args.clients,
        "gunicorn": {"workers": workers, "threads": args.threads, "worker_class": "gthread"},
        "paced": paced,
        "capacity": capacity,
        "cpu_per_claim_ms": cpu,
        "double_claims": double_claims,
        "double_claim_check": check,
        "review_form": form,
        "claim_plan": plan,
    }
    out = REPO / "test-output" / "bench" / "claim.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(REPO)}")
    failed = double_claims or paced["errors"] or capacity["errors"] or paced["non_claim_responses"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
