"""How routing settings read to a person: a policy version in words, for the case trail and the console."""

from collections.abc import Mapping
from typing import Any

from reviews.routing import OPERATOR_WORDS, format_probability, format_rate, format_value


def policy_settings_in_words(settings: Mapping[str, Any], *, risk_tier: str = "") -> list[str]:
    """One sentence per setting that decides where a case goes, in the order the router applies them."""
    lines = []
    if settings.get("stop_switch_on"):
        lines.append("Stop switch ON: every new case goes to human review.")
    rules = settings.get("rules") or []
    for rule in rules:
        action = "review and escalate to an adjudicator" if rule.get("action") == "escalate" else "review"
        lines.append(
            f"Rule: {rule.get('field')} {OPERATOR_WORDS.get(rule.get('operator'), rule.get('operator'))} "
            f"{format_value(rule.get('value'))} sends the case to {action} ({rule.get('reason')})."
        )
    threshold = settings.get("auto_decide_threshold")
    if threshold is not None:
        sentence = f"Decided automatically at a confidence of {format_probability(threshold)} or more"
        per_label = settings.get("label_thresholds") or {}
        if per_label:
            labels = ", ".join(f"{label} {format_probability(value)}" for label, value in sorted(per_label.items()))
            sentence += f" (per label: {labels})"
        lines.append(sentence + ".")
    rate = settings.get("qa_sample_rate")
    if rate:
        lines.append(f"QA sample: {format_rate(rate)} of the cases confident enough to decide alone go to review too.")
    reviews = settings.get("reviews_required")
    lines.append(
        f"{reviews} independent review{'s' if reviews != 1 else ''} per case."
        if reviews
        else f"Reviews per case by risk tier{f' ({risk_tier})' if risk_tier else ''}."
    )
    rule = settings.get("consensus_rule")
    if rule:
        agreement = settings.get("min_agreement")
        lines.append(
            f"Consensus: {rule}"
            + (f", at least {format_probability(agreement)} agreement" if agreement is not None else "")
            + "; otherwise an adjudicator decides."
        )
    if settings.get("sla_hours"):
        lines.append(f"Reviews due within {settings['sla_hours']} hours.")
    if settings.get("blind_review"):
        lines.append("Blind review: reviewers do not see the model's answer.")
    return lines
