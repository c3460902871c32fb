"""Console forms of the registry: every change and every decision carries a reason."""

from django import forms

from models_registry.models import MLModel
from models_registry.services import MODEL_EDITABLE_FIELDS


class MLModelChangeForm(forms.ModelForm):
    change_reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=2000, help_text="Recorded in the model's history."
    )

    class Meta:
        model = MLModel
        fields = sorted(MODEL_EDITABLE_FIELDS)


class PromotionDecisionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=5000,
        help_text="Recorded on each request, in its history and in the ledger.",
    )
