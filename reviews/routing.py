"""The router: which predictions a machine may decide alone and which go to people, with every reason in words.

Pure Python (no Django import), so every rule type is tested exhaustively and a 5,000-item batch routes in
milliseconds. ``route_case`` maps a snapshot of a model's routing policy and one case to a ``RoutingResult``.

How a case is routed, in order; every step that applies adds a sentence to the reasons:
0. A version that is not in production (a candidate tried out by name) never decides alone: its cases go to
   review, so no model answer skips the promotion gate.
1. Stop switch on: the case goes to review ("stop switch on since 2026-11-20 by alice").
2. Business rules: every rule that fires sends the case to review (action ``review``) or to review with an
   adjudicator's final call (action ``escalate``). A rule that cannot be checked, because the field is missing,
   null, not a number (NaN), or of a type the operator cannot compare (a list or an object for any operator, a
   string against a number), counts as fired: an unknown value never lets a case pass a rule unseen. Its reason
   says which field could not be checked and why.
3. Confidence: below the auto-decide threshold (the label's own threshold if the policy sets one) goes to
   review. A case without a usable confidence (none given, or one that is not a probability: NaN, infinite, or
   outside [0, 1]) cannot be decided automatically and goes to review saying why; hosted scoring's reason for
   giving none (``Case.confidence_problem``) is quoted. A confidence and its threshold are printed with as many
   decimals as it takes to tell them apart (0.7999 is never "0.80 is below the 0.80 threshold").
4. A case that passed 1-3 is decided automatically, except a deterministic QA sample: the SHA-256 of
   ``"<model name>:<external_id>"`` read as a number in [0, 1) below the sample rate sends it to review, so a
   replay or a re-run routes the same case the same way.

Priority (higher is more urgent): the risk tier first, then rule severity (escalate over review), then lower
confidence first (a case without a usable confidence counts as the least confident).
"""

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from numbers import Real
from operator import ge, gt, le, lt
from typing import Any

AUTO = "auto"
REVIEW = "review"
ESCALATE = "escalate"
PRODUCTION_STAGE = "production"

OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "in")
RULE_ACTIONS = (REVIEW, ESCALATE)
ORDERING_OPERATORS = {"<": lt, "<=": le, ">": gt, ">=": ge}
OPERATOR_WORDS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "is", "!=": "is not", "in": "is one of"}

# Reviews per case by risk tier when the policy does not set a number; critical cases also get an
# adjudicator's final call after the reviews.
TIER_REVIEWS_REQUIRED = {"low": 1, "medium": 2, "high": 3, "critical": 3}
ADJUDICATED_TIERS = frozenset({"critical"})

# Priority bands: a higher tier always outranks a lower one, severity outranks confidence within a tier,
# and the confidence term (0-100) puts the least confident case first.
TIER_PRIORITY = {"low": 0, "medium": 1000, "high": 2000, "critical": 3000}
SEVERITY_PRIORITY = {ESCALATE: 500, REVIEW: 200}
CONFIDENCE_PRIORITY_SPAN = 100


class RuleError(ValueError):
    """A business rule that cannot be used, with a message for the person who wrote it."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One business rule over a feature: ``<field> <operator> <value>`` -> review or escalate."""

    field: str
    operator: str
    value: Any
    action: str
    reason: str

    @classmethod
    def from_dict(cls, raw: Any) -> "Rule":
        """Build a rule from its stored form, or raise ``RuleError`` saying what is wrong with it."""
        if not isinstance(raw, Mapping):
            raise RuleError("A rule must be an object with field, operator, value, action and reason.")
        unknown = sorted(set(raw) - {"field", "operator", "value", "action", "reason"})
        if unknown:
            raise RuleError(f"Unknown rule keys: {', '.join(unknown)}.")
        field, operator, action, reason = (raw.get(key) for key in ("field", "operator", "action", "reason"))
        if not isinstance(field, str) or not field.strip():
            raise RuleError("A rule needs the name of the feature it checks (field).")
        if operator not in OPERATORS:
            raise RuleError(f"Operator must be one of {' '.join(OPERATORS)}, got {operator!r}.")
        if "value" not in raw:
            raise RuleError("A rule needs a value to compare with.")
        value = raw["value"]
        if operator == "in":
            if not isinstance(value, list) or not value or not all(_is_scalar(item) for item in value):
                raise RuleError("The 'in' operator needs a non-empty list of numbers or strings.")
        elif operator in ORDERING_OPERATORS:
            if not (_is_number(value) or isinstance(value, str)):
                raise RuleError(f"The '{operator}' operator needs a number or a string to compare with.")
        elif not _is_scalar(value) and value is not None:
            raise RuleError(f"The '{operator}' operator needs a number, a string, true/false or null.")
        compared = value if isinstance(value, list) else [value]
        if any(_is_number(item) and not math.isfinite(item) for item in compared):
            raise RuleError("A rule compares with finite numbers only: NaN and infinity match nothing useful.")
        if action not in RULE_ACTIONS:
            raise RuleError(f"Action must be 'review' or 'escalate', got {action!r}.")
        if not isinstance(reason, str) or not reason.strip():
            raise RuleError("A rule needs a reason a reviewer and a compliance officer can read.")
        return cls(field=field.strip(), operator=operator, value=value, action=action, reason=reason.strip())

    def describe(self) -> str:
        return f"{self.field} {OPERATOR_WORDS[self.operator]} {format_value(self.value)}"


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    """What the router needs to know of a model's routing policy, read once per batch."""

    model_name: str
    risk_tier: str
    auto_decide_threshold: float
    label_thresholds: Mapping[str, float]
    rules: tuple[Rule, ...]
    qa_sample_rate: float
    reviews_required: int | None = None
    stop_switch_on: bool = False
    stop_switch_since: datetime | None = None
    stop_switch_by: str = ""


