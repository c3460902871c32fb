"""Error answers: JSON for API clients (any path under /api/), a friendly page with a way back for people.

The handlers serve DEBUG off. With DEBUG on Django answers 404s and uncaught exceptions with its technical
HTML pages instead of calling the handlers, so ``ApiJsonErrorsMiddleware`` turns any HTML error an API path
would get into the same JSON: an API client never has to parse HTML, whatever the settings.
"""

from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"

API_ERROR_DETAILS = {
    400: "The request was malformed.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    500: "Server error: the request could not be completed. It has been logged.",
}


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error_response(status: int) -> JsonResponse:
    detail = API_ERROR_DETAILS.get(status) or f"{HTTPStatus(status).phrase}."
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return api_error_response(400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return api_error_response(403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return api_error_response(404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """templates/500.html is rendered without a context: no database, session or user lookup can fail again."""
    if is_api_request(request):
        return api_error_response(500)
    return defaults.server_error(request)


class ApiJsonErrorsMiddleware:
    """An HTML error response on an API path (Django's DEBUG pages, a CSRF refusal) becomes the API's JSON."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            is_api_request(request)
            and response.status_code >= 400
            and response.get("Content-Type", "").startswith("text/html")
        ):
            json_response = api_error_response(response.status_code)
            for header in ("Allow", "WWW-Authenticate", "Retry-After"):
                if header in response:
                    json_response[header] = response[header]
            return json_response
        return response
