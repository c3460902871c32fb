"""Types the apps' services and selectors share."""

from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from django.http import HttpRequest
    from rest_framework.request import Request

# Whom a selector answers for: a request's user, logged in or not. Services that write take a `User`.
RequestUser = User | AnonymousUser


def authenticated_user(request: "HttpRequest | Request") -> User:
    """The user of a request to a view behind login (or an API view whose permission requires one), for services.

    Such a view never sees an anonymous user; were one to get through, it is refused rather than acted for.
    """
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("Log in first.")
    return user
