"""Writes to the model registry: models, versions, and promotion requests and their decisions.

Each service runs in one transaction, leaves a history row with the acting user and a reason, and appends a
ledger event as its last write. Invariants live here, backed by database constraints where a database can
hold them: per-model version numbers (row lock on the model, unique constraint, retry), one production version
per model (partial unique index; the previous one is archived first, in the same transaction), and four-eyes
on promotions (a check constraint that the decider is not the requester).
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import ledger_append
from hitl_platform.history import historise
from hitl_platform.roles import Role
from models_registry.artifacts import InspectedModelFile, model_file_inspect, model_file_make_read_only
from models_registry.choices import PROMOTABLE_FROM, PROMOTION_TARGETS, PromotionStatus, RiskTier, Stage
from models_registry.gates import GateResult, promotion_gates_run, registered_promotion_gates
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from models_registry.scoring import model_file_mismatches
from models_registry.selectors import user_may_write_model
from models_registry.signals import promotion_requested
from models_registry.validators import validate_metrics

MODEL_EDITABLE_FIELDS = frozenset(
    {
        "description",
        "task",
        "labels",
        "positive_label",
        "feature_schema",
        "sensitive_attributes",
        "risk_tier",
        "intended_use",
        "out_of_scope_use",
        "limitations",
        "ethical_considerations",
        "review_guidelines",
        "team",
    }
)
# Versions were trained on these; changing them under an existing version would make its predictions invalid.
FROZEN_ONCE_VERSIONED = frozenset({"task", "labels", "feature_schema"})
VERSION_NUMBER_ATTEMPTS = 5
DECIDE_PERMISSION = "models_registry.decide_promotionrequest"


class FourEyesViolation(PermissionDenied):
    """The person deciding a promotion request is the person who made it."""


class PromotionBlocked(ValidationError):
    """A gate failed, so the request cannot be approved; the gate results were stored on the request."""

    def __init__(self, results: list[GateResult]):
        self.results = results
        failed = "; ".join(f"{result.name}: {result.reason}" for result in results if not result.passed)
        super().__init__(f"Approval blocked by failing gates. {failed}", code="gates_failed")


class _VersionNumberTaken(Exception):
    """Another registration took the number between our read and our insert; try again with a fresh read."""


class NotModelWriter(PermissionDenied):
    """The acting user neither owns the model nor is in its team (nor an administrator)."""


def ml_model_check_writer(*, model: MLModel, actor: User) -> None:
    """Raise ``NotModelWriter`` unless ``actor`` owns ``model``, is in its team, or administers the platform."""
    # The API already answers 404 for another team's model; this is the invariant behind it, for every caller.
    if not user_may_write_model(actor, model):
        raise NotModelWriter(f"Only the owner of {model.name}, its team and administrators may change it.")


def _validate_team(team: Group | None, *, owner: User) -> None:
    """A team is a group of people, not a role, and the owner belongs to it (administrators excepted)."""
    if team is None:
        return
    if team.name in {role.value for role in Role}:
        raise ValidationError({"team": f"{team.name} is a role, not a team: name the team's own group."})
    if not owner.is_superuser and not owner.groups.filter(pk=team.pk).exists():
        raise ValidationError({"team": f"The model's owner is not a member of {team.name}."})


def _require_text(value: str, *, field: str, message: str) -> None:
    if not value or not value.strip():
        raise ValidationError({field: message})


@transaction.atomic
def ml_model_register(
    *,
    owner: User,
    name: str,
    task: str,
    labels: list[str],
    positive_label: str = "",
    feature_schema: dict[str, Any] | None = None,
    sensitive_attributes: list[str] | None = None,
    risk_tier: str = RiskTier.MEDIUM,
    team: Group | None = None,
    description: str = "",
    intended_use: str = "",
    out_of_scope_use: str = "",
    limitations: str = "",
    ethical_considerations: str = "",
    review_guidelines: str = "",
    reason: str = "Model registered.",
) -> MLModel:
    """Register a model owned by ``owner`` (and, optionally, a team of theirs): validated, historised, in the ledger."""
    _validate_team(team, owner=owner)
    model = MLModel(
        owner=owner,
        team=team,
        name=name,
        task=task,
        labels=labels,
        positive_label=positive_label,
        feature_schema=feature_schema if feature_schema is not None else {},
        sensitive_attributes=sensitive_attributes if sensitive_attributes is not None else [],
        risk_tier=risk_tier,
        description=description,
        intended_use=intended_use,
        out_of_scope_use=out_of_scope_use,
        limitations=limitations,
        ethical_considerations=ethical_considerations,
        review_guidelines=review_guidelines,
    )
    model.full_clean()
    historise(model, actor=owner, reason=reason)
    try:
        with transaction.atomic():
            model.save()
    except IntegrityError as exc:
        # Two registrations of one name at once: full_clean saw it free, the unique index did not.
        if MLModel.objects.filter(name=name).exists():
            raise ValidationError({"name": "A model with this name already exists."}) from exc
        raise
    ledger_append(
        event_type=LedgerEvent.MODEL_REGISTERED,
        object_type="models_registry.mlmodel",
        object_id=model.pk,
        actor=owner,
        payload={
            "model_id": model.pk,
            "model": model.name,
            "risk_tier": model.risk_tier,
            "team": team.name if team is not None else None,
            "reason": reason,
        },
    )
    return model


@transaction.atomic
def ml_model_update(*, model: MLModel, actor: User, changes: Mapping[str, Any], reason: str) -> MLModel:
    """Change a model's definition or model card; a no-op leaves no history. Task, labels and feature schema
    are fixed once a version exists (register a new model instead)."""
    ml_model_check_writer(model=model, actor=actor)
    _require_text(reason, field="reason", message="Give a reason for the change.")
    not_editable = sorted(set(changes) - MODEL_EDITABLE_FIELDS)
    if not_editable:
        raise ValidationError({field: "This field cannot be changed." for field in not_editable})
    locked = MLModel.objects.select_for_update().get(pk=model.pk)
    changed = {field: value for field, value in changes.items() if getattr(locked, field) != value}
    if not changed:
        return locked
    frozen = sorted(FROZEN_ONCE_VERSIONED & changed.keys())
    if frozen and locked.versions.exists():
        raise ValidationError(
            {field: "Fixed once the model has versions: register a new model to change it." for field in frozen}
        )
    if "team" in changed:
        _validate_team(changed["team"], owner=locked.owner)
    for field, value in changed.items():
        setattr(locked, field, value)
    locked.full_clean()
    historise(locked, actor=actor, reason=reason)
    locked.save(update_fields=[*changed, "updated_at"])
    ledger_append(
        event_type=LedgerEvent.MODEL_UPDATED,
        object_type="models_registry.mlmodel",
        object_id=locked.pk,
        actor=actor,
        payload={"model_id": locked.pk, "model": locked.name, "fields": sorted(changed), "reason": reason},
    )
    return locked


def _next_version_number(model: MLModel) -> int:
    return (ModelVersion.objects.filter(model=model).aggregate(highest=Max("number"))["highest"] or 0) + 1


def _model_version_insert(
    *,
    model: MLModel,
    actor: User,
    inspected: InspectedModelFile | None,
    metrics: dict[str, Any],
    description: str,
    parent: ModelVersion | None,
    reason: str,
    retraining_job_id: int | None,
) -> ModelVersion:
    with transaction.atomic():
        # The row lock serialises registrations of one model on PostgreSQL; SQLite's IMMEDIATE transactions
        # serialise all writers. The unique constraint and the caller's retry cover any other writer.
        locked_model = MLModel.objects.select_for_update().get(pk=model.pk)
        number = _next_version_number(locked_model)
        version = ModelVersion(
            model=locked_model,
            number=number,
            metrics=metrics,
            description=description,
            parent=parent,
            retraining_job_id=retraining_job_id,
            created_by=actor,
        )
        if inspected is not None:
            version.artifact_sha256 = inspected.sha256
            version.artifact_size = inspected.size
            version.library_versions = inspected.library_versions
            version.artifact.save("model.skops", ContentFile(inspected.content), save=False)
            model_file_make_read_only(file=version.artifact)
        historise(version, actor=actor, reason=reason)
        try:
            with transaction.atomic():
                version.save()
        except IntegrityError as exc:
            if version.artifact:
                version.artifact.delete(save=False)
            if ModelVersion.objects.filter(model=locked_model, number=number).exists():
                raise _VersionNumberTaken from exc
            raise
        ledger_append(
            event_type=LedgerEvent.VERSION_REGISTERED,
            object_type="models_registry.modelversion",
            object_id=version.pk,
            actor=actor,
            payload={
                "model_id": locked_model.pk,
                "model": locked_model.name,
                "version_id": version.pk,
                "number": number,
                "stage": version.stage,
                "artifact_sha256": version.artifact_sha256,
                "artifact_size": version.artifact_size,
                "library_versions": version.library_versions,
                "parent_number": parent.number if parent else None,
                "retraining_job_id": retraining_job_id,
                "reason": reason,
            },
        )
    return version


def model_version_register(
    *,
    model: MLModel,
    actor: User,
    metrics: dict[str, Any] | None = None,
    description: str = "",
    artifact: File | None = None,
    parent_number: int | None = None,
    reason: str = "Version registered.",
    retraining_job_id: int | None = None,
) -> ModelVersion:
    """Register the next version of ``model``, with an optional skops model file.

    The file is validated before any lock is taken (it can be large), and refused when it cannot score the model's
    inputs as far as that is knowable without scoring (``scoring.model_file_mismatches``). The number is the
    model's highest plus one, read under a row lock and retried if another writer still took it first.
    """
    ml_model_check_writer(model=model, actor=actor)
    metrics = metrics if metrics is not None else {}
    try:
        validate_metrics(metrics)
    except ValidationError as exc:
        raise ValidationError({"metrics": exc.error_list}) from exc
    inspected = None
    if artifact is not None:
        try:
            inspected = model_file_inspect(file=artifact, labels=model.labels)
        except ValidationError as exc:
            raise ValidationError({"artifact": exc.error_list}) from exc
        mismatches = model_file_mismatches(model=model, estimator=inspected.estimator)
        if mismatches:
            raise ValidationError(
                {
                    "artifact": [
                        ValidationError(f"The model file does not fit {model.name}: {problem}.", code="schema_mismatch")
                        for problem in mismatches
                    ]
                }
            )
    parent = None
    if parent_number is not None:
        parent = ModelVersion.objects.filter(model=model, number=parent_number).first()
        if parent is None:
            raise ValidationError({"parent_version": f"Model {model.name} has no version {parent_number}."})
    attempt = 1
    while True:
        try:
            return _model_version_insert(
                model=model,
                actor=actor,
                inspected=inspected,
                metrics=metrics,
                description=description,
                parent=parent,
                reason=reason,
                retraining_job_id=retraining_job_id,
            )
        except _VersionNumberTaken:
            if attempt == VERSION_NUMBER_ATTEMPTS:
                raise
            attempt += 1


@transaction.atomic
def promotion_request_create(
    *, version: ModelVersion, actor: User, target_stage: str, rationale: str
) -> PromotionRequest:
    """Ask for ``version`` to move to ``target_stage``; someone else decides (four-eyes)."""
    if target_stage not in PROMOTION_TARGETS:
        allowed = ", ".join(PROMOTION_TARGETS)
        raise ValidationError({"target_stage": f"Promotions go to one of: {allowed}."})
    ml_model_check_writer(model=version.model, actor=actor)
    _require_text(rationale, field="rationale", message="Explain why this version should be promoted.")
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    allowed_from = PROMOTABLE_FROM[Stage(target_stage)]
    if locked.stage not in allowed_from:
        raise ValidationError(
            {
                "target_stage": f"A {locked.stage} version cannot be promoted to {target_stage} "
                f"(only from {', '.join(allowed_from)})."
            }
        )
    pending = PromotionRequest.objects.filter(
        version=locked, target_stage=target_stage, status=PromotionStatus.PENDING
    ).first()
    if pending is not None:
        raise ValidationError({"target_stage": f"Request #{pending.pk} to {target_stage} is already pending."})
    promotion_request = PromotionRequest(
        version=locked, target_stage=target_stage, requester=actor, rationale=rationale
    )
    historise(promotion_request, actor=actor, reason=f"Promotion to {target_stage} requested.")
    try:
        with transaction.atomic():
            promotion_request.save()
    except IntegrityError as exc:
        raise ValidationError({"target_stage": f"A request to {target_stage} is already pending."}) from exc
    ledger_append(
        event_type=LedgerEvent.PROMOTION_REQUESTED,
        object_type="models_registry.promotionrequest",
        object_id=promotion_request.pk,
        actor=actor,
        payload={
            "request_id": promotion_request.pk,
            "model_id": locked.model_id,
            "version_id": locked.pk,
            "number": locked.number,
            "from_stage": locked.stage,
            "target_stage": target_stage,
            "rationale": rationale,
        },
    )
    promotion_requested.send(sender=PromotionRequest, promotion_request=promotion_request)
    return promotion_request


def _promotion_apply(*, promotion_request: PromotionRequest, version: ModelVersion, actor: User) -> ModelVersion | None:
    """Move the version to its target stage; for production, archive the current production version first
    (the partial unique index allows one production version per model at any instant)."""
    archived = None
    target = promotion_request.target_stage
    if target == Stage.PRODUCTION:
        archived = (
            ModelVersion.objects.select_for_update()
            .filter(model_id=version.model_id, stage=Stage.PRODUCTION)
            .exclude(pk=version.pk)
            .first()
        )
        if archived is not None:
            archived.stage = Stage.ARCHIVED
            historise(
                archived,
                actor=actor,
                reason=f"Archived: v{version.number} replaces it in production "
                f"(promotion request #{promotion_request.pk}).",
            )
            archived.save(update_fields=["stage"])
    version.stage = target
    historise(version, actor=actor, reason=f"Moved to {target} by promotion request #{promotion_request.pk}.")
    version.save(update_fields=["stage"])
    return archived


def _with_overrides(results: list[GateResult], overrides: list[dict]) -> list[GateResult]:
    """A failed gate an administrator overrode for this request passes, saying so and keeping what it said."""
    by_gate = {override["gate"]: override for override in overrides}
    return [
        GateResult(
            result.name,
            True,
            f"Overridden by {by_gate[result.name]['by']} ({by_gate[result.name]['reason']}); the gate said: "
            f"{result.reason}",
            {**result.evidence, "override": by_gate[result.name]},
        )
        if not result.passed and result.name in by_gate
        else result
        for result in results
    ]


@transaction.atomic
def promotion_request_override_gate(
    *, promotion_request: PromotionRequest, gate: str, actor: User, reason: str
) -> PromotionRequest:
    """Let one failing gate pass for this pending request: an administrator's decision, with a reason, logged.

    The gate still runs at approval; its own result is kept beside the override in the recorded gate results.
    """
    if not actor.is_superuser:
        raise PermissionDenied("Only an administrator may override a promotion gate.")
    _require_text(reason, field="reason", message="Give the reason for overriding the gate.")
    if gate not in registered_promotion_gates():
        raise ValidationError({"gate": f"There is no promotion gate named {gate!r}."})
    locked = PromotionRequest.objects.select_for_update().get(pk=promotion_request.pk)
    if locked.status != PromotionStatus.PENDING:
        raise ValidationError(f"Promotion request #{locked.pk} was already {locked.status}.", code="decided")
    override = {"gate": gate, "by": actor.get_username(), "at": timezone.now().isoformat(), "reason": reason.strip()}
    locked.gate_overrides = [*(o for o in locked.gate_overrides if o["gate"] != gate), override]
    historise(locked, actor=actor, reason=f"Gate {gate} overridden: {reason.strip()}")
    locked.save(update_fields=["gate_overrides"])
    ledger_append(
        event_type=LedgerEvent.PROMOTION_GATE_OVERRIDDEN,
        object_type="models_registry.promotionrequest",
        object_id=locked.pk,
        actor=actor,
        payload={"request_id": locked.pk, "version_id": locked.version_id, **override},
    )
    return locked


def promotion_request_decide(
    *, promotion_request: PromotionRequest, actor: User, approve: bool, reason: str
) -> PromotionRequest:
    """Approve or reject a pending request. The requester may never decide it.

    Approval runs every registered gate; if one fails, the results are stored on the request, it stays
    pending, and ``PromotionBlocked`` is raised. Otherwise the version moves (archiving the previous production
    version when the target is production) and the request records the decider, the reason and the gate
    results it was approved on.
    """
    if not actor.has_perm(DECIDE_PERMISSION):
        raise PermissionDenied("You may not decide promotion requests.")
    _require_text(reason, field="reason", message="Give a reason for the decision.")
    blocked: list[GateResult] | None = None
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().get(pk=promotion_request.pk)
        if locked.status != PromotionStatus.PENDING:
            raise ValidationError(f"Promotion request #{locked.pk} was already {locked.status}.", code="decided")
        if locked.requester_id == actor.pk:
            raise FourEyesViolation("Four-eyes: the person who requested a promotion may not decide it.")
        # Lock order model -> version, the same as version registration, so the two never deadlock.
        version_model_id = ModelVersion.objects.values_list("model_id", flat=True).get(pk=locked.version_id)
        MLModel.objects.select_for_update().get(pk=version_model_id)
        version = ModelVersion.objects.select_for_update().select_related("model").get(pk=locked.version_id)
        archived = None
        if approve:
            allowed_from = PROMOTABLE_FROM[Stage(locked.target_stage)]
            if version.stage not in allowed_from:
                raise ValidationError(
                    f"The version is now {version.stage} and cannot move to {locked.target_stage}: "
                    "reject this request instead.",
                    code="stage",
                )
            results = _with_overrides(
                promotion_gates_run(version=version, target_stage=locked.target_stage), locked.gate_overrides
            )
            locked.gate_results = [result.as_dict() for result in results]
            if not all(result.passed for result in results):
                blocked = results
                failed = ", ".join(result.name for result in results if not result.passed)
                historise(locked, actor=actor, reason=f"Approval blocked by failing gates: {failed}.")
                locked.save(update_fields=["gate_results"])
            else:
                archived = _promotion_apply(promotion_request=locked, version=version, actor=actor)
        if blocked is None:
            locked.status = PromotionStatus.APPROVED if approve else PromotionStatus.REJECTED
            locked.decided_by = actor
            locked.decided_at = timezone.now()
            locked.decision_reason = reason
            historise(locked, actor=actor, reason=reason)
            locked.save(update_fields=["status", "decided_by", "decided_at", "decision_reason", "gate_results"])
            ledger_append(
                event_type=LedgerEvent.PROMOTION_DECIDED,
                object_type="models_registry.promotionrequest",
                object_id=locked.pk,
                actor=actor,
                payload={
                    "request_id": locked.pk,
                    "model_id": version.model_id,
                    "model": version.model.name,
                    "version_id": version.pk,
                    "number": version.number,
                    "target_stage": locked.target_stage,
                    "status": locked.status,
                    "requester_id": locked.requester_id,
                    "reason": reason,
                    "gate_results": locked.gate_results,
                    "version_stage": version.stage,
                    "archived_version_id": archived.pk if archived else None,
                    "archived_version_stage": archived.stage if archived else None,
                },
            )
    if blocked is not None:
        # Raised after the commit, so the request keeps the gate results that blocked it.
        raise PromotionBlocked(blocked)
    return locked
