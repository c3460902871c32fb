"""Seal every ledger event (HMAC-SHA256 of its hash under LEDGER_ANCHOR_KEY) and sign the heads recorded so far.

Events already in the chain are sealed with the current key, so the chain verifies as before; from here on, an
event written without the key fails verification. On PostgreSQL the append-only trigger (0002) refuses the
UPDATE, so it is disabled for the sealing and enabled again in the same transaction: the trigger stays.
Intact verifications recorded so far get their head signed, so later verifications compare against them.
The formulas are spelled out here, not imported, so this migration keeps meaning what it meant when it ran.
"""

import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models

BATCH_SIZE = 2000
TRIGGER = "audits_decisionevent_append_only"


def _key() -> bytes:
    if not settings.LEDGER_ANCHOR_KEY:
        raise ImproperlyConfigured("Set LEDGER_ANCHOR_KEY before migrating: the existing ledger events are sealed.")
    return settings.LEDGER_ANCHOR_KEY.encode("utf-8")


def _set_trigger(schema_editor, enabled: bool) -> None:
    if schema_editor.connection.vendor == "postgresql":
        action = "ENABLE" if enabled else "DISABLE"
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE audits_decisionevent {action} TRIGGER {TRIGGER}")


def seal_existing_events(apps, schema_editor) -> None:
    """Seal the events written before seals existed, and sign the heads of intact verifications."""
    DecisionEvent = apps.get_model("audits", "DecisionEvent")
    LedgerCheck = apps.get_model("audits", "LedgerCheck")
    unsealed = DecisionEvent.objects.filter(seal="")
    intact = LedgerCheck.objects.filter(status="intact", head_signature="")
    if not unsealed.exists() and not intact.exists():
        return
    key = _key()
    _set_trigger(schema_editor, enabled=False)
    try:
        last_id = 0
        while True:
            batch = list(unsealed.filter(id__gt=last_id).order_by("id").values_list("id", "hash")[:BATCH_SIZE])
            if not batch:
                break
            DecisionEvent.objects.bulk_update(
                [
                    DecisionEvent(id=event_id, seal=hmac.digest(key, digest.encode("ascii"), hashlib.sha256).hex())
                    for event_id, digest in batch
                ],
                ["seal"],
            )
            last_id = batch[-1][0]
    finally:
        _set_trigger(schema_editor, enabled=True)
    for check in intact:
        head = {"event_count": check.checked, "last_event_id": check.last_event_id, "head_hash": check.head_hash}
        text = json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        check.head_signature = hmac.digest(key, text.encode("utf-8"), hashlib.sha256).hex()
        check.save(update_fields=["head_signature"])


class Migration(migrations.Migration):
    dependencies = [("audits", "0005_ledger_indexes_without_like_patterns")]

    operations = [
        migrations.AddField(
            model_name="decisionevent",
            name="seal",
            field=models.CharField(
                default="", help_text="HMAC-SHA256 of the hash under the deployment's ledger key.", max_length=64
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="origin",
            field=models.CharField(
                choices=[
                    ("console", "Console"),
                    ("schedule", "Schedule"),
                    ("command", "manage.py verify_ledger"),
                    ("anchor", "Anchor task"),
                ],
                default="console",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="head_signature",
            field=models.CharField(
                blank=True,
                help_text="HMAC-SHA256 of the recorded head under the ledger key (intact runs).",
                max_length=64,
            ),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="heads_compared",
            field=models.PositiveIntegerField(default=0, help_text="Earlier recorded heads still in the chain."),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="rows_reconciled",
            field=models.PositiveBigIntegerField(default=0, help_text="Governed rows compared with the ledger."),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="mismatch_count",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="mismatches",
            field=models.JSONField(
                blank=True, default=list, help_text="The first mismatches: table, id, field, ledger value, row value."
            ),
        ),
        migrations.AddField(
            model_name="ledgercheck",
            name="unrecorded",
            field=models.JSONField(
                blank=True, default=dict, help_text="Governed rows no ledger event names, by table."
            ),
        ),
        migrations.RunPython(seal_existing_events, migrations.RunPython.noop, elidable=False),
    ]