@dataclass(frozen=True, slots=True)
class Case:
    """One prediction as the router sees it.

    ``confidence_problem``: when ``confidence`` is None because the scorer could not give a usable one, why, in
    words ("the model's probabilities for this case are not usable (approve NaN, deny NaN)"); the router
    quotes it in the case's reasons.
    """

    external_id: str
    features: Mapping[str, Any]
    label: str
    confidence: float | None
    version_number: int | None = None
    version_stage: str = "production"
    confidence_problem: str = ""


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """Where a case goes and why. ``reviews_required``/``needs_adjudication`` apply to review routes only."""

    route: str
    reasons: tuple[str, ...]
    priority: int
    is_qa_sample: bool
    escalate: bool
    escalation_reasons: tuple[str, ...]
    reviews_required: int
    needs_adjudication: bool


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def format_number(value: float) -> str:
    """Thousands separators, no needless decimals: 12000 -> "12,000", 12000.5 -> "12,000.5"."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.6f}".rstrip("0")


def format_probability(value: float) -> str:
    """Two decimals, more only where two would hide a difference: 0.8 -> "0.80", 0.795 -> "0.795"."""
    short = f"{value:.2f}"
    if float(short) == value:
        return short
    longer = f"{value:.6f}".rstrip("0")
    # 0.8000001 to six decimals is 0.80: the shorter form is as exact and keeps the two decimals.
    return longer if len(longer) > len(short) else short


def format_probabilities(value: float, threshold: float) -> tuple[str, str]:
    """Both as ``format_probability`` writes them, unless that would show two different numbers as equal
    (0.7999999 and 0.8 both read 0.80): then both with as many decimals as it takes to tell them apart."""
    pair = (format_probability(value), format_probability(threshold))
    if value == threshold or float(pair[0]) != float(pair[1]):
        return pair
    for decimals in range(3, 18):
        # Rounding both to the same decimals keeps their order, so "below" never reads as "above".
        pair = (f"{value:.{decimals}f}", f"{threshold:.{decimals}f}")
        if pair[0] != pair[1]:
            return pair
    return repr(value), repr(threshold)


def format_score(value: Any) -> str:
    """A model's score or confidence as given, usable or not: "NaN", "infinity", a probability as
    ``format_probability`` writes it, any other number exactly (1.0000001 never reads as 1)."""
    if not _is_number(value):
        return repr(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    if 0.0 <= value <= 1.0:
        return format_probability(value)
    return repr(float(value))


def format_rate(rate: float) -> str:
    """A share as a percentage without needless decimals: 0.05 -> "5%", 0.025 -> "2.5%"."""
    return f"{rate * 100:.4f}".rstrip("0").rstrip(".") + "%"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if _is_number(value):
        return format_number(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value)
    return str(value)


def qa_sample_point(model_name: str, external_id: str) -> float:
    """A number in [0, 1), uniform over ids and fixed for a (model, external_id): the QA draw of a case."""
    digest = hashlib.sha256(f"{model_name}:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def review_plan(policy: PolicySnapshot) -> tuple[int, bool]:
    """Reviews per case and whether an adjudicator makes the final call, from the policy or its risk tier."""
    required = policy.reviews_required or TIER_REVIEWS_REQUIRED.get(policy.risk_tier, 2)
    return required, policy.risk_tier in ADJUDICATED_TIERS


def _rule_fires(rule: Rule, features: Mapping[str, Any]) -> str | None:
    """The sentence saying why the rule fires on these features, or None when it does not."""
    actual = features.get(rule.field)
    if actual is None:
        return f"{rule.field} is missing, so the rule {rule.describe()} could not be checked"
    if _is_number(actual) and math.isnan(actual):
        # NaN compares false with everything: checked as a number it would pass every rule.
        return f"{rule.field} is not a number (NaN), so the rule {rule.describe()} could not be checked"
    comparable = _is_scalar(actual)
    if rule.operator in ORDERING_OPERATORS:
        comparable = (_is_number(actual) and _is_number(rule.value)) or (
            isinstance(actual, str) and isinstance(rule.value, str)
        )
    if not comparable:
        return (
            f"{rule.field} is {_describe_value(actual)}, which cannot be compared with {format_value(rule.value)}, "
            f"so the rule {rule.describe()} could not be checked"
        )
    if rule.operator in ORDERING_OPERATORS:
        fired = ORDERING_OPERATORS[rule.operator](actual, rule.value)
    elif rule.operator == "in":
        fired = any(_same(actual, item) for item in rule.value)
    elif rule.operator == "==":
        fired = _same(actual, rule.value)
    else:
        fired = not _same(actual, rule.value)
    if not fired:
        return None
    return f"{rule.field} {format_value(actual)} {OPERATOR_WORDS[rule.operator]} {format_value(rule.value)}"


def _describe_value(value: Any) -> str:
    """A feature value in a reason; a list or object says what it is, so its items do not read as the rule's."""
    if isinstance(value, (list, tuple)):
        return f"a list ({format_value(value)})" if value else "an empty list"
    if isinstance(value, Mapping):
        return "an object"
    return format_value(value)


