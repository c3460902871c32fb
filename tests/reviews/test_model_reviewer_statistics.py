"""The model's console page shows its reviewers' figures, fast (rubber-stamp risk) reviews among them."""

import re

import pytest
from django.urls import reverse

from models_registry.choices import Stage
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import ReviewFactory, ReviewTaskFactory

THREE_FEATURES = {"credit_amount": 4200.0, "duration": 24, "age": 41}


@pytest.fixture
def version(db):
    return ModelVersionFactory(stage=Stage.PRODUCTION)


def reviewed(version, external_id: str, reviewer, seconds: int, label: str = "approve"):
    task = ReviewTaskFactory(
        prediction__version=version, prediction__external_id=external_id, prediction__features=THREE_FEATURES
    )
    return ReviewFactory(assignment__task=task, assignment__reviewer=reviewer, time_spent_seconds=seconds, label=label)


def reviewer_row(html: str, username: str) -> list[str]:
    row = re.search(rf"<tr><td>{username}</td>(.*?)</tr>", html, re.S).group(1)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_the_officer_sees_each_reviewers_reviews_and_fast_reviews(
    client, compliance_officer, version, reviewer_a, reviewer_b
):
    for number, seconds in enumerate((1, 2, 45)):
        reviewed(version, f"a-{number}", reviewer_a, seconds)
    reviewed(version, "b-0", reviewer_b, 60)
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:models_registry_mlmodel_change", args=[version.model_id])).content.decode()

    assert "Reviewers, last 30 days" in html
    a_cells, b_cells = reviewer_row(html, reviewer_a.username), reviewer_row(html, reviewer_b.username)
    assert (a_cells[0], a_cells[-1]) == ("3", "2")
    assert (b_cells[0], b_cells[-2], b_cells[-1]) == ("1", "1 minute", "0")
    assert "under 3 s, from the claim, on a case with 3 or more features" in html


def test_a_model_nobody_reviewed_says_so(client, compliance_officer, version):
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:models_registry_mlmodel_change", args=[version.model_id])).content.decode()

    assert "No reviews of this model in the last 30 days." in html
