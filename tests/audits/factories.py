import factory
from django.utils import timezone

from audits.choices import AuditPopulation, AuditStatus, AuditVerdict
from audits.models import BiasAudit


class BiasAuditFactory(factory.django.DjangoModelFactory):
    """A finished, passing audit of a version's labels: what the production gate asks for."""

    class Meta:
        model = BiasAudit

    version = None
    model = factory.LazyAttribute(lambda o: o.version.model)
    population = AuditPopulation.MODEL
    sensitive_attributes = factory.LazyFunction(lambda: ["sex"])
    status = AuditStatus.SUCCEEDED
    verdict = AuditVerdict.PASSED
    passed = True
    progress = 100
    summary = factory.LazyFunction(lambda: ["Every group was selected at 80% or more of the highest group's rate."])
    inputs_sha256 = "0" * 64
    case_count = 400
    key_ratio = 0.91
    finished_at = factory.LazyFunction(timezone.now)
