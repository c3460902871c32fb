from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from audits.choices import (
    AuditPopulation,
    AuditStatus,
    AuditTrigger,
    AuditVerdict,
    DriftVerdict,
    ExportFormat,
    ExportKind,
    JobStatus,
    LedgerCheckOrigin,
    LedgerCheckStatus,
    Mitigation,
    RetrainingTrigger,
)


class DecisionEvent(models.Model):
    """One governed event in the append-only, SHA-256-chained decision ledger.

    Rows are written only by ``audits.ledger``. Each row's hash covers its own content and the previous row's
    hash, so altering, removing, inserting or reordering any row breaks the chain from that point on; its seal
    (HMAC-SHA256 of the hash under ``LEDGER_ANCHOR_KEY``) makes an event written without the key detectable.
    The payload holds ids, labels, versions, reasons and input hashes, never raw personal data.
    On PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE on this table.
    """

    event_type = models.CharField(max_length=50)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="User id; no foreign key, rows outlive users.")
    actor_label = models.CharField(max_length=150, help_text="Username at the time, or 'system'.")
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    payload = models.TextField(help_text="Canonical JSON (sorted keys, no spaces), exactly as hashed.")
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    seal = models.CharField(max_length=64, help_text="HMAC-SHA256 of the hash under the deployment's ledger key.")

    class Meta:
        ordering = ["id"]
        permissions = [("verify_ledger", "Can verify the ledger chain and export its head hash")]
        # Declared here rather than with db_index/unique on the fields: those add a second, LIKE-pattern
        # index on PostgreSQL that nothing queries and every append pays for.
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="ledger_object"),
            models.Index(fields=["event_type"], name="ledger_event_type"),
        ]
        constraints = [models.UniqueConstraint(fields=["hash"], name="ledger_unique_hash")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.event_type} {self.object_type}:{self.object_id}"


class LedgerCheck(models.Model):
    """One run of the full-chain verification: who asked, when, and the head hash or the first broken link.

    Kept as a log, so an auditor sees that the chain was verified regularly. An intact run records its head
    (event count, last event id, head hash) with a signature under the ledger key; every later run must find
    each recorded head still in the chain, so a chain cut short or rewritten never becomes a new head. A run
    also reconciles the governed rows against their latest ledger events and keeps the mismatches it found.
    """

    status = models.CharField(max_length=20, choices=LedgerCheckStatus.choices, default=LedgerCheckStatus.QUEUED)
    origin = models.CharField(max_length=20, choices=LedgerCheckOrigin.choices, default=LedgerCheckOrigin.CONSOLE)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty for scheduled runs.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    checked = models.PositiveBigIntegerField(default=0, help_text="Events whose link was verified.")
    head_hash = models.CharField(max_length=64, blank=True, help_text="Hash of the last verified event.")
    last_event_id = models.BigIntegerField(null=True, blank=True)
    broken_event_id = models.BigIntegerField(null=True, blank=True)
    expected_hash = models.CharField(max_length=64, blank=True)
    found_hash = models.CharField(max_length=64, blank=True)
    problem = models.TextField(blank=True)
    head_signature = models.CharField(
        max_length=64, blank=True, help_text="HMAC-SHA256 of the recorded head under the ledger key (intact runs)."
    )
    heads_compared = models.PositiveIntegerField(default=0, help_text="Earlier recorded heads still in the chain.")
    rows_reconciled = models.PositiveBigIntegerField(default=0, help_text="Governed rows compared with the ledger.")
    mismatch_count = models.PositiveBigIntegerField(default=0)
    mismatches = models.JSONField(
        default=list, blank=True, help_text="The first mismatches: table, id, field, ledger value, row value."
    )
    unrecorded = models.JSONField(default=dict, blank=True, help_text="Governed rows no ledger event names, by table.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Ledger check {self.pk} ({self.status})"


def export_file_path(instance: "Export", filename: str) -> str:
    # Under MEDIA_ROOT/exports, which no URL serves: files leave only through the permission-checked download.
    return f"exports/{timezone.now():%Y/%m}/export-{instance.pk}-{instance.kind}.{instance.format}"


class Export(models.Model):
    """A requested export (one case's trail, or all decisions of a model in a period) and its file.

    Written by a Celery task; status changes are historised (who asked, when it finished), progress ticks are not.
    """

    kind = models.CharField(max_length=20, choices=ExportKind.choices)
    format = models.CharField(max_length=10, choices=ExportFormat.choices, default=ExportFormat.CSV)
    prediction = models.ForeignKey(
        "reviews.Prediction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model = models.ForeignKey(
        "models_registry.MLModel", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    row_count = models.PositiveIntegerField(null=True, blank=True)
    file = models.FileField(upload_to=export_file_path, blank=True, max_length=300)
    file_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["progress"])

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind=ExportKind.CASE) | Q(prediction__isnull=False), name="case_export_names_a_case"
            ),
            models.CheckConstraint(
                condition=~Q(kind=ExportKind.DECISIONS)
                | Q(model__isnull=False, period_start__isnull=False, period_end__isnull=False),
                name="decisions_export_names_model_and_period",
            ),
        ]

    def __str__(self) -> str:
        return f"Export {self.pk}: {self.get_kind_display()} ({self.status})"


