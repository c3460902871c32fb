"""What a person or script sees once too many wrong passwords locked a username or an address (django-axes)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKED_OUT_STATUS = 429


def _minutes(request: HttpRequest) -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """429 with a clear message: JSON for the API (the token endpoint), the login page's own template otherwise."""
    minutes = _minutes(request)
    message = (
        f"Too many failed logins for this account or from this address: logging in is locked for {minutes} "
        "minutes. An administrator can unlock it now (console: Axes > Access attempts)."
    )
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=LOCKED_OUT_STATUS)
    else:
        response = render(
            request, "registration/locked_out.html", {"message": message, "minutes": minutes}, status=LOCKED_OUT_STATUS
        )
    response["Retry-After"] = str(minutes * 60)
    return response
