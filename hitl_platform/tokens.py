"""Writes of API tokens made and revoked by their holders: on the API tokens page and through the token endpoint.

Each creation and revocation leaves a history row of the token's details (who, when, why); the token itself is
knox's, stored only as a digest and shown once, in the answer that creates it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken

from hitl_platform.history import historise
from hitl_platform.models import TOKEN_NAME_MAX_LENGTH, ApiTokenDetails
from hitl_platform.selectors import api_token_max_lifetime

# How often a token's last use is written: often enough to tell a live script from a forgotten one, rarely enough
# that a busy script costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedToken:
    """A new token: ``key`` is what its holder sends, returned here once and stored nowhere."""

    key: str
    details: ApiTokenDetails


@transaction.atomic
def api_token_create(*, user: User, name: str, lifetime: timedelta, reason: str) -> CreatedToken:
    """A new token of ``user``'s, named by them, expiring after ``lifetime`` (at most API_TOKEN_TTL_HOURS)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the token, e.g. after the script that will use it."})
    if len(name) > TOKEN_NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Keep the name to {TOKEN_NAME_MAX_LENGTH} characters."})
    if lifetime <= timedelta(0) or lifetime > api_token_max_lifetime():
        raise ValidationError({"lifetime": "Choose one of the offered lifetimes."})
    token, key = AuthToken.objects.create(user=user, expiry=lifetime)
    details = ApiTokenDetails(token=token, user=user, name=name, created_at=token.created, expires_at=token.expiry)
    historise(details, actor=user, reason=reason)
    details.save()
    return CreatedToken(key=key, details=details)


def _details_of(token: AuthToken) -> ApiTokenDetails:
    # A token made elsewhere (the console, a fixture) has no details yet: its revocation still gets a record.
    try:
        return token.details
    except ObjectDoesNotExist:
        return ApiTokenDetails(token=token, user=token.user, name="", created_at=token.created, expires_at=token.expiry)


@transaction.atomic
def api_token_revoke(*, token: AuthToken, actor: User, reason: str) -> ApiTokenDetails:
    """Revoke ``token`` at once: it is deleted (knox refuses it from now on) and its details say who and when."""
    details = _details_of(token)
    details.revoked_at = timezone.now()
    details.revoked_by = actor
    historise(details, actor=actor, reason=reason)
    details.save()
    token.delete()
    details.token = None
    return details


def api_token_record_use(*, token: AuthToken, now: datetime | None = None) -> None:
    """Note that ``token`` was just used, unless that was noted less than a minute ago (then no query at all).

    The caller loads the details with the token (select_related), so a fresh note costs nothing; tokens without
    details (made outside this module) are not tracked.
    """
    try:
        details = token.details
    except ObjectDoesNotExist:
        return
    now = now or timezone.now()
    if details.last_used_at is not None and now - details.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ApiTokenDetails.objects.filter(stale, pk=details.pk).update(last_used_at=now)
    details.last_used_at = now
