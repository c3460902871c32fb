"""Inter-rater agreement on nominal labels, and per-reviewer quality figures. Pure computation: no Django.

These feed the agreement dashboards (per model, per period, per reviewer). Input shapes:

- items: a sequence of items, each a sequence of the labels its raters gave, one entry per rating, in any
  order; None marks a missing rating and is dropped. Example: [["approve", "approve", "deny"], ["deny", None]].
- pairs: a sequence of (label_of_rater_a, label_of_rater_b), one per item both raters labelled; a pair
  holding a None is skipped.
- reviews: an iterable of (reviewer_id, item_id, label), one per review (pass each reviewer's current review
  of an item, not the reviews it corrected).
- a reference: a mapping item_id -> label (the gold answer, the final decision, or the model's answer).

Labels are any hashable values compared by equality. An undefined statistic is None, never an exception: no
usable items, or chance agreement of 1 (every rating is one and the same label, so the raters agree
perfectly but the data cannot show that they agree more than chance would). Malformed input (Fleiss' kappa
on items with different numbers of ratings) raises ValueError with the reason.
"""

import statistics
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

Label = Hashable
# An item's id, of whatever type the caller uses: a review names its item, and the reference maps the same ids.
ItemId = TypeVar("ItemId", bound=Hashable)
# A review this fast of a case with this many features is a rubber-stamp risk: nobody reads three or more
# features, weighs them and writes a rationale in under three seconds. Measured from the claim.
FAST_REVIEW_SECONDS = 3
FAST_REVIEW_MIN_FEATURES = 3
# Chance agreement is a sum of float products: 1 - 1e-16 is still "all one label".
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class MatchRate:
    """How many of a reviewer's counted reviews matched the reference label, out of how many."""

    matched: int
    total: int

    @property
    def rate(self) -> float:
        return self.matched / self.total


def percent_agreement(items: Iterable[Sequence[Label | None]]) -> float | None:
    """Mean, over items with at least two ratings, of the share of rater pairs that gave the same label.

    An item rated approve, approve, deny has three pairs of which one agrees: 1/3. None when no item has
    two ratings. No correction for chance: see the kappas and alpha for that.
    """
    shares = []
    for ratings in _present_ratings(items):
        count = len(ratings)
        if count < 2:
            continue
        agreeing_pairs = sum(n * (n - 1) for n in Counter(ratings).values())
        shares.append(agreeing_pairs / (count * (count - 1)))
    return sum(shares) / len(shares) if shares else None


def cohens_kappa(pairs: Iterable[tuple[Label | None, Label | None]]) -> float | None:
    """Cohen's kappa for two raters: (p_o - p_e) / (1 - p_e).

    p_o is the share of items on which they gave the same label; p_e is the agreement expected if each
    labelled at random with their own label frequencies, the sum over labels of p_a(label) * p_b(label).
    None when there is no complete pair or when p_e is 1 (both always gave the same single label).
    """
    complete = [(a, b) for a, b in pairs if a is not None and b is not None]
    if not complete:
        return None
    count = len(complete)
    observed = sum(a == b for a, b in complete) / count
    first = Counter(a for a, _ in complete)
    second = Counter(b for _, b in complete)
    expected = sum(first[label] * second[label] for label in first) / (count * count)
    return _chance_corrected(observed, expected)


def fleiss_kappa(items: Iterable[Sequence[Label | None]]) -> float | None:
    """Fleiss' kappa for any number of raters, each item rated by the same number n >= 2 of them.

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)) is item i's pairwise agreement (n_ij: ratings of label j),
    P = mean of P_i, p_j = share of all ratings that are j, P_e = sum_j p_j^2, kappa = (P - P_e) / (1 - P_e).
    Items whose numbers of ratings (after dropping None) differ raise ValueError rather than being silently
    dropped: use `krippendorff_alpha_nominal` for varying numbers of ratings. None when there are no items
    or when P_e is 1.
    """
    rated = _present_ratings(items)
    if not rated:
        return None
    counts = sorted({len(ratings) for ratings in rated})
    if len(counts) > 1:
        raise ValueError(
            f"Fleiss' kappa needs the same number of ratings on every item, got {counts}; "
            "use Krippendorff's alpha for varying numbers of ratings"
        )
    raters = counts[0]
    if raters < 2:
        raise ValueError("Fleiss' kappa needs at least two ratings per item")
    item_agreements = [
        (sum(n * n for n in Counter(ratings).values()) - raters) / (raters * (raters - 1)) for ratings in rated
    ]
    observed = sum(item_agreements) / len(item_agreements)
    totals = Counter(label for ratings in rated for label in ratings)
    all_ratings = len(rated) * raters
    expected = sum((n / all_ratings) ** 2 for n in totals.values())
    return _chance_corrected(observed, expected)


