"""`make demo` tells the whole story on the German credit data, shortened here: the facts it claims are in the
database, and the outcome table it prints is recomputed from the rows, independently of the selector."""

import io
import re

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from audits.choices import AuditStatus
from audits.ledger import ledger_verify
from audits.models import BiasAudit, RetrainingJob
from hitl_platform.demo import DATA_FILE
from models_registry import artifacts
from models_registry.choices import Stage
from models_registry.models import MLModel
from reviews.choices import DecisionSource, Route
from reviews.models import Decision, Prediction, Review

SHORT_DEMO_CASES = 240


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.BASE_DIR = tmp_path
    artifacts._MODEL_CACHE.clear()
    yield
    artifacts._MODEL_CACHE.clear()


def load_demo() -> tuple[dict[str, str], str]:
    out = io.StringIO()
    call_command("load_demo", cases=SHORT_DEMO_CASES, stdout=out)
    text = out.getvalue()
    return dict(re.findall(r"^\s{4}(\w+)\s+(\S+)\s+[A-Z]", text, flags=re.MULTILINE)), text


def printed_table(text: str, attribute: str) -> dict[str, list[str]]:
    block = text.split(f"Outcomes against the real labels, by {attribute}:")[1].split("\n\n")[0]
    rows = [line.split() for line in block.strip().splitlines()[1:]]
    return {" ".join(cells[:-7]): cells[-7:] for cells in rows}


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}"


@pytest.fixture(scope="module")
def german_credit():
    return pd.read_csv(DATA_FILE)


def test_the_demo_tells_the_story_on_real_data_and_its_table_is_what_the_database_says(db, german_credit):
    passwords, text = load_demo()

    assert set(passwords) == {"admin", "carla", "mia", "rita", "ravi", "sam", "ada"}
    model = MLModel.objects.get(name="credit-scoring")
    cases = Prediction.objects.filter(model=model)
    assert cases.count() == SHORT_DEMO_CASES
    assert len(german_credit) == 1000 and set(german_credit.columns) >= {"risk", "sex", "age"}
    # Every route of the story occurs, and people decided the ones they disagreed on.
    assert cases.filter(route=Route.AUTO).exists() and cases.filter(route=Route.REVIEW).exists()
    assert cases.filter(is_qa_sample=True).exists()
    reasons = " ".join(" ".join(p.route_reasons) for p in cases.filter(route=Route.REVIEW))
    assert "large loans need review" in reasons
    assert Decision.objects.filter(model=model, source=DecisionSource.ADJUDICATION).exists()
    assert Decision.objects.filter(model=model, source=DecisionSource.CONSENSUS).exists()
    assert Review.objects.filter(task__model=model, reviewer__username="ravi").exists()
    assert get_user_model().objects.get(username="ravi").first_name == "Ravi (simulated reviewer)"
    # Every decided case has its real outcome, from the data set.
    assert not cases.filter(decision__isnull=False, outcome_label="").exists()
    # Four audits of the run, and version 1 reached production through its gate (or a logged override).
    audits = BiasAudit.objects.filter(model=model, status=AuditStatus.SUCCEEDED, trigger="manual")
    assert {a.population for a in audits} == {"model", "reviewers", "decisions", "amplification"}
    production = model.versions.get(stage=Stage.PRODUCTION)
    assert production.number == 1
    request = production.promotion_requests.get(target_stage=Stage.PRODUCTION)
    gate = next(result for result in request.gate_results if result["name"] == "bias_audit")
    assert gate["passed"] or request.gate_overrides[0]["gate"] == "bias_audit"
    # Where an audit failed, a mitigated candidate with its lineage waits for the compliance officer.
    if audits.filter(passed=False).exists():
        job = RetrainingJob.objects.get(model=model)
        assert (job.status, job.mitigation, job.mitigation_attribute) == ("succeeded", "demographic_parity", "age_band")
        assert (job.candidate_version.parent, job.candidate_version.stage) == (production, Stage.CANDIDATE)
        assert job.promotion_request.status == "pending"
        assert f"retraining job {job.pk} learnt candidate version {job.candidate_version.number}" in text
    assert ledger_verify().intact

    # The printed table, recomputed from the rows.
    decided = pd.DataFrame(
        cases.filter(decision__isnull=False).values_list(
            "id",
            "predicted_label",
            "outcome_label",
            "decision__final_label",
            "decision__source",
            "sensitive_attributes",
        ),
        columns=["id", "model_label", "outcome", "final", "source", "attributes"],
    )
    decided["age_band"] = decided["attributes"].map(lambda attributes: attributes["age_band"])
    reviews = pd.DataFrame(
        Review.objects.filter(task__model=model, is_adjudication=False, corrections__isnull=True).values_list(
            "task__prediction_id", "label"
        ),
        columns=["id", "label"],
    ).merge(decided[["id", "outcome", "age_band"]], on="id")
    table = printed_table(text, "age band")
    for group, rows in [("all cases", decided), *decided.groupby("age_band")]:
        own_reviews = reviews if group == "all cases" else reviews[reviews["age_band"] == group]
        ai_errors = int((rows["model_label"] != rows["outcome"]).sum())
        final_errors = int((rows["final"] != rows["outcome"]).sum())
        reviewed = rows["id"].isin(reviews["id"]).sum()
        expected = [
            str(len(rows)),
            percent(int((rows["source"] == "auto").sum()), len(rows)),
            percent(len(rows) - ai_errors, len(rows)),
            percent(int((own_reviews["label"] == own_reviews["outcome"]).sum()), len(own_reviews)),
            percent(len(rows) - final_errors, len(rows)),
            f"{1 - final_errors / ai_errors:.1%}",
            percent(len(rows) - int(reviewed), len(rows)),
        ]
        assert table[group] == expected, group


def test_a_second_run_adds_nothing_and_gives_new_passwords(db):
    passwords, _ = load_demo()
    counts = (Prediction.objects.count(), Review.objects.count(), BiasAudit.objects.count())

    second_passwords, text = load_demo()

    assert (Prediction.objects.count(), Review.objects.count(), BiasAudit.objects.count()) == counts
    assert "The demo is already loaded: nothing was added." in text
    assert second_passwords["rita"] != passwords["rita"]
    assert get_user_model().objects.get(username="rita").check_password(second_passwords["rita"])


def test_after_the_demo_the_console_shows_the_outcomes_and_the_reviewer_pages_have_work(db, client):
    load_demo()
    User = get_user_model()

    client.force_login(User.objects.get(username="carla"))
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard-outcomes"' in dashboard and "credit-scoring" in dashboard

    client.force_login(User.objects.get(username="rita"))
    assert client.get(reverse("reviews:queue")).status_code == 200
