"""What a model's console page shows of the audits app: its bias audits (``{% model_bias_audits original %}``)
and its learning loop (``{% model_learning_loop original %}``): retraining jobs, drift checks, the threshold
recommendation."""

from django import template

from audits.selectors.bias_audit_report import bias_audits_of_model
from audits.selectors.drift import drift_checks_of_model
from audits.selectors.outcomes import outcome_table
from audits.selectors.retraining import retraining_jobs_list

register = template.Library()


@register.inclusion_tag("admin/audits/biasaudit/model_audits.html", takes_context=True)
def model_bias_audits(context, model) -> dict:
    """The model's latest audits with their verdicts, for those who may read audits (the page checked the model)."""
    user = context["request"].user
    if not user.has_perm("audits.view_biasaudit"):
        return {"shown": False}
    return {
        "shown": True,
        "model": model,
        "audits": bias_audits_of_model(model=model),
        "may_request": user.has_perm("audits.add_biasaudit"),
    }


@register.inclusion_tag("admin/audits/retrainingjob/model_learning_loop.html", takes_context=True)
def model_learning_loop(context, model) -> dict:
    """The model's latest retraining jobs and drift checks, and links to retrain and to its threshold
    recommendation, for those who may read them."""
    user = context["request"].user
    return {
        "model": model,
        "jobs": list(retraining_jobs_list().filter(model=model)[:5])
        if user.has_perm("audits.view_retrainingjob")
        else None,
        "drift_checks": drift_checks_of_model(model=model) if user.has_perm("audits.view_driftcheck") else None,
        "may_retrain": user.has_perm("audits.add_retrainingjob"),
        "may_see_thresholds": user.has_perm("reviews.view_routingpolicy"),
        "outcomes": [
            (attribute, outcome_table(model_id=model.pk, attribute=attribute))
            for attribute in model.sensitive_attributes or []
        ]
        if user.has_perm("reviews.view_decision")
        else [],
    }
