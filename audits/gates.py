"""The promotion gate the audits app adds to the registry: production needs a recent passing bias audit.

Registered in ``AuditsConfig.ready`` through the registry's ``register_promotion_gate``, so the registry never
imports the audits app.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from audits.choices import AuditStatus
from audits.selectors.bias_audits import audit_policy_for, bias_audit_latest_of_version, bias_audit_latest_passing
from models_registry.choices import Stage
from models_registry.gates import GateResult

GATE_NAME = "bias_audit"


def bias_audit_gate(version, target_stage: str) -> GateResult:
    """Production needs a passing audit of the model population of exactly this version, recent enough; so does
    staging for a candidate produced by retraining (its holdout audit, stored when the job finished)."""
    retrained = version.retraining_job_id is not None
    if target_stage != Stage.PRODUCTION and not (target_stage == Stage.STAGING and retrained):
        return GateResult(GATE_NAME, True, f"Not required for {target_stage}.")
    max_age = audit_policy_for(version.model).gate_max_age_days
    since = timezone.now() - timedelta(days=max_age)
    passing = bias_audit_latest_passing(version_id=version.pk, since=since)
    if passing is not None:
        return GateResult(
            GATE_NAME,
            True,
            f"Bias audit #{passing.pk} of the model's labels passed on {passing.finished_at:%Y-%m-%d %H:%M} UTC.",
            _evidence(passing),
        )
    judged = bias_audit_latest_of_version(version_id=version.pk)
    newest = bias_audit_latest_of_version(version_id=version.pk, succeeded=False)
    if newest is not None and newest != judged and newest.status in (AuditStatus.QUEUED, AuditStatus.RUNNING):
        reason = (
            f"Bias audit #{newest.pk} of version {version.number}'s labels is {newest.status}: decide when it is done."
        )
        return GateResult(GATE_NAME, False, reason, {"audit_id": newest.pk})
    if judged is None:
        if newest is not None and newest.status == AuditStatus.FAILED:
            reason = f"Bias audit #{newest.pk} of version {version.number}'s labels could not run: {newest.error}"
            return GateResult(GATE_NAME, False, reason, {"audit_id": newest.pk})
        reason = f"No bias audit of version {version.number}'s labels has finished: run one (population 'model')."
        return GateResult(GATE_NAME, False, reason)
    if judged.passed:
        reason = (
            f"The latest passing bias audit (#{judged.pk}, {judged.finished_at:%Y-%m-%d}) is older than "
            f"{max_age} days: run a new one."
        )
    else:
        outcome = "failed" if judged.verdict == "failed" else f"was {judged.get_verdict_display().lower()}"
        reason = f"Bias audit #{judged.pk} of version {version.number}'s labels {outcome}."
    return GateResult(GATE_NAME, False, reason, _evidence(judged))


def _evidence(audit) -> dict:
    return {
        "audit_id": audit.pk,
        "audit_url": reverse("admin:audits_biasaudit_change", args=[audit.pk]),
        "finished_at": audit.finished_at.isoformat(),
        "verdict": audit.verdict,
        "inputs_sha256": audit.inputs_sha256,
    }
