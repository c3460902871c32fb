from django.db import models


class DecisionEvent(models.Model):
    """One governed event in the append-only, SHA-256-chained decision ledger.

    Rows are written only by ``audits.ledger``. Each row's hash covers its own content and the previous row's
    hash, so altering, removing, inserting or reordering any row breaks the chain from that point on.
    The payload holds ids, labels, versions, reasons and input hashes, never raw personal data.
    """

    event_type = models.CharField(max_length=50, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="User id; no foreign key, rows outlive users.")
    actor_label = models.CharField(max_length=150, help_text="Username at the time, or 'system'.")
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    payload = models.TextField(help_text="Canonical JSON (sorted keys, no spaces), exactly as hashed.")
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        permissions = [("verify_ledger", "Can verify the ledger chain and export its head hash")]
        indexes = [models.Index(fields=["object_type", "object_id"], name="ledger_object")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} {self.object_type}:{self.object_id}"
