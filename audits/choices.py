from django.db import models


class ExportKind(models.TextChoices):
    CASE = "case", "One case's whole trail"
    DECISIONS = "decisions", "All decisions of a model in a period"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON"


# What an export's file is, as its download says (Content-Type).
EXPORT_CONTENT_TYPES = {ExportFormat.CSV: "text/csv; charset=utf-8", ExportFormat.JSON: "application/json"}


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


# The governed event types the apps append (issue 5 and the services that exist), for a fixed-choice filter: listing
# the types present would be a DISTINCT scan of the whole ledger. A type missing here is still stored and verified,
# only not offered as a filter choice.
LEDGER_EVENT_TYPES = (
    "model.registered",
    "model.updated",
    "version.registered",
    "promotion.requested",
    "promotion.decided",
    "policy.created",
    "policy.changed",
    "policy.stop_switch",
    "prediction.routed",
    "review.submitted",
    "review.corrected",
    "task.escalated",
    "decision.made",
    "decision.reversed",
    "outcome.reported",
    "gold_case.created",
    "gold_case.retired",
    "audit.finished",
    "retraining.finished",
    "retention.purged",
)


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


class AuditVerdict(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
