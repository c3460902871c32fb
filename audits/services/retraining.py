"""Retraining: a new candidate version learnt from the cases humans decided, for a human to promote or not.

A job takes the model's base version (production, else its newest version with a model file), builds the training
set from the human-decided cases (``audits.selectors.training_data``), records a snapshot that identifies it
exactly, splits a stratified, seeded holdout, fits ``sklearn.base.clone`` of the base version's pipeline (under a
fairness constraint when asked: fairlearn's ``ExponentiatedGradient``, kept as a ``FairMixtureClassifier``), and
compares base and candidate on the same holdout: accuracy, F1, ROC AUC, Brier score, and the bias audit's figures
per sensitive attribute, computed by the audit engine. The candidate is registered through the registry's services
(a skops file that must load under the model-file allowlist), with its parent, its job and its metrics; its
holdout audit is stored and sealed like any audit; and a pending promotion request to staging waits for a human.
Nothing is ever promoted here. A job that cannot finish fails with its reason and leaves nothing half-made.
"""

import hashlib
import logging
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import skops.io
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from scipy import sparse
from sklearn.base import clone
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from audits.choices import AuditStatus, Mitigation, RetrainingTrigger
from audits.drift import drift_reference_build
from audits.events import LedgerEvent
from audits.fairness import (
    COUNT,
    DEMOGRAPHIC_PARITY_RATIO,
    EQUALIZED_ODDS_DIFFERENCE,
    Y_PRED,
    Y_TRUE,
)
from audits.jobs import job_beat, job_claim, job_send, job_set_status, jobs_requeue_stale
from audits.ledger import ledger_append, sha256_hex
from audits.models import RetrainingJob
from audits.selectors.bias_audits import audit_policy_for
from audits.selectors.retraining import (
    ACTIVE_STATUSES,
    audit_policies_with_label_trigger,
    human_labels_since,
    retraining_base_version,
    retraining_job_active,
)
from audits.selectors.training_data import HUMAN_DECISION_SOURCES, TrainingDataFilter, training_cases
from audits.services.bias_audits import bias_audit_compute_from_cells, bias_audit_record_computed
from audits.tasks import retraining_run_task
from hitl_platform.history import historise
from models_registry.artifacts import ModelFileUnavailable, load_trusted_model
from models_registry.choices import ModelTask, Stage
from models_registry.fair_mixture import FairMixtureClassifier
from models_registry.models import MLModel
from models_registry.scoring import design_matrix, feature_columns
from models_registry.selectors import user_may_write_model
from models_registry.services import model_version_register, promotion_request_create

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
STALE_AFTER = timedelta(minutes=15)
HOLDOUT_SHARE_RANGE = (0.05, 0.5)
OBJECT_TYPE = "audits.retrainingjob"


class RetrainingConflict(Exception):
    """A job of this model is already queued or running: one at a time per model."""

    def __init__(self, job: RetrainingJob):
        self.job = job
        super().__init__(f"Retraining job {job.pk} of {job.model.name} is already {job.status}; wait for it to finish.")


class RetrainingRefused(Exception):
    """A reason this job cannot produce a candidate, for its requester to act on."""


@dataclass
class TrainingSet:
    """The human-verified cases a job learns from, in id order, and the snapshot that identifies them."""

    ids: list[int]
    labels: list[str]
    features: list[dict[str, Any]]
    sensitive: list[dict[str, Any]]
    snapshot: dict[str, Any]


def _may_retrain(actor: User, model: MLModel) -> bool:
    if actor.has_perm("audits.run_retrainingjob"):
        return True
    return actor.has_perm("audits.add_retrainingjob") and user_may_write_model(actor, model)


