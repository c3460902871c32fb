from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AuthToken
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import TEST_PASSWORD

TOKEN_URL = "/api/v1/auth/token/"
REVOKE_URL = "/api/v1/auth/token/revoke/"
PROTECTED_URL = "/api/v1/models/"


@pytest.fixture(autouse=True)
def fresh_throttle():
    # Token requests are rate limited through the cache, which outlives a single test.
    cache.clear()
    yield
    cache.clear()


def obtain_token(user, password: str = TEST_PASSWORD):
    return APIClient().post(TOKEN_URL, {"username": user.username, "password": password}, format="json")


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_username_and_password_buy_a_token_that_opens_the_api(ml_engineer):
    response = obtain_token(ml_engineer)

    assert response.status_code == 201
    token = response.json()["token"]
    assert response.json()["expiry"]
    assert client_with(token).get(PROTECTED_URL).status_code == 200


def test_a_wrong_password_buys_nothing(ml_engineer):
    response = obtain_token(ml_engineer, password="not-the-password")
    assert response.status_code == 400
    assert "Unable to log in" in response.json()["non_field_errors"][0]
    assert not AuthToken.objects.exists()


def test_an_inactive_account_buys_nothing(ml_engineer):
    ml_engineer.is_active = False
    ml_engineer.save(update_fields=["is_active"])
    assert obtain_token(ml_engineer).status_code == 400
    assert not AuthToken.objects.exists()


def test_the_token_is_stored_only_as_a_digest(ml_engineer):
    token = obtain_token(ml_engineer).json()["token"]

    stored = AuthToken.objects.get(user=ml_engineer)

    assert stored.digest == hash_token(token)
    assert token not in {stored.digest, stored.token_key}
    # The lookup prefix is a short slice of the token, useless to authenticate with on its own.
    assert token.startswith(stored.token_key)
    assert len(stored.token_key) < len(token) // 3
    assert client_with(stored.token_key).get(PROTECTED_URL).status_code == 401
    assert client_with(stored.digest).get(PROTECTED_URL).status_code == 401


def test_the_token_expires_after_the_configured_lifetime(ml_engineer, settings):
    before = timezone.now()
    obtain_token(ml_engineer)
    expiry = AuthToken.objects.get(user=ml_engineer).expiry
    assert expiry - before == pytest.approx(settings.REST_KNOX["TOKEN_TTL"], abs=timedelta(minutes=1))


def test_an_expired_token_is_refused_and_removed(ml_engineer):
    token = obtain_token(ml_engineer).json()["token"]
    AuthToken.objects.filter(user=ml_engineer).update(expiry=timezone.now() - timedelta(seconds=1))

    response = client_with(token).get(PROTECTED_URL)

    assert response.status_code == 401
    assert not AuthToken.objects.filter(user=ml_engineer).exists()


def test_the_holder_revokes_their_token(ml_engineer):
    token = obtain_token(ml_engineer).json()["token"]
    other_token = obtain_token(ml_engineer).json()["token"]
    client = client_with(token)

    assert client.post(REVOKE_URL).status_code == 204

    assert client.get(PROTECTED_URL).status_code == 401
    assert client_with(other_token).get(PROTECTED_URL).status_code == 200


def test_an_administrator_revokes_a_token_in_the_console(client, admin_user, ml_engineer):
    token = obtain_token(ml_engineer).json()["token"]
    stored = AuthToken.objects.get(user=ml_engineer)
    client.force_login(admin_user)

    response = client.post(reverse("admin:knox_authtoken_delete", args=[stored.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert client_with(token).get(PROTECTED_URL).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Token not-a-real-token", "Token \xff\xfe\xfd", "Bearer abc", "Token " + "a" * 10_000],
)
def test_a_missing_or_malformed_token_is_a_401_never_a_500(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(PROTECTED_URL)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_token_requests_are_rate_limited(ml_engineer, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"token": "3/minute"})
    statuses = [obtain_token(ml_engineer, password="guess").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "mia_ml"},
        {"username": "mia_ml", "password": TEST_PASSWORD, "remember_me": True},
        {"username": ["mia_ml"], "password": TEST_PASSWORD},
        {"username": "mia_ml", "password": "x" * 5000},
    ],
)
def test_a_malformed_token_request_is_a_400(ml_engineer, body):
    response = APIClient().post(TOKEN_URL, body, format="json")
    assert response.status_code == 400
    assert not AuthToken.objects.exists()
