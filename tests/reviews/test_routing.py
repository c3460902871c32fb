"""The pure router: every rule type, its sentence, the QA sample, the stop switch, priorities, review plans."""

import math
import random
from datetime import UTC, datetime

import pytest

from reviews.routing import (
    AUTO,
    REVIEW,
    Case,
    PolicySnapshot,
    Rule,
    RuleError,
    format_number,
    format_probabilities,
    format_probability,
    format_rate,
    format_score,
    format_value,
    qa_sample_point,
    route_case,
)


def policy(**overrides) -> PolicySnapshot:
    values = {
        "model_name": "credit-scoring",
        "risk_tier": "medium",
        "auto_decide_threshold": 0.8,
        "label_thresholds": {},
        "rules": (),
        "qa_sample_rate": 0.0,
    }
    values.update(overrides)
    return PolicySnapshot(**values)


def case(confidence: float | None = 0.93, label: str = "approve", external_id: str = "application-1", **features):
    return Case(
        external_id=external_id,
        features=features or {"credit_amount": 4200, "duration": 24, "purpose": "car"},
        label=label,
        confidence=confidence,
    )


def rule(field: str, operator: str, value, action: str = "review", reason: str = "checked by policy") -> Rule:
    return Rule.from_dict({"field": field, "operator": operator, "value": value, "action": action, "reason": reason})


def test_a_confident_case_is_decided_automatically_and_says_why():
    result = route_case(policy(), case(confidence=0.93))

    assert result.route == AUTO
    assert result.reasons == ("confidence 0.93 meets the 0.80 auto-decide threshold",)
    assert not result.is_qa_sample and not result.escalate


def test_a_case_below_the_threshold_goes_to_review_with_the_issue_wording():
    result = route_case(policy(), case(confidence=0.62))

    assert result.route == REVIEW
    assert result.reasons == ("confidence 0.62 is below the 0.80 auto-decide threshold",)


def test_a_case_exactly_at_the_threshold_is_confident_enough():
    assert route_case(policy(), case(confidence=0.8)).route == AUTO


def test_a_label_threshold_overrides_the_default_and_is_named():
    strict = policy(label_thresholds={"deny": 0.95})

    denied = route_case(strict, case(confidence=0.9, label="deny"))
    approved = route_case(strict, case(confidence=0.9, label="approve"))

    assert denied.route == REVIEW
    assert denied.reasons == ("confidence 0.90 is below the 0.95 auto-decide threshold for deny",)
    assert approved.route == AUTO


def test_a_case_without_confidence_cannot_be_decided_automatically():
    result = route_case(policy(), case(confidence=None))

    assert result.route == REVIEW
    assert result.reasons == ("no confidence was given, so the case cannot be decided automatically",)


def test_probabilities_show_more_decimals_only_where_two_would_hide_a_difference():
    result = route_case(policy(), case(confidence=0.795))

    assert result.reasons == ("confidence 0.795 is below the 0.80 auto-decide threshold",)


@pytest.mark.parametrize(
    ("confidence", "shown"),
    [
        (math.nan, "NaN"),
        (math.inf, "infinity"),
        (-math.inf, "minus infinity"),
        (1.5, "1.5"),
        (-0.1, "-0.1"),
        (1.0000001, "1.0000001"),
    ],
)
def test_a_confidence_that_is_not_a_probability_goes_to_review_as_the_least_confident_case(confidence, shown):
    result = route_case(policy(qa_sample_rate=1.0), case(confidence=confidence))

    assert result.route == REVIEW and not result.is_qa_sample
    assert result.reasons == (
        f"confidence {shown} is not a probability between 0 and 1, so the case cannot be decided automatically",
    )
    assert result.priority == route_case(policy(), case(confidence=None)).priority
    assert result.priority > route_case(policy(), case(confidence=0.01)).priority


def test_hosted_scorings_reason_for_giving_no_confidence_is_quoted():
    problem = "the model's scores for this case are not probabilities between 0 and 1 (approve NaN, deny NaN)"

    result = route_case(
        policy(),
        Case(external_id="a-1", features={}, label="approve", confidence=None, confidence_problem=problem),
    )

    assert result.route == REVIEW
    assert result.reasons == (f"{problem}, so the case cannot be decided automatically",)


