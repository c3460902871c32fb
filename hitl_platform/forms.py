"""The API tokens page's form. It validates input only; hitl_platform.tokens decides what may be created."""

from datetime import timedelta

from django import forms

from hitl_platform.models import TOKEN_NAME_MAX_LENGTH
from hitl_platform.selectors import api_token_lifetimes


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=TOKEN_NAME_MAX_LENGTH,
        strip=True,
        help_text="What the token is for, e.g. the script or job that will send it.",
        error_messages={"required": "Name the token, e.g. after the script that will use it."},
    )
    lifetime = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        error_messages={"invalid_choice": "Choose one of the offered lifetimes.", "required": "Choose a lifetime."},
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lifetimes = api_token_lifetimes()
        self.fields["lifetime"].choices = [(lifetime.hours, lifetime.label) for lifetime in lifetimes]
        if not self.is_bound and lifetimes:
            self.initial.setdefault("lifetime", min(lifetimes, key=lambda lt: abs(lt.hours - 30 * 24)).hours)

    def cleaned_lifetime(self) -> timedelta:
        return timedelta(hours=self.cleaned_data["lifetime"])
