"""API tokens: made and revoked by their holders on the tokens page, sent as Bearer or Token, each use noted."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from hitl_platform.models import ApiTokenDetails
from hitl_platform.tokens import api_token_create, api_token_record_use
from tests.factories import TEST_PASSWORD

TOKENS = reverse("engineers:tokens")
PROTECTED_URL = "/api/v1/models/"


def revoke_url(token: AuthToken) -> str:
    return reverse("engineers:token-revoke", args=[token.digest])


def api_with(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


@pytest.fixture
def engineer_page(client, ml_engineer) -> Client:
    client.force_login(ml_engineer)
    return client


def create(client: Client, name: str = "nightly-scoring", lifetime: int = 7 * 24):
    return client.post(TOKENS, {"name": name, "lifetime": lifetime})


def test_a_new_token_is_shown_once_and_opens_the_api_as_bearer(engineer_page, ml_engineer):
    response = create(engineer_page)

    assert response.status_code == 200
    key = response.context["new_token"].key
    assert key in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert api_with(f"Bearer {key}").get(PROTECTED_URL).status_code == 200
    assert key not in engineer_page.get(TOKENS).content.decode()
    stored = AuthToken.objects.get(user=ml_engineer)
    assert key not in {stored.digest, stored.token_key}


def test_the_list_shows_each_token_with_its_name_created_expiry_and_last_use(engineer_page, ml_engineer):
    create(engineer_page, name="nightly-scoring", lifetime=24)
    create(engineer_page, name="backfill", lifetime=30 * 24)

    rows = engineer_page.get(TOKENS).context["tokens"]

    assert [row.name for row in rows] == ["backfill", "nightly-scoring"]
    for row, lifetime in zip(rows, (timedelta(days=30), timedelta(days=1)), strict=True):
        assert row.expiry - row.created == pytest.approx(lifetime, abs=timedelta(seconds=5))
        assert row.last_used_at is None
    html = engineer_page.get(TOKENS).content.decode()
    assert "nightly-scoring" in html and "not yet" in html


def test_using_a_token_shows_when_it_was_last_used(engineer_page):
    key = create(engineer_page).context["new_token"].key
    api_with(f"Token {key}").get(PROTECTED_URL)

    [row] = engineer_page.get(TOKENS).context["tokens"]

    assert timezone.now() - row.last_used_at < timedelta(seconds=10)


def test_the_last_use_is_written_at_most_once_a_minute(ml_engineer, django_assert_num_queries):
    details = api_token_create(user=ml_engineer, name="ci", lifetime=timedelta(days=1), reason="test").details
    token = AuthToken.objects.select_related("details").get(pk=details.token_id)
    now = timezone.now()

    with django_assert_num_queries(1):
        api_token_record_use(token=token, now=now)
    with django_assert_num_queries(0):
        api_token_record_use(token=token, now=now + timedelta(seconds=59))
    details.refresh_from_db()
    assert details.last_used_at == now

    api_token_record_use(token=token, now=now + timedelta(seconds=61))
    details.refresh_from_db()
    assert details.last_used_at == now + timedelta(seconds=61)


def test_the_offered_lifetimes_never_exceed_the_configured_maximum(engineer_page, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=48)}

    choices = engineer_page.get(TOKENS).context["form"].fields["lifetime"].choices

    assert choices == [(24, "1 day"), (48, "2 days (the longest allowed)")]
    response = create(engineer_page, lifetime=7 * 24)
    assert response.context["form"].errors == {"lifetime": ["Choose one of the offered lifetimes."]}
    assert not AuthToken.objects.exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "lifetime": 24}, "name", "Name the token"),
        ({"name": "   ", "lifetime": 24}, "name", "Name the token"),
        ({"name": "x" * 101, "lifetime": 24}, "name", "at most 100 characters"),
        ({"name": "ci", "lifetime": "forever"}, "lifetime", "Choose one of the offered lifetimes."),
        ({"name": "ci", "lifetime": -24}, "lifetime", "Choose one of the offered lifetimes."),
        ({"name": "ci"}, "lifetime", "Choose a lifetime."),
    ],
)
def test_bad_input_is_a_field_error_not_a_token(engineer_page, data, field, message):
    response = engineer_page.post(TOKENS, data)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert f'id="{field}-errors"' in response.content.decode()
    assert not AuthToken.objects.exists()


def test_creation_is_recorded_with_who_and_when(engineer_page, ml_engineer):
    create(engineer_page, name="nightly-scoring")

    [entry] = ApiTokenDetails.history.all()
    assert (entry.history_type, entry.history_user, entry.name) == ("+", ml_engineer, "nightly-scoring")
    assert entry.history_change_reason == "Created on the API tokens page"
    assert timezone.now() - entry.history_date < timedelta(seconds=10)


def test_revoking_asks_for_confirmation_then_the_token_stops_working(engineer_page, ml_engineer):
    key = create(engineer_page, name="nightly-scoring").context["new_token"].key
    token = AuthToken.objects.get(user=ml_engineer)

    confirm = engineer_page.get(revoke_url(token))
    assert confirm.status_code == 200
    assert "Revoke “nightly-scoring”?" in confirm.content.decode()
    assert AuthToken.objects.filter(pk=token.pk).exists()

    response = engineer_page.post(revoke_url(token), follow=True)

    assert response.redirect_chain == [(TOKENS, 302)]
    assert "is revoked" in response.content.decode()
    assert response.context["tokens"] == []
    assert api_with(f"Bearer {key}").get(PROTECTED_URL).status_code == 401
    details = ApiTokenDetails.objects.get(name="nightly-scoring")
    assert (details.token, details.revoked_by) == (None, ml_engineer)
    latest = details.history.first()
    assert (latest.history_type, latest.history_user) == ("~", ml_engineer)
    assert latest.history_change_reason == "Revoked on the API tokens page"


def test_revoking_needs_the_csrf_token(ml_engineer):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ml_engineer)
    token, _ = AuthToken.objects.create(user=ml_engineer)

    assert browser.post(revoke_url(token)).status_code == 403
    assert AuthToken.objects.filter(pk=token.pk).exists()


def test_a_token_made_elsewhere_is_listed_and_its_revocation_recorded(engineer_page, ml_engineer):
    token, _ = AuthToken.objects.create(user=ml_engineer)
    [row] = engineer_page.get(TOKENS).context["tokens"]
    assert row.name == ""

    engineer_page.post(revoke_url(token))

    assert not AuthToken.objects.exists()
    assert ApiTokenDetails.objects.get().revoked_by == ml_engineer


def test_somebody_elses_token_is_not_found_and_stays(engineer_page, other_ml_engineer):
    theirs, key = AuthToken.objects.create(user=other_ml_engineer)

    assert engineer_page.get(revoke_url(theirs)).status_code == 404
    assert engineer_page.post(revoke_url(theirs)).status_code == 404
    assert engineer_page.get(TOKENS).context["tokens"] == []
    assert api_with(f"Token {key}").get(PROTECTED_URL).status_code == 200


def test_an_expired_token_is_not_listed_nor_revocable(engineer_page, ml_engineer):
    token, _ = AuthToken.objects.create(user=ml_engineer, expiry=timedelta(seconds=-1))
    assert engineer_page.get(TOKENS).context["tokens"] == []
    assert engineer_page.get(revoke_url(token)).status_code == 404


@pytest.mark.parametrize("persona", ["reviewer_a", "compliance_officer", "outsider"])
def test_the_tokens_page_is_for_ml_engineers(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(TOKENS).status_code == 403
    assert client.post(TOKENS, {"name": "x", "lifetime": 24}).status_code == 403
    assert not AuthToken.objects.exists()


# --- the Authorization header --------------------------------------------------------------------------------


@pytest.fixture
def key(ml_engineer) -> str:
    return api_token_create(user=ml_engineer, name="ci", lifetime=timedelta(days=1), reason="test").key


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer", "token"])
def test_the_token_opens_the_api_after_either_scheme(key, scheme):
    assert api_with(f"{scheme} {key}").get(PROTECTED_URL).status_code == 200


@pytest.mark.parametrize("header", ["Basic bWlhOnNlY3JldA==", "Digest username=mia", "Bearers abc", "JWT abc"])
def test_another_scheme_is_a_401_that_names_the_accepted_ones(key, header):
    response = api_with(header).get(PROTECTED_URL)

    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["detail"]
    assert "Token <token>" in response.json()["detail"]


def test_another_scheme_beside_a_session_leaves_the_session_to_authenticate(client, ml_engineer):
    # A proxy may add Basic credentials of its own to requests of a logged-in person (the browsable API docs).
    client.force_login(ml_engineer)
    response = client.get(PROTECTED_URL, HTTP_AUTHORIZATION="Basic bWlhOnNlY3JldA==")
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer not-a-real-token", "Bearer \xff\xfe"])
def test_a_malformed_bearer_token_is_a_401(db, header):
    response = api_with(header).get(PROTECTED_URL)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_a_revoked_bearer_token_is_refused(key):
    client = api_with(f"Bearer {key}")
    assert client.post("/api/v1/auth/token/revoke/").status_code == 204
    assert client.get(PROTECTED_URL).status_code == 401
    details = ApiTokenDetails.objects.get(name="ci")
    assert details.revoked_at is not None
    assert details.history.first().history_change_reason == "Revoked by its holder at the API"


def test_a_token_from_the_token_endpoint_is_listed_by_its_origin(engineer_page, ml_engineer):
    cache.clear()
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": ml_engineer.username, "password": TEST_PASSWORD}, format="json"
    )
    cache.clear()
    assert response.status_code == 201

    [row] = engineer_page.get(TOKENS).context["tokens"]
    assert row.name.startswith("API login ")
    assert ApiTokenDetails.history.get().history_user == ml_engineer
