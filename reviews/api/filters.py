"""Filters of the case lists (decisions and predictions): the same names, meaning the same, on both."""

from django.core.validators import validate_slug
from django_filters import rest_framework as filters

from reviews.choices import DecisionSource, Route
from reviews.models import Decision, Prediction


class DecisionFilter(filters.FilterSet):
    """The decisions feed: by case, model, final label, source and decision time; ``after`` resumes a feed."""

    external_id = filters.CharFilter(field_name="prediction__external_id", help_text="The caller's case id (exact).")
    model = filters.CharFilter(
        field_name="model__name", validators=[validate_slug], help_text="Only this model's decisions (its name)."
    )
    label = filters.CharFilter(field_name="final_label", help_text="Only decisions with this final label.")
    source = filters.ChoiceFilter(choices=DecisionSource.choices, help_text="Who decided: auto, consensus...")
    since = filters.IsoDateTimeFilter(
        field_name="decided_at", lookup_expr="gte", help_text="Only decisions made at or after this time."
    )
    until = filters.IsoDateTimeFilter(
        field_name="decided_at", lookup_expr="lt", help_text="Only decisions made before this time."
    )
    after = filters.NumberFilter(
        field_name="id", lookup_expr="gt", min_value=0, help_text="Only decisions with a larger id: resume a feed."
    )

    class Meta:
        model = Decision
        fields = ["external_id", "model", "label", "source", "since", "until", "after"]


class PredictionFilter(filters.FilterSet):
    """Cases: by case id, model, the model's label, route, and the source and time of their decision."""

    external_id = filters.CharFilter(field_name="external_id", help_text="The caller's case id (exact).")
    model = filters.CharFilter(
        field_name="model__name", validators=[validate_slug], help_text="Only this model's cases (its name)."
    )
    label = filters.CharFilter(field_name="predicted_label", help_text="Only cases the model gave this label.")
    route = filters.ChoiceFilter(choices=Route.choices, help_text="auto or review.")
    source = filters.ChoiceFilter(
        field_name="decision__source", choices=DecisionSource.choices, help_text="Who decided the case."
    )
    since = filters.IsoDateTimeFilter(
        field_name="decision__decided_at", lookup_expr="gte", help_text="Only cases decided at or after this time."
    )
    until = filters.IsoDateTimeFilter(
        field_name="decision__decided_at", lookup_expr="lt", help_text="Only cases decided before this time."
    )

    class Meta:
        model = Prediction
        fields = ["external_id", "model", "label", "route", "source", "since", "until"]