def retraining_request(
    *,
    actor: User | None,
    model: MLModel,
    trigger: str = RetrainingTrigger.MANUAL,
    mitigation: str = Mitigation.NONE,
    mitigation_attribute: str = "",
    holdout_share: float = 0.2,
    seed: int = 0,
) -> RetrainingJob:
    """Queue a retraining of ``model`` (``actor`` None: the platform's own triggers).

    Raises PermissionDenied, ValidationError with field errors, or RetrainingConflict naming the job already
    queued or running for the model.
    """
    if actor is not None and not _may_retrain(actor, model):
        raise PermissionDenied("You may not retrain this model.")
    errors: dict[str, list[str]] = {}
    if mitigation not in Mitigation.values:
        errors["mitigation"] = [f"Choose one of {', '.join(Mitigation.values)}."]
    elif mitigation != Mitigation.NONE:
        declared = list(model.sensitive_attributes or [])
        if model.task != ModelTask.BINARY:
            errors["mitigation"] = ["A fairness constraint needs a binary model (two labels)."]
        elif mitigation_attribute not in declared:
            choices = ", ".join(declared) or "it declares none"
            errors["mitigation_attribute"] = [f"Name the sensitive attribute of {model.name} to constrain: {choices}."]
    elif mitigation_attribute:
        errors["mitigation_attribute"] = ["A sensitive attribute is named only with a mitigation."]
    low, high = HOLDOUT_SHARE_RANGE
    if not isinstance(holdout_share, int | float) or not low <= holdout_share <= high:
        errors["holdout_share"] = [f"Hold out between {low:g} and {high:g} of the cases."]
    base = retraining_base_version(model=model)
    if base is None:
        errors["model"] = [f"{model.name} has no version with a model file to retrain."]
    if errors:
        raise ValidationError(errors)
    assert base is not None, "a model without a base version is refused above with a field error"
    active = retraining_job_active(model_id=model.pk)
    if active is not None:
        raise RetrainingConflict(active)
    job = RetrainingJob(
        model=model,
        base_version=base,
        trigger=trigger,
        mitigation=mitigation,
        mitigation_attribute=mitigation_attribute,
        holdout_share=holdout_share,
        seed=seed,
        requested_by=actor,
    )
    historise(job, actor=actor, reason=f"Retraining requested ({RetrainingTrigger(trigger).label.lower()})")
    try:
        with transaction.atomic():
            job.save()
            ledger_append(
                event_type=LedgerEvent.RETRAINING_REQUESTED,
                object_type=OBJECT_TYPE,
                object_id=job.pk,
                actor=actor,
                payload={
                    "job_id": job.pk,
                    "model_id": model.pk,
                    "base_version": base.number,
                    "trigger": trigger,
                    "mitigation": mitigation,
                    "mitigation_attribute": mitigation_attribute,
                    "holdout_share": holdout_share,
                    "seed": seed,
                },
            )
    except IntegrityError as exc:
        # Two requests raced past the check above: the partial unique constraint let one through.
        active = retraining_job_active(model_id=model.pk)
        if active is None:
            raise
        raise RetrainingConflict(active) from exc
    job_send(job, retraining_run_task)
    return job


def retraining_run(*, job_id: int) -> RetrainingJob | None:
    """Run one queued job to its end: SUCCEEDED with its candidate, or FAILED with the reason (never raises)."""
    job = job_claim(
        RetrainingJob.objects.select_related("model", "base_version", "requested_by"),
        job_id,
        reason="Retraining started",
    )
    if job is None:
        return None
    try:
        _train(job)
    except Exception as exc:
        if RetrainingJob.objects.filter(pk=job.pk, status=AuditStatus.SUCCEEDED).exists():
            # The candidate committed and only something after the commit failed: the job did its work.
            logger.exception("Retraining job %s finished, but a step after its commit failed", job.pk)
            return job
        if not isinstance(exc, RetrainingRefused | ValidationError):
            logger.exception("Retraining job %s failed", job.pk)
        reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        with transaction.atomic():
            job_set_status(
                job,
                AuditStatus.FAILED,
                actor=None,
                reason="Retraining failed",
                error=reason[:2000],
                finished_at=timezone.now(),
            )
            ledger_append(
                event_type=LedgerEvent.RETRAINING_FAILED,
                object_type=OBJECT_TYPE,
                object_id=job.pk,
                actor=None,
                payload={"job_id": job.pk, "model_id": job.model_id, "error": reason[:500]},
            )
    return job


