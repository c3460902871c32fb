"""The promotion gate the audits app adds to the registry: production needs a recent passing bias audit.

Registered in ``AuditsConfig.ready`` through the registry's ``register_promotion_gate``, so the registry never
imports the audits app.
"""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from audits.selectors.bias_audits import audit_policy_for, bias_audit_latest_of_version, bias_audit_latest_passing
from models_registry.choices import Stage
from models_registry.gates import GateResult

GATE_NAME = "bias_audit"


def bias_audit_gate(version, target_stage: str) -> GateResult:
    """Production needs a passing audit of the model population of exactly this version, recent enough."""
    if target_stage != Stage.PRODUCTION:
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
    latest = bias_audit_latest_of_version(version_id=version.pk)
    if latest is None:
        reason = f"No bias audit of version {version.number}'s labels has finished: run one (population 'model')."
        return GateResult(GATE_NAME, False, reason)
    if latest.passed:
        reason = (
            f"The latest passing bias audit (#{latest.pk}, {latest.finished_at:%Y-%m-%d}) is older than "
            f"{max_age} days: run a new one."
        )
    else:
        reason = (
            f"Bias audit #{latest.pk} of version {version.number}'s labels was {latest.get_verdict_display().lower()}."
        )
    return GateResult(GATE_NAME, False, reason, _evidence(latest))


def _evidence(audit) -> dict:
    return {
        "audit_id": audit.pk,
        "audit_url": reverse("admin:audits_biasaudit_change", args=[audit.pk]),
        "finished_at": audit.finished_at.isoformat(),
        "verdict": audit.verdict,
        "inputs_sha256": audit.inputs_sha256,
    }
