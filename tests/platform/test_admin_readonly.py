"""The console is read-only on governed records: each forbidden action is tried, and refused."""

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse

from audits.ledger import ledger_append
from audits.models import DecisionEvent
from reviews.models import Decision, Prediction, Review
from tests.audits.conftest import reviewed_case  # noqa: F401 - the fixture, shared with the audits tests

GOVERNED = [
    ("reviews", "prediction"),
    ("reviews", "reviewtask"),
    ("reviews", "assignment"),
    ("reviews", "review"),
    ("reviews", "decision"),
    ("reviews", "webhook"),
    ("reviews", "webhookdelivery"),
    ("audits", "decisionevent"),
]


@pytest.fixture
def records(reviewed_case):  # noqa: F811
    prediction, task, decision = reviewed_case
    review = Review.objects.filter(task=task).first()
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
    return {"decision": decision, "review": review, "decisionevent": event, "prediction": prediction}


def _url(model: str, action: str, *args) -> str:
    app = "audits" if model == "decisionevent" else "reviews"
    return reverse(f"admin:{app}_{model}_{action}", args=args)


@pytest.mark.parametrize(("app_label", "model"), GOVERNED)
def test_compliance_officers_read_every_governed_list(client, compliance_officer, records, app_label, model):
    client.force_login(compliance_officer)
    response = client.get(reverse(f"admin:{app_label}_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", ["decision", "review", "decisionevent", "prediction"])
def test_compliance_officers_see_a_governed_record_read_only(client, compliance_officer, records, model):
    client.force_login(compliance_officer)
    response = client.get(_url(model, "change", records[model].pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert "deletelink" not in html


@pytest.mark.parametrize("model", ["decision", "review", "decisionevent"])
@pytest.mark.parametrize("person", ["compliance_officer", "admin_user"])
def test_nobody_adds_changes_or_deletes_decisions_reviews_or_ledger_rows(client, request, records, model, person):
    client.force_login(request.getfixturevalue(person))
    record = records[model]
    before = type(record).objects.filter(pk=record.pk).values().get()

    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "add"), {"final_label": "approve", "label": "approve"}).status_code == 403
    assert client.post(_url(model, "change", record.pk), {"final_label": "approve", "payload": "{}"}).status_code == 403
    assert client.get(_url(model, "delete", record.pk)).status_code == 403
    assert client.post(_url(model, "delete", record.pk), {"post": "yes"}).status_code == 403

    assert type(record).objects.filter(pk=record.pk).values().get() == before


@pytest.mark.parametrize("model", ["decision", "review", "decisionevent", "prediction"])
def test_delete_selected_is_not_offered_and_cannot_be_posted(client, admin_user, records, model):
    client.force_login(admin_user)
    record = records[model]
    changelist = _url(model, "changelist")

    assert "delete_selected" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"})

    assert type(record).objects.filter(pk=record.pk).exists()
    model_admin = site._registry[type(record)]
    assert "delete_selected" not in model_admin.get_actions(RequestFactory().get("/"))


def test_a_historical_version_cannot_be_posted_back(client, compliance_officer, records):
    decision = records["decision"]
    version = decision.history.get()
    url = reverse("admin:reviews_decision_simple_history", args=[decision.pk, version.history_id])
    client.force_login(compliance_officer)

    assert client.get(url).status_code == 200
    assert client.post(url, {}).status_code == 405
    assert decision.history.count() == 1


def test_the_history_view_lists_who_changed_a_decision_and_why(client, compliance_officer, records):
    decision = records["decision"]
    client.force_login(compliance_officer)

    html = client.get(_url("decision", "history", decision.pk)).content.decode()

    assert "ada_adjudicator" in html
    assert "Adjudicated: the instalment exceeds 40% of income" in html


def test_the_prediction_page_withholds_sensitive_attributes(client, compliance_officer, records):
    prediction: Prediction = records["prediction"]
    client.force_login(compliance_officer)

    html = client.get(_url("prediction", "change", prediction.pk)).content.decode()

    assert "9800.0" in html
    assert "female" not in html
    assert "recorded, values withheld: age_band, sex" in html
    assert reverse("admin:case", args=[prediction.pk]) in html


def test_ledger_rows_cannot_be_written_even_by_superusers_through_the_console(client, admin_user, db):
    event = ledger_append(event_type="decision.made", object_type="reviews.decision", object_id=1, payload={})
    client.force_login(admin_user)

    response = client.post(_url("decisionevent", "change", event.pk), {"payload": '{"label":"deny"}'})

    assert response.status_code == 403
    assert DecisionEvent.objects.get(pk=event.pk).payload == "{}"
    assert Decision.objects.count() == 0
