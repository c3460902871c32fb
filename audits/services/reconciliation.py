"""Reconcile the governed rows with the ledger: each must equal what its latest ledger event says.

The chain proves that no event was altered; it says nothing of the rows the events describe. A decision's label
edited in the database leaves the chain intact while the API serves the edited label, so verification also
compares every governed row with its latest event:

| table                          | events (the latest wins)                           | fields compared              |
|--------------------------------|----------------------------------------------------|------------------------------|
| `reviews.decision`             | decision.made, decision.reversed                   | final_label, source,         |
|                                |                                                    | agreement, decided_by        |
| `reviews.review`               | review.submitted, review.corrected                 | label, reviewer,             |
|                                |                                                    | is_adjudication              |
| `models_registry.modelversion` | version.registered, promotion.decided              | stage                        |
| `reviews.routingpolicy`        | policy.created, policy.changed, policy.stop_switch | every routing setting        |

Events written before a field was added to its payload carry less: only what an event carries is compared (an
old ``policy.changed`` carries the settings it changed, an old ``decision.made`` no ``decided_by``). A row that
no event names was written outside the services (a fixture, an import): it is counted as unrecorded, not as
a mismatch. Decisions and reviews are streamed (a server-side cursor, events fetched per batch) in one
read-only snapshot, so a million decisions reconcile in seconds without an appeal in between looking like one.
"""

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection, transaction

from audits.events import LedgerEvent
from audits.models import DecisionEvent
from models_registry.models import ModelVersion
from reviews.models import Decision, Review, RoutingPolicy

DECISION_TABLE = "reviews.decision"
REVIEW_TABLE = "reviews.review"
VERSION_TABLE = "models_registry.modelversion"
POLICY_TABLE = "reviews.routingpolicy"
DECISION_EVENTS = (LedgerEvent.DECISION_MADE, LedgerEvent.DECISION_REVERSED)
REVIEW_EVENTS = (LedgerEvent.REVIEW_SUBMITTED, LedgerEvent.REVIEW_CORRECTED)
VERSION_EVENTS = (LedgerEvent.VERSION_REGISTERED, LedgerEvent.PROMOTION_DECIDED)
POLICY_EVENTS = (LedgerEvent.POLICY_CREATED, LedgerEvent.POLICY_CHANGED, LedgerEvent.POLICY_STOP_SWITCH)
DEFAULT_KEEP = 1000


@dataclass(frozen=True)
class Mismatch:
    """One governed field whose row value differs from what its latest ledger event says."""

    table: str
    object_id: int
    field: str
    ledger_value: Any
    row_value: Any
    event_id: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "object_id": self.object_id,
            "field": self.field,
            "ledger_value": self.ledger_value,
            "row_value": self.row_value,
            "event_id": self.event_id,
        }

    def __str__(self) -> str:
        return (
            f"{self.table} {self.object_id} {self.field}: ledger {self.ledger_value!r} (event #{self.event_id}), "
            f"row {self.row_value!r}"
        )


@dataclass
class Reconciliation:
    """What a reconciliation compared and found: rows per table, unrecorded rows, and the (first) mismatches."""

    rows: dict[str, int] = field(default_factory=dict)
    unrecorded: dict[str, int] = field(default_factory=dict)
    mismatch_count: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.mismatch_count == 0

    @property
    def rows_total(self) -> int:
        return sum(self.rows.values())


def decision_claims(event_type: str, payload: dict[str, Any], actor_id: int | None) -> dict[str, Any]:
    """What a decision event says the decision row holds."""
    claims = {name: payload[key] for name, key in (("final_label", "label"), ("source", "source")) if key in payload}
    reversed_on_appeal = event_type == LedgerEvent.DECISION_REVERSED
    if "agreement" in payload:
        claims["agreement"] = payload["agreement"]
    elif reversed_on_appeal:
        claims["agreement"] = None  # an appeal clears the agreement: the adjudicator's call replaces the votes
    if "decided_by_id" in payload:
        claims["decided_by"] = payload["decided_by_id"]
    elif reversed_on_appeal:
        claims["decided_by"] = actor_id  # the adjudicator who reversed it is the actor and the new decider
    return claims


def review_claims(event_type: str, payload: dict[str, Any], actor_id: int | None) -> dict[str, Any]:
    """What a review event says the review row holds (the reviewer is the event's actor in older events)."""
    claims: dict[str, Any] = {name: payload[name] for name in ("label", "is_adjudication") if name in payload}
    claims["reviewer"] = payload.get("reviewer_id", actor_id)
    return claims


