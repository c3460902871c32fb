"""The training-data export as an ML engineer's script downloads it: the human-verified cases of their own model,
as CSV or JSON Lines, sensitive attributes only when asked for by someone allowed, and then sealed in the ledger."""

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission

from audits.events import LedgerEvent
from audits.models import DecisionEvent
from models_registry.choices import Stage
from reviews.choices import DecisionSource
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import DecisionFactory, PredictionFactory

CSV_HEADER = [
    "case_id",
    "prediction_id",
    "feature.credit_amount",
    "feature.duration",
    "feature.age",
    "other_features",
    "label",
    "label_from",
    "final_label",
    "source",
    "outcome",
    "version",
    "decided_at",
]


def received(month: int) -> datetime:
    return datetime(2025, month, 15, 9, 30, tzinfo=UTC)


def decided_case(version, external_id: str, *, source: str, final_label: str, **prediction):
    prediction.setdefault("created_at", received(3))
    case = PredictionFactory(version=version, external_id=external_id, **prediction)
    DecisionFactory(prediction=case, source=source, final_label=final_label, decided_at=received(4))
    return case


@pytest.fixture
def version(ml_engineer):
    return ModelVersionFactory(
        stage=Stage.PRODUCTION, number=3, model__name="credit-scoring", model__owner=ml_engineer, created_by=ml_engineer
    )


@pytest.fixture
def cases(version):
    """Two human-decided cases (one with an outcome that contradicts its decision) among cases that are not
    training data: an automatic decision, a gold copy, a purged case, an undecided one, another model's."""
    consensus = decided_case(
        version,
        "=HYPERLINK(loan-1)",
        source=DecisionSource.CONSENSUS,
        final_label="deny",
        features={"credit_amount": 9800.0, "duration": 48, "age": 29},
        sensitive_attributes={"sex": "female", "age_band": "18-34"},
        created_at=received(2),
    )
    adjudicated = decided_case(
        version,
        "loan-2",
        source=DecisionSource.ADJUDICATION,
        final_label="deny",
        outcome_label="approve",
        sensitive_attributes={"sex": "male", "age_band": "35-50"},
        created_at=received(5),
    )
    decided_case(version, "auto-1", source=DecisionSource.AUTO, final_label="approve")
    decided_case(version, "gold-1", source=DecisionSource.CONSENSUS, final_label="approve", is_gold=True)
    decided_case(version, "purged-1", source=DecisionSource.CONSENSUS, final_label="approve", features={})
    PredictionFactory(version=version, external_id="in-review")
    decided_case(ModelVersionFactory(), "other-model", source=DecisionSource.CONSENSUS, final_label="approve")
    return consensus, adjudicated


@pytest.fixture
def api(api_client_for, ml_engineer):
    return api_client_for(ml_engineer)


URL = "/api/v1/models/credit-scoring/training-data/"


def download(client, **params) -> tuple[int, str, dict]:
    response = client.get(URL, params)
    if response.status_code != 200:
        return response.status_code, "", response.json()
    body = b"".join(response.streaming_content).decode()
    return 200, body, {name: response[name] for name in ("Content-Type", "Content-Disposition")}


def csv_rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def exported_events():
    return DecisionEvent.objects.filter(event_type=LedgerEvent.TRAINING_DATA_EXPORTED)


def test_the_csv_holds_only_human_decided_cases_and_an_outcome_beats_the_decision(api, cases):
    consensus, adjudicated = cases

    status, body, headers = download(api)

    assert status == 200
    assert headers == {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="credit-scoring-training-data.csv"',
    }
    header, *rows = csv_rows(body)
    assert header == CSV_HEADER
    assert rows == [
        [
            "'=HYPERLINK(loan-1)",
            str(consensus.pk),
            "9800.0",
            "48",
            "29",
            "",
            "deny",
            "decision",
            "deny",
            "consensus",
            "",
            "3",
            "2025-04-15T09:30:00+00:00",
        ],
        [
            "loan-2",
            str(adjudicated.pk),
            "4200.0",
            "24",
            "41",
            "",
            "approve",
            "outcome",
            "deny",
            "adjudication",
            "approve",
            "3",
            "2025-04-15T09:30:00+00:00",
        ],
    ]
    assert not exported_events().exists()


def test_json_lines_carry_the_features_as_an_object_and_no_sensitive_attributes(api, cases):
    consensus, adjudicated = cases

    status, body, headers = download(api, format="jsonl")

    assert (status, headers["Content-Type"]) == (200, "application/jsonl; charset=utf-8")
    assert headers["Content-Disposition"] == 'attachment; filename="credit-scoring-training-data.jsonl"'
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[1] == {
        "case_id": "loan-2",
        "prediction_id": adjudicated.pk,
        "features": {"credit_amount": 4200.0, "duration": 24, "age": 41},
        "label": "approve",
        "label_from": "outcome",
        "final_label": "deny",
        "source": "adjudication",
        "outcome": "approve",
        "version": 3,
        "decided_at": "2025-04-15T09:30:00+00:00",
    }
    assert [line["case_id"] for line in lines] == [consensus.external_id, "loan-2"]


