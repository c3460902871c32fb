"""One JSON error shape for the whole API, and no 500 for anything a client can send."""

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from hitl_platform.api.authentication import UNSUPPORTED_SCHEME, authorization_scheme_unsupported


def api_exception_handler(exc, context):
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "The request body is larger than this server accepts."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response({"detail": "The request has too many form fields."}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, SuspiciousOperation):
        return Response({"detail": "The request was malformed."}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = ValidationError(detail=detail)
    request = context.get("request")
    if isinstance(exc, NotAuthenticated) and request is not None and authorization_scheme_unsupported(request):
        exc = NotAuthenticated(UNSUPPORTED_SCHEME)
    return exception_handler(exc, context)
