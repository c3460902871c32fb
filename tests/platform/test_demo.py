"""`make demo` loads a working deployment: real model file, routed cases, reviews, and a verifiable ledger."""

import io
import re

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from audits.ledger import ledger_verify
from audits.models import BiasAudit
from models_registry.choices import Stage
from models_registry.models import MLModel
from reviews.choices import DecisionSource, Route
from reviews.models import Decision, Prediction


def load_demo() -> dict[str, str]:
    out = io.StringIO()
    call_command("load_demo", stdout=out)
    return dict(re.findall(r"^\s{4}(\w+)\s+(\S+)\s", out.getvalue(), flags=re.MULTILINE))


def test_the_demo_puts_a_scored_model_to_work_and_reloads_without_duplicates(db):
    passwords = load_demo()

    assert set(passwords) == {"admin", "carla", "mia", "rita", "ravi", "ada"}
    model = MLModel.objects.get(name="credit-scoring")
    production = model.versions.get(stage=Stage.PRODUCTION)
    assert production.artifact and production.artifact_sha256
    # 80 applications scored by version 1 in staging (all reviewed), then 200 in production.
    assert Prediction.objects.filter(model=model).count() == 280
    audit = BiasAudit.objects.get(version=production, trigger="manual")
    assert (audit.population, audit.passed) == ("model", True)
    assert production.promotion_requests.get(target_stage=Stage.PRODUCTION).gate_results[-1]["name"] == "bias_audit"
    reasons = " ".join(
        " ".join(prediction.route_reasons) for prediction in Prediction.objects.filter(route=Route.REVIEW)
    )
    assert "large loans need review" in reasons
    assert Decision.objects.filter(model=model, source=DecisionSource.AUTO).exists()
    assert Decision.objects.filter(model=model, source=DecisionSource.CONSENSUS).exists()
    assert ledger_verify().intact

    second_passwords = load_demo()

    assert Prediction.objects.filter(model=model).count() == 280
    assert MLModel.objects.count() == 1
    assert second_passwords["rita"] != passwords["rita"]
    assert get_user_model().objects.get(username="rita").check_password(second_passwords["rita"])


def test_after_the_demo_the_console_and_the_reviewer_pages_have_work_to_show(db, client):
    load_demo()
    User = get_user_model()

    client.force_login(User.objects.get(username="carla"))
    dashboard = client.get(reverse("admin:index"))
    assert dashboard.status_code == 200
    assert "credit-scoring" in dashboard.content.decode()

    client.force_login(User.objects.get(username="rita"))
    claimed = client.post(reverse("reviews:next"), follow=True)
    assert claimed.status_code == 200
    assert "credit_amount" in claimed.content.decode()
