"""Prediction intake: validate a batch in one pass, score what needs scoring, route, and store it all at once.

The contract (``POST /api/v1/models/{name}/predictions/``):

- One item, or a batch of up to 5,000. Validation is all-or-nothing: every error of every item is collected
  as (index, field, message) and, if there is any, nothing is stored.
- Idempotency by (model, external_id). An item's ``payload_sha256`` is the SHA-256 of its canonical JSON as
  sent. The same external_id with the same payload is a replay: the stored result is returned and nothing is
  created. The same external_id with a different payload is a conflict. A batch with any conflict is answered
  409, listing every conflicting item, and stores nothing (the batch stays all-or-nothing); the caller drops
  or fixes those items and sends the batch again, whose other items are then stored.
- Items without a ``label`` are scored by the platform with their version's model file, one vectorised call
  per version per batch (see ``models_registry.scoring``). The version defaults to the model's production
  version; a batch naming no version for a model without a production version is answered 400.
- Scoring happens before the write transaction opens (SQLite holds its write lock for a whole transaction).
- Writes, in one transaction and with no query per item: predictions and their history rows, automatic
  decisions (with history and webhook outbox rows, via ``decisions_create_bulk``), review tasks and their
  history rows, then one chained ledger run holding a ``prediction.routed`` event per prediction followed, for
  an automatic decision, by its ``decision.made`` event.
- Concurrency: two requests storing the same new external_id meet at the unique constraint; the second waits
  for the first to commit, fails, and is retried once, when it finds the first one's rows (replays or
  conflicts). New rows are inserted in external_id order, so two overlapping batches never deadlock.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from jsonschema.exceptions import SchemaError

from audits.events import LedgerEvent
from audits.ledger import LedgerEntry, canonical_json, ledger_append_many, sha256_hex
from hitl_platform.history import bulk_create_with_history_fast
from models_registry.choices import Stage
from models_registry.features import feature_validator
from models_registry.models import MLModel, ModelVersion
from models_registry.scoring import ScoringError, score_batch
from models_registry.services import ml_model_check_writer
from models_registry.validators import json_value_problem, sensitive_name_keys, sensitive_paths
from reviews.choices import DecisionSource, Route, TaskStatus
from reviews.exceptions import IntakeConflictError, IntakeError, IntakeValidationError
from reviews.models import Decision, Prediction, ReviewTask
from reviews.routing import Case, RoutingResult, route_case
from reviews.selectors.predictions import existing_predictions_by_external_id, versions_for_intake
from reviews.services.decisions import decisions_create_bulk
from reviews.services.policies import (
    routing_policy_get_or_create_default,
    routing_policy_sha256,
    routing_policy_snapshot,
)

if TYPE_CHECKING:
    from reviews.selectors.predictions import VersionedRoutingPolicy

MAX_BATCH_SIZE = 5000
MAX_EXTERNAL_ID_LENGTH = 200
ITEM_FIELDS = frozenset(
    {"external_id", "features", "attributes", "label", "confidence", "scores", "explanation", "version"}
)
INTAKE_REASON = (
    "Received through the prediction API and routed by the model's routing policy (its version is recorded)."
)
AUTO_DECISION_REASON = "Decided automatically under the model's routing policy (see the prediction's route reasons)."


@dataclass(frozen=True)
class IntakeOutcome:
    """One result per item, in the order sent, and how many were created or replayed."""

    results: list[dict[str, Any]]
    created: int
    replayed: int


@dataclass(slots=True)
class _Item:
    index: int
    external_id: str
    features: dict[str, Any]
    attributes: dict[str, Any]
    label: str | None
    confidence: float | None
    # The platform's scores keep a model's non-finite answers as None (see models_registry.scoring).
    scores: dict[str, float | None] | None
    explanation: Any
    version_number: int | None
    payload_sha256: str
    version: ModelVersion | None = None
    scored_by_platform: bool = False
    confidence_problem: str = ""
    routing: RoutingResult | None = field(default=None)

    # Intake fills an item in steps and refuses the batch at the first step any item fails, so each step after
    # the one filling a value can rely on it.
    @property
    def resolved_version(self) -> ModelVersion:
        assert self.version is not None, "_resolve_versions refuses a batch with an item it found no version for"
        return self.version

    @property
    def known_label(self) -> str:
        assert self.label is not None, "_store refuses a batch with an item its version could not score"
        return self.label

    @property
    def routed(self) -> RoutingResult:
        assert self.routing is not None, "_store routes every new item before building its rows"
        return self.routing


# Compiled validators, one per (model, schema content): compiling is far slower than validating.
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_probability(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _parse_items(model: MLModel, raw_items: Sequence[Any], errors: list[IntakeError]) -> list[_Item]:
    """Check every item's shape and values against the model; collect every error, return the good items."""
    try:
        validator = feature_validator(model_id=model.pk, schema=model.feature_schema)
    except SchemaError as exc:
        errors.append(IntakeError(None, "features", f"The feature schema of {model.name} is not valid: {exc.message}"))
        return []
    labels = set(model.labels)
    label_list = ", ".join(model.labels)
    sensitive = set(model.sensitive_attributes or [])
    sensitive_keys = sensitive_name_keys(sensitive)
    first_index_of: dict[str, int] = {}
    items: list[_Item] = []

    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            errors.append(IntakeError(index, "", "Each prediction must be a JSON object."))
            continue
        before = len(errors)

        def error(name: str, message: str, index: int = index) -> None:
            errors.append(IntakeError(index, name, message))

        for name in sorted(raw.keys() - ITEM_FIELDS):
            # A key may hold a lone surrogate, which no response could encode: name it escaped.
            error(str(name).encode("utf-8", "backslashreplace").decode("utf-8"), "Unknown field.")

        external_id = raw.get("external_id")
        if external_id is None:
            error("external_id", "This field is required: it is the idempotency key of the prediction.")
        elif not isinstance(external_id, str) or not external_id.strip():
            error("external_id", "Enter a non-empty string.")
        elif len(external_id) > MAX_EXTERNAL_ID_LENGTH:
            error("external_id", f"Enter at most {MAX_EXTERNAL_ID_LENGTH} characters.")
        elif external_id in first_index_of:
            error("external_id", f"Repeats the external_id of item {first_index_of[external_id]} of this batch.")
        else:
            first_index_of[external_id] = index

        features = raw.get("features")
        if features is None:
            error("features", "This field is required.")
        elif not isinstance(features, dict):
            error("features", "Enter a JSON object of the model's input features.")
        else:
            for path, message in validator.problems(features):
                error(f"features.{path}" if path else "features", message)
            for path in sensitive_paths(features, sensitive_keys):
                error(
                    f"features.{path}",
                    "Named like a sensitive attribute of the model: send it in 'attributes' (kept apart, never "
                    "shown to reviewers), not in the features.",
                )

        attributes = raw.get("attributes")
        if attributes is not None:
            if not isinstance(attributes, dict):
                error("attributes", "Enter a JSON object of sensitive attributes.")
            else:
                unknown = sorted(set(attributes) - sensitive) if sensitive else []
                if unknown:
                    error(
                        "attributes",
                        f"Not sensitive attributes of {model.name}: {', '.join(unknown)}. "
                        f"Declared: {', '.join(model.sensitive_attributes)}.",
                    )
                if any(isinstance(value, (dict, list)) for value in attributes.values()):
                    error("attributes", "Each attribute must be a string, a number, true/false or null.")

        label = raw.get("label")
        if label is not None and (not isinstance(label, str) or label not in labels):
            error("label", f"Unknown label {label!r}: the labels of {model.name} are {label_list}.")

        confidence = raw.get("confidence")
        if confidence is not None:
            if not _is_probability(confidence):
                error("confidence", "Enter a number between 0 and 1.")
            elif label is None:
                error("confidence", "A confidence needs a label; leave both out to have the platform score it.")

        scores = raw.get("scores")
        if scores is not None:
            if not isinstance(scores, dict):
                error("scores", "Enter a JSON object of label -> probability.")
            else:
                unknown = sorted(str(key) for key in scores if key not in labels)
                if unknown:
                    error("scores", f"Not labels of {model.name}: {', '.join(unknown)}. Its labels: {label_list}.")
                if not all(_is_probability(value) for value in scores.values()):
                    error("scores", "Each score must be a number between 0 and 1.")
                if label is None:
                    error("scores", "Scores need a label; leave both out to have the platform score it.")

        # What PostgreSQL cannot store (NUL, lone surrogates, 1e400 parsed as infinity) is refused here by field,
        # on every database, rather than failing at the database or when the payload is hashed.
        for name in ("external_id", "features", "attributes", "explanation"):
            if name in raw and isinstance(raw[name], str | dict | list | float):
                problem = json_value_problem(raw[name])
                if problem:
                    error(name, problem)

        version_number = raw.get("version")
        if version_number is not None and (
            isinstance(version_number, bool) or not isinstance(version_number, int) or version_number < 1
        ):
            error("version", "Enter a version number (a whole number from 1).")

        if len(errors) == before:
            # No error for this item: the checks above found its external_id a string and its features an object.
            assert isinstance(external_id, str) and isinstance(features, dict)
            items.append(
                _Item(
                    index=index,
                    external_id=external_id,
                    features=features,
                    attributes=attributes or {},
                    label=label,
                    confidence=float(confidence) if confidence is not None else None,
                    scores=scores,
                    explanation=raw.get("explanation"),
                    version_number=version_number,
                    payload_sha256=sha256_hex(canonical_json(raw)),
                )
            )
    return items


