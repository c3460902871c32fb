"""The ML engineer's home page: their models at a glance, in one query whatever their number."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from hitl_platform.selectors import engineer_models
from models_registry.choices import Stage
from reviews.choices import Route, TaskStatus
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.reviews.factories import PredictionFactory, ReviewTaskFactory

HOME = reverse("engineers:home")
# The user's permissions (read once, then cached on the user) and the models with all their figures.
ENGINEER_MODELS_QUERIES = 2


def cases(version, count: int, *, route=Route.REVIEW, age=timedelta(0), **extra):
    return [
        PredictionFactory(version=version, model=version.model, route=route, created_at=timezone.now() - age, **extra)
        for _ in range(count)
    ]


@pytest.fixture
def credit(ml_engineer):
    """ml_engineer's model: version 2 in production, 10 recent cases (6 automatic), 2 still waiting for review."""
    model = MLModelFactory(name="credit", owner=ml_engineer)
    ModelVersionFactory(model=model, number=1, stage=Stage.ARCHIVED)
    production = ModelVersionFactory(model=model, number=2, stage=Stage.PRODUCTION)
    ModelVersionFactory(model=model, number=3, stage=Stage.CANDIDATE)
    cases(production, 6, route=Route.AUTO)
    reviewed = cases(production, 4)
    ReviewTaskFactory(prediction=reviewed[0], status=TaskStatus.OPEN)
    ReviewTaskFactory(prediction=reviewed[1], status=TaskStatus.ESCALATED)
    ReviewTaskFactory(prediction=reviewed[2], status=TaskStatus.DECIDED)
    # Older than 30 days, and a gold copy: neither counts in the volume.
    cases(production, 5, route=Route.AUTO, age=timedelta(days=31))
    cases(production, 1, is_gold=True, gold_label="approve")
    return model


def test_an_engineer_sees_production_version_volume_automation_and_queue_of_their_model(client, ml_engineer, credit):
    client.force_login(ml_engineer)

    response = client.get(HOME)

    assert response.status_code == 200
    [row] = response.context["models"]
    assert (row.name, row.production_version, row.volume, row.open_queue) == ("credit", 2, 10, 2)
    assert row.automation_rate == pytest.approx(0.6)
    html = response.content.decode()
    assert "version 2" in html
    assert "60%" in html


def test_team_models_are_listed_and_other_teams_models_are_not(client, ml_engineer, other_ml_engineer, credit):
    team = Group.objects.create(name="fraud-team")
    ml_engineer.groups.add(team)
    MLModelFactory(name="fraud", owner=other_ml_engineer, team=team)
    MLModelFactory(name="churn", owner=other_ml_engineer)
    client.force_login(ml_engineer)

    names = [row.name for row in client.get(HOME).context["models"]]

    assert names == ["credit", "fraud"]


def test_a_model_without_production_version_or_cases_says_so(client, ml_engineer):
    ModelVersionFactory(model=MLModelFactory(name="new-model", owner=ml_engineer), number=1)
    client.force_login(ml_engineer)

    response = client.get(HOME)

    [row] = response.context["models"]
    assert (row.production_version, row.volume, row.automation_rate, row.open_queue) == (None, 0, None, 0)
    assert "latest: version 1" in response.content.decode()
    assert "no cases" in response.content.decode()


def test_an_engineer_without_models_is_told_how_to_register_one(client, ml_engineer):
    client.force_login(ml_engineer)
    response = client.get(HOME)
    assert 'id="no-models"' in response.content.decode()
    assert reverse("api-v1:docs") in response.content.decode()


def test_the_figures_take_a_fixed_number_of_queries_whatever_the_number_of_models(
    ml_engineer, credit, django_assert_num_queries
):
    # A fresh copy of the user each time: its permissions are read (and cached) on the first check.
    def fresh_engineer():
        return type(ml_engineer).objects.get(pk=ml_engineer.pk)

    engineer = fresh_engineer()
    with django_assert_num_queries(ENGINEER_MODELS_QUERIES):
        assert len(engineer_models(user=engineer)) == 1
    for number in range(4):
        version = ModelVersionFactory(model=MLModelFactory(owner=ml_engineer), stage=Stage.PRODUCTION)
        cases(version, number + 1)
        ReviewTaskFactory(prediction=cases(version, 1)[0])

    engineer = fresh_engineer()
    with django_assert_num_queries(ENGINEER_MODELS_QUERIES):
        assert len(engineer_models(user=engineer)) == 5


def test_an_administrator_sees_every_model(client, admin_user, credit, other_ml_engineer):
    MLModelFactory(name="churn", owner=other_ml_engineer)
    client.force_login(admin_user)
    assert [row.name for row in client.get(HOME).context["models"]] == ["churn", "credit"]


@pytest.mark.parametrize("persona", ["reviewer_a", "adjudicator", "compliance_officer", "outsider"])
def test_people_without_the_ml_engineer_role_are_refused(client, request, persona):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(HOME).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client, db):
    response = client.get(HOME)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_an_engineer_lands_on_a_page_linking_to_their_models_and_tokens(client, ml_engineer):
    client.force_login(ml_engineer)
    html = client.get("/").content.decode()
    assert f'href="{HOME}"' in html
    assert f'href="{reverse("engineers:tokens")}"' in html


def test_someone_without_a_role_lands_on_a_page_without_engineer_links(client, outsider):
    client.force_login(outsider)
    assert HOME not in client.get("/").content.decode()
