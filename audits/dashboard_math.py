"""What one day contributes to the dashboard's figures, and how days combine into a period. Pure: no Django.

Counts add up across days; a median and Krippendorff's alpha do not. So each day keeps what they are made of:
a histogram of the times to a human decision (a period's median is interpolated within the buckets of its middle
times: accurate to their width, which grows with the time; see ``histogram_median_minutes``), and alpha's
sufficient statistics (the observed disagreement and the pairable labels), from which a period's alpha comes out
exactly as ``reviews.agreement.krippendorff_alpha_nominal`` computes it from the items themselves (tests check
both agree).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Upper bounds of the decision-time buckets, in minutes; a last open bucket holds everything above.
MINUTE_BUCKETS = (1, 5, 10, 15, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 960, 1440, 2160, 2880, 4320, 5760)
OPEN_BUCKET = "more"


def minutes_bucket(minutes: float) -> str:
    for upper in MINUTE_BUCKETS:
        if minutes <= upper:
            return str(upper)
    return OPEN_BUCKET


def histogram_of(minutes: Iterable[float]) -> dict[str, int]:
    return dict(Counter(minutes_bucket(value) for value in minutes))


def histograms_merge(histograms: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for histogram in histograms:
        total.update(histogram)
    return dict(total)


def histogram_median_minutes(histogram: Mapping[str, int]) -> float | None:
    """The median of the times a histogram counts, None when it counts none.

    The median is the middle time, or the mean of the two middle times of an even count, and those two can lie
    buckets apart ([0.5, 4000] has its median, 2000.25, in neither value's bucket). So each middle time is
    estimated within its own bucket, as the centre of its share of the bucket (the k-th of n times in a bucket sits
    at (k - 1/2) / n of the way through), and the median is their mean. Each estimate is off by less than its
    bucket's width, so the median is off by less than the mean width of the one or two buckets its middle times
    fall in (never more than the wider one). A middle time in the open bucket counts as that bucket's lower bound,
    so there the median is not bounded.
    """
    count = sum(histogram.values())
    if not count:
        return None
    middle = [count // 2, count // 2 + 1] if count % 2 == 0 else [(count + 1) // 2]
    return sum(_ranked_minutes(histogram, rank) for rank in middle) / len(middle)


def _ranked_minutes(histogram: Mapping[str, int], rank: int) -> float:
    """The rank-th shortest time (from 1), interpolated within its bucket; the open bucket's lower bound there."""
    seen = 0
    lower = 0.0
    for upper in MINUTE_BUCKETS:
        in_bucket = histogram.get(str(upper), 0)
        if seen + in_bucket >= rank:
            return lower + (upper - lower) * (rank - 0.5 - seen) / in_bucket
        seen += in_bucket
        lower = float(upper)
    return lower


@dataclass
class AgreementStats:
    """Sufficient statistics of Krippendorff's alpha (nominal) over cases with two or more ratings."""

    cases: int = 0
    disagreement: float = 0.0
    labels: Counter = field(default_factory=Counter)

    def add_case(self, label_counts: Mapping[str, int]) -> None:
        """One case's ratings, as label -> number of reviewers who gave it; cases with one rating don't pair."""
        ratings = sum(label_counts.values())
        if ratings < 2:
            return
        self.cases += 1
        # Ordered pairs of different labels on this case, each weighted 1 / (m - 1).
        self.disagreement += (ratings * ratings - sum(n * n for n in label_counts.values())) / (ratings - 1)
        self.labels.update(label_counts)

    def merge(self, other: "AgreementStats") -> None:
        self.cases += other.cases
        self.disagreement += other.disagreement
        self.labels.update(other.labels)

    def alpha(self) -> float | None:
        """alpha = 1 - (n - 1) * D_o / (n^2 - sum_c n_c^2); None with no pairable value or a single label."""
        total = sum(self.labels.values())
        expected = total * total - sum(n * n for n in self.labels.values())
        if total == 0 or expected == 0:
            return None
        return 1.0 - (total - 1) * self.disagreement / expected