def _resolve_versions(model: MLModel, items: list[_Item], errors: list[IntakeError]) -> None:
    """Give each item its version (the named one, else production) with one query; errors for the rest."""
    numbers = {item.version_number for item in items if item.version_number is not None}
    versions = versions_for_intake(model=model, numbers=numbers)
    for version in versions:
        version.model = model
    by_number = {version.number: version for version in versions}
    production = next((version for version in versions if version.stage == Stage.PRODUCTION), None)
    for item in items:
        if item.version_number is None:
            if production is None:
                errors.append(
                    IntakeError(
                        item.index,
                        "version",
                        f"{model.name} has no production version: name the version that made this prediction.",
                    )
                )
            item.version = production
            continue
        named = by_number.get(item.version_number)
        if named is None:
            errors.append(IntakeError(item.index, "version", f"{model.name} has no version {item.version_number}."))
        elif named.stage == Stage.REJECTED:
            errors.append(
                IntakeError(item.index, "version", f"Version {named.number} was rejected and may not be used.")
            )
        item.version = named


def _score(model: MLModel, items: list[_Item]) -> dict[int, IntakeError]:
    """Fill label, confidence and scores of unlabelled items: one predict_proba per version.

    Returns, by version id, why a version could not score its items (those keep no label). Called before the
    write transaction opens: SQLite holds its write lock for the whole transaction, and scoring a batch takes
    longer than storing it. Items that turn out to be replays are scored too, and their scores left unused.
    """
    by_version: dict[int, list[_Item]] = {}
    for item in items:
        if item.label is None:
            by_version.setdefault(item.resolved_version.pk, []).append(item)
    failures = {}
    for version_id, group in by_version.items():
        try:
            scored = score_batch(
                model=model, version=group[0].resolved_version, features=[item.features for item in group]
            )
        except ScoringError as exc:
            failures[version_id] = IntakeError(None, "label", str(exc))
            continue
        for item, score in zip(group, scored, strict=True):
            item.label, item.confidence, item.scores = score.label, score.confidence, score.scores
            item.confidence_problem = score.confidence_problem
            item.scored_by_platform = True
    return failures


