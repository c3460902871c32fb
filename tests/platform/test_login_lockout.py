"""Login brute force: a username or an address is locked after a few wrong passwords, everywhere one logs in,
and a forged X-Forwarded-For neither escapes the lockout nor the token endpoint's throttle."""

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from hitl_platform.api.auth import TokenThrottle
from tests.factories import TEST_PASSWORD

LOGIN_URLS = ["/accounts/login/", "/admin/login/"]
TOKEN_URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def clean_slate(settings):
    settings.AXES_FAILURE_LIMIT = 5
    cache.clear()
    yield
    cache.clear()


def log_in(client: Client, url: str, username: str, password: str, **headers):
    return client.post(url, {"username": username, "password": password, "next": "/"}, **headers)


@pytest.mark.parametrize("url", LOGIN_URLS)
def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(client, url, compliance_officer):
    for _ in range(5):
        log_in(client, url, compliance_officer.username, "wrong-password")

    response = log_in(client, url, compliance_officer.username, TEST_PASSWORD)

    assert response.status_code == 429
    assert "logging in is locked for 15 minutes" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_one_address_trying_many_usernames_is_locked_too(client, ml_engineer):
    for number in range(5):
        log_in(client, "/accounts/login/", f"guess-{number}", "wrong-password")

    assert log_in(client, "/accounts/login/", ml_engineer.username, TEST_PASSWORD).status_code == 429


def test_a_forged_forwarded_for_header_does_not_escape_the_address_lockout(client, ml_engineer):
    for number in range(5):
        log_in(client, "/accounts/login/", f"guess-{number}", "x", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")

    response = log_in(client, "/accounts/login/", ml_engineer.username, TEST_PASSWORD, HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert response.status_code == 429


def test_the_token_endpoint_locks_out_with_a_json_message(ml_engineer):
    api = APIClient()
    for _ in range(5):
        api.post(TOKEN_URL, {"username": ml_engineer.username, "password": "wrong"}, format="json")

    response = api.post(TOKEN_URL, {"username": ml_engineer.username, "password": TEST_PASSWORD}, format="json")

    assert response.status_code == 429
    assert "locked" in response.json()["detail"]
    assert response["Retry-After"] == "900"


def test_an_administrator_unlocks_an_account_in_the_console(client, admin_user, reviewer_a):
    for _ in range(5):
        log_in(client, "/accounts/login/", reviewer_a.username, "wrong-password")
    assert log_in(client, "/accounts/login/", reviewer_a.username, TEST_PASSWORD).status_code == 429

    console = Client()
    console.force_login(admin_user)
    attempts = list(AccessAttempt.objects.values_list("pk", flat=True))
    console.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": attempts, "post": "yes"}
    )

    assert not AccessAttempt.objects.exists()
    assert log_in(Client(), "/accounts/login/", reviewer_a.username, TEST_PASSWORD).status_code == 302


def test_a_successful_login_clears_the_failures_before_it(client, reviewer_a):
    for _ in range(4):
        log_in(client, "/accounts/login/", reviewer_a.username, "wrong-password")
    assert log_in(client, "/accounts/login/", reviewer_a.username, TEST_PASSWORD).status_code == 302

    assert not AccessAttempt.objects.filter(username=reviewer_a.username).exists()


def test_the_token_throttle_ignores_a_client_chosen_forwarded_for(monkeypatch, ml_engineer):
    monkeypatch.setattr(TokenThrottle, "THROTTLE_RATES", {"token": "3/minute"})
    api = APIClient()
    statuses = [
        api.post(
            TOKEN_URL,
            {"username": ml_engineer.username, "password": TEST_PASSWORD},
            format="json",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{number}",
        ).status_code
        for number in range(5)
    ]

    assert statuses == [201, 201, 201, 429, 429]


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_saw(settings, rf):
    from hitl_platform.client_address import client_ip

    forged_then_real = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(rf.get("/", **forged_then_real)) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_ip(rf.get("/", **forged_then_real)) == "203.0.113.7"
    assert client_ip(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