class DashboardDay(models.Model):
    """One model's dashboard figures for the cases that arrived on one day: a cache, rebuilt from the records.

    Counts add up over a period; the decision-time histogram and the agreement statistics are what a median and
    Krippendorff's alpha are made of (see ``audits.dashboard_math``). Rebuilt by ``dashboard_refresh``: recent
    days every few minutes, the whole dashboard window nightly (late outcomes, appeals, SLA states).
    """

    model = models.ForeignKey("models_registry.MLModel", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    volume = models.PositiveIntegerField(default=0)
    auto_decided = models.PositiveIntegerField(default=0)
    human_decided = models.PositiveIntegerField(default=0)
    overridden = models.PositiveIntegerField(default=0, help_text="Human decisions that differ from the model.")
    qa_total = models.PositiveIntegerField(default=0)
    qa_correct = models.PositiveIntegerField(default=0)
    outcome_total = models.PositiveIntegerField(default=0)
    outcome_correct = models.PositiveIntegerField(default=0)
    sla_breaches = models.PositiveIntegerField(default=0)
    decision_minutes = models.JSONField(default=dict, help_text="Histogram of minutes to a human decision.")
    agreement_cases = models.PositiveIntegerField(default=0)
    agreement_disagreement = models.FloatField(default=0.0)
    agreement_labels = models.JSONField(default=dict, help_text="Pairable reviewer labels, label -> count.")
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "day"], name="one_dashboard_day_per_model")]
        indexes = [models.Index(fields=["day"], name="dashboard_day")]

    def __str__(self) -> str:
        return f"{self.model_id} {self.day}"


