"""The training-data export as an ML engineer's script downloads it: the human-verified cases of their own model,
as CSV or JSON Lines, sensitive attributes only when asked for by someone allowed, and then sealed in the ledger."""

import csv
import io
import json
import random
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from audits.events import LedgerEvent
from audits.models import DecisionEvent
from audits.selectors.training_data import FALLBACK_MARK
from audits.services import training_data
from audits.services.training_data import training_data_export
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


# Text that a CSV quotes, a spreadsheet would run, JSON escapes, COPY escapes, or that is not ASCII.
TRICKY_TEXTS = [
    "plain",
    "",
    "with, a comma",
    'with "quotes"',
    "a line\nbreak",
    "a carriage\rreturn",
    "crlf\r\n",
    "=SUM(A1:A2)",
    "+33 1 23 45 67 89",
    "-5 below",
    "@handle",
    "\ttabbed",
    "\rreturned",
    "'already quoted",
    "back\\slash, \\n is not a newline",
    "\\",
    '\\"',
    "ünïcödé ✓ 🎉",
    "\u2028 line separator",
    "del \x7f and unit separator \x1f",
    "a mark \x01 inside",
    " padded ",
]
# Doubles Python writes in fixed and in exponent notation, whole and not; the last ones jsonb keeps as integers.
TRICKY_FLOATS = [
    1200.0,
    0.1,
    0.30000000000000004,
    -2.5,
    0.0,
    -0.0,
    1e-4,
    9.999e-05,
    1e-05,
    1.5e-07,
    123456789.125,
    99999999999999.99,
    1e16,
    1e22,
    1.7976931348623157e308,
]
MISSING = object()
WIDE_FEATURES = [f"f{index:02d}" for index in range(24)]
WIDE_SCHEMA = {
    "type": "object",
    "properties": {name: {} for name in [*WIDE_FEATURES, "note"]},
    "x-feature-order": [*WIDE_FEATURES, "note"],
}
ATTRIBUTES = ["sex", "age band", "note"]
# Cases whose row SQL leaves to Python, by external id: the fields that make it so, and in which exports (a text
# cell beginning with the mark is CSV's only; attributes are read only when included). Numbers given as text are
# written into jsonb as they are: jsonb keeps their digits.
ALWAYS, IN_CSV, WITH_ATTRIBUTES = "always", "in CSV", "with attributes"
LEFT_TO_PYTHON = {
    "nested": ({"features": {"f00": {"b": [1.5, {"a": None}], "a": "x"}, "f01": 2.0}}, ALWAYS),
    "unnamed": ({"features": {"f00": 1.0, "old feature": "kept", "older": {"k": 0.5}}}, ALWAYS),
    "past 10^15": ({"features": {"f00": 1e15}}, ALWAYS),
    "fifteen nines": ({"features": {"f00": 999999999999999.9}}, ALWAYS),
    "underflowing": ({"raw": {"f00": "0." + "0" * 320 + "1"}}, ALWAYS),
    "17 digits": ({"raw": {"f00": "12345678901234567.5"}}, ALWAYS),
    "rounds to 10^15": ({"raw": {"f00": "999999999999999.99"}}, ALWAYS),
    "\x01marked": ({}, IN_CSV),
    "listed": ({"sensitive_attributes": {"sex": ["f", 1e-05], "note": "n"}}, WITH_ATTRIBUTES),
}
# Written by SQL all the same.
RAW_NUMBERS = dict(zip(WIDE_FEATURES[-5:], ["1.50", "0.00001", "1e-7", "1e400", "-0.0"], strict=True))


def tricky_values(rng: random.Random) -> list:
    """Seeded: the floats above, random doubles from 10^-12 to 10^14 (some rounded), ints, booleans, nulls,
    missing keys and texts."""
    drawn = []
    for _ in range(200):
        value = 10 ** rng.uniform(-12, 14) * rng.choice((1, -1))
        drawn.append(round(value, rng.randint(0, 6)) if rng.random() < 0.3 else value)
    plain = [True, False, None, MISSING, 0, -7, 2**63, 10**30, *TRICKY_TEXTS]
    values = [*TRICKY_FLOATS, *drawn, *plain, *plain]
    rng.shuffle(values)
    return values