def training_set_build(*, model: MLModel, until: datetime) -> TrainingSet:
    """The model's human-verified cases received before ``until``, and their snapshot."""
    data_filter = TrainingDataFilter(model_id=model.pk, until=until)
    ids, labels, features, sensitive = [], [], [], []
    for row in training_cases(data_filter).iterator(chunk_size=5000):
        ids.append(row["id"])
        labels.append(row["training_label"])
        features.append(row["features"])
        sensitive.append(row["sensitive_attributes"] or {})
    snapshot = training_snapshot(
        ids=ids,
        labels=labels,
        sensitive=sensitive,
        attributes=list(model.sensitive_attributes or []),
        rebuild={
            "model_id": model.pk,
            "until": until.isoformat(),
            "sources": list(HUMAN_DECISION_SOURCES),
            "label": "the outcome where reported, else the human final label",
        },
    )
    return TrainingSet(ids=ids, labels=labels, features=features, sensitive=sensitive, snapshot=snapshot)


def training_snapshot(
    *, ids: Sequence[int], labels: Sequence[str], sensitive: Sequence[dict], attributes: Sequence[str], rebuild: dict
) -> dict[str, Any]:
    """Row count, label balance, group balance per attribute, and the SHA-256 of the sorted "id<TAB>label" lines:
    the same cases with the same labels always give the same hash, and any other set a different one."""
    lines = "".join(f"{case_id}\t{label}\n" for case_id, label in sorted(zip(ids, labels, strict=True)))
    return {
        "row_count": len(ids),
        "label_balance": dict(sorted(Counter(labels).items())),
        "group_balance": {
            attribute: dict(sorted(Counter(str(row.get(attribute, "unknown")) for row in sensitive).items()))
            for attribute in attributes
        },
        "cases_sha256": sha256_hex(lines),
        "rebuild": rebuild,
    }


def _base_pipeline(estimator: Any) -> Any:
    """What to clone: the base version's pipeline (the first part of a fair mixture, which all share)."""
    return estimator.estimators[0] if isinstance(estimator, FairMixtureClassifier) else estimator


def _seeded(estimator: Any, seed: int) -> Any:
    params = {name: seed for name, value in estimator.get_params().items() if name.endswith("random_state")}
    return estimator.set_params(**params) if params else estimator


def _train(job: RetrainingJob) -> None:
    model, base = job.model, job.base_version
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        base_estimator = load_trusted_model(base)
    except ModelFileUnavailable as exc:
        raise RetrainingRefused(f"Version {base.number} cannot be retrained: {exc}") from exc
    try:
        template = clone(_base_pipeline(base_estimator))
    except Exception as exc:
        raise RetrainingRefused(
            f"The pipeline of version {base.number} cannot be cloned ({exc}); retrain it outside the platform."
        ) from exc
    training = training_set_build(model=model, until=job.created_at)
    timings["training_set_s"] = round(time.perf_counter() - started, 3)
    job_beat(job, 20)
    _check_trainable(model, training)
    columns = feature_columns(model) or []
    # The fitted base knows the columns it was trained on (a DataFrame for a pipeline that selects them by name).
    matrix = design_matrix(_base_pipeline(base_estimator), columns, training.features)
    labels = np.asarray(training.labels, dtype=object)
    train_index, holdout_index = train_test_split(
        np.arange(len(labels)), test_size=job.holdout_share, stratify=labels, random_state=job.seed
    )
    fit_started = time.perf_counter()
    candidate = _fit(job, template, _rows(matrix, train_index), labels[train_index], training, train_index)
    timings["fit_s"] = round(time.perf_counter() - fit_started, 3)
    job_beat(job, 70)
    holdout = _rows(matrix, holdout_index)
    holdout_sensitive = [training.sensitive[i] for i in holdout_index]
    attributes = [a for a in (model.sensitive_attributes or []) if any(a in row for row in holdout_sensitive)]
    comparison, candidate_cells = _compare(
        model=model,
        base=base_estimator,
        candidate=candidate,
        holdout=holdout,
        truth=labels[holdout_index],
        sensitive=holdout_sensitive,
        attributes=attributes,
        seed=job.seed,
    )
    comparison["holdout_count"] = len(holdout_index)
    comparison["training_count"] = len(train_index)
    confidences = np.max(candidate.predict_proba(matrix), axis=1)
    snapshot = {
        **training.snapshot,
        # What the base version says it was trained on, kept beside the human-verified cases it is retrained on.
        "base_training_data": base.description,
        "drift_reference": _drift_reference(model, training.features, confidences),
    }
    job_beat(job, 85)
    _finish(job, candidate, comparison, snapshot, candidate_cells, attributes, timings, started)