class AuditPolicy(models.Model):
    """One model's bias-audit thresholds, promotion-gate freshness and schedule; changes are historised with a reason.

    A model without a policy is audited with the defaults below (the four-fifths rule, an equalized odds
    difference of at most 0.1, groups of 30 cases or more).
    """

    model = models.OneToOneField("models_registry.MLModel", on_delete=models.PROTECT, related_name="audit_policy")
    demographic_parity_ratio_min = models.FloatField(
        default=0.8, help_text="Lowest selection rate over the highest, per attribute (the four-fifths rule: 0.8)."
    )
    equalized_odds_difference_max = models.FloatField(
        default=0.1, help_text="Largest gap in true or false positive rates between groups."
    )
    min_group_size = models.PositiveIntegerField(
        default=30, help_text="A group with fewer cases is shown but 'too small to judge', never passed or failed."
    )
    bootstrap_samples = models.PositiveIntegerField(
        default=1000, help_text="Resamples for the confidence intervals; 0 computes none."
    )
    gate_max_age_days = models.PositiveIntegerField(
        default=30, help_text="Production needs a passing audit of the version no older than this."
    )
    schedule_every_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Audit the model's decisions every N days (django-celery-beat); empty: never."
    )
    schedule_population = models.CharField(
        max_length=20, choices=AuditPopulation.choices, default=AuditPopulation.DECISIONS
    )
    schedule_window_days = models.PositiveIntegerField(default=30, help_text="A scheduled audit covers this many days.")
    retraining_min_labels = models.PositiveIntegerField(
        default=100, help_text="Retraining needs at least this many human-decided cases of the model."
    )
    retraining_after_new_labels = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Retrain once this many cases were decided by humans since the base version was registered; "
        "empty: never on its own.",
    )
    retraining_every_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Retrain every N days (django-celery-beat); empty: never on a schedule."
    )
    drift_threshold = models.FloatField(
        default=0.25, help_text="A feature or the confidence has drifted above this population stability index."
    )
    drift_window_days = models.PositiveIntegerField(
        default=7, help_text="The daily drift check compares the cases of this many recent days."
    )
    retraining_on_drift = models.BooleanField(default=False, help_text="Queue a retraining when drift is found.")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        verbose_name = "bias audit policy"
        verbose_name_plural = "bias audit policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(demographic_parity_ratio_min__gte=0, demographic_parity_ratio_min__lte=1),
                name="audit_policy_parity_ratio_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=Q(equalized_odds_difference_max__gte=0, equalized_odds_difference_max__lte=1),
                name="audit_policy_odds_difference_between_0_and_1",
            ),
            models.CheckConstraint(condition=Q(drift_threshold__gt=0), name="audit_policy_drift_threshold_above_0"),
        ]

    def __str__(self) -> str:
        return f"Bias audit policy of {self.model}"


