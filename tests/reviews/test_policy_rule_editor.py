"""The routing policy's rules and label thresholds edited as rows in the console, saved through the policy service."""

import json
import re

import pytest
from django.urls import reverse

from audits.models import DecisionEvent
from models_registry.choices import RiskTier
from reviews.services.policies import routing_policy_get_or_create_default, routing_policy_update
from tests.models_registry.factories import CREDIT_FEATURE_SCHEMA, MLModelFactory

LARGE_LOANS = {
    "field": "credit_amount",
    "operator": ">",
    "value": 10000,
    "action": "review",
    "reason": "Large loans need a second look",
}
SCHEMA = {
    **CREDIT_FEATURE_SCHEMA,
    "properties": {
        **CREDIT_FEATURE_SCHEMA["properties"],
        "purpose": {"type": "string", "enum": ["car", "education", "business"]},
        "has_guarantor": {"type": "boolean"},
    },
}


@pytest.fixture
def policy(db):
    model = MLModelFactory(name="credit-scoring", risk_tier=RiskTier.HIGH, feature_schema=SCHEMA)
    return routing_policy_get_or_create_default(model=model)


@pytest.fixture
def policy_with_a_rule(policy, compliance_officer):
    return routing_policy_update(
        policy=policy, changes={"rules": [LARGE_LOANS]}, actor=compliance_officer, reason="Credit committee"
    )


def change_url(policy) -> str:
    return reverse("admin:reviews_routingpolicy_change", args=[policy.pk])


def _rows(prefix: str, rows: list[dict], stored: int) -> dict:
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(stored)}
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
    return data


def rule_row(rule: dict) -> dict:
    value = rule["value"]
    return {**rule, "value": ", ".join(map(str, value)) if isinstance(value, list) else str(value)}


def posted(policy, *, rules=None, thresholds=None, reason="Credit committee, minutes 2026-12", **settings) -> dict:
    """The change form as a browser without script posts it: settings, rule rows, threshold rows, reason."""
    data = {
        "auto_decide_threshold": policy.auto_decide_threshold,
        "qa_sample_rate": policy.qa_sample_rate,
        "reviews_required": "" if policy.reviews_required is None else policy.reviews_required,
        "consensus_rule": policy.consensus_rule,
        "min_agreement": policy.min_agreement,
        "sla_hours": policy.sla_hours,
        "assignment_strategy": policy.assignment_strategy,
        "max_open_claims_per_reviewer": policy.max_open_claims_per_reviewer,
        "lease_minutes": policy.lease_minutes,
        "gold_rate": policy.gold_rate,
        "reason": reason,
        **settings,
    }
    stored_rules = [rule_row(rule) for rule in policy.rules]
    stored_thresholds = [{"label": label, "threshold": value} for label, value in policy.label_thresholds.items()]
    data |= _rows("rules", stored_rules if rules is None else rules, len(policy.rules))
    data |= _rows("thresholds", stored_thresholds if thresholds is None else thresholds, len(policy.label_thresholds))
    return data


def row_html(page: str, row_id: str) -> str:
    """The table row with this id and the row of errors before it, if any."""
    match = re.search(rf'(<tr class="row-form-errors">(?:(?!<tr).)*</tr>\s*)?<tr[^>]*id="{row_id}".*?</tr>', page, re.S)
    assert match, f"no row {row_id}"
    return match.group(0)


def test_the_form_shows_stored_rules_as_rows_with_empty_rows_and_settings_named_for_people(
    client, compliance_officer, policy_with_a_rule
):
    client.force_login(compliance_officer)

    page = client.get(change_url(policy_with_a_rule)).content.decode()

    stored = row_html(page, "rules-0")
    assert '<option value="credit_amount" selected>credit_amount</option>' in stored
    assert '<option value="&gt;" selected>&gt;</option>' in stored
    assert 'value="10000"' in stored and 'value="Large loans need a second look"' in stored
    for empty in ("rules-1", "rules-2", "rules-3", "thresholds-0", "thresholds-2"):
        assert "selected>" not in row_html(page, empty).replace('<option value="" selected>', "")
    features = re.findall(r'<option value="([^"]+)"', row_html(page, "rules-1"))
    schema_features = sorted(policy_with_a_rule.model.feature_schema["properties"])
    assert features[: len(schema_features)] == schema_features
    for label in ("Auto-decide threshold", "QA sample rate", "SLA (hours)", "Reviews per case", "Gold case rate"):
        assert f">{label}:</label>" in page
    assert "Business rules" in page and "Label thresholds" in page


