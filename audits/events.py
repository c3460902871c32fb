"""The types of the ledger's events: every service that appends an event names its type from here.

Plain strings, not an Enum: the type is hashed into its event (``audits.ledger.event_hash``), so it must be
exactly this text wherever it is written, compared or serialised.
"""


class LedgerEvent:
    MODEL_REGISTERED = "model.registered"
    MODEL_UPDATED = "model.updated"
    VERSION_REGISTERED = "version.registered"
    PROMOTION_REQUESTED = "promotion.requested"
    PROMOTION_GATE_OVERRIDDEN = "promotion.gate_overridden"
    PROMOTION_DECIDED = "promotion.decided"
    POLICY_CREATED = "policy.created"
    POLICY_CHANGED = "policy.changed"
    POLICY_STOP_SWITCH = "policy.stop_switch"
    PREDICTION_ROUTED = "prediction.routed"
    REVIEW_SUBMITTED = "review.submitted"
    REVIEW_CORRECTED = "review.corrected"
    TASK_ESCALATED = "task.escalated"
    DECISION_MADE = "decision.made"
    DECISION_REVERSED = "decision.reversed"
    OUTCOME_REPORTED = "outcome.reported"
    GOLD_CASE_CREATED = "gold_case.created"
    GOLD_CASE_RETIRED = "gold_case.retired"
    AUDIT_FINISHED = "audit.finished"
    # A failed bias audit. Today it is sent only as the webhook event of the same name
    # (reviews.services.webhooks.AUDIT_FAILED_EVENT), not appended to the ledger.
    AUDIT_FAILED = "audit.failed"
    RETENTION_PURGED = "retention.purged"
    TRAINING_DATA_EXPORTED = "training_data.exported"
    RETRAINING_REQUESTED = "retraining.requested"
    RETRAINING_FINISHED = "retraining.finished"
    RETRAINING_FAILED = "retraining.failed"


# Every type, in the order above: the choices of the ledger admin's event type filter.
LEDGER_EVENT_TYPES: tuple[str, ...] = tuple(
    value for name, value in vars(LedgerEvent).items() if name.isupper() and isinstance(value, str)
)

# The object type of a bias audit's events. The other governed records are named by their model's label
# ("reviews.decision"); audits were named before that convention held here, and the name is hashed into every
# sealed audit event, so it stays.
BIAS_AUDIT_OBJECT_TYPE = "bias_audit"

# Each type in words, for people: the console's lists, filters and pages say "Decision made", never
# "decision.made". A type missing here (none should be) falls back to ``ledger_event_label``'s own wording.
LEDGER_EVENT_LABELS: dict[str, str] = {
    LedgerEvent.MODEL_REGISTERED: "Model registered",
    LedgerEvent.MODEL_UPDATED: "Model updated",
    LedgerEvent.VERSION_REGISTERED: "Version registered",
    LedgerEvent.PROMOTION_REQUESTED: "Promotion requested",
    LedgerEvent.PROMOTION_GATE_OVERRIDDEN: "Promotion gate overridden",
    LedgerEvent.PROMOTION_DECIDED: "Promotion decided",
    LedgerEvent.POLICY_CREATED: "Routing policy created",
    LedgerEvent.POLICY_CHANGED: "Routing policy changed",
    LedgerEvent.POLICY_STOP_SWITCH: "Stop switch turned on or off",
    LedgerEvent.PREDICTION_ROUTED: "Case routed",
    LedgerEvent.REVIEW_SUBMITTED: "Review submitted",
    LedgerEvent.REVIEW_CORRECTED: "Review corrected",
    LedgerEvent.TASK_ESCALATED: "Task escalated to an adjudicator",
    LedgerEvent.DECISION_MADE: "Decision made",
    LedgerEvent.DECISION_REVERSED: "Decision reversed on appeal",
    LedgerEvent.OUTCOME_REPORTED: "Outcome reported",
    LedgerEvent.GOLD_CASE_CREATED: "Gold case created",
    LedgerEvent.GOLD_CASE_RETIRED: "Gold case retired",
    LedgerEvent.AUDIT_FINISHED: "Bias audit finished",
    LedgerEvent.AUDIT_FAILED: "Bias audit failed",
    LedgerEvent.RETENTION_PURGED: "Personal data purged (retention)",
    LedgerEvent.TRAINING_DATA_EXPORTED: "Training data exported",
    LedgerEvent.RETRAINING_REQUESTED: "Retraining requested",
    LedgerEvent.RETRAINING_FINISHED: "Retraining finished",
    LedgerEvent.RETRAINING_FAILED: "Retraining failed",
}


def ledger_event_label(event_type: str) -> str:
    """An event type in words: "decision.made" -> "Decision made"."""
    if event_type in LEDGER_EVENT_LABELS:
        return LEDGER_EVENT_LABELS[event_type]
    words = event_type.replace(".", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]
