"""Routing policies: created with defaults, changed only with a reason, every change historised and in the ledger.

The console (admin) and any other caller change a policy only through these services. The stop switch has its
own service and permission: turning it on sends every new case of the model to human review.
"""

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from audits.events import LedgerEvent
from audits.ledger import canonical_json, ledger_append, sha256_hex
from hitl_platform.history import change_reason, historise
from models_registry.models import MLModel
from reviews.choices import AssignmentStrategy, ConsensusRule
from reviews.models import RoutingPolicy
from reviews.routing import PolicySnapshot, Rule, RuleError
from reviews.selectors.predictions import routing_policy_for_model

if TYPE_CHECKING:
    from reviews.selectors.predictions import VersionedRoutingPolicy

MAX_REVIEWS_REQUIRED = 10


def _probability(value: Any, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("Enter a number between 0 and 1.")
    if not (0 <= value <= 1) or (value == 0 and not allow_zero):
        raise ValidationError("Enter a number between 0 and 1." if allow_zero else "Enter a number above 0, up to 1.")
    return float(value)


def _whole_number(value: Any, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("Enter a whole number.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ValidationError(f"Enter a whole number {bound}.")
    return value


def _choice(value: Any, choices: type[models.TextChoices]) -> str:
    if value not in choices.values:
        raise ValidationError(f"Choose one of: {', '.join(choices.values)}.")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("Enter true or false.")
    return value


def _label_thresholds(value: Any, *, model: MLModel) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValidationError('Enter an object of label -> threshold, e.g. {"deny": 0.95}.')
    unknown = sorted(set(value) - set(model.labels))
    if unknown:
        raise ValidationError(
            f"Not labels of {model.name}: {', '.join(unknown)}. Its labels: {', '.join(model.labels)}."
        )
    return {label: _probability(threshold) for label, threshold in value.items()}


def _rules(value: Any) -> list[dict]:
    if not isinstance(value, list):
        raise ValidationError("Enter a list of rules.")
    problems = []
    rules = []
    for number, raw in enumerate(value, start=1):
        try:
            rule = Rule.from_dict(raw)
        except RuleError as exc:
            problems.append(f"Rule {number}: {exc}")
            continue
        rules.append(
            {
                "field": rule.field,
                "operator": rule.operator,
                "value": rule.value,
                "action": rule.action,
                "reason": rule.reason,
            }
        )
    if problems:
        raise ValidationError(problems)
    return rules


def _reviews_required(value: Any) -> int | None:
    return None if value is None else _whole_number(value, minimum=1, maximum=MAX_REVIEWS_REQUIRED)


# What a policy update may change and how each value is checked. The stop switch is not here: it has its own
# service and permission.
EDITABLE_FIELDS = {
    "auto_decide_threshold": lambda value, model: _probability(value),
    "label_thresholds": lambda value, model: _label_thresholds(value, model=model),
    "rules": lambda value, model: _rules(value),
    "qa_sample_rate": lambda value, model: _probability(value),
    "reviews_required": lambda value, model: _reviews_required(value),
    "consensus_rule": lambda value, model: _choice(value, ConsensusRule),
    "min_agreement": lambda value, model: _probability(value, allow_zero=False),
    "sla_hours": lambda value, model: _whole_number(value, minimum=1, maximum=24 * 365),
    "blind_review": lambda value, model: _boolean(value),
    "assignment_strategy": lambda value, model: _choice(value, AssignmentStrategy),
    "max_open_claims_per_reviewer": lambda value, model: _whole_number(value, minimum=1, maximum=100),
    "lease_minutes": lambda value, model: _whole_number(value, minimum=1, maximum=24 * 60),
    "gold_rate": lambda value, model: _probability(value),
}


def _require_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError({"reason": ["Give a reason: every change of a routing policy is recorded with one."]})
    return reason.strip()


def _policy_payload(policy: RoutingPolicy, **extra: Any) -> dict[str, Any]:
    return {"policy_id": policy.pk, "model_id": policy.model_id, "model": policy.model.name, **extra}


def routing_policy_get_or_create_default(*, model: MLModel) -> "VersionedRoutingPolicy":
    """The model's routing policy, created with the defaults (reviews by risk tier) if it has none yet."""
    existing = routing_policy_for_model(model=model)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            policy = RoutingPolicy(model=model)
            historise(
                policy,
                actor=None,
                reason=f"Default routing policy created for {model.name} (risk tier {model.risk_tier}).",
            )
            policy.save()
            ledger_append(
                event_type=LedgerEvent.POLICY_CREATED,
                object_type="reviews.routingpolicy",
                object_id=policy.pk,
                payload=_policy_payload(policy, settings=routing_policy_settings(policy), reason=change_reason(policy)),
            )
    except IntegrityError:
        # Another request created it at the same moment: theirs is read below.
        pass
    # Read back with the version (history id) a case routed under it records.
    created = routing_policy_for_model(model=model)
    assert created is not None, "created above, or by the concurrent request whose insert failed ours"
    return created


def routing_policy_settings(policy: RoutingPolicy) -> dict[str, Any]:
    """The routing-relevant settings of a policy, as recorded in the ledger."""
    return {name: getattr(policy, name) for name in EDITABLE_FIELDS} | {"stop_switch_on": policy.stop_switch_on}


def routing_policy_sha256(policy: RoutingPolicy) -> str:
    """The SHA-256 of a policy's settings in canonical JSON: what a case routed under it records as proof."""
    return sha256_hex(canonical_json(routing_policy_settings(policy)))


def routing_policy_update(*, policy: RoutingPolicy, changes: dict, actor: User, reason: str) -> RoutingPolicy:
    """Change a policy's settings with a reason; raise ``ValidationError`` (by field) for any bad value.

    Only fields that really change are written; a call that changes nothing writes nothing.
    """
    if not actor.has_perm("reviews.change_routingpolicy"):
        raise PermissionDenied("You may not change routing policies.")
    reason = _require_reason(reason)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    errors: dict[str, list] = {name: ["This setting cannot be changed here."] for name in unknown}
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name in unknown:
            continue
        try:
            cleaned[name] = EDITABLE_FIELDS[name](value, policy.model)
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        locked = RoutingPolicy.objects.select_for_update(of=("self",)).select_related("model").get(pk=policy.pk)
        diff = {
            name: {"from": getattr(locked, name), "to": value}
            for name, value in cleaned.items()
            if getattr(locked, name) != value
        }
        if not diff:
            return locked
        for name in diff:
            setattr(locked, name, cleaned[name])
        historise(locked, actor=actor, reason=reason)
        locked.save(update_fields=[*diff, "updated_at"])
        ledger_append(
            event_type=LedgerEvent.POLICY_CHANGED,
            object_type="reviews.routingpolicy",
            object_id=locked.pk,
            actor=actor,
            payload=_policy_payload(locked, changes=diff, settings=routing_policy_settings(locked), reason=reason),
        )
    return locked


def routing_policy_set_stop_switch(*, policy: RoutingPolicy, on: bool, actor: User, reason: str) -> RoutingPolicy:
    """Turn a model's stop switch on (every new case goes to human review) or off, with a reason.

    Raises ``ValidationError`` if the switch is already in that position, so nobody believes they stopped
    a model that someone else had already stopped (or restarted).
    """
    if not actor.has_perm("reviews.toggle_stop_switch"):
        raise PermissionDenied("You may not turn a model's stop switch on or off.")
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = (
            RoutingPolicy.objects.select_for_update(of=("self",))
            .select_related("model", "stop_switch_changed_by")
            .get(pk=policy.pk)
        )
        if locked.stop_switch_on == on:
            position = "on" if on else "off"
            raise ValidationError(f"The stop switch of {locked.model.name} is already {position}.")
        now = timezone.now()
        locked.stop_switch_on = on
        locked.stop_switch_changed_at = now
        locked.stop_switch_changed_by = actor
        historise(locked, actor=actor, reason=reason)
        locked.save(update_fields=["stop_switch_on", "stop_switch_changed_at", "stop_switch_changed_by", "updated_at"])
        ledger_append(
            event_type=LedgerEvent.POLICY_STOP_SWITCH,
            object_type="reviews.routingpolicy",
            object_id=locked.pk,
            actor=actor,
            payload=_policy_payload(
                locked, on=on, changed_at=now.isoformat(), settings=routing_policy_settings(locked), reason=reason
            ),
        )
    return locked


def routing_policy_snapshot(policy: RoutingPolicy) -> PolicySnapshot:
    """The router's view of a policy (expects ``model`` and ``stop_switch_changed_by`` loaded)."""
    changed_by = policy.stop_switch_changed_by
    return PolicySnapshot(
        model_name=policy.model.name,
        risk_tier=policy.model.risk_tier,
        auto_decide_threshold=policy.auto_decide_threshold,
        label_thresholds=dict(policy.label_thresholds or {}),
        rules=tuple(Rule.from_dict(raw) for raw in policy.rules or []),
        qa_sample_rate=policy.qa_sample_rate,
        reviews_required=policy.reviews_required,
        stop_switch_on=policy.stop_switch_on,
        stop_switch_since=policy.stop_switch_changed_at,
        stop_switch_by=changed_by.get_username() if changed_by is not None else "",
    )