def _usable_confidence(confidence: Any) -> bool:
    return _is_number(confidence) and math.isfinite(confidence) and 0.0 <= confidence <= 1.0


def _same(left: Any, right: Any) -> bool:
    # JSON true is not the number 1 to a compliance officer, though it is to Python.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    return left == right


def route_case(policy: PolicySnapshot, case: Case) -> RoutingResult:
    """Route one case under one policy; see the module docstring for the order and the wording."""
    reasons: list[str] = []
    escalation_reasons: list[str] = []
    to_review = False
    severity = 0

    if case.version_stage != PRODUCTION_STAGE:
        to_review = True
        reasons.append(
            f"version {case.version_number} is {case.version_stage}, not in production, "
            "so its answers are not decided automatically"
        )

    if policy.stop_switch_on:
        to_review = True
        since = f" since {policy.stop_switch_since.date().isoformat()}" if policy.stop_switch_since else ""
        by = f" by {policy.stop_switch_by}" if policy.stop_switch_by else ""
        reasons.append(f"stop switch on{since}{by}")

    for rule in policy.rules:
        sentence = _rule_fires(rule, case.features)
        if sentence is None:
            continue
        to_review = True
        if rule.action == ESCALATE:
            escalation_reasons.append(f"{sentence} (escalation rule: {rule.reason})")
            reasons.append(escalation_reasons[-1])
        else:
            reasons.append(f"{sentence} (rule: {rule.reason})")
        severity = max(severity, SEVERITY_PRIORITY[rule.action])

    threshold = policy.label_thresholds.get(case.label, policy.auto_decide_threshold)
    for_label = f" for {case.label}" if case.label in policy.label_thresholds else ""
    # The confidence when it is a probability the router can compare; None otherwise.
    usable = case.confidence if _usable_confidence(case.confidence) else None
    if case.confidence is None:
        to_review = True
        missing = case.confidence_problem or "no confidence was given"
        reasons.append(f"{missing}, so the case cannot be decided automatically")
    elif usable is None:
        to_review = True
        reasons.append(
            f"confidence {format_score(case.confidence)} is not a probability between 0 and 1, "
            "so the case cannot be decided automatically"
        )
    elif usable < threshold:
        to_review = True
        shown, required = format_probabilities(usable, threshold)
        reasons.append(f"confidence {shown} is below the {required} auto-decide threshold{for_label}")

    is_qa_sample = False
    if not to_review:
        assert usable is not None, "a case without a usable confidence went to review above"
        shown, required = format_probabilities(usable, threshold)
        reasons.append(f"confidence {shown} meets the {required} auto-decide threshold{for_label}")
        if policy.qa_sample_rate > 0 and qa_sample_point(policy.model_name, case.external_id) < policy.qa_sample_rate:
            is_qa_sample = to_review = True
            reasons.append(f"QA sample ({format_rate(policy.qa_sample_rate)})")

    uncertainty = 1.0 - usable if usable is not None else 1.0
    priority = TIER_PRIORITY.get(policy.risk_tier, 0) + severity + round(uncertainty * CONFIDENCE_PRIORITY_SPAN)
    reviews_required, adjudicated_tier = review_plan(policy)
    return RoutingResult(
        route=REVIEW if to_review else AUTO,
        reasons=tuple(reasons),
        priority=priority,
        is_qa_sample=is_qa_sample,
        escalate=bool(escalation_reasons),
        escalation_reasons=tuple(escalation_reasons),
        reviews_required=reviews_required,
        needs_adjudication=adjudicated_tier or bool(escalation_reasons),
    )
