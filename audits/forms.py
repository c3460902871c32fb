from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from audits.choices import AuditPopulation, ExportFormat, ExportKind, Mitigation
from audits.selectors.dashboard import DASHBOARD_PERIODS, DEFAULT_DASHBOARD_PERIOD
from models_registry.models import MLModel
from reviews.models import Prediction


class DashboardPeriodForm(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(days, f"last {days} days") for days in DASHBOARD_PERIODS],
        coerce=int,
        initial=DEFAULT_DASHBOARD_PERIOD,
        label="Period",
    )


class ExportRequestForm(forms.Form):
    """What to export: one case, or a model's decisions between two dates (whole days, inclusive)."""

    kind = forms.ChoiceField(choices=ExportKind.choices, widget=forms.RadioSelect, initial=ExportKind.DECISIONS)
    format = forms.ChoiceField(choices=ExportFormat.choices, widget=forms.RadioSelect, initial=ExportFormat.CSV)
    prediction = forms.ModelChoiceField(
        queryset=Prediction.objects.only("id", "model_id", "external_id"),
        required=False,
        widget=forms.NumberInput,
        label="Case (prediction id)",
        help_text="For a case trail.",
    )
    model = forms.ModelChoiceField(queryset=MLModel.objects.only("id", "name"), required=False)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To (inclusive)")

    def clean(self):
        data = super().clean()
        if data.get("kind") == ExportKind.CASE and not data.get("prediction"):
            self.add_error("prediction", "Name the case to export.")
        if data.get("kind") == ExportKind.DECISIONS:
            if not data.get("model"):
                self.add_error("model", "Choose the model whose decisions to export.")
            start, end = data.get("start"), data.get("end")
            if not start:
                self.add_error("start", "Give the first day.")
            if not end:
                self.add_error("end", "Give the last day.")
            if start and end and end < start:
                self.add_error("end", "The last day cannot come before the first.")
        return data

    def period(self) -> tuple[datetime | None, datetime | None]:
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if not (start and end):
            return None, None
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(start, time.min, tzinfo=zone),
            datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
        )


def _day_start(day) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class BiasAuditRequestForm(forms.Form):
    """What to audit: a model the user may audit, a population, some of its sensitive attributes, and optionally
    one version and a period of received cases (whole days, inclusive)."""

    model = forms.ModelChoiceField(queryset=MLModel.objects.none(), empty_label="Choose a model")
    population = forms.ChoiceField(
        choices=AuditPopulation.choices, widget=forms.RadioSelect, initial=AuditPopulation.DECISIONS
    )
    sensitive_attributes = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        label="Sensitive attributes",
        help_text="Each is audited alone, then all of them together.",
    )
    version = forms.IntegerField(
        required=False, min_value=1, label="Version number", help_text="Empty: the cases of every version."
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Cases received from")
    until = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        label="To (inclusive)",
        help_text="Empty: until now.",
    )

    def __init__(self, *args, models, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        assert isinstance(model_field, forms.ModelChoiceField)
        model_field.queryset = models
        chosen = self._chosen_model(models)
        if chosen is not None:
            choices = [(name, name) for name in chosen.sensitive_attributes or []]
        else:
            declared: dict[str, list[str]] = {}
            for model in models:
                for name in model.sensitive_attributes or []:
                    declared.setdefault(name, []).append(model.name)
            choices = [(name, f"{name} ({', '.join(owners)})") for name, owners in sorted(declared.items())]
        attributes_field = self.fields["sensitive_attributes"]
        assert isinstance(attributes_field, forms.MultipleChoiceField)
        attributes_field.choices = choices

    def _chosen_model(self, models) -> MLModel | None:
        raw = self.data.get("model") if self.is_bound else self.initial.get("model")
        if not raw or not str(raw).isdigit():
            return None
        return models.filter(pk=int(raw)).first()

    def clean(self):
        data = super().clean()
        model = data.get("model")
        if model is not None and not model.sensitive_attributes:
            self.add_error("model", f"{model.name} declares no sensitive attributes: there is nothing to audit.")
        number = data.get("version")
        if model is not None and number is not None:
            data["version"] = model.versions.filter(number=number).first()
            if data["version"] is None:
                self.add_error("version", f"{model.name} has no version {number}.")
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", "The last day cannot come before the first.")
        return data

    def period(self) -> tuple[datetime | None, datetime | None]:
        """The days chosen as [since, until) datetimes in the current time zone; None where left empty."""
        since, until = self.cleaned_data.get("since"), self.cleaned_data.get("until")
        return (
            _day_start(since) if since else None,
            _day_start(until + timedelta(days=1)) if until else None,
        )


class RetrainingRequestForm(forms.Form):
    """What to retrain: a model the user may retrain, optionally under a fairness constraint on one attribute."""

    model = forms.ModelChoiceField(queryset=MLModel.objects.none(), empty_label="Choose a model")
    mitigation = forms.ChoiceField(
        choices=Mitigation.choices,
        initial=Mitigation.NONE,
        widget=forms.RadioSelect,
        label="Fairness constraint",
        help_text="fairlearn's ExponentiatedGradient; the candidate never needs the attribute to decide.",
    )
    mitigation_attribute = forms.CharField(
        required=False, max_length=100, label="On the attribute", help_text="A sensitive attribute of the model."
    )
    holdout_share = forms.FloatField(
        initial=0.2,
        min_value=0.05,
        max_value=0.5,
        help_text="Share of the cases held out to compare base and candidate.",
    )
    seed = forms.IntegerField(
        initial=0, min_value=0, max_value=2**31 - 1, help_text="The same seed, the same candidate."
    )

    def __init__(self, *args, models, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        model_field = self.fields["model"]
        assert isinstance(model_field, forms.ModelChoiceField)
        model_field.queryset = models