def policy_claims(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The routing settings a policy event says the policy holds."""
    if "settings" in payload:
        return dict(payload["settings"])
    if event_type == LedgerEvent.POLICY_CHANGED:
        return {name: change["to"] for name, change in payload.get("changes", {}).items()}
    if event_type == LedgerEvent.POLICY_STOP_SWITCH and "on" in payload:
        return {"stop_switch_on": payload["on"]}
    return {}


def version_stage_claims(event_type: str, object_id: str, payload: dict[str, Any]) -> list[tuple[int, str]]:
    """(version id, stage) pairs an event states: a registration, or a decided promotion and what it archived."""
    if event_type == LedgerEvent.VERSION_REGISTERED:
        return [(int(object_id), payload.get("stage", "candidate"))]
    claims = []
    # Older events name no stage: an approved request moved the version to its target, a rejected one did not.
    approved = payload.get("status") == "approved"
    stage = payload.get("version_stage") or (payload.get("target_stage") if approved else None)
    if payload.get("version_id") is not None and stage:
        claims.append((payload["version_id"], stage))
    if payload.get("archived_version_id") is not None:
        claims.append((payload["archived_version_id"], payload.get("archived_version_stage", "archived")))
    return claims


def _differences(
    table: str, object_id: int, claims: dict[str, Any], row: dict[str, Any], event_id: int | None
) -> Iterator[Mismatch]:
    for name, ledger_value in claims.items():
        if name in row and row[name] != ledger_value:
            yield Mismatch(table, object_id, name, ledger_value, row[name], event_id)


def _decision_row(decision: Decision) -> dict[str, Any]:
    return {
        "final_label": decision.final_label,
        "source": decision.source,
        "agreement": decision.agreement,
        "decided_by": decision.decided_by_id,
    }


def _review_row(review: Review) -> dict[str, Any]:
    return {"label": review.label, "reviewer": review.reviewer_id, "is_adjudication": review.is_adjudication}


def case_rows_reconcile(
    *, decision: Decision | None, reviews: Sequence[Review], events: Iterable[DecisionEvent]
) -> list[Mismatch]:
    """Compare a case's decision and reviews with their latest events among ``events`` (already loaded).

    No query: the case page passes the events it shows anyway.
    """
    latest: dict[tuple[str, str], DecisionEvent] = {}
    for event in events:
        if event.event_type in DECISION_EVENTS or event.event_type in REVIEW_EVENTS:
            key = (event.object_type, event.object_id)
            if key not in latest or event.pk > latest[key].pk:
                latest[key] = event
    mismatches: list[Mismatch] = []
    if decision is not None and (recorded := latest.get((DECISION_TABLE, str(decision.pk)))) is not None:
        claims = decision_claims(recorded.event_type, json.loads(recorded.payload), recorded.actor_id)
        mismatches += _differences(DECISION_TABLE, decision.pk, claims, _decision_row(decision), recorded.pk)
    for review in reviews:
        if (recorded := latest.get((REVIEW_TABLE, str(review.pk)))) is not None:
            claims = review_claims(recorded.event_type, json.loads(recorded.payload), recorded.actor_id)
            mismatches += _differences(REVIEW_TABLE, review.pk, claims, _review_row(review), recorded.pk)
    return mismatches


@contextmanager
def _read_only_snapshot() -> Iterator[None]:
    """One transaction for the whole reconciliation; on PostgreSQL a repeatable-read snapshot.

    Rows and events are then read as of one instant: an appeal committed halfway through is seen either in
    both or in neither. A transaction also lets the streaming cursor stay server-side without materialising.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def _batches(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    while batch := list(islice(rows, size)):
        yield batch


def _reconcile_streamed(
    *,
    table: str,
    rows: Iterator[tuple],
    fields: Sequence[str],
    event_types: Sequence[str],
    claims_of: Callable[[str, dict[str, Any], int | None], dict[str, Any]],
    batch_size: int,
    result: Reconciliation,
    report: Callable[[Mismatch], None],
) -> None:
    """Rows (id first, then ``fields``) against the latest of their events, fetched per batch of ids."""
    compared = unrecorded = 0
    for batch in _batches(rows, batch_size):
        latest: dict[str, tuple[int, str, int | None, str]] = {}
        # A plain fetch, unordered: a server-side cursor would be planned for its first rows (a scan in id order).
        events = (
            DecisionEvent.objects.filter(
                object_type=table, object_id__in=[str(row[0]) for row in batch], event_type__in=event_types
            )
            .order_by()
            .values_list("id", "object_id", "event_type", "actor_id", "payload")
        )
        for event_id, object_id, event_type, actor_id, payload in events:
            known = latest.get(object_id)
            if known is None or event_id > known[0]:
                latest[object_id] = (event_id, event_type, actor_id, payload)
        for row in batch:
            event = latest.get(str(row[0]))
            if event is None:
                unrecorded += 1
                continue
            event_id, event_type, actor_id, payload = event
            claims = claims_of(event_type, json.loads(payload), actor_id)
            for mismatch in _differences(table, row[0], claims, dict(zip(fields, row[1:], strict=True)), event_id):
                report(mismatch)
        compared += len(batch)
    result.rows[table] = compared
    result.unrecorded[table] = unrecorded


def _reconcile_versions(*, result: Reconciliation, report: Callable[[Mismatch], None]) -> None:
    stages: dict[int, tuple[int, str]] = {}
    events = DecisionEvent.objects.filter(event_type__in=VERSION_EVENTS).order_by("id")
    for event_id, event_type, object_id, payload in events.values_list("id", "event_type", "object_id", "payload"):
        for version_id, stage in version_stage_claims(event_type, object_id, json.loads(payload)):
            stages[version_id] = (event_id, stage)
    unrecorded = 0
    versions = ModelVersion.objects.order_by("id").values_list("id", "stage")
    for version_id, stage in versions:
        if version_id not in stages:
            unrecorded += 1
            continue
        event_id, ledger_stage = stages[version_id]
        for mismatch in _differences(VERSION_TABLE, version_id, {"stage": ledger_stage}, {"stage": stage}, event_id):
            report(mismatch)
    result.rows[VERSION_TABLE] = len(versions)
    result.unrecorded[VERSION_TABLE] = unrecorded


def _reconcile_policies(*, result: Reconciliation, report: Callable[[Mismatch], None]) -> None:
    latest: dict[str, tuple[int, str, str]] = {}
    events = DecisionEvent.objects.filter(object_type=POLICY_TABLE, event_type__in=POLICY_EVENTS).order_by("id")
    for event_id, object_id, event_type, payload in events.values_list("id", "object_id", "event_type", "payload"):
        latest[object_id] = (event_id, event_type, payload)
    unrecorded = 0
    policies = list(RoutingPolicy.objects.order_by("id"))
    for policy in policies:
        if str(policy.pk) not in latest:
            unrecorded += 1
            continue
        event_id, event_type, payload = latest[str(policy.pk)]
        claims = policy_claims(event_type, json.loads(payload))
        row = {name: getattr(policy, name) for name in claims if hasattr(policy, name)}
        for mismatch in _differences(POLICY_TABLE, policy.pk, claims, row, event_id):
            report(mismatch)
    result.rows[POLICY_TABLE] = len(policies)
    result.unrecorded[POLICY_TABLE] = unrecorded


def governed_rows_reconcile(
    *, batch_size: int = 5000, keep: int | None = DEFAULT_KEEP, on_mismatch: Callable[[Mismatch], None] | None = None
) -> Reconciliation:
    """Compare every decision, review, version stage and routing policy with its latest ledger event.

    Keeps the first ``keep`` mismatches (all with None) and counts the rest; ``on_mismatch`` sees each one as
    it is found (the command prints them as they come).
    """
    result = Reconciliation()

    def report(mismatch: Mismatch) -> None:
        result.mismatch_count += 1
        if keep is None or len(result.mismatches) < keep:
            result.mismatches.append(mismatch)
        if on_mismatch is not None:
            on_mismatch(mismatch)

    with _read_only_snapshot():
        decision_fields = ("final_label", "source", "agreement", "decided_by")
        _reconcile_streamed(
            table=DECISION_TABLE,
            rows=Decision.objects.order_by("id").values_list("id", *decision_fields).iterator(chunk_size=batch_size),
            fields=decision_fields,
            event_types=DECISION_EVENTS,
            claims_of=decision_claims,
            batch_size=batch_size,
            result=result,
            report=report,
        )
        review_fields = ("label", "reviewer", "is_adjudication")
        _reconcile_streamed(
            table=REVIEW_TABLE,
            rows=Review.objects.order_by("id").values_list("id", *review_fields).iterator(chunk_size=batch_size),
            fields=review_fields,
            event_types=REVIEW_EVENTS,
            claims_of=review_claims,
            batch_size=batch_size,
            result=result,
            report=report,
        )
        _reconcile_versions(result=result, report=report)
        _reconcile_policies(result=result, report=report)
    return result