class BiasAudit(models.Model):
    """One bias audit: its scope (model, version, period, population, attributes), its run, and its result.

    ``inputs`` holds the exact cells, thresholds and settings it was computed from, so anyone can recompute
    it (``audits.fairness.audit_recompute``); ``inputs_sha256`` is what the ``audit.finished`` ledger event
    carries. Status changes are historised; progress and heartbeat ticks are not.
    """

    model = models.ForeignKey("models_registry.MLModel", on_delete=models.PROTECT, related_name="bias_audits")
    version = models.ForeignKey(
        "models_registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="bias_audits"
    )
    population = models.CharField(max_length=20, choices=AuditPopulation.choices)
    sensitive_attributes = models.JSONField(help_text="Each audited alone, then their intersection.")
    since = models.DateTimeField(null=True, blank=True, help_text="Cases received from (inclusive).")
    until = models.DateTimeField(null=True, blank=True, help_text="Cases received before (exclusive).")
    trigger = models.CharField(max_length=20, choices=AuditTrigger.choices, default=AuditTrigger.MANUAL)
    promotion_request = models.ForeignKey(
        "models_registry.PromotionRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=AuditStatus.choices, default=AuditStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started, retries included.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the running worker.")
    error = models.TextField(blank=True)
    verdict = models.CharField(max_length=20, choices=AuditVerdict.choices, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    summary = models.JSONField(default=list, blank=True, help_text="The findings in plain language.")
    result = models.JSONField(null=True, blank=True, help_text="Per-group and between-group figures.")
    inputs = models.JSONField(null=True, blank=True, help_text="Cells, thresholds and settings: enough to recompute.")
    inputs_sha256 = models.CharField(max_length=64, blank=True)
    case_count = models.PositiveBigIntegerField(null=True, blank=True)
    key_ratio = models.FloatField(
        null=True, blank=True, help_text="The lowest demographic parity ratio of any attribute: the trend's figure."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["progress", "heartbeat_at", "result", "inputs"])

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_biasaudit", "Can audit any model")]
        indexes = [
            models.Index(fields=["model", "-created_at"], name="bias_audit_model_newest"),
            models.Index(fields=["version", "population", "-finished_at"], name="bias_audit_version_finished"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(since__isnull=True) | Q(until__isnull=True) | Q(since__lt=F("until")),
                name="bias_audit_period_ends_after_it_starts",
            ),
        ]

    def __str__(self) -> str:
        return f"Bias audit {self.pk} of {self.model} ({self.status})"


class RetrainingJob(models.Model):
    """One retraining of a model from its human-verified labels: the base version, the exact training set, the
    candidate it produced with its side-by-side comparison, and the pending promotion request a human decides.

    ``snapshot`` records what the set was (row count, label and group balance, the SHA-256 of its sorted case ids
    and labels, the filter that rebuilds it); ``comparison`` the base and candidate metrics on the same holdout.
    At most one job per model is queued or running (a partial unique constraint). Status changes are historised.
    """

    model = models.ForeignKey("models_registry.MLModel", on_delete=models.PROTECT, related_name="retraining_jobs")
    base_version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    candidate_version = models.ForeignKey(
        "models_registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trigger = models.CharField(max_length=20, choices=RetrainingTrigger.choices, default=RetrainingTrigger.MANUAL)
    mitigation = models.CharField(max_length=30, choices=Mitigation.choices, default=Mitigation.NONE)
    mitigation_attribute = models.CharField(
        max_length=100, blank=True, help_text="The sensitive attribute the fairness constraint is on."
    )
    holdout_share = models.FloatField(default=0.2, help_text="Share of the cases held out (stratified) to compare.")
    seed = models.PositiveIntegerField(default=0, help_text="Seeds the holdout split and the fit.")
    status = models.CharField(max_length=20, choices=AuditStatus.choices, default=AuditStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Runs started, retries included.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the running worker.")
    error = models.TextField(blank=True)
    snapshot = models.JSONField(null=True, blank=True, help_text="What the training set was, to rebuild and check.")
    comparison = models.JSONField(null=True, blank=True, help_text="Base and candidate on the same holdout.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent in each stage.")
    audit = models.ForeignKey(
        BiasAudit, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="The candidate's audit."
    )
    promotion_request = models.ForeignKey(
        "models_registry.PromotionRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["progress", "heartbeat_at"])

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_retrainingjob", "Can retrain any model")]
        indexes = [models.Index(fields=["model", "-created_at"], name="retraining_job_model_newest")]
        constraints = [
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_retraining_job_per_model",
            ),
            models.CheckConstraint(
                condition=Q(holdout_share__gt=0, holdout_share__lt=1), name="retraining_holdout_share_between_0_and_1"
            ),
        ]

    def __str__(self) -> str:
        return f"Retraining job {self.pk} of {self.model} ({self.status})"


class DriftCheck(models.Model):
    """One daily comparison of a model's recent intake with its production version's reference (PSI per feature
    and of the confidence). An observation, not a governed change: written once, never edited."""

    model = models.ForeignKey("models_registry.MLModel", on_delete=models.PROTECT, related_name="drift_checks")
    version = models.ForeignKey("models_registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    reference_words = models.CharField(max_length=200, help_text="What recent intake was compared against.")
    window_days = models.PositiveIntegerField()
    threshold = models.FloatField()
    recent_count = models.PositiveIntegerField()
    verdict = models.CharField(max_length=20, choices=DriftVerdict.choices)
    max_psi = models.FloatField(null=True, blank=True)
    drifted_features = models.JSONField(default=list, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="Per feature: PSI, buckets before and after.")
    retraining_job = models.ForeignKey(
        RetrainingJob, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Queued by it."
    )
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["model", "-checked_at"], name="drift_check_model_newest")]

    def __str__(self) -> str:
        return f"Drift check {self.pk} of {self.model} ({self.verdict})"
