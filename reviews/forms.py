"""Forms of the reviewer pages. They validate input only; the services decide what may happen."""

from django import forms

from reviews.services.reviewing import MAX_TIME_SPENT_SECONDS


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
        strip=True,
        error_messages={"required": "Explain your label: a rationale is required."},
    )


class CorrectionForm(ReviewForm):
    """A new answer that replaces the reviewer's earlier one, and why."""

    reason = forms.CharField(
        label="Why correct it",
        widget=forms.Textarea(attrs={"rows": 2}),
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
        strip=True,
        error_messages={"required": "Give the reason for your final call."},
    )
