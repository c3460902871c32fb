"""The ML engineers' pages: their models at a glance, and the API tokens their scripts send.

Views are thin: they check the role, read through hitl_platform.selectors and write through hitl_platform.tokens.
People without the ML engineer role (administrators aside) get a 403; somebody else's token is a 404.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from hitl_platform.forms import ApiTokenForm
from hitl_platform.selectors import (
    VOLUME_PERIOD_DAYS,
    api_token_of,
    api_tokens_of,
    engineer_models,
    user_is_ml_engineer,
)
from hitl_platform.tokens import api_token_create, api_token_revoke
from hitl_platform.types import authenticated_user


def engineer_required(view):
    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not user_is_ml_engineer(request.user):
            raise PermissionDenied("These pages are for ML engineers.")
        return view(request, *args, **kwargs)

    return login_required(checked)


@engineer_required
@require_http_methods(["GET", "HEAD"])
def engineer_home(request: HttpRequest) -> HttpResponse:
    context = {"models": engineer_models(user=request.user), "period_days": VOLUME_PERIOD_DAYS}
    return render(request, "engineers/home.html", context)


def _tokens_page(request: HttpRequest, form: ApiTokenForm, *, new_token=None) -> HttpResponse:
    context = {"form": form, "tokens": api_tokens_of(user=authenticated_user(request)), "new_token": new_token}
    return render(request, "engineers/tokens.html", context)


# never_cache: the answer to a creation holds the token itself, which no cache or back button may keep.
@never_cache
@engineer_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _tokens_page(request, ApiTokenForm())
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _tokens_page(request, form)
    try:
        created = api_token_create(
            user=authenticated_user(request),
            name=form.cleaned_data["name"],
            lifetime=form.cleaned_lifetime(),
            reason="Created on the API tokens page",
        )
    except ValidationError as error:
        form.add_error(None, error)
        return _tokens_page(request, form)
    # The token is shown in this answer only: a fresh, empty form goes with it.
    return _tokens_page(request, ApiTokenForm(), new_token=created)


@never_cache
@engineer_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_token_revoke_confirm(request: HttpRequest, digest: str) -> HttpResponse:
    """GET asks for confirmation; POST revokes the token at once."""
    user = authenticated_user(request)
    token = api_token_of(user=user, digest=digest)
    if request.method != "POST":
        context = {"token": token, "details": getattr(token, "details", None)}
        return render(request, "engineers/token_revoke.html", context)
    details = api_token_revoke(token=token, actor=user, reason="Revoked on the API tokens page")
    name = f"“{details.name}”" if details.name else "without a name"
    messages.success(request, f"Token {name} is revoked: it no longer opens the API.")
    return redirect("engineers:tokens")