@pytest.mark.parametrize(
    ("confidence", "threshold", "sentence"),
    [
        (0.7999999, 0.8, "confidence 0.7999999 is below the 0.8000000 auto-decide threshold"),
        (0.8000001, 0.8, "confidence 0.8000001 meets the 0.8000000 auto-decide threshold"),
        (0.79999999999, 0.8, "confidence 0.79999999999 is below the 0.80000000000 auto-decide threshold"),
        (0.8, 0.8, "confidence 0.80 meets the 0.80 auto-decide threshold"),
        (0.8, 0.7999999, "confidence 0.8000000 meets the 0.7999999 auto-decide threshold"),
    ],
)
def test_a_confidence_is_never_printed_as_equal_to_a_different_threshold(confidence, threshold, sentence):
    result = route_case(policy(auto_decide_threshold=threshold), case(confidence=confidence))

    assert result.reasons == (sentence,)


def test_a_label_threshold_is_told_apart_from_its_confidence_too():
    result = route_case(policy(label_thresholds={"deny": 0.95}), case(confidence=0.9499999, label="deny"))

    assert result.reasons == ("confidence 0.9499999 is below the 0.9500000 auto-decide threshold for deny",)


def test_printed_confidences_and_thresholds_differ_whenever_they_differ_and_keep_their_order():
    rng = random.Random(5)
    for _ in range(5000):
        threshold = round(rng.uniform(0.5, 0.99), rng.choice((2, 3, 4)))
        confidence = min(max(threshold + rng.choice((-1, 1)) * 10 ** -rng.uniform(1, 16), 0.0), 1.0)

        shown, required = format_probabilities(confidence, threshold)

        assert (shown == required) == (confidence == threshold), (confidence, threshold)
        assert (float(shown) < float(required)) == (confidence < threshold) or shown == required
        result = route_case(policy(auto_decide_threshold=threshold), case(confidence=confidence))
        verb = "meets" if confidence >= threshold else "is below"
        assert result.reasons == (f"confidence {shown} {verb} the {required} auto-decide threshold",)


@pytest.mark.parametrize(
    ("field", "operator", "value", "actual", "sentence"),
    [
        ("credit_amount", ">", 10000, 12000, "credit_amount 12,000 > 10,000"),
        ("credit_amount", ">=", 10000, 10000, "credit_amount 10,000 >= 10,000"),
        ("age", "<", 21, 19, "age 19 < 21"),
        ("duration", "<=", 6, 6, "duration 6 <= 6"),
        ("purpose", "==", "business", "business", 'purpose "business" is "business"'),
        ("country", "!=", "DE", "FR", 'country "FR" is not "DE"'),
        ("purpose", "in", ["business", "vacation"], "vacation", 'purpose "vacation" is one of "business", "vacation"'),
        ("credit_amount", ">", 1000.5, 1234567.25, "credit_amount 1,234,567.25 > 1,000.5"),
        ("employed", "==", False, False, "employed false is false"),
    ],
)
def test_every_operator_fires_with_a_sentence_a_compliance_officer_reads(field, operator, value, actual, sentence):
    result = route_case(
        policy(rules=(rule(field, operator, value, reason="large loans need review"),)),
        case(confidence=0.99, **{field: actual}),
    )

    assert result.route == REVIEW
    assert result.reasons[0] == f"{sentence} (rule: large loans need review)"


@pytest.mark.parametrize(
    ("operator", "value", "actual"),
    [
        (">", 10000, 9000),
        (">=", 10000, 9999.99),
        ("<", 21, 21),
        ("<=", 6, 7),
        ("==", "business", "car"),
        ("!=", "DE", "DE"),
        ("in", ["business", "vacation"], "car"),
        ("==", 1, True),
        ("in", [1, 2], False),
    ],
)
def test_a_rule_that_does_not_match_lets_a_confident_case_pass(operator, value, actual):
    result = route_case(policy(rules=(rule("field", operator, value),)), case(confidence=0.99, field=actual))

    assert result.route == AUTO


def test_the_issue_example_reads_exactly_as_written():
    result = route_case(
        policy(rules=(rule("credit_amount", ">", 10000, reason="large loans need review"),)),
        case(confidence=0.99, credit_amount=12000),
    )

    assert "credit_amount 12,000 > 10,000 (rule: large loans need review)" in result.reasons


@pytest.mark.parametrize("features", [{"duration": 12}, {"credit_amount": None}])
def test_a_rule_on_a_missing_field_counts_as_fired_so_nothing_passes_unchecked(features):
    result = route_case(
        policy(rules=(rule("credit_amount", ">", 10000, reason="large loans need review"),)),
        case(confidence=0.99, **features),
    )

    assert result.route == REVIEW
    assert result.reasons[0] == (
        "credit_amount is missing, so the rule credit_amount > 10,000 could not be checked "
        "(rule: large loans need review)"
    )