def krippendorff_alpha_nominal(items: Iterable[Sequence[Label | None]]) -> float | None:
    """Krippendorff's alpha for nominal labels, any number of raters per item, missing ratings allowed.

    Only pairable values count: items with fewer than two ratings are ignored. With m_u ratings on item u,
    each ordered pair of its ratings adds 1 / (m_u - 1) to the coincidence matrix o_ck, so each pairable
    value contributes exactly 1 and n_c = sum_k o_ck counts the pairable values of label c (n = their sum).
    alpha = 1 - D_o / D_e = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.
    None when no item has two ratings or when every pairable value is the same label (D_e = 0).
    """
    observed_disagreement = 0.0
    pairable: Counter = Counter()
    for ratings in _present_ratings(items):
        count = len(ratings)
        if count < 2:
            continue
        label_counts = Counter(ratings)
        # Ordered pairs of different labels on this item, each weighted 1 / (m_u - 1).
        observed_disagreement += (count * count - sum(n * n for n in label_counts.values())) / (count - 1)
        pairable.update(label_counts)
    total = sum(pairable.values())
    expected_disagreement = total * total - sum(n * n for n in pairable.values())
    if total == 0 or expected_disagreement == 0:
        return None
    return 1.0 - (total - 1) * observed_disagreement / expected_disagreement


def reviewer_accuracy_on_gold(
    reviews: Iterable[tuple[int, ItemId, Label]], gold: Mapping[ItemId, Label]
) -> dict[int, MatchRate]:
    """Per reviewer: how many of their reviews of gold items gave the known answer. Other items are ignored."""
    return _match_rates(reviews, gold)


def agreement_with_final(
    reviews: Iterable[tuple[int, ItemId, Label]], final_labels: Mapping[ItemId, Label]
) -> dict[int, MatchRate]:
    """Per reviewer: how many of their reviews gave the case's final label. Undecided cases are ignored.

    The reviewer's own vote helped make a consensus decision, so this leans high on cases decided by few
    reviewers; read it next to accuracy on gold, which has no such lean.
    """
    return _match_rates(reviews, final_labels)


def model_agreement_rate(
    reviews: Iterable[tuple[int, ItemId, Label]], model_labels: Mapping[ItemId, Label]
) -> dict[int, MatchRate]:
    """Per reviewer: how often their label equals the model's predicted label (the rubber-stamp signal).

    A rate near 1 on cases the model was unsure of suggests a reviewer approving the model's answer rather
    than judging the case. Compare reviews where the model's answer was shown with blinded ones.
    """
    return _match_rates(reviews, model_labels)


def median_time_by_reviewer(times: Iterable[tuple[int, float]]) -> dict[int, float]:
    """Per reviewer, the median of their (reviewer_id, seconds spent) entries; the mean of the middle two
    when the count is even. Reviewers are listed by id."""
    by_reviewer: dict[int, list[float]] = {}
    for reviewer_id, seconds in times:
        by_reviewer.setdefault(reviewer_id, []).append(seconds)
    return {reviewer_id: statistics.median(by_reviewer[reviewer_id]) for reviewer_id in sorted(by_reviewer)}


def is_fast_review(seconds: float, feature_count: int) -> bool:
    """A review given in under FAST_REVIEW_SECONDS of a case with at least FAST_REVIEW_MIN_FEATURES features."""
    return seconds < FAST_REVIEW_SECONDS and feature_count >= FAST_REVIEW_MIN_FEATURES


def fast_review_counts(reviews: Iterable[tuple[int, float, int]]) -> dict[int, int]:
    """Per reviewer, how many of their (reviewer_id, seconds spent, feature count) reviews were fast
    (`is_fast_review`); a reviewer with none counts 0. Reviewers are listed by id."""
    counts: Counter = Counter()
    for reviewer_id, seconds, feature_count in reviews:
        counts[reviewer_id] += is_fast_review(seconds, feature_count)
    return {reviewer_id: counts[reviewer_id] for reviewer_id in sorted(counts)}


def _present_ratings(items: Iterable[Sequence[Label | None]]) -> list[list[Label]]:
    return [[label for label in ratings if label is not None] for ratings in items]


def _chance_corrected(observed: float, expected: float) -> float | None:
    if 1.0 - expected <= _TOLERANCE:
        return None
    return (observed - expected) / (1.0 - expected)


def _match_rates(
    reviews: Iterable[tuple[int, ItemId, Label]], reference: Mapping[ItemId, Label]
) -> dict[int, MatchRate]:
    matched: Counter = Counter()
    total: Counter = Counter()
    for reviewer_id, item_id, label in reviews:
        if item_id not in reference:
            continue
        total[reviewer_id] += 1
        matched[reviewer_id] += label == reference[item_id]
    return {
        reviewer_id: MatchRate(matched=matched[reviewer_id], total=total[reviewer_id]) for reviewer_id in sorted(total)
    }
