"""Reads of routing policy versions: which exact settings a case was routed under, and whether they still hash
to what the case recorded."""

from dataclasses import dataclass, field
from datetime import datetime

from reviews.models import Prediction, RoutingPolicy
from reviews.presentation import policy_settings_in_words
from reviews.services.policies import routing_policy_settings, routing_policy_sha256


@dataclass(frozen=True)
class PolicyVersion:
    """One historical version of a routing policy, as a case routed under it shows it."""

    policy_id: int
    history_id: int
    changed_at: datetime
    changed_by: str
    reason: str
    sha256: str
    matches_case: bool
    in_words: list[str] = field(default_factory=list)


def routing_policy_version_for(prediction: Prediction) -> PolicyVersion | None:
    """The policy version ``prediction`` recorded, or None for a case routed before versions were recorded."""
    if prediction.policy_history_id is None:
        return None
    row = (
        RoutingPolicy.history.model.objects.select_related("history_user")
        .filter(history_id=prediction.policy_history_id)
        .first()
    )
    if row is None:
        return None
    # A history row carries the policy's fields under their own names, so it hashes exactly like the policy did.
    settings = routing_policy_settings(row)
    sha256 = routing_policy_sha256(row)
    return PolicyVersion(
        policy_id=row.id,
        history_id=row.history_id,
        changed_at=row.history_date,
        changed_by=row.history_user.get_username() if row.history_user_id else "system",
        reason=row.history_change_reason or "",
        sha256=sha256,
        matches_case=sha256 == prediction.policy_sha256,
        in_words=policy_settings_in_words(settings, risk_tier=prediction.model.risk_tier),
    )


def routing_policies_effective(model_ids) -> dict[int, RoutingPolicy]:
    """Each model's routing policy, or, for a model that has none yet, the defaults (an unsaved policy): the one
    place the defaults of a policy-less model come from. One query."""
    model_ids = set(model_ids)
    found = {policy.model_id: policy for policy in RoutingPolicy.objects.filter(model_id__in=model_ids)}
    return {model_id: found.get(model_id) or RoutingPolicy(model_id=model_id) for model_id in model_ids}


def routing_policy_effective(model_id: int) -> RoutingPolicy:
    """The routing policy a model's cases follow now (its own, or the defaults)."""
    return routing_policies_effective([model_id])[model_id]