def test_a_period_of_reception_and_a_source_narrow_the_export(api, cases):
    assert len(csv_rows(download(api, since="2025-03-01")[1])) == 2  # the header and loan-2
    assert csv_rows(download(api, since="2025-01-01", until="2025-03-01T00:00:00Z")[1])[1][1] == str(cases[0].pk)
    only_adjudicated = csv_rows(download(api, source="adjudication")[1])
    both = csv_rows(api.get(URL + "?source=consensus&source=adjudication").getvalue().decode())

    assert [row[0] for row in only_adjudicated[1:]] == ["loan-2"]
    assert len(both) == 3


def test_another_teams_model_is_a_404_and_reading_without_working_on_it_is_a_403(
    api_client_for, other_ml_engineer, compliance_officer, reviewer_a, cases
):
    stranger = download(api_client_for(other_ml_engineer))
    officer = download(api_client_for(compliance_officer))
    reviewer = download(api_client_for(reviewer_a))

    assert stranger == (404, "", {"detail": "No model named 'credit-scoring' that you can access."})
    assert officer[0] == 403
    assert officer[2]["detail"] == (
        "Only the owner of credit-scoring, its team and administrators may export its training data."
    )
    assert reviewer[0] == 403


def test_sensitive_attributes_are_refused_to_an_engineer_not_allowed_to_see_them(api, cases):
    status, _, error = download(api, include_sensitive="true")

    assert status == 403
    assert "You may not see sensitive attributes" in error["detail"]
    assert not exported_events().exists()


@pytest.fixture
def granted_owner(ml_engineer):
    ml_engineer.user_permissions.add(Permission.objects.get(codename="run_biasaudit", content_type__app_label="audits"))
    return ml_engineer


@pytest.mark.parametrize("who", ["admin_user", "granted_owner"])
def test_sensitive_attributes_are_included_for_an_allowed_user_and_the_export_is_in_the_ledger(
    who, request, api_client_for, cases
):
    user = request.getfixturevalue(who)
    client = api_client_for(user)

    status, body, _ = download(client, include_sensitive="true", since="2025-01-01", source="consensus")

    assert status == 200
    header, row = csv_rows(body)
    assert header == [*CSV_HEADER, "sensitive.sex", "sensitive.age_band"]
    assert row[0] == "'=HYPERLINK(loan-1)" and row[-2:] == ["female", "18-34"]
    (event,) = exported_events()
    assert (event.object_type, event.object_id, event.actor_id) == (
        "models_registry.mlmodel",
        str(cases[0].model_id),
        user.pk,
    )
    payload = json.loads(event.payload)
    assert payload["filters"] == {"since": "2025-01-01T00:00:00+00:00", "until": None, "sources": ["consensus"]}
    assert (payload["model"], payload["format"], payload["sensitive_attributes"]) == (
        "credit-scoring",
        "csv",
        ["sex", "age_band"],
    )
    assert payload["included_fields"] == header


def test_json_lines_carry_sensitive_attributes_as_an_object_when_included(admin_user, api_client_for, cases):
    body = download(api_client_for(admin_user), include_sensitive="true", format="jsonl")[1]

    assert [json.loads(line)["sensitive"] for line in body.splitlines()] == [
        {"sex": "female", "age_band": "18-34"},
        {"sex": "male", "age_band": "35-50"},
    ]
    assert json.loads(exported_events().get().payload)["included_fields"][-2:] == [
        "sensitive.sex",
        "sensitive.age_band",
    ]


def test_bad_query_parameters_are_a_400_naming_each_one(api, cases):
    status, _, errors = download(api, format="xml", source="auto", since="yesterday", include_sensitive="maybe")
    unknown = download(api, colour="red")
    reversed_period = download(api, since="2025-05-01", until="2025-04-01")
    repeated = api.get(URL + "?format=csv&format=jsonl")

    assert status == 400
    assert errors == {
        "format": ['"xml" is not a valid choice.'],
        "source": {"0": ['"auto" is not a human decision: choose consensus or adjudication.']},
        "since": ["Enter an ISO 8601 date (2025-03-01) or date and time (2025-03-01T09:30:00Z)."],
        "include_sensitive": ["Must be a valid boolean."],
    }
    assert unknown == (400, "", {"colour": ["Unknown field."]})
    assert reversed_period == (400, "", {"until": ["The period must end after it starts."]})
    assert (repeated.status_code, repeated.json()) == (400, {"format": ["Give this parameter once."]})
    assert not exported_events().exists()