@pytest.mark.parametrize("person", ["compliance_officer", "admin_user"])
def test_a_rule_added_in_an_empty_row_is_saved_with_the_reason_in_history_and_ledger(request, client, policy, person):
    user = request.getfixturevalue(person)
    client.force_login(user)
    new_rule = {**LARGE_LOANS, "value": "10000"}

    response = client.post(change_url(policy), posted(policy, rules=[new_rule, {}, {}], reason="Loss review 2026-12"))

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.rules == [LARGE_LOANS]
    latest = policy.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (user, "Loss review 2026-12")
    assert latest.rules == [LARGE_LOANS]
    event = DecisionEvent.objects.filter(event_type="policy.changed").get()
    assert json.loads(event.payload)["changes"] == {"rules": {"from": [], "to": [LARGE_LOANS]}}
    assert event.actor_label == user.username


def test_rules_of_every_feature_type_are_stored_with_values_of_that_type(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    rows = [
        {"field": "duration", "operator": ">=", "value": "48", "action": "review", "reason": "Long loans"},
        {"field": "purpose", "operator": "in", "value": "car, business", "action": "escalate", "reason": "Policy"},
        {"field": "has_guarantor", "operator": "==", "value": "False", "action": "review", "reason": "Unsecured"},
        {"field": "credit_amount", "operator": "<", "value": "250.5", "action": "review", "reason": "Tiny loans"},
    ]

    assert client.post(change_url(policy), posted(policy, rules=rows)).status_code == 302

    policy.refresh_from_db()
    assert [rule["value"] for rule in policy.rules] == [48, ["car", "business"], False, 250.5]
    assert [rule["action"] for rule in policy.rules] == ["review", "escalate", "review", "review"]


def test_a_rule_marked_remove_is_removed_and_the_others_kept(client, compliance_officer, policy, policy_with_a_rule):
    client.force_login(compliance_officer)
    second = {"field": "age", "operator": "<", "value": 21, "action": "escalate", "reason": "Young applicants"}
    policy = routing_policy_update(
        policy=policy, changes={"rules": [LARGE_LOANS, second]}, actor=compliance_officer, reason="Two rules"
    )

    rows = [{**rule_row(LARGE_LOANS), "DELETE": "on"}, rule_row(second), {}]
    response = client.post(change_url(policy), posted(policy, rules=rows, reason="Large loans are fine now"))

    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.rules == [second]
    assert policy.history.latest().history_change_reason == "Large loans are fine now"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"field": "salary"}, "Not a feature of credit-scoring: salary. Its features: age, credit_amount, duration"),
        (
            {"field": "has_guarantor", "operator": "<", "value": "true"},
            "&#x27;&lt;&#x27; does not apply to has_guarantor",
        ),
        ({"value": "lots"}, "credit_amount is a number: enter a number"),
        ({"field": "duration", "value": "2.5"}, "duration is a whole number"),
        ({"field": "has_guarantor", "operator": "==", "value": "maybe"}, "has_guarantor is true or false"),
        ({"value": "nan"}, "Enter a finite number"),
        ({"operator": "in", "value": "1000, , 2000"}, "An empty item between commas"),
        ({"reason": ""}, "Give the rule a reason"),
        ({"action": "approve"}, "Select a valid choice. approve is not one of the available choices."),
    ],
)
def test_a_bad_rule_row_shows_its_error_on_that_row_and_nothing_stored_changes(
    client, compliance_officer, policy_with_a_rule, row, message
):
    client.force_login(compliance_officer)
    policy = policy_with_a_rule
    history_rows = policy.history.count()
    rows = [rule_row(LARGE_LOANS), {**rule_row(LARGE_LOANS), "reason": "Second rule", **row}]

    response = client.post(change_url(policy), posted(policy, rules=rows, sla_hours="8"))

    assert response.status_code == 200
    page = response.content.decode()
    assert message in row_html(page, "rules-1")
    assert message not in row_html(page, "rules-0")
    assert "Correct the rules or label thresholds marked below: nothing was saved." in page
    policy.refresh_from_db()
    assert (policy.rules, policy.sla_hours, policy.history.count()) == ([LARGE_LOANS], 24, history_rows)


