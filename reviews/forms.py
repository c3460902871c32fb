"""Forms of the reviewer pages. They validate input only; the services decide what may happen."""

from django import forms

from models_registry.models import MLModel
from reviews.services.reviewing import MAX_TIME_SPENT_SECONDS

# Rationales, reasons and appeal texts: long enough for any real argument, bounded so a page or a paste cannot
# store megabytes in the trail of every case.
MAX_TEXT_LENGTH = 10_000


def _rationale_field() -> forms.CharField:
    return forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        error_messages={"required": "Explain your label: a rationale is required."},
    )


class _LabelForm(forms.Form):
    label = forms.ChoiceField(widget=forms.RadioSelect, error_messages={"required": "Choose a label."})

    def __init__(self, *args, labels: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        label_field = self.fields["label"]
        assert isinstance(label_field, forms.ChoiceField)  # as declared
        label_field.choices = [(label, label) for label in labels]


class _PageTimedForm(_LabelForm):
    """A form with no claim to measure from: the page's timer fills the time spent."""

    time_spent_seconds = forms.IntegerField(
        min_value=0, max_value=MAX_TIME_SPENT_SECONDS, required=False, widget=forms.HiddenInput
    )

    def clean_time_spent_seconds(self) -> int:
        return self.cleaned_data.get("time_spent_seconds") or 0


class ReviewForm(_LabelForm):
    """A reviewer's answer: a label and the reasoning behind it. The server measures the time from the claim."""

    rationale = _rationale_field()
    confirm_fast = forms.BooleanField(label="I have weighed this case: submit my review as it is", required=False)


class CorrectionForm(_PageTimedForm):
    """A new answer that replaces the reviewer's earlier one, and why."""

    rationale = _rationale_field()
    reason = forms.CharField(
        label="Why correct it",
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=MAX_TEXT_LENGTH,
        strip=True,
        error_messages={"required": "Say why you correct your review."},
    )


class MyCasesCursorForm(forms.Form):
    """Where a page of "My cases" starts: below the assignment id of the previous page's last case."""

    before = forms.IntegerField(
        min_value=1,
        required=False,
        error_messages={
            "invalid": "This page link is broken: open My cases from the menu.",
            "min_value": "This page link is broken: open My cases from the menu.",
        },
    )


class SkipForm(forms.Form):
    """Handing a case back, with the reason."""

    reason = forms.CharField(max_length=500, strip=True, error_messages={"required": "Say why you skip this case."})


class AdjudicationForm(_PageTimedForm):
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
        final_label = self.fields["final_label"]
        assert isinstance(final_label, forms.ChoiceField)  # as declared
        final_label.choices = [
            (label, f"{label} (current final label)" if label == current else label) for label in labels
        ]
