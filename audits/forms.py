from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from audits.choices import ExportFormat, ExportKind
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
