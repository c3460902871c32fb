from django.db import models


class ModelTask(models.TextChoices):
    BINARY = "binary", "Binary classification"
    MULTICLASS = "multiclass", "Multiclass classification"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Stage(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"
    ARCHIVED = "archived", "Archived"
    REJECTED = "rejected", "Rejected"


# Stages a promotion request may aim at, and the stages a version may be promoted from.
PROMOTION_TARGETS = (Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)
PROMOTABLE_FROM = {
    Stage.STAGING: (Stage.CANDIDATE,),
    Stage.PRODUCTION: (Stage.CANDIDATE, Stage.STAGING),
    Stage.ARCHIVED: (Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION),
}


class PromotionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