def test_a_rule_that_cannot_compare_the_value_counts_as_fired_and_says_so():
    result = route_case(policy(rules=(rule("credit_amount", ">", 10000),)), case(confidence=0.99, credit_amount="lots"))

    assert result.route == REVIEW
    assert result.reasons[0].startswith('credit_amount is "lots", which cannot be compared with 10,000')


@pytest.mark.parametrize(
    ("operator", "value", "actual", "described"),
    [
        ("in", ["business", "vacation"], ["car", "business"], 'a list ("car", "business")'),
        ("in", ["business", "vacation"], [], "an empty list"),
        ("in", ["business", "vacation"], {"main": "business"}, "an object"),
        ("==", "business", ["business"], 'a list ("business")'),
        ("!=", "business", ["car"], 'a list ("car")'),
    ],
)
def test_a_list_or_object_feature_cannot_be_compared_so_its_rule_counts_as_fired(operator, value, actual, described):
    checked = rule("purpose", operator, value, reason="purposes checked by hand")

    result = route_case(policy(rules=(checked,)), case(confidence=0.99, purpose=actual))

    assert result.route == REVIEW
    assert result.reasons[0] == (
        f"purpose is {described}, which cannot be compared with {format_value(value)}, so the rule "
        f"{checked.describe()} could not be checked (rule: purposes checked by hand)"
    )


@pytest.mark.parametrize("operator", ["<", ">", "==", "!=", "in"])
def test_a_feature_that_is_not_a_number_counts_as_fired_whatever_the_operator(operator):
    checked = rule("income", operator, [1000, 2000] if operator == "in" else 1000)

    result = route_case(policy(rules=(checked,)), case(confidence=0.99, income=math.nan))

    assert result.route == REVIEW
    assert result.reasons[0].startswith(f"income is not a number (NaN), so the rule {checked.describe()} could not")


def test_an_escalation_rule_escalates_needs_an_adjudicator_and_outranks_a_review_rule():
    rules = (
        rule("credit_amount", ">", 10000, reason="large loans need review"),
        rule("credit_amount", ">", 50000, action="escalate", reason="very large loans need a senior look"),
    )
    escalated = route_case(policy(rules=rules), case(confidence=0.99, credit_amount=60000))
    reviewed = route_case(policy(rules=rules), case(confidence=0.99, credit_amount=20000))

    assert escalated.escalate and escalated.needs_adjudication
    assert escalated.escalation_reasons == (
        "credit_amount 60,000 > 50,000 (escalation rule: very large loans need a senior look)",
    )
    assert len(escalated.reasons) == 2
    assert not reviewed.escalate and not reviewed.needs_adjudication
    assert escalated.priority > reviewed.priority


def test_every_reason_is_listed_when_several_apply():
    result = route_case(
        policy(
            rules=(rule("credit_amount", ">", 10000, reason="large loans"), rule("duration", ">", 48, reason="long")),
            stop_switch_on=True,
            stop_switch_since=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
            stop_switch_by="alice",
        ),
        case(confidence=0.5, credit_amount=12000, duration=60),
    )

    assert result.reasons == (
        "stop switch on since 2026-11-20 by alice",
        "credit_amount 12,000 > 10,000 (rule: large loans)",
        "duration 60 > 48 (rule: long)",
        "confidence 0.50 is below the 0.80 auto-decide threshold",
    )


def test_the_stop_switch_sends_even_a_certain_case_to_review_and_names_when_and_who():
    result = route_case(
        policy(
            stop_switch_on=True, stop_switch_since=datetime(2026, 11, 20, 14, 0, tzinfo=UTC), stop_switch_by="alice"
        ),
        case(confidence=1.0),
    )

    assert result.route == REVIEW
    assert result.reasons == ("stop switch on since 2026-11-20 by alice",)
    assert not result.is_qa_sample


def test_a_version_not_in_production_never_decides_alone():
    result = route_case(
        policy(),
        Case(
            external_id="a-1", features={}, label="approve", confidence=0.99, version_number=3, version_stage="staging"
        ),
    )

    assert result.route == REVIEW
    assert result.reasons[0] == "version 3 is staging, not in production, so its answers are not decided automatically"