def _rows(matrix: Any, index: np.ndarray) -> Any:
    return matrix.iloc[index] if isinstance(matrix, pd.DataFrame) else matrix[index]


def _check_trainable(model: MLModel, training: TrainingSet) -> None:
    minimum = audit_policy_for(model).retraining_min_labels
    if len(training.ids) < minimum:
        raise RetrainingRefused(
            f"Only {len(training.ids)} cases of {model.name} were decided by humans; retraining needs at least "
            f"{minimum} (the model's audit policy)."
        )
    balance = Counter(training.labels)
    if len(balance) < 2:
        only = next(iter(balance), "none")
        raise RetrainingRefused(f"Every human-decided case has the same label ({only}): there is nothing to learn.")
    unknown = sorted(set(balance) - set(model.labels))
    if unknown:
        raise RetrainingRefused(f"Labels {', '.join(unknown)} are not labels of {model.name}.")
    rare = sorted(label for label, count in balance.items() if count < 2)
    if rare:
        raise RetrainingRefused(f"Too few cases to hold out a share of each label: {', '.join(rare)} has one case.")


def _fit(
    job: RetrainingJob,
    template: Any,
    features: Any,
    labels: np.ndarray,
    training: TrainingSet,
    train_index: np.ndarray,
) -> Any:
    estimator = _seeded(clone(template), job.seed)
    if job.mitigation == Mitigation.NONE:
        return estimator.fit(features, labels)
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

    model = job.model
    positive = model.positive_label
    negative = next(label for label in model.labels if label != positive)
    groups = np.asarray(
        [str(training.sensitive[i].get(job.mitigation_attribute, "unknown")) for i in train_index], dtype=object
    )
    constraint = DemographicParity() if job.mitigation == Mitigation.DEMOGRAPHIC_PARITY else EqualizedOdds()
    # The reduction refits only the final classifier: a pipeline's preprocessing (a ColumnTransformer selecting
    # columns by name, say) is fitted once and shared, since fairlearn hands the classifier plain arrays.
    preprocessing, (final_name, final) = None, (None, estimator)
    design = features
    if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
        preprocessing, (final_name, final) = estimator[:-1].fit(features, labels), estimator.steps[-1]
        design = preprocessing.transform(features)
        design = design.toarray() if sparse.issparse(design) else design
    reduction = ExponentiatedGradient(final, constraints=constraint, sample_weight_name="sample_weight")
    try:
        with warnings.catch_warnings():
            # fairlearn's own pandas deprecation warnings, one per iteration: noise in a worker's log.
            warnings.filterwarnings("ignore", module=r"fairlearn\.")
            reduction.fit(design, (labels == positive).astype(int), sensitive_features=groups)
    except (TypeError, ValueError) as exc:
        raise RetrainingRefused(f"The fairness constraint could not be fitted with this pipeline: {exc}") from exc
    weights = reduction.weights_.to_numpy()
    kept = [index for index, weight in enumerate(weights) if weight > 0]
    members = [reduction.predictors_[index] for index in kept]
    if preprocessing is not None:
        members = [Pipeline([*preprocessing.steps, (final_name, member)]) for member in members]
    return FairMixtureClassifier(
        estimators=members, weights=[float(weights[index]) for index in kept], classes=[negative, positive]
    ).fit(features)


