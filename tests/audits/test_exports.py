"""Exports: a model's decisions in a period, or one case's trail, as CSV and JSON with their ledger hashes."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.models import DecisionEvent, Export
from audits.services.exports import export_request
from hitl_platform.roles import Role
from reviews.choices import DecisionSource
from reviews.services.decisions import decision_record
from tests.factories import UserFactory
from tests.reviews.factories import PredictionFactory


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def model_decisions(db, adjudicator):
    """Three decisions of one model this week, one of it last year, and one of another model."""
    first = PredictionFactory(external_id="loan-1")
    model = first.model
    predictions = [first, *(PredictionFactory(version=first.version, external_id=f"loan-{n}") for n in (2, 3, 4))]
    decisions = [
        decision_record(
            prediction=p,
            final_label="deny" if n % 2 else "approve",
            source=DecisionSource.CONSENSUS,
            agreement=1.0,
            decided_by=adjudicator,
            reason="Consensus of two reviewers",
        )
        for n, p in enumerate(predictions)
    ]
    decisions[-1].decided_at = timezone.now() - timedelta(days=400)
    decisions[-1].save(update_fields=["decided_at"])
    decision_record(
        prediction=PredictionFactory(external_id="other-model"),
        final_label="approve",
        source=DecisionSource.AUTO,
        agreement=None,
        decided_by=None,
        reason="auto",
    )
    return model, decisions[:3]


def _download(client, export: Export) -> bytes:
    response = client.get(reverse("admin:export_download", args=[export.pk]))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_a_decisions_export_from_the_console_holds_every_decision_of_the_period_with_ledger_hashes(
    client, compliance_officer, model_decisions, django_capture_on_commit_callbacks
):
    model, decisions = model_decisions
    client.force_login(compliance_officer)
    today = timezone.localdate()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:export_new"),
            {"kind": "decisions", "format": "csv", "model": model.pk, "start": today - timedelta(days=7), "end": today},
        )

    export = Export.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:audits_export_change", args=[export.pk])
    assert (export.status, export.progress, export.row_count) == ("done", 100, 3)
    assert export.file.name.startswith("exports/")
    page = client.get(response.url).content.decode()
    assert reverse("admin:export_download", args=[export.pk]) in page
    rows = list(csv.DictReader(io.StringIO(_download(client, export).decode())))
    assert [int(row["decision_id"]) for row in rows] == [d.pk for d in decisions]
    assert {row["external_id"] for row in rows} == {"loan-1", "loan-2", "loan-3"}
    for row, decision in zip(rows, decisions, strict=True):
        event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
        assert row["ledger_events"] == f"{event.pk}:decision.made:{event.hash}"
        assert row["final_label"] == decision.final_label
        assert row["input_sha256"] == decision.prediction.input_sha256
        assert "credit_amount" not in ",".join(row.values())
    history = export.history.order_by("history_date")
    assert [h.status for h in history] == ["queued", "running", "done"]
    assert history[0].history_user == compliance_officer


def test_a_json_decisions_export_records_the_ledger_head_and_each_decisions_events(
    compliance_officer, model_decisions, django_capture_on_commit_callbacks
):
    model, decisions = model_decisions
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        export = export_request(
            actor=compliance_officer,
            kind="decisions",
            format="json",
            model=model,
            period_start=now - timedelta(days=1),
            period_end=now + timedelta(minutes=1),
        )

    export.refresh_from_db()
    document = json.loads(export.file.read())
    head = DecisionEvent.objects.order_by("-id").first()
    assert document["export"]["ledger_head_at_export"] == {"event_id": head.pk, "hash": head.hash}
    assert document["row_count"] == 3
    first = document["decisions"][0]
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decisions[0].pk))
    assert first["ledger_events"] == [
        {"event_id": event.pk, "event_type": "decision.made", "hash": event.hash, "previous_hash": event.previous_hash}
    ]
    assert first["decided_by"] == "ada_adjudicator"


def test_a_case_export_holds_the_trail_with_verified_ledger_events(
    compliance_officer, reviewed_case, django_capture_on_commit_callbacks
):
    prediction, _, decision = reviewed_case
    with django_capture_on_commit_callbacks(execute=True):
        json_export = export_request(actor=compliance_officer, kind="case", format="json", prediction=prediction)
        csv_export = export_request(actor=compliance_officer, kind="case", format="csv", prediction=prediction)

    json_export.refresh_from_db()
    document = json.loads(json_export.file.read())
    assert document["prediction"]["features"] == {"credit_amount": 9800.0, "duration": 48, "age": 29}
    assert document["prediction"]["sensitive_attribute_names"] == ["age_band", "sex"]
    assert "female" not in json.dumps(document)
    assert [r["rationale"] for r in document["reviews"]] == [
        "Stable income for six years.",
        "Loan is five times the monthly income.",
    ]
    assert document["decision"]["final_label"] == "deny"
    assert document["ledger_intact"] is True
    event = DecisionEvent.objects.get(object_id=str(decision.pk))
    assert document["ledger"][0]["hash"] == event.hash
    assert document["ledger"][0]["hash_verified"] and document["ledger"][0]["link_verified"]

    csv_export.refresh_from_db()
    rows = list(csv.DictReader(io.StringIO(csv_export.file.read().decode())))
    ledger_rows = [row for row in rows if row["section"] == "ledger"]
    assert [(r["ledger_hash"], r["ledger_verified"]) for r in ledger_rows] == [(event.hash, "yes")]
    assert {row["section"] for row in rows} >= {"prediction", "assignment", "review", "decision", "history", "webhook"}


def test_an_export_file_is_downloaded_only_by_its_requester(
    client,
    compliance_officer,
    other_compliance_officer,
    outsider,
    reviewed_case,
    django_capture_on_commit_callbacks,
):
    prediction, _, _ = reviewed_case
    with django_capture_on_commit_callbacks(execute=True):
        export = export_request(actor=compliance_officer, kind="case", format="json", prediction=prediction)
    url = reverse("admin:export_download", args=[export.pk])

    client.force_login(other_compliance_officer)
    assert client.get(url).status_code == 404
    client.force_login(outsider)
    assert client.get(url).status_code == 302  # not staff: the admin login
    client.force_login(compliance_officer)
    assert client.get(url).status_code == 200


def test_the_export_form_shows_errors_instead_of_failing(client, compliance_officer, db):
    client.force_login(compliance_officer)

    response = client.post(reverse("admin:export_new"), {"kind": "decisions", "format": "csv", "start": "2026-02-01"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose the model whose decisions to export." in html
    assert "Give the last day." in html
    assert not Export.objects.exists()


def test_the_api_exports_a_case_and_offers_its_file(
    api_client_for, compliance_officer, reviewed_case, django_capture_on_commit_callbacks
):
    prediction, _, _ = reviewed_case
    api = api_client_for(compliance_officer)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/exports/", {"kind": "case", "format": "json", "prediction": prediction.pk})

    assert response.status_code == 202
    export_id = response.json()["id"]
    detail = api.get(f"/api/v1/exports/{export_id}/").json()
    assert (detail["status"], detail["progress"]) == ("done", 100)
    assert detail["download_url"].endswith(f"/api/v1/exports/{export_id}/download/")
    download = api.get(f"/api/v1/exports/{export_id}/download/")
    assert download.status_code == 200
    assert json.loads(b"".join(download.streaming_content))["prediction"]["id"] == prediction.pk
    assert [e["id"] for e in api.get("/api/v1/exports/").json()["results"]] == [export_id]


def test_the_api_rejects_a_bad_export_request_with_field_errors(api_client_for, compliance_officer):
    api = api_client_for(compliance_officer)

    response = api.post(
        "/api/v1/exports/",
        {"kind": "decisions", "format": "xml", "period_start": "2026-03-01T00:00:00Z", "model": "no-such-model"},
    )

    assert response.status_code == 400
    assert set(response.json()) >= {"format", "model"}
    missing_period = api.post("/api/v1/exports/", {"kind": "case"})
    assert missing_period.status_code == 400
    assert "prediction" in missing_period.json()
    assert not Export.objects.exists()


def test_the_api_refuses_exports_to_people_without_the_permission(api_client_for, ml_engineer, reviewed_case):
    api = api_client_for(ml_engineer)
    prediction, _, _ = reviewed_case

    assert api.post("/api/v1/exports/", {"kind": "case", "prediction": prediction.pk}).status_code == 403
    assert api.get("/api/v1/exports/").status_code == 403


HOSTILE_CELLS = ['=HYPERLINK("https://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.mark.parametrize("format_", ["decisions", "case"])
def test_csv_exports_neutralise_cells_a_spreadsheet_would_run_as_formulas(
    compliance_officer, django_capture_on_commit_callbacks, format_
):
    """OWASP's rule: a cell starting with = + - @ tab or CR is prefixed with a quote, in every CSV we write."""
    predictions = [PredictionFactory(external_id=hostile, predicted_label="approve") for hostile in HOSTILE_CELLS]
    model = predictions[0].model
    for prediction in predictions[1:]:
        prediction.model, prediction.version = model, predictions[0].version
        prediction.save(update_fields=["model", "version"])
    # Usernames may start with @, + or -: the case export's actor column holds them alone in a cell.
    hostile_adjudicator = UserFactory(username="@SUM", roles=[Role.REVIEWER, Role.ADJUDICATOR])
    for prediction in predictions:
        decision_record(
            prediction=prediction,
            final_label="approve",
            source=DecisionSource.ADJUDICATION,
            agreement=None,
            decided_by=hostile_adjudicator,
            reason="=cmd|' /C calc'!A0",
        )
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        if format_ == "decisions":
            export = export_request(
                actor=compliance_officer,
                kind="decisions",
                format="csv",
                model=model,
                period_start=now - timedelta(hours=1),
                period_end=now + timedelta(hours=1),
            )
        else:
            export = export_request(actor=compliance_officer, kind="case", format="csv", prediction=predictions[0])
    export.refresh_from_db()

    cells = [cell for row in csv.reader(io.StringIO(export.file.read().decode())) for cell in row]

    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    if format_ == "decisions":
        assert {f"'{hostile}" for hostile in HOSTILE_CELLS} <= set(cells)
    else:
        assert "'@SUM" in cells