def test_the_qa_sample_is_deterministic_and_worded_with_its_rate():
    sampled_policy = policy(qa_sample_rate=0.05)
    sampled_id = next(
        f"application-{n}" for n in range(10_000) if qa_sample_point("credit-scoring", f"application-{n}") < 0.05
    )

    first = route_case(sampled_policy, case(external_id=sampled_id))
    again = route_case(sampled_policy, case(external_id=sampled_id))

    assert first == again
    assert first.route == REVIEW and first.is_qa_sample
    assert first.reasons == ("confidence 0.93 meets the 0.80 auto-decide threshold", "QA sample (5%)")


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.25])
def test_the_qa_sample_rate_holds_within_one_percent_over_100000_ids(rate):
    n = 100_000
    observed = sum(qa_sample_point("credit-scoring", f"application-{i}") < rate for i in range(n)) / n

    assert abs(observed - rate) < 0.01
    # ... and as close as an unbiased draw gets: within five standard errors.
    assert abs(observed - rate) < 5 * (rate * (1 - rate) / n) ** 0.5


def test_the_qa_draw_depends_on_the_model_so_models_sample_different_cases():
    ids = [f"application-{n}" for n in range(1000)]
    sampled_a = {i for i in ids if qa_sample_point("model-a", i) < 0.1}
    sampled_b = {i for i in ids if qa_sample_point("model-b", i) < 0.1}

    assert sampled_a != sampled_b


def test_uncertain_cases_are_never_counted_as_qa_samples():
    assert not any(
        route_case(policy(qa_sample_rate=1.0), case(confidence=0.5, external_id=f"a-{n}")).is_qa_sample
        for n in range(50)
    )


@pytest.mark.parametrize(
    ("tier", "required", "adjudicated"),
    [("low", 1, False), ("medium", 2, False), ("high", 3, False), ("critical", 3, True)],
)
def test_reviews_required_default_by_risk_tier(tier, required, adjudicated):
    result = route_case(policy(risk_tier=tier), case(confidence=0.5))

    assert (result.reviews_required, result.needs_adjudication) == (required, adjudicated)


def test_a_policy_number_of_reviews_overrides_the_tier_default():
    assert route_case(policy(risk_tier="low", reviews_required=4), case(confidence=0.5)).reviews_required == 4


def test_priority_puts_higher_risk_first_then_severity_then_lower_confidence():
    review_rule = (rule("credit_amount", ">", 10000),)
    low_tier_rule = route_case(policy(risk_tier="low", rules=review_rule), case(confidence=0.1, credit_amount=20000))
    high_tier_plain = route_case(policy(risk_tier="high"), case(confidence=0.79))
    medium_rule = route_case(policy(rules=review_rule), case(confidence=0.9, credit_amount=20000))
    medium_unsure = route_case(policy(), case(confidence=0.3))
    medium_less_unsure = route_case(policy(), case(confidence=0.7))

    assert high_tier_plain.priority > medium_rule.priority > low_tier_rule.priority
    assert medium_rule.priority > medium_unsure.priority > medium_less_unsure.priority


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"field": "x", "operator": "~", "value": 1, "action": "review", "reason": "r"}, "Operator must be one of"),
        ({"field": "x", "operator": "in", "value": 1, "action": "review", "reason": "r"}, "non-empty list"),
        ({"field": "x", "operator": ">", "value": [1], "action": "review", "reason": "r"}, "number or a string"),
        ({"field": "x", "operator": ">", "value": 1, "action": "drop", "reason": "r"}, "Action must be"),
        ({"field": "x", "operator": ">", "value": 1, "action": "review", "reason": " "}, "needs a reason"),
        ({"field": "", "operator": ">", "value": 1, "action": "review", "reason": "r"}, "name of the feature"),
        ({"field": "x", "operator": ">", "action": "review", "reason": "r"}, "needs a value"),
        ({"field": "x", "operator": ">", "value": 1, "action": "review", "reason": "r", "when": 1}, "Unknown rule"),
        ("x > 1", "must be an object"),
        ({"field": "x", "operator": ">", "value": math.nan, "action": "review", "reason": "r"}, "finite numbers"),
        ({"field": "x", "operator": "in", "value": [1, math.inf], "action": "review", "reason": "r"}, "finite"),
    ],
)
def test_an_unusable_rule_is_refused_with_a_message_for_its_author(raw, message):
    with pytest.raises(RuleError, match=message):
        Rule.from_dict(raw)


def test_numbers_are_formatted_for_people():
    assert format_number(12000) == "12,000"
    assert format_number(12000.0) == "12,000"
    assert format_number(1234.5) == "1,234.5"
    assert format_probability(0.8) == "0.80"
    assert format_rate(0.05) == "5%"
    assert format_rate(0.025) == "2.5%"
    assert [format_score(value) for value in (0.5, 0.8125, math.nan, -math.inf, 1.0000001, "high")] == [
        "0.50",
        "0.8125",
        "NaN",
        "minus infinity",
        "1.0000001",
        "'high'",
    ]
