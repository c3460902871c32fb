from django.db import models


class ExportKind(models.TextChoices):
    CASE = "case", "One case's whole trail"
    DECISIONS = "decisions", "All decisions of a model in a period"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


# What an export's file is, as its download says (Content-Type), by the format the export stores.
EXPORT_CONTENT_TYPES: dict[str, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.JSON: "application/json",
}


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class LedgerCheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    INTACT = "intact", "Intact"
    BROKEN = "broken", "Broken"
    FAILED = "failed", "Failed to run"


class LedgerCheckOrigin(models.TextChoices):
    CONSOLE = "console", "Console"
    SCHEDULE = "schedule", "Schedule"
    COMMAND = "command", "manage.py verify_ledger"
    ANCHOR = "anchor", "Anchor task"


class AuditPopulation(models.TextChoices):
    MODEL = "model", "The model's labels"
    DECISIONS = "decisions", "The final decisions"
    REVIEWERS = "reviewers", "The reviewers' labels"
    AMPLIFICATION = "amplification", "What human review changed"


class AuditStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class AuditTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    SCHEDULE = "schedule", "On schedule"
    PROMOTION = "promotion", "Production requested for a version"
    RETRAINING = "retraining", "A retrained candidate, on its holdout"


class AuditVerdict(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"


class RetrainingTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    SCHEDULE = "schedule", "On schedule"
    NEW_LABELS = "new_labels", "New human labels"
    DRIFT = "drift", "Drift"


class Mitigation(models.TextChoices):
    NONE = "none", "None"
    DEMOGRAPHIC_PARITY = "demographic_parity", "Demographic parity"
    EQUALIZED_ODDS = "equalized_odds", "Equalized odds"


class DriftVerdict(models.TextChoices):
    # The values audits.drift gives a report's verdict.
    DRIFTED = "drifted", "Drifted"
    STABLE = "stable", "Stable"
    NOT_COMPARED = "not compared", "Not compared"
