from django.urls import reverse


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_the_login_page_renders_a_form(client, db):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'name="password"' in response.content


def test_a_wrong_password_shows_a_form_error(client, ml_engineer):
    response = client.post(reverse("login"), {"username": ml_engineer.username, "password": "wrong-password"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_compliance_officers_land_on_the_console(client, compliance_officer):
    client.force_login(compliance_officer)
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_ml_engineers_land_on_a_page_that_points_to_the_api_docs(client, ml_engineer):
    client.force_login(ml_engineer)
    response = client.get("/")
    assert response.status_code == 200
    assert reverse("api-v1:docs").encode() in response.content


def test_the_api_docs_load_their_scripts_from_this_server_not_a_cdn(client, ml_engineer):
    client.force_login(ml_engineer)
    response = client.get(reverse("api-v1:docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html and "unpkg.com" not in html and "jsdelivr" not in html


def test_the_openapi_schema_is_served(client, ml_engineer):
    client.force_login(ml_engineer)
    response = client.get(reverse("api-v1:schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "openapi" in response.json()


def test_an_unknown_api_url_answers_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_an_unknown_page_answers_html_404(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
