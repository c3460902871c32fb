"""Applying an auto-decide threshold recommendation: a person's change of the routing policy, never automatic.

The threshold is recomputed here from the database, never taken from the request, and set through
``reviews.services.policies.routing_policy_update``: historised with the person's reason and a note of the
recommendation it came from (target, confidence level, the bound), and in the ledger as ``policy.changed``.
"""

from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError

from audits.selectors.threshold_recommendation import threshold_parameter_errors, threshold_recommendation_for
from models_registry.models import MLModel
from models_registry.selectors import ml_models_readable_by
from reviews.models import RoutingPolicy
from reviews.routing import format_probability, format_rate
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update


def threshold_recommendation_apply(
    *,
    actor: User,
    model: MLModel,
    target_error: float,
    confidence_level: float,
    reason: str,
    expected_threshold: float | None = None,
) -> RoutingPolicy:
    """Set the model's auto-decide threshold to the one recommended now for ``target_error`` at
    ``confidence_level``; return the policy.

    ``expected_threshold``, the threshold the person was shown, guards against applying a different one when the
    cases changed in between: the recommendation is refused then, to be read again. Raises ``ValidationError``
    (by field) without a reason, for parameters out of range, when nothing is recommended or the recommended
    threshold is already the policy's; ``PermissionDenied`` unless the actor may change routing policies and
    read the model.
    """
    if (
        not actor.has_perm("reviews.change_routingpolicy")
        or not ml_models_readable_by(actor).filter(pk=model.pk).exists()
    ):
        raise PermissionDenied("You may not change the routing policy of this model.")
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError({"reason": ["Give a reason: every change of a routing policy is recorded with one."]})
    errors = threshold_parameter_errors(target_error=target_error, confidence_level=confidence_level)
    if errors:
        raise ValidationError(errors)

    result = threshold_recommendation_for(model=model, target_error=target_error, confidence_level=confidence_level)
    recommendation = result.recommendation
    recommended = recommendation.recommended_threshold
    if recommended is None:
        why = recommendation.reason
        raise ValidationError({NON_FIELD_ERRORS: [f"{why[:1].upper()}{why[1:]}; there is nothing to apply."]})
    if expected_threshold is not None and recommended != expected_threshold:
        raise ValidationError(
            {
                NON_FIELD_ERRORS: [
                    f"The recommendation changed since the page was shown: it is now "
                    f"{format_probability(recommended)}, not {format_probability(expected_threshold)}. "
                    "Read it again before applying it."
                ]
            }
        )
    if not result.changes_the_policy:
        raise ValidationError(
            {
                NON_FIELD_ERRORS: [
                    f"{format_probability(recommended)} is already the auto-decide threshold of {model.name}."
                ]
            }
        )

    note = (
        f"Applied from the threshold recommendation (target error rate {format_rate(target_error)}, "
        f"{format_rate(confidence_level)} confidence): {recommendation.reason}."
    )
    return routing_policy_update(
        policy=routing_policy_get_or_create_default(model=model),
        changes={"auto_decide_threshold": recommended},
        actor=actor,
        reason=f"{reason.strip()}\n\n{note}",
    )
