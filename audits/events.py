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
