"""What a model's console page shows of its reviewers (``{% model_reviewer_statistics original %}``): agreement
among them and each one's figures over the last 30 days, fast (rubber-stamp risk) reviews included."""

from datetime import timedelta

from django import template
from django.utils import timezone

from reviews.agreement import FAST_REVIEW_MIN_FEATURES, FAST_REVIEW_SECONDS
from reviews.selectors.reviewer_stats import agreement_statistics

register = template.Library()

STATISTICS_DAYS = 30


@register.inclusion_tag("admin/reviews/model_reviewer_statistics.html", takes_context=True)
def model_reviewer_statistics(context, model) -> dict:
    """Shown to those who may read reviews (the page already checked the model)."""
    if not context["request"].user.has_perm("reviews.view_review"):
        return {"shown": False}
    return {
        "shown": True,
        "days": STATISTICS_DAYS,
        "statistics": agreement_statistics(model_id=model.pk, since=timezone.now() - timedelta(days=STATISTICS_DAYS)),
        "fast_seconds": FAST_REVIEW_SECONDS,
        "fast_features": FAST_REVIEW_MIN_FEATURES,
    }
