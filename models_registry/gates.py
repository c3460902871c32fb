"""Promotion gates: checks that must pass before a promotion request may be approved.

A gate is a callable ``gate(version, target_stage) -> GateResult``. Other apps register theirs when they load
(the audits app adds "a recent passing bias audit of this version"), so this app never imports them: the
dependency points from audits to the registry, not back. Every registered gate runs on every approval; a gate
that does not concern a target stage passes and says so. A gate that raises counts as failed: approval fails
closed.

Built-in gates:

- ``model_file_integrity``: for staging and production, a version that has a model file must still have exactly
  the file that was registered (its SHA-256 is recomputed from storage). A version without a file is scored by
  its caller and passes.
- ``schema_scoring``: for staging and production, a version's model file loads with the trusted types, takes the
  columns its model's feature schema gives it, and answers a small deterministic sample of inputs built from that
  schema with the model's labels and probabilities that are finite, within [0, 1] and sum to 1. The evidence
  lists what failed, in words, and the inputs it was scored on.
- ``evaluation_metrics``: production needs recorded evaluation metrics, so the person approving decides on
  evidence rather than on the rationale alone.
- ``model_card``: a high- or critical-risk model reaches production only with its intended use, limitations and
  ethical considerations written down (EU AI Act art. 11 and 13: the documentation a deployer relies on).
"""

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from models_registry.choices import RiskTier, Stage
from models_registry.scoring import model_file_check

if TYPE_CHECKING:
    from models_registry.models import ModelVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: its name, pass or fail, and why, in words a compliance officer can act on.

    ``evidence`` names what the gate relied on, as plain data (e.g. the id and page of the bias audit it found),
    so the request records it beside the decision.
    """

    name: str
    passed: bool
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PromotionGate = Callable[["ModelVersion", str], GateResult]

_GATES: dict[str, PromotionGate] = {}


def register_promotion_gate(gate: PromotionGate, *, name: str | None = None) -> PromotionGate:
    """Add a gate to every future approval; registering the same name again replaces it (safe on reload).

    Usable as a decorator. Call it from an ``AppConfig.ready()`` so the gate exists in every process.
    """
    _GATES[name or gate.__name__] = gate
    return gate


def registered_promotion_gates() -> dict[str, PromotionGate]:
    return dict(_GATES)


def promotion_gates_run(*, version: "ModelVersion", target_stage: str) -> list[GateResult]:
    """Run every registered gate in registration order; a gate that raises fails with the error as its reason."""
    results = []
    for name, gate in _GATES.items():
        try:
            result = gate(version, target_stage)
        except Exception as exc:
            logger.exception("Promotion gate %s raised on version %s", name, version.pk)
            result = GateResult(name=name, passed=False, reason=f"The gate could not run: {exc}")
        results.append(result)
    return results


def _file_sha256(version: "ModelVersion") -> str:
    digest = hashlib.sha256()
    with version.artifact.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


@register_promotion_gate
def model_file_integrity(version: "ModelVersion", target_stage: str) -> GateResult:
    name = "model_file_integrity"
    if target_stage not in (Stage.STAGING, Stage.PRODUCTION):
        return GateResult(name, True, f"Not required for {target_stage}.")
    if not version.artifact:
        return GateResult(name, True, "No model file: this version is scored by its caller.")
    try:
        found = _file_sha256(version)
    except OSError as exc:
        return GateResult(name, False, f"The model file cannot be read from storage: {exc}")
    if found != version.artifact_sha256:
        return GateResult(
            name,
            False,
            f"The stored model file changed since registration (SHA-256 {found[:12]}..., "
            f"registered {version.artifact_sha256[:12]}...).",
        )
    return GateResult(name, True, f"The stored model file matches its registered SHA-256 {found[:12]}....")


@register_promotion_gate
def schema_scoring(version: "ModelVersion", target_stage: str) -> GateResult:
    name = "schema_scoring"
    if target_stage not in (Stage.STAGING, Stage.PRODUCTION):
        return GateResult(name, True, f"Not required for {target_stage}.")
    if not version.artifact:
        return GateResult(name, True, "No model file: this version is scored by its caller.")
    check = model_file_check(model=version.model, version=version)
    if check.problems:
        return GateResult(
            name,
            False,
            f"The model file does not score inputs of its feature schema: {'; '.join(check.problems)}.",
            {"problems": check.problems, "sample": check.sample},
        )
    return GateResult(
        name,
        True,
        f"The model file scored {len(check.sample)} sample inputs built from the feature schema with the model's "
        "labels and probabilities that sum to 1.",
        {"sample": check.sample},
    )


@register_promotion_gate
def evaluation_metrics(version: "ModelVersion", target_stage: str) -> GateResult:
    name = "evaluation_metrics"
    if target_stage != Stage.PRODUCTION:
        return GateResult(name, True, f"Not required for {target_stage}.")
    if not version.metrics:
        return GateResult(name, False, "Production needs recorded evaluation metrics; this version has none.")
    return GateResult(name, True, f"Metrics recorded: {', '.join(sorted(version.metrics))}.")


MODEL_CARD_TIERS = (RiskTier.HIGH, RiskTier.CRITICAL)
MODEL_CARD_FIELDS = {
    "intended_use": "intended use",
    "limitations": "limitations",
    "ethical_considerations": "ethical considerations",
}


@register_promotion_gate
def model_card(version: "ModelVersion", target_stage: str) -> GateResult:
    name = "model_card"
    model = version.model
    if target_stage != Stage.PRODUCTION:
        return GateResult(name, True, f"Not required for {target_stage}.")
    if model.risk_tier not in MODEL_CARD_TIERS:
        return GateResult(name, True, f"Not required for a {model.risk_tier}-risk model.")
    missing = [label for field, label in MODEL_CARD_FIELDS.items() if not getattr(model, field).strip()]
    if missing:
        return GateResult(
            name,
            False,
            f"A {model.risk_tier}-risk model needs its model card before production; missing: {', '.join(missing)}.",
        )
    return GateResult(name, True, "The model card names the intended use, limitations and ethical considerations.")