@pytest.fixture
def tricky_model(ml_engineer):
    """A model with a wide schema whose cases' features, attributes, labels and ids hold every kind of value,
    with the cases of LEFT_TO_PYTHON among them."""
    rng = random.Random(20250301)
    version = ModelVersionFactory(
        stage=Stage.PRODUCTION,
        model__name="tricky-model",
        model__owner=ml_engineer,
        model__feature_schema=WIDE_SCHEMA,
        model__sensitive_attributes=ATTRIBUTES,
    )
    values = iter(tricky_values(rng) * 2)
    texts = iter(TRICKY_TEXTS * 4)
    present = {}
    for index in range(12):
        features = {name: next(values) for name in [*WIDE_FEATURES, "note"]}
        attributes = {name: next(values) for name in ATTRIBUTES}
        present[f"{TRICKY_TEXTS[index]}#{index}"] = {
            "source": DecisionSource.CONSENSUS if index % 3 else DecisionSource.ADJUDICATION,
            "final_label": next(texts),
            "outcome_label": next(texts) if index % 2 else "",
            "features": {name: value for name, value in features.items() if value is not MISSING},
            "sensitive_attributes": {name: value for name, value in attributes.items() if value is not MISSING},
            "raw": RAW_NUMBERS,
        }
    present["null attributes"] = {"raw_attributes": "null"}
    present.update((external_id, dict(fields)) for external_id, (fields, _) in LEFT_TO_PYTHON.items())
    cases = {}
    for external_id, fields in present.items():
        raw = fields.pop("raw", {})
        raw_attributes = fields.pop("raw_attributes", None)
        fields.setdefault("source", DecisionSource.CONSENSUS)
        fields.setdefault("final_label", "deny")
        fields.setdefault("features", {"f00": 1.0, "note": "n"})
        cases[external_id] = case = decided_case(version, external_id, **fields)
        with connection.cursor() as cursor:
            for name, number in raw.items():
                cursor.execute(
                    "UPDATE reviews_prediction SET features = jsonb_set(features, %s, %s::jsonb) WHERE id = %s",
                    [[name], number, case.pk],
                )
            if raw_attributes:
                cursor.execute(
                    "UPDATE reviews_prediction SET sensitive_attributes = %s::jsonb WHERE id = %s",
                    [raw_attributes, case.pk],
                )
    # Microseconds, and a year before 1000.
    for case, decided_at in zip(
        cases.values(),
        [datetime(2025, 4, 15, 9, 30, 0, 123456, tzinfo=UTC), datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=UTC)],
        strict=False,
    ):
        case.decision.decided_at = decided_at
        case.decision.save(update_fields=["decided_at"])
    return version.model


def left_to_python(database_rows: list[str]) -> set[str]:
    """The external ids of the rows the database wrote (CSV rows, JSON lines) that carry their case for Python."""
    carried = []
    for row in database_rows:
        if row.startswith(FALLBACK_MARK):
            carried.append(row[len(FALLBACK_MARK) :])
        elif FALLBACK_MARK in row:
            carried += [cell[1:] for cell in next(csv.reader([row])) if cell.startswith(FALLBACK_MARK)]
    return {json.loads(case)["external_id"] for case in carried}


def recording(reader, database_rows: list[str]):
    """``reader`` (of the rows the database writes), keeping a copy of every row."""

    def read(*args, **kwargs):
        for rows in reader(*args, **kwargs):
            database_rows.extend(row if isinstance(row, str) else bytes(row).decode() for row in rows)
            yield rows

    return read


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("format", "include_sensitive", "period"),
    [
        ("csv", False, {}),
        ("csv", True, {}),
        ("jsonl", False, {}),
        ("jsonl", True, {}),
        ("csv", False, {"since": received(1), "until": received(4), "sources": ["adjudication"]}),
        ("jsonl", True, {"since": received(1), "until": received(4), "sources": ["adjudication"]}),
    ],
)
def test_postgresql_writes_the_very_bytes_of_the_python_writer(
    format, include_sensitive, period, admin_user, tricky_model, monkeypatch
):
    export = {"actor": admin_user, "model": tricky_model, "format": format, "include_sensitive": include_sensitive}
    with connection.cursor() as cursor:
        # A server that writes doubles with 15 significant digits, not the shortest text that reads back as them.
        cursor.execute("SET LOCAL extra_float_digits = 0")
    database_rows = []
    for reader in ("training_data_copied", "training_data_lines"):
        monkeypatch.setattr(training_data, reader, recording(getattr(training_data, reader), database_rows))
    by_database = b"".join(training_data_export(**export, **period).chunks)
    monkeypatch.setattr(training_data, "database_writes_rows", lambda: False)
    by_python = b"".join(training_data_export(**export, **period).chunks)

    assert by_database == by_python
    if period:
        assert len(database_rows) == 4  # the adjudicated ones of the first twelve
    else:
        assert len(database_rows) == 12 + 1 + len(LEFT_TO_PYTHON)  # every kind of value, null attributes, the rest
        kinds = {ALWAYS, IN_CSV if format == "csv" else None, WITH_ATTRIBUTES if include_sensitive else None}
        assert left_to_python(database_rows) == {
            external_id for external_id, (_, kind) in LEFT_TO_PYTHON.items() if kind in kinds
        }
