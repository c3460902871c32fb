"""Agreement statistics through the selectors, checked against values computed by hand.

The data set (model M; reviewers r1, r2, r3; model answer "approve" on every real case):

    case  r1       r2       r3                        final     | gold case  known    r1     r2       r3
    T1    approve  approve  deny                      approve   | G1         deny     deny   approve  -
    T2    deny     deny     deny (corrected approve)  deny      | G2         approve  approve -       approve
    T3    approve  deny     -                         (none)    |

Hand computations are written next to each assertion.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import DecisionSource
from reviews.selectors.reviewer_stats import agreement_statistics, reviewer_reliabilities
from tests.factories import UserFactory
from tests.models_registry.factories import ModelVersionFactory
from tests.reviews.factories import DecisionFactory, ReviewFactory, ReviewTaskFactory

A, D = "approve", "deny"


@pytest.fixture
def data(db):
    version = ModelVersionFactory(stage=Stage.PRODUCTION)
    r1, r2, r3 = (UserFactory(username=f"r{n}", roles=[Role.REVIEWER]) for n in (1, 2, 3))
    real = {
        name: ReviewTaskFactory(prediction__version=version, prediction__predicted_label=A)
        for name in ["T1", "T2", "T3"]
    }
    gold = {
        name: ReviewTaskFactory(prediction__version=version, prediction__is_gold=True, prediction__gold_label=label)
        for name, label in (("G1", D), ("G2", A))
    }
    tasks = real | gold

    def review(task: str, reviewer, label: str, seconds: int):
        return ReviewFactory(
            assignment__task=tasks[task], assignment__reviewer=reviewer, label=label, time_spent_seconds=seconds
        )

    review("T1", r1, A, 10), review("T2", r1, D, 20), review("T3", r1, A, 30), review("G1", r1, D, 40)
    review("G2", r1, A, 50)
    review("T1", r2, A, 5), review("T2", r2, D, 15), review("T3", r2, D, 25), review("G1", r2, A, 35)
    review("T1", r3, D, 60), review("G2", r3, A, 100)
    first_thought = review("T2", r3, A, 60)
    ReviewFactory(
        assignment=first_thought.assignment,
        label=D,
        corrects=first_thought,
        correction_reason="misread",
        time_spent_seconds=60,
    )
    for name, label in (("T1", A), ("T2", D)):
        DecisionFactory(prediction=real[name].prediction, final_label=label, source=DecisionSource.CONSENSUS)
    other_model_task = ReviewTaskFactory()
    ReviewFactory(assignment__task=other_model_task, assignment__reviewer=r1, label=D)
    return {"model": version.model, "r1": r1, "r2": r2, "r3": r3, "tasks": tasks}


def test_agreement_among_reviewers_matches_the_hand_computed_values(data):
    stats = agreement_statistics(model_id=data["model"].pk)

    assert (stats.items, stats.ratings) == (3, 8)
    # Pairwise shares: T1 2/6, T2 6/6, T3 0/2 -> mean 4/9.
    assert stats.percent_agreement == pytest.approx(4 / 9)
    # Fleiss over T1 and T2 (3 ratings each): P = (1/3 + 1) / 2 = 2/3, P_e = (2/6)^2 + (4/6)^2 = 5/9 -> 0.25.
    assert (stats.fleiss_items, stats.fleiss_raters) == (2, 3)
    assert stats.fleiss_kappa == pytest.approx(0.25)
    # Alpha: D_o = 2 + 0 + 2 = 4, n = 8 (3 approve, 5 deny), D_e = 64 - 9 - 25 = 30 -> 1 - 7 * 4 / 30 = 1/15.
    assert stats.krippendorff_alpha == pytest.approx(1 / 15)
    r1, r2, r3 = data["r1"].pk, data["r2"].pk, data["r3"].pk
    # r1-r2 on T1..T3: p_o = 2/3, p_e = (2*1 + 1*2)/9 = 4/9 -> 0.4; with r3 on T1, T2: p_o = p_e = 1/2 -> 0.
    assert [(pair.reviewer_ids, pair.items, pair.kappa) for pair in stats.pairwise_kappa] == [
        ((r1, r2), 3, pytest.approx(0.4)),
        ((r1, r3), 2, pytest.approx(0.0)),
        ((r2, r3), 2, pytest.approx(0.0)),
    ]


def test_each_reviewers_figures_match_the_hand_computed_values(data):
    stats = agreement_statistics(model_id=data["model"].pk)

    figures = {f.username: f for f in stats.reviewers}
    assert list(figures) == ["r1", "r2", "r3"]
    rates = {
        name: (
            (f.gold_accuracy.matched, f.gold_accuracy.total),
            (f.agreement_with_final.matched, f.agreement_with_final.total),
            (f.model_agreement.matched, f.model_agreement.total),
            f.median_seconds,
            f.reviews,
        )
        for name, f in figures.items()
    }
    assert rates == {
        # gold 2/2; final T1 T2 2/2; model (approve) T1 T3 2/3; median of 10..50 is 30; 5 reviews.
        "r1": ((2, 2), (2, 2), (2, 3), 30, 5),
        # gold 0/1; final 2/2; model T1 only 1/3; median of 5, 15, 25, 35 is 20; 4 reviews.
        "r2": ((0, 1), (2, 2), (1, 3), 20, 4),
        # gold 1/1; final T2 only 1/2 (the correction counts, not the first thought); model 0/2; median 60.
        "r3": ((1, 1), (1, 2), (0, 2), 60, 3),
    }


def test_a_period_counts_only_the_reviews_given_in_it(data):
    tasks = data["tasks"]
    tasks["T3"].reviews.update(created_at=timezone.now() - timedelta(days=10))

    stats = agreement_statistics(model_id=data["model"].pk, since=timezone.now() - timedelta(days=1))

    # T1 1/3 and T2 1 -> 2/3.
    assert stats.items == 2
    assert stats.percent_agreement == pytest.approx(2 / 3)
    older = agreement_statistics(model_id=data["model"].pk, until=timezone.now() - timedelta(days=1))
    assert (older.items, older.percent_agreement) == (1, 0.0)


def test_one_reviewers_view_counts_only_the_cases_they_reviewed(data):
    stats = agreement_statistics(model_id=data["model"].pk, reviewer_id=data["r3"].pk)

    assert [f.username for f in stats.reviewers] == ["r3"]
    assert stats.items == 2
    assert all(data["r3"].pk in pair.reviewer_ids for pair in stats.pairwise_kappa)


def test_without_a_model_every_models_reviews_count(data):
    assert agreement_statistics().items == 4


def test_reliabilities_rank_reviewers_by_their_record_on_gold_and_agreement(data):
    reliability = reviewer_reliabilities(model_id=data["model"].pk).accuracy

    assert reliability[data["r1"].pk] > reliability[data["r2"].pk]
    assert all(0 < value < 1 for value in reliability.values())


def test_the_reliability_estimate_carries_the_label_shares_of_the_real_cases(data):
    estimate = reviewer_reliabilities(model_id=data["model"].pk)

    # Real cases: T1 is approve, T2 deny, and T3 split between r1 (approve, the better gold record) and r2, so
    # approve leads; the gold cases G1 and G2 do not count.
    assert set(estimate.class_prior) == {A, D}
    assert sum(estimate.class_prior.values()) == pytest.approx(1.0)
    assert 0.5 < estimate.class_prior[A] < 2 / 3
