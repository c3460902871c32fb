"""Signal receivers of the audits app, connected in ``AuditsConfig.ready``."""

from models_registry.choices import Stage


def audit_version_when_production_is_requested(sender, *, promotion_request, **kwargs) -> None:
    """Production requested for a version: queue an audit of its labels, linked to the request."""
    from audits.services.bias_audits import bias_audit_for_promotion

    if promotion_request.target_stage == Stage.PRODUCTION:
        bias_audit_for_promotion(promotion_request=promotion_request)
