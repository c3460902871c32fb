"""Forms of the reviewer pages. They validate input only; the services decide what may happen."""

from django import forms

from models_registry.models import MLModel
from reviews.services.reviewing import MAX_TIME_SPENT_SECONDS

# Rationales, reasons and appeal texts: long enough for any real argument, bounded so a page or a paste cannot
# store megabytes in the trail of every case.
MAX_TEXT_LENGTH = 10_000


class _LabelForm(forms.Form):
    label = forms.ChoiceField(widget=forms.RadioSelect, error_messages={"required": "Choose a label."})
    time_spent_seconds = forms.IntegerField(
        min_value=0, max_value=MAX_TIME_SPENT_SECONDS, required=False, widget=forms.HiddenInput
    )

    def __init__(self, *args, labels: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = [(label, label) for label in labels]

    def clean_time_spent_seconds(self) -> int:
        return self.cleaned_data.get("time_spent_seconds") or 0


class ReviewForm(_LabelForm):
    """A reviewer's answer: a label and the reasoning behind it; the page's timer fills the time spent."""

    rationale = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        error_messages={"required": "Explain your label: a rationale is required."},
    )


class CorrectionForm(ReviewForm):
    """A new answer that replaces the reviewer's earlier one, and why."""

    reason = forms.CharField(
        label="Why correct it",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        error_messages={"required": "Say why you correct your review."},
    )


class SkipForm(forms.Form):
    """Handing a case back, with the reason."""

    reason = forms.CharField(max_length=500, strip=True, error_messages={"required": "Say why you skip this case."})


class AdjudicationForm(_LabelForm):
    """An adjudicator's final call on an escalated case."""

    reason = forms.CharField(
        label="Reason for the final call",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        error_messages={"required": "Give the reason for your final call."},
    )


class AppealSearchForm(forms.Form):
    """Find a decided case to appeal: by model and the caller's case id, or by decision id."""

    model = forms.ModelChoiceField(queryset=MLModel.objects.only("id", "name").order_by("name"), required=False)
    external_id = forms.CharField(
        label="Case id (external id)", max_length=200, required=False, strip=True, help_text="The caller's case id."
    )
    decision = forms.IntegerField(label="or decision id", min_value=1, required=False)

    def clean(self):
        data = super().clean()
        if self.errors or data.get("decision") is not None:
            return data
        if not data.get("model") and not data.get("external_id"):
            raise forms.ValidationError("Choose a model and give the case id, or give a decision id.")
        if not data.get("model"):
            self.add_error("model", "Choose the model the case id belongs to.")
        if not data.get("external_id"):
            self.add_error("external_id", "Give the case id, as the caller sent it.")
        return data


class AppealForm(forms.Form):
    """Reverse a final decision on appeal: the new label and why.

    Every label is offered, the current one marked: choosing it again (a second submit of the same appeal)
    reaches the service, which answers that it is already the final label and changes nothing.
    """

    final_label = forms.ChoiceField(
        label="New final label", widget=forms.RadioSelect, error_messages={"required": "Choose the new final label."}
    )
    reason = forms.CharField(
        label="Reason for reversing it",
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        help_text="Recorded in the decision's history and in the ledger; subscribed systems receive the new label.",
        error_messages={"required": "Give a reason: it is recorded in the history and the ledger."},
    )

    def __init__(self, *args, labels: list[str], current: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["final_label"].choices = [
            (label, f"{label} (current final label)" if label == current else label) for label in labels
        ]
