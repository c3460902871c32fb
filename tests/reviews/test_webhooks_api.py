"""The webhooks API: an owner's receivers, the secret shown once, validation, deletion that keeps the record."""

import pytest

from reviews.models import Webhook
from tests.models_registry.factories import MLModelFactory

URL = "/api/v1/webhooks/"


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


def test_an_owner_registers_a_webhook_and_sees_its_secret_only_once(api, ml_engineer):
    MLModelFactory(name="credit-scoring", owner=ml_engineer)

    created = api.post(
        URL,
        {"url": "https://bank.example.org/hooks", "events": ["decision.final"], "model": "credit-scoring"},
        format="json",
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    webhook = Webhook.objects.get()
    assert len(body["secret"]) == 64 and body["secret"] == webhook.secret
    assert body["model"] == "credit-scoring" and webhook.owner == ml_engineer
    assert webhook.history.get().history_user == ml_engineer
    listed = api.get(URL).json()["results"]
    shown = api.get(f"{URL}{webhook.pk}/").json()
    assert [row["id"] for row in listed] == [webhook.pk]
    assert "secret" not in listed[0] and "secret" not in shown


def test_each_webhook_gets_its_own_secret(api):
    first = api.post(URL, {"url": "https://a.example.org/h", "events": ["decision.final"]}, format="json").json()
    second = api.post(URL, {"url": "https://b.example.org/h", "events": ["decision.final"]}, format="json").json()

    assert first["secret"] != second["secret"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/h", "events": ["decision.final"]}, "url"),
        ({"url": "not a url", "events": ["decision.final"]}, "url"),
        ({"url": "https://example.org/h", "events": []}, "events"),
        ({"url": "https://example.org/h", "events": ["review.submitted"]}, "events"),
        ({"url": "https://example.org/h", "events": ["decision.final"], "model": "no-such-model"}, "model"),
    ],
)
def test_a_bad_webhook_is_a_400_and_nothing_is_stored(api, body, field):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert not Webhook.objects.exists()


def test_a_webhook_may_only_follow_models_of_its_owner_and_answers_another_teams_model_as_unknown(
    api, other_ml_engineer
):
    MLModelFactory(name="their-model", owner=other_ml_engineer)

    theirs = api.post(
        URL, {"url": "https://example.org/h", "events": ["decision.final"], "model": "their-model"}, format="json"
    )
    unknown = api.post(
        URL, {"url": "https://example.org/h", "events": ["decision.final"], "model": "no-such-model"}, format="json"
    )

    assert (theirs.status_code, unknown.status_code) == (400, 400)
    assert theirs.json()["model"] == [unknown.json()["model"][0].replace("no-such-model", "their-model")]
    assert not Webhook.objects.exists()


def test_an_owner_changes_a_webhook(api):
    webhook_id = api.post(URL, {"url": "https://a.example.org/h", "events": ["decision.final"]}, format="json").json()[
        "id"
    ]

    response = api.patch(f"{URL}{webhook_id}/", {"url": "https://b.example.org/h"}, format="json")

    assert response.status_code == 200
    webhook = Webhook.objects.get()
    assert webhook.url == "https://b.example.org/h"
    assert webhook.history.latest().history_change_reason == "Webhook changed by its owner."


def test_deleting_a_webhook_deactivates_it_and_keeps_the_record(api):
    webhook_id = api.post(URL, {"url": "https://a.example.org/h", "events": ["decision.final"]}, format="json").json()[
        "id"
    ]

    assert api.delete(f"{URL}{webhook_id}/").status_code == 204

    webhook = Webhook.objects.get()
    assert not webhook.is_active
    assert api.get(URL).json()["results"] == []
    assert api.get(f"{URL}{webhook_id}/").status_code == 404


def test_nobody_sees_or_changes_another_owners_webhook(api, api_client_for, other_ml_engineer):
    webhook_id = api.post(URL, {"url": "https://a.example.org/h", "events": ["decision.final"]}, format="json").json()[
        "id"
    ]
    intruder = api_client_for(other_ml_engineer)

    assert intruder.get(URL).json()["results"] == []
    assert intruder.patch(f"{URL}{webhook_id}/", {"url": "https://evil.example.org/"}, format="json").status_code == 404
    assert intruder.delete(f"{URL}{webhook_id}/").status_code == 404
    assert Webhook.objects.get().is_active


def test_roles_without_webhook_permissions_are_refused(api_client_for, reviewer_a, compliance_officer):
    body = {"url": "https://a.example.org/h", "events": ["decision.final"]}

    assert api_client_for(reviewer_a).get(URL).status_code == 403
    assert api_client_for(compliance_officer).post(URL, body, format="json").status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "https://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hooks",
    ],
)
def test_a_webhook_to_a_private_or_local_address_is_refused(api, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    response = api.post(URL, {"url": url, "events": ["decision.final"]}, format="json")

    assert response.status_code == 400
    assert "private or local address" in response.json()["url"][0]
    assert not Webhook.objects.exists()


def test_a_webhook_to_a_public_address_is_accepted_with_the_check_on(api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False

    response = api.post(URL, {"url": "https://93.184.215.14/hooks", "events": ["decision.final"]}, format="json")

    assert response.status_code == 201