def test_label_thresholds_are_added_changed_and_removed_as_rows(client, compliance_officer, policy):
    client.force_login(compliance_officer)

    added = posted(policy, thresholds=[{"label": "deny", "threshold": "0.95"}, {}, {}], reason="Denials matter")
    assert client.post(change_url(policy), added).status_code == 302
    policy.refresh_from_db()
    assert policy.label_thresholds == {"deny": 0.95}

    changed = posted(policy, thresholds=[{"label": "deny", "threshold": "0.9", "DELETE": "on"}], reason="Back")
    assert client.post(change_url(policy), changed).status_code == 302
    policy.refresh_from_db()
    assert policy.label_thresholds == {}
    assert list(policy.history.values_list("history_change_reason", flat=True)[:2]) == ["Back", "Denials matter"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"label": "deny", "threshold": "1.5"}], "Enter a number between 0 and 1."),
        ([{"label": "deny", "threshold": "high"}], "Enter a number between 0 and 1."),
        ([{"label": "maybe", "threshold": "0.9"}], "Not a label of credit-scoring: maybe. Its labels: approve, deny."),
        (
            [{"label": "deny", "threshold": "0.9"}, {"label": "deny", "threshold": "0.8"}],
            "deny already has a threshold above: keep one row per label.",
        ),
    ],
)
def test_a_bad_label_threshold_row_shows_its_error_on_that_row(client, compliance_officer, policy, rows, message):
    client.force_login(compliance_officer)

    response = client.post(change_url(policy), posted(policy, thresholds=rows))

    assert response.status_code == 200
    assert message in row_html(response.content.decode(), f"thresholds-{len(rows) - 1}")
    policy.refresh_from_db()
    assert policy.label_thresholds == {}
    assert not DecisionEvent.objects.filter(event_type="policy.changed").exists()


def test_a_rule_change_without_a_change_reason_is_refused_with_a_form_error(client, compliance_officer, policy):
    client.force_login(compliance_officer)

    response = client.post(change_url(policy), posted(policy, rules=[rule_row(LARGE_LOANS)], reason="  "))

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    policy.refresh_from_db()
    assert policy.rules == []


def test_a_stored_rule_on_a_feature_the_schema_dropped_is_shown_to_fix_or_remove(
    client, compliance_officer, policy_with_a_rule
):
    policy = policy_with_a_rule
    policy.model.feature_schema = {"type": "object", "properties": {"duration": {"type": "integer"}}}
    policy.model.save(update_fields=["feature_schema"])
    client.force_login(compliance_officer)

    page = client.get(change_url(policy)).content.decode()
    assert "credit_amount (not a feature of credit-scoring)" in row_html(page, "rules-0")

    kept = client.post(change_url(policy), posted(policy, sla_hours="8"))
    assert "Not a feature of credit-scoring: credit_amount. Its features: duration." in row_html(
        kept.content.decode(), "rules-0"
    )
    removed = client.post(
        change_url(policy), posted(policy, rules=[{**rule_row(LARGE_LOANS), "DELETE": "on"}], sla_hours="8")
    )
    assert removed.status_code == 302
    policy.refresh_from_db()
    assert (policy.rules, policy.sla_hours) == ([], 8)


def test_a_post_without_the_rows_is_a_form_error_not_a_crash(client, compliance_officer, policy):
    client.force_login(compliance_officer)
    data = {key: value for key, value in posted(policy).items() if not key.startswith(("rules-", "thresholds-"))}

    response = client.post(change_url(policy), data)

    assert response.status_code == 200
    assert "Correct the rules or label thresholds marked below" in response.content.decode()


def test_someone_who_may_only_read_policies_sees_the_rules_without_inputs(
    client, compliance_officer, policy_with_a_rule
):
    from django.contrib.auth.models import Permission

    compliance_officer.groups.clear()
    compliance_officer.is_staff = True
    compliance_officer.save()
    compliance_officer.user_permissions.add(Permission.objects.get(codename="view_routingpolicy"))
    client.force_login(compliance_officer)

    page = client.get(change_url(policy_with_a_rule)).content.decode()

    assert "<td>credit_amount</td><td>&gt;</td><td>10000</td>" in page
    assert 'name="rules-0-value"' not in page


def test_a_model_without_a_feature_schema_takes_a_typed_feature_name(client, compliance_officer, db):
    model = MLModelFactory(name="free-form", feature_schema={})
    policy = routing_policy_get_or_create_default(model=model)
    client.force_login(compliance_officer)
    row = {"field": "income", "operator": "<", "value": "1200", "action": "escalate", "reason": "Low income"}

    assert 'type="text" name="rules-0-field"' in client.get(change_url(policy)).content.decode()
    assert client.post(change_url(policy), posted(policy, rules=[row])).status_code == 302

    policy.refresh_from_db()
    assert policy.rules == [{**row, "value": 1200}]