def _scores(
    estimator: Any, features: Any, truth: np.ndarray, model: MLModel
) -> tuple[dict[str, float | None], np.ndarray]:
    predicted = np.asarray(estimator.predict(features), dtype=object)
    probabilities = estimator.predict_proba(features)
    classes = [str(label) for label in estimator.classes_]
    # ROC AUC is None when the holdout has a single class.
    scores: dict[str, float | None] = {"accuracy": float(accuracy_score(truth, predicted))}
    if model.task == ModelTask.BINARY:
        positive = classes.index(model.positive_label)
        is_positive = (truth == model.positive_label).astype(int)
        scores["f1"] = float(f1_score(truth, predicted, pos_label=model.positive_label))
        scores["roc_auc"] = (
            float(roc_auc_score(is_positive, probabilities[:, positive])) if len(set(is_positive)) == 2 else None
        )
        scores["brier"] = float(brier_score_loss(is_positive, probabilities[:, positive]))
    else:
        one_hot = np.asarray([[label == c for c in classes] for label in truth], dtype=float)
        scores["f1"] = float(f1_score(truth, predicted, average="macro"))
        scores["roc_auc"] = float(roc_auc_score(truth, probabilities, multi_class="ovr", labels=classes))
        scores["brier"] = float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))
    return scores, predicted


# Metric, and whether a higher value is better: the comparison marks each side.
COMPARED_METRICS = (("accuracy", True), ("f1", True), ("roc_auc", True), ("brier", False))


def _compare(
    *,
    model: MLModel,
    base: Any,
    candidate: Any,
    holdout: Any,
    truth: np.ndarray,
    sensitive: list[dict],
    attributes: list[str],
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame | None]:
    base_scores, base_predicted = _scores(base, holdout, truth, model)
    candidate_scores, candidate_predicted = _scores(candidate, holdout, truth, model)
    metrics = []
    for name, higher_is_better in COMPARED_METRICS:
        before, after = base_scores.get(name), candidate_scores.get(name)
        better = None
        if before is not None and after is not None and before != after:
            better = (after > before) == higher_is_better
        metrics.append(
            {"metric": name, "base": before, "candidate": after, "higher_is_better": higher_is_better, "better": better}
        )
    fairness, candidate_cells = [], None
    verdicts: dict[str, str | None]
    if attributes:
        base_cells = _cells(sensitive, attributes, truth, base_predicted)
        candidate_cells = _cells(sensitive, attributes, truth, candidate_predicted)
        base_audit = bias_audit_compute_from_cells(model=model, cells=base_cells, attributes=attributes, seed=seed)
        candidate_audit = bias_audit_compute_from_cells(
            model=model, cells=candidate_cells, attributes=attributes, seed=seed
        )
        fairness = _fairness_rows(base_audit.result, candidate_audit.result)
        verdicts = {"base": base_audit.verdict, "candidate": candidate_audit.verdict}
    else:
        verdicts = {"base": None, "candidate": None}
    return {"metrics": metrics, "fairness": fairness, "audit_verdicts": verdicts}, candidate_cells


