"""The daily drift check: recent intake against the production version's reference, by population stability index.

The reference is the training snapshot of the retraining job that produced the version (its features and the
candidate's confidences on them), else the first cases the version received. A check above the model's PSI threshold
flags the model on the dashboard, emails its owner, and queues a retraining when the model's audit policy says so.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audits.choices import RetrainingTrigger
from audits.drift import DRIFTED, NOT_COMPARED, drift_compare, drift_reference_build
from audits.models import DriftCheck
from audits.selectors.bias_audits import audit_policy_for
from audits.selectors.drift import drift_reference_of, recent_intake
from audits.selectors.retraining import retraining_base_version
from audits.services.retraining import feature_kinds, request_unless_active
from audits.tasks import drift_check_task
from models_registry.models import MLModel

logger = logging.getLogger(__name__)

# Fewer recent cases than this give shares too noisy to call drift: the check says so instead of judging.
MIN_RECENT_CASES = 30


def drift_check_run(*, model: MLModel) -> DriftCheck | None:
    """Compare the model's recent intake with its production version's reference; the stored check (None when
    the model has no version to check)."""
    version = retraining_base_version(model=model)
    if version is None:
        return None
    policy = audit_policy_for(model)
    now = timezone.now()
    source = drift_reference_of(version=version)
    reference = source.reference
    if reference is None and source.launch_features:
        numeric, categorical = feature_kinds(model, source.launch_features)
        reference = drift_reference_build(
            numeric=numeric, categorical=categorical, confidence=source.launch_confidences
        )
    features, confidences = recent_intake(model_id=model.pk, since=now - timedelta(days=policy.drift_window_days))
    check = DriftCheck(
        model=model,
        version=version,
        reference_words=source.words,
        window_days=policy.drift_window_days,
        threshold=policy.drift_threshold,
        recent_count=len(features),
        checked_at=now,
    )
    if reference is None or len(features) < MIN_RECENT_CASES:
        check.verdict = NOT_COMPARED
        check.result = {
            "sentences": [
                f"Not compared: {len(features)} cases arrived in the last {policy.drift_window_days} days "
                f"(at least {MIN_RECENT_CASES} are needed) against {source.words}."
            ]
        }
        check.save()
        return check
    recent = {name: [row.get(name) for row in features] for name in {*reference["numeric"], *reference["categorical"]}}
    report = drift_compare(
        reference=reference, features=recent, confidence=confidences, threshold=policy.drift_threshold
    )
    check.verdict = report.verdict
    check.max_psi = report.max_psi
    check.drifted_features = list(report.drifted_features)
    check.result = report.as_dict()
    with transaction.atomic():
        check.save()
        if report.verdict == DRIFTED:
            _notify_owner(check)
            if policy.retraining_on_drift:
                check.retraining_job = request_unless_active(model, RetrainingTrigger.DRIFT)
                check.save(update_fields=["retraining_job"])
    return check


def drift_checks_queue() -> int:
    """The daily run: one drift check task per model with a version; how many were queued."""
    model_ids = list(MLModel.objects.filter(versions__isnull=False).distinct().values_list("id", flat=True))
    for model_id in model_ids:
        drift_check_task.delay(model_id)
    return len(model_ids)


def _notify_owner(check: DriftCheck) -> None:
    owner = check.model.owner
    if not (owner.is_active and owner.email):
        return
    subject = f"[hitl] Drift in {check.model.name}'s intake: {', '.join(check.drifted_features)}"
    url = f"{settings.SITE_URL.rstrip('/')}{reverse('admin:audits_driftcheck_change', args=[check.pk])}"
    body = "\n".join(
        [
            f"The cases {check.model.name} received in the last {check.window_days} days differ from "
            f"{check.reference_words} (population stability index above {check.threshold:g}).",
            "",
            *check.result.get("sentences", []),
            "",
            f"The check: {url}",
        ]
    )
    # robust: a mail server that is down is logged, never undoes the check.
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [owner.email], fail_silently=False), robust=True
    )