def _stored_result(item: _Item, row: Mapping[str, Any]) -> dict[str, Any]:
    label = row["decision__final_label"]
    return {
        "external_id": item.external_id,
        "id": row["id"],
        "route": row["route"],
        "reasons": row["route_reasons"],
        "decision": {"label": label, "source": row["decision__source"]} if label is not None else None,
        "review_task": row["review_task__id"],
        "replayed": True,
    }


def _all_filled(results: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    filled = [result for result in results if result is not None]
    assert len(filled) == len(results), "every item is stored, or replayed, or the batch refused"
    return filled


def _routed_entry(prediction: Prediction, version: ModelVersion, task: ReviewTask | None, actor: User) -> LedgerEntry:
    return LedgerEntry(
        event_type=LedgerEvent.PREDICTION_ROUTED,
        object_type="reviews.prediction",
        object_id=prediction.pk,
        actor=actor,
        payload={
            "prediction_id": prediction.pk,
            "external_id": prediction.external_id,
            "model_id": prediction.model_id,
            "version_id": version.pk,
            "version": version.number,
            "label": prediction.predicted_label,
            "confidence": prediction.confidence,
            "scored_by_platform": prediction.scored_by_platform,
            "route": prediction.route,
            "reasons": prediction.route_reasons,
            "policy_history_id": prediction.policy_history_id,
            "policy_sha256": prediction.policy_sha256,
            "priority": prediction.priority,
            "is_qa_sample": prediction.is_qa_sample,
            "review_task_id": task.pk if task is not None else None,
            "input_sha256": prediction.input_sha256,
        },
    )


@transaction.atomic
def _store(
    *,
    model: MLModel,
    items: list[_Item],
    policy: "VersionedRoutingPolicy",
    actor: User,
    scoring_failures: dict[int, IntakeError],
) -> IntakeOutcome:
    existing = existing_predictions_by_external_id(model=model, external_ids=[item.external_id for item in items])
    results: list[dict[str, Any] | None] = [None] * len(items)
    conflicts = []
    new_items = []
    for position, item in enumerate(items):
        row = existing.get(item.external_id)
        if row is None:
            new_items.append((position, item))
        elif row["payload_sha256"] == item.payload_sha256:
            results[position] = _stored_result(item, row)
        else:
            conflicts.append(
                IntakeError(
                    item.index,
                    "external_id",
                    f"{item.external_id!r} is already stored (prediction {row['id']}) with a different payload.",
                )
            )
    if conflicts:
        raise IntakeConflictError(conflicts, total=len(items))
    if not new_items:
        return IntakeOutcome(results=_all_filled(results), created=0, replayed=len(items))

    # Only a version that could not score an item to be stored fails the batch, as if only those were scored.
    failed = {item.resolved_version.pk for _, item in new_items if item.label is None} & scoring_failures.keys()
    if failed:
        raise IntakeValidationError(
            [failure for version_id, failure in scoring_failures.items() if version_id in failed], total=len(items)
        )
    snapshot = routing_policy_snapshot(policy)
    policy_sha256 = routing_policy_sha256(policy)
    for _, item in new_items:
        item.routing = route_case(
            snapshot,
            Case(
                external_id=item.external_id,
                features=item.features,
                label=item.known_label,
                confidence=item.confidence,
                version_number=item.resolved_version.number,
                version_stage=item.resolved_version.stage,
                confidence_problem=item.confidence_problem,
            ),
        )

    # external_id order: overlapping concurrent batches take the unique-index locks in the same order.
    new_items.sort(key=lambda pair: pair[1].external_id)
    now = timezone.now()
    # Rows are built from ids, not related objects: assigning a related object per row costs more than the
    # rest of building the row.
    predictions = [
        Prediction(
            model_id=model.pk,
            version_id=item.resolved_version.pk,
            external_id=item.external_id,
            payload_sha256=item.payload_sha256,
            input_sha256=sha256_hex(canonical_json(item.features)),
            features=item.features,
            sensitive_attributes=item.attributes,
            predicted_label=item.known_label,
            confidence=item.confidence,
            scores=item.scores or {},
            explanation=item.explanation,
            scored_by_platform=item.scored_by_platform,
            route=item.routed.route,
            route_reasons=list(item.routed.reasons),
            policy_history_id=policy.history_id,
            policy_sha256=policy_sha256,
            priority=item.routed.priority,
            is_qa_sample=item.routed.is_qa_sample,
            submitted_by_id=actor.pk,
            created_at=now,
        )
        for _, item in new_items
    ]
    predictions = bulk_create_with_history_fast(
        predictions,
        Prediction,
        default_user=actor,
        default_change_reason=INTAKE_REASON,
        default_date=now,
    )

    auto = [prediction for prediction in predictions if prediction.route == Route.AUTO]
    decisions, decision_entries, _ = decisions_create_bulk(
        decisions=[
            Decision(
                prediction_id=prediction.pk,
                model_id=model.pk,
                final_label=prediction.predicted_label,
                source=DecisionSource.AUTO,
                decided_at=now,
            )
            for prediction in auto
        ],
        predictions_by_id={prediction.pk: prediction for prediction in auto},
        actor=actor,
        reason=AUTO_DECISION_REASON,
    )
    due_at = now + timedelta(hours=policy.sla_hours)
    tasks = bulk_create_with_history_fast(
        [
            ReviewTask(
                prediction_id=prediction.pk,
                model_id=model.pk,
                status=TaskStatus.OPEN,
                reviews_required=item.routed.reviews_required,
                needs_adjudication=item.routed.needs_adjudication,
                priority=item.routed.priority,
                due_at=due_at,
                escalation_reason="; ".join(item.routed.escalation_reasons),
                created_at=now,
            )
            for prediction, (_, item) in zip(predictions, new_items, strict=True)
            if prediction.route == Route.REVIEW
        ],
        ReviewTask,
        default_user=actor,
        default_change_reason=INTAKE_REASON,
        default_date=now,
    )

    decision_by_prediction = {decision.prediction_id: decision for decision in decisions}
    decision_entry_by_prediction = {
        decision.prediction_id: entry for decision, entry in zip(decisions, decision_entries, strict=True)
    }
    task_by_prediction = {task.prediction_id: task for task in tasks}
    entries = []
    for prediction, (position, item) in zip(predictions, new_items, strict=True):
        task = task_by_prediction.get(prediction.pk)
        decision = decision_by_prediction.get(prediction.pk)
        entries.append(_routed_entry(prediction, item.resolved_version, task, actor))
        if decision is not None:
            entries.append(decision_entry_by_prediction[prediction.pk])
        results[position] = {
            "external_id": item.external_id,
            "id": prediction.pk,
            "route": prediction.route,
            "reasons": prediction.route_reasons,
            "decision": {"label": decision.final_label, "source": decision.source} if decision is not None else None,
            "review_task": task.pk if task is not None else None,
            "replayed": False,
        }
    ledger_append_many(entries, returning=False)
    return IntakeOutcome(results=_all_filled(results), created=len(predictions), replayed=len(items) - len(predictions))


def predictions_ingest(*, model: MLModel, items: Sequence[Any], actor: User) -> IntakeOutcome:
    """Validate, score, route and store a batch of predictions for one model; see the module docstring.

    Raises ``IntakeValidationError`` (400) or ``IntakeConflictError`` (409); in both cases nothing is stored.
    """
    ml_model_check_writer(model=model, actor=actor)
    total = len(items)
    if total == 0:
        raise IntakeValidationError([IntakeError(None, "predictions", "Send at least one prediction.")], total=0)
    if total > MAX_BATCH_SIZE:
        raise IntakeValidationError(
            [
                IntakeError(
                    None,
                    "predictions",
                    f"Send at most {MAX_BATCH_SIZE:,} predictions per request; this one has {total:,}.",
                )
            ],
            total=total,
        )
    errors: list[IntakeError] = []
    parsed = _parse_items(model, items, errors)
    _resolve_versions(model, parsed, errors)
    if errors:
        raise IntakeValidationError(errors, total=total)

    policy = routing_policy_get_or_create_default(model=model)
    scoring_failures = _score(model, parsed)
    try:
        return _store(model=model, items=parsed, policy=policy, actor=actor, scoring_failures=scoring_failures)
    except IntegrityError:
        # A concurrent request stored some of these external_ids first (see the module docstring).
        return _store(model=model, items=parsed, policy=policy, actor=actor, scoring_failures=scoring_failures)