def _cells(sensitive: list[dict], attributes: list[str], truth: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({a: [str(row.get(a, "unknown")) for row in sensitive] for a in attributes})
    frame[Y_TRUE] = truth
    frame[Y_PRED] = predicted
    return frame.groupby([*attributes, Y_TRUE, Y_PRED], sort=True).size().reset_index(name=COUNT)


def _fairness_rows(base: dict[str, Any], candidate: dict[str, Any]) -> list[dict[str, Any]]:
    """Per scope, the demographic parity ratio and equalized odds difference of base and candidate."""
    rows = []
    candidate_scopes = {scope["name"]: scope for scope in candidate["scopes"]}
    for scope in base["scopes"]:
        other = candidate_scopes.get(scope["name"])
        if other is None:
            continue
        for metric, higher_is_better in ((DEMOGRAPHIC_PARITY_RATIO, True), (EQUALIZED_ODDS_DIFFERENCE, False)):
            before = next(m for m in scope["between_groups"] if m["metric"] == metric)
            after = next(m for m in other["between_groups"] if m["metric"] == metric)
            better = None
            if before["value"] is not None and after["value"] is not None and before["value"] != after["value"]:
                better = (after["value"] > before["value"]) == higher_is_better
            rows.append(
                {
                    "scope": scope["name"],
                    "metric": metric,
                    "base": before["value"],
                    "candidate": after["value"],
                    "threshold": before.get("threshold"),
                    "base_verdict": before["verdict"],
                    "candidate_verdict": after["verdict"],
                    "better": better,
                }
            )
    return rows


def feature_kinds(model: MLModel, features: list[dict[str, Any]]) -> tuple[dict[str, list], dict[str, list]]:
    """The cases' values per feature, split by the schema into numeric and categorical ones, as the drift
    reference takes them (a non-number in a numeric feature counts as missing)."""
    properties = (model.feature_schema or {}).get("properties", {})
    numeric, categorical = {}, {}
    for name, schema in properties.items():
        kinds = schema.get("type") if isinstance(schema, dict) else None
        kinds = set(kinds) if isinstance(kinds, list) else {kinds}
        values = [row.get(name) for row in features]
        if kinds & {"number", "integer"} and "string" not in kinds:
            numeric[name] = [_finite_or_none(value) for value in values]
        else:
            categorical[name] = values
    return numeric, categorical


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        return None
    return value


def _drift_reference(model: MLModel, features: list[dict[str, Any]], confidences: np.ndarray) -> dict[str, Any]:
    """The training set's feature distributions and the candidate's confidence on them: what the drift check
    compares recent intake against once this candidate is in production."""
    numeric, categorical = feature_kinds(model, features)
    return drift_reference_build(numeric=numeric, categorical=categorical, confidence=confidences.tolist())


def _finish(
    job: RetrainingJob,
    candidate: Any,
    comparison: dict[str, Any],
    snapshot: dict[str, Any],
    candidate_cells: pd.DataFrame | None,
    attributes: list[str],
    timings: dict[str, float],
    started: float,
) -> None:
    model, base = job.model, job.base_version
    content = skops.io.dumps(candidate)
    registrant = model.owner
    requester = job.requested_by
    asked = f"requested by {requester.get_username()}" if requester is not None else "started by the platform"
    candidate_metrics = {row["metric"]: row["candidate"] for row in comparison["metrics"]}
    stored_file = None
    committing = False
    try:
        with transaction.atomic():
            version = model_version_register(
                model=model,
                actor=registrant,
                metrics={**candidate_metrics, "evaluated_on": f"holdout of retraining job {job.pk}"},
                description=(
                    f"Retrained from version {base.number} on {snapshot['row_count']} human-verified cases "
                    f"(job {job.pk}, {asked}; snapshot {snapshot['cases_sha256'][:12]})."
                ),
                artifact=ContentFile(content, name="model.skops"),
                parent_number=base.number,
                reason=f"Candidate produced by retraining job {job.pk} ({asked}).",
                retraining_job_id=job.pk,
            )
            stored_file = version.artifact.name
            audit = None
            if candidate_cells is not None:
                audit = bias_audit_record_computed(
                    model=model,
                    version=version,
                    computation=bias_audit_compute_from_cells(
                        model=model, cells=candidate_cells, attributes=attributes, seed=job.seed
                    ),
                    actor=None,
                    reason=f"Holdout audit of the candidate of retraining job {job.pk}",
                )
            promotion = promotion_request_create(
                version=version,
                actor=registrant,
                target_stage=Stage.STAGING,
                rationale=(
                    f"Candidate of retraining job {job.pk}: {_comparison_words(comparison)} "
                    "A person decides whether it goes further."
                ),
            )
            timings["total_s"] = round(time.perf_counter() - started, 3)
            job_set_status(
                job,
                AuditStatus.SUCCEEDED,
                actor=None,
                reason=f"Retraining finished: candidate version {version.number}",
                candidate_version=version,
                audit=audit,
                promotion_request=promotion,
                snapshot=snapshot,
                comparison=comparison,
                timings=timings,
                progress=100,
                finished_at=timezone.now(),
            )
            ledger_append(
                event_type=LedgerEvent.RETRAINING_FINISHED,
                object_type=OBJECT_TYPE,
                object_id=job.pk,
                actor=None,
                payload={
                    "job_id": job.pk,
                    "model_id": model.pk,
                    "base_version": base.number,
                    "candidate_version": version.number,
                    "artifact_sha256": hashlib.sha256(content).hexdigest(),
                    "cases_sha256": snapshot["cases_sha256"],
                    "row_count": snapshot["row_count"],
                    "audit_id": audit.pk if audit else None,
                    "promotion_request_id": promotion.pk,
                },
            )
            committing = True
    except Exception:
        # Before the commit nothing of the candidate remains but its file, which goes too. An error while or
        # after committing (a failing commit hook) leaves the committed version and its file alone.
        if stored_file and not committing:
            default_storage.delete(stored_file)
        raise


def _comparison_words(comparison: dict[str, Any]) -> str:
    parts = []
    for row in comparison["metrics"]:
        if row["base"] is None or row["candidate"] is None:
            continue
        parts.append(f"{row['metric']} {row['base']:.3f} -> {row['candidate']:.3f}")
    return "on the same holdout, " + ", ".join(parts) + "."


def retraining_requeue_stale(*, now: datetime | None = None) -> list[int]:
    """Put jobs whose worker died back in the queue (or fail them after MAX_ATTEMPTS); their ids."""
    return jobs_requeue_stale(
        RetrainingJob, task=retraining_run_task, stale_after=STALE_AFTER, max_attempts=MAX_ATTEMPTS, noun="job", now=now
    )


def retraining_scheduled(*, model_id: int) -> RetrainingJob | None:
    """A model's periodic retraining (its django-celery-beat entry): None when a job is already active."""
    model = MLModel.objects.filter(pk=model_id).first()
    if model is None:
        return None
    return request_unless_active(model, RetrainingTrigger.SCHEDULE)


def retraining_after_new_labels() -> list[int]:
    """Queue a job for each model whose policy asks for one after N new human labels and has them; the job ids."""
    queued = []
    for policy in audit_policies_with_label_trigger():
        model, threshold = policy.model, policy.retraining_after_new_labels
        assert threshold is not None, "audit_policies_with_label_trigger reads only policies with a label trigger"
        base = retraining_base_version(model=model)
        if base is None or human_labels_since(model_id=model.pk, version=base) < threshold:
            continue
        job = request_unless_active(model, RetrainingTrigger.NEW_LABELS)
        if job is not None:
            queued.append(job.pk)
    return queued


def request_unless_active(model: MLModel, trigger: str) -> RetrainingJob | None:
    """A job the platform itself starts (schedule, new labels, drift); None when one is already active."""
    if RetrainingJob.objects.filter(model=model, status__in=ACTIVE_STATUSES).exists():
        return None
    try:
        return retraining_request(actor=None, model=model, trigger=trigger)
    except (RetrainingConflict, ValidationError) as exc:
        logger.info("Retraining of %s not queued (%s): %s", model.name, trigger, exc)
        return None
