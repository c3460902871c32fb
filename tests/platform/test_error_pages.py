"""Error answers: a friendly page with a way back for people, JSON for API clients, with DEBUG off and on."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import path

from hitl_platform import urls as project_urls
from hitl_platform.errors import server_error


def _boom(request):
    raise RuntimeError("something broke")


def _forbidden(request):
    raise PermissionDenied


# The project's routes plus two that fail, one for people and one under /api/.
urlpatterns = [
    path("api/v1/boom/", _boom),
    path("boom/", _boom),
    path("api/v1/forbidden/", _forbidden),
    path("forbidden/", _forbidden),
    *project_urls.urlpatterns,
]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = __name__
    return request.param


@pytest.fixture
def quiet_client(client):
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("url", ["/api/v1/nothing-here/", "/api/unknown", "/api/v1/models/nothing/x/y/"])
def test_an_unknown_api_path_answers_json(quiet_client, db, debug, url):
    response = quiet_client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_api_crash_answers_json_and_no_traceback(quiet_client, db, debug):
    response = quiet_client.get("/api/v1/boom/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "Server error" in response.json()["detail"]
    assert "something broke" not in response.content.decode()


def test_an_api_refusal_outside_the_api_framework_answers_json(quiet_client, db, debug):
    response = quiet_client.get("/api/v1/forbidden/")

    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


def test_a_person_gets_a_page_with_a_way_back_for_an_unknown_page(quiet_client, compliance_officer, settings):
    settings.ROOT_URLCONF = __name__
    quiet_client.force_login(compliance_officer)
    response = quiet_client.get("/admin/no-such-page/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "This page does not exist" in html
    assert '<a href="/admin/">Back to the governance dashboard</a>' in html
    assert '<a href="/">Go to the start page</a>' in html


def test_a_person_gets_a_page_that_says_why_for_a_refusal(quiet_client, db, settings):
    settings.ROOT_URLCONF = __name__
    response = quiet_client.get("/forbidden/")

    html = response.content.decode()
    assert response.status_code == 403
    assert "You may not open this page" in html
    assert 'href="/accounts/login/"' in html


def test_a_person_gets_a_calm_page_for_a_crash(quiet_client, db, settings):
    settings.ROOT_URLCONF = __name__
    response = quiet_client.get("/boom/")

    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in html
    assert '<a href="/">Go to the start page</a>' in html
    assert "something broke" not in html


def test_the_crash_page_reads_nothing_from_the_database(rf, db):
    with CaptureQueriesContext(connection) as queries:
        response = server_error(rf.get("/admin/reviews/prediction/"))

    assert response.status_code == 500
    assert len(queries) == 0


def test_the_api_still_answers_its_own_json_errors(quiet_client, db, debug):
    response = quiet_client.get("/api/v1/models/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
