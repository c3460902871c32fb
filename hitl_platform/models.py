"""What knox does not keep about an API token: its holder's name for it, when it was last used, and its revocation.

knox's ``AuthToken`` holds only a digest, a lookup prefix, the user and two dates, and is deleted when it is revoked
or found expired. These details outlive it (the link is then empty), so the token's history rows still say who
created it and who revoked it, and when.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from knox.models import AuthToken
from simple_history.models import HistoricalRecords

TOKEN_NAME_MAX_LENGTH = 100


class ApiTokenDetails(models.Model):
    token = models.OneToOneField(AuthToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="details")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token_details")
    name = models.CharField(max_length=TOKEN_NAME_MAX_LENGTH, help_text="What the holder calls it, e.g. its script.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Recorded at most once a minute per token (see hitl_platform.tokens.api_token_record_use); no history row.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = HistoricalRecords(excluded_fields=["last_used_at"])

    class Meta:
        verbose_name = "API token details"
        verbose_name_plural = "API token details"

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"
