"""The bias audits a model's console page lists: ``{% model_bias_audits original %}`` in its change form."""

from django import template

from audits.selectors.bias_audit_report import bias_audits_of_model

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
