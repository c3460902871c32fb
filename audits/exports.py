"""Export file formats: a model's decisions in a period, or one case's trail, as CSV or JSON with ledger hashes.

Writers stream to any object with ``write(str)``: decisions are read in keyset batches of 2,000 with one
ledger query per batch, so a million-row export runs in constant memory and a fixed number of queries per batch.
Decision exports carry no personal data (the input's SHA-256 stands for it); a case export carries the case's
input features, which compliance officers may see, but never its sensitive attributes.
"""

import json
from collections.abc import Callable
from typing import Any, Protocol

from django.utils import timezone

from audits.choices import ExportFormat
from audits.models import DecisionEvent, Export
from audits.selectors.cases import CaseTrail, case_trail
from audits.selectors.exports import decisions_batches, decisions_for_export
from audits.selectors.ledger import ledger_events_for_decisions, ledger_head_now
from hitl_platform.spreadsheet import csv_writer
from reviews.models import Decision

DECISION_COLUMNS = [
    "decision_id",
    "prediction_id",
    "external_id",
    "model",
    "version",
    "predicted_label",
    "confidence",
    "route",
    "route_reasons",
    "qa_sample",
    "final_label",
    "source",
    "agreement",
    "decided_at",
    "decided_by",
    "outcome_label",
    "input_sha256",
    "ledger_events",
]
CASE_COLUMNS = ["section", "at", "actor", "summary", "detail", "ledger_event_id", "ledger_hash", "ledger_verified"]


class TextSink(Protocol):
    def write(self, text: str) -> int: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _ledger_refs(events: list[DecisionEvent]) -> list[dict[str, Any]]:
    return [
        {"event_id": e.pk, "event_type": e.event_type, "hash": e.hash, "previous_hash": e.previous_hash} for e in events
    ]


def decision_record(decision: Decision, events: list[DecisionEvent]) -> dict[str, Any]:
    """One decision as an export row (JSON types; the CSV writer flattens lists)."""
    prediction = decision.prediction
    return {
        "decision_id": decision.pk,
        "prediction_id": prediction.pk,
        "external_id": prediction.external_id,
        "model": decision.model.name,
        "version": prediction.version.number,
        "predicted_label": prediction.predicted_label,
        "confidence": prediction.confidence,
        "route": prediction.route,
        "route_reasons": list(prediction.route_reasons or []),
        "qa_sample": prediction.is_qa_sample,
        "final_label": decision.final_label,
        "source": decision.source,
        "agreement": decision.agreement,
        "decided_at": _iso(decision.decided_at),
        "decided_by": decision.decided_by.get_username() if decision.decided_by is not None else "",
        "outcome_label": prediction.outcome_label,
        "input_sha256": prediction.input_sha256,
        "ledger_events": _ledger_refs(events),
    }


def _csv_value(name: str, value: Any) -> Any:
    if name == "route_reasons":
        return " | ".join(value)
    if name == "ledger_events":
        return " ".join(f"{e['event_id']}:{e['event_type']}:{e['hash']}" for e in value)
    return "" if value is None else value


def write_decisions_export(sink: TextSink, *, export: Export, report: Callable[[int], None]) -> int:
    """Write all decisions of the export's model and period; return how many rows were written."""
    model_id, start, end = export.model_id, export.period_start, export.period_end
    assert model_id is not None and start is not None and end is not None, "a decisions export names them (a check)"
    decisions = decisions_for_export(model_id=model_id, start=start, end=end)
    total = decisions.count()
    head_id, head_hash = ledger_head_now()
    written = 0
    if export.format == ExportFormat.CSV:
        writer = csv_writer(sink)
        writer.writerow(DECISION_COLUMNS)
    else:
        assert export.model is not None, "its model_id is set (above)"
        header = {
            "export_id": export.pk,
            "kind": export.kind,
            "model": export.model.name,
            "period_start": _iso(export.period_start),
            "period_end": _iso(export.period_end),
            "generated_at": timezone.now().isoformat(),
            "requested_by": export.requested_by.get_username(),
            "ledger_head_at_export": {"event_id": head_id, "hash": head_hash},
        }
        sink.write('{"export":' + _dumps(header) + ',"decisions":[')
    for batch in decisions_batches(decisions):
        events = ledger_events_for_decisions([decision.pk for decision in batch])
        for decision in batch:
            record = decision_record(decision, events.get(decision.pk, []))
            if export.format == ExportFormat.CSV:
                writer.writerow([_csv_value(name, record[name]) for name in DECISION_COLUMNS])
            else:
                sink.write(("," if written else "") + _dumps(record))
            written += 1
        report(min(99, written * 100 // max(total, 1)))
    if export.format == ExportFormat.JSON:
        sink.write(f'],"row_count":{written}}}')
    return written


def case_document(trail: CaseTrail) -> dict[str, Any]:
    """One case's trail as a JSON document: what the case page shows, with every ledger hash verified."""
    prediction, task, decision = trail.prediction, trail.task, trail.decision
    return {
        "prediction": {
            "id": prediction.pk,
            "external_id": prediction.external_id,
            "model": prediction.model.name,
            "version": prediction.version.number,
            "submitted_by": prediction.submitted_by.get_username(),
            "created_at": _iso(prediction.created_at),
            "features": prediction.features,
            "input_sha256": prediction.input_sha256,
            "sensitive_attribute_names": sorted(prediction.sensitive_attributes or {}),
            "predicted_label": prediction.predicted_label,
            "confidence": prediction.confidence,
            "scores": prediction.scores,
            "explanation": prediction.explanation,
            "route": prediction.route,
            "route_reasons": prediction.route_reasons,
            "qa_sample": prediction.is_qa_sample,
            "gold": prediction.is_gold,
            "outcome_label": prediction.outcome_label,
            "outcome_reported_at": _iso(prediction.outcome_reported_at),
        },
        "review_task": None
        if task is None
        else {
            "id": task.pk,
            "status": task.status,
            "reviews_required": task.reviews_required,
            "needs_adjudication": task.needs_adjudication,
            "due_at": _iso(task.due_at),
            "sla_breached": task.sla_breached,
            "escalation_reason": task.escalation_reason,
            "decided_at": _iso(task.decided_at),
        },
        "assignments": [
            {
                "id": a.pk,
                "reviewer": a.reviewer.get_username(),
                "status": a.status,
                "adjudication": a.is_adjudication,
                "claimed_at": _iso(a.claimed_at),
                "finished_at": _iso(a.finished_at),
                "release_reason": a.release_reason,
            }
            for a in trail.assignments
        ],
        "reviews": [
            {
                "id": r.pk,
                "reviewer": r.reviewer.get_username(),
                "label": r.label,
                "rationale": r.rationale,
                "time_spent_seconds": r.time_spent_seconds,
                "adjudication": r.is_adjudication,
                "corrects": r.corrects_id,
                "correction_reason": r.correction_reason,
                "created_at": _iso(r.created_at),
            }
            for r in trail.reviews
        ],
        "decision": None
        if decision is None
        else {
            "id": decision.pk,
            "final_label": decision.final_label,
            "source": decision.source,
            "agreement": decision.agreement,
            "decided_at": _iso(decision.decided_at),
            "decided_by": decision.decided_by.get_username() if decision.decided_by is not None else "",
        },
        "webhook_deliveries": [
            {
                "delivery_id": str(d.delivery_id),
                "url": d.webhook.url,
                "event": d.event,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "delivered_at": _iso(d.delivered_at),
            }
            for d in trail.deliveries
        ],
        "history": [
            {
                "at": _iso(h.at),
                "what": h.what,
                "object_id": h.object_id,
                "kind": h.kind,
                "user": h.user,
                "reason": h.reason,
                "changes": [{"field": name, "from": old, "to": new} for name, old, new in h.changes],
            }
            for h in trail.history
        ],
        "ledger": [
            {
                "event_id": c.event.pk,
                "event_type": c.event.event_type,
                "actor": c.event.actor_label,
                "created_at": _iso(c.event.created_at),
                "payload": json.loads(c.event.payload),
                "previous_hash": c.event.previous_hash,
                "hash": c.event.hash,
                "hash_verified": c.content_intact,
                "link_verified": c.link_intact,
            }
            for c in trail.ledger
        ],
        "ledger_intact": trail.ledger_intact,
    }


def _case_timeline(document: dict[str, Any]) -> list[list[Any]]:
    """The case document flattened to one row per thing that happened, in time order."""
    p = document["prediction"]
    rows = [
        [
            "prediction",
            p["created_at"],
            p["submitted_by"],
            f"{p['model']} v{p['version']} said {p['predicted_label']} ({p['confidence']}); routed {p['route']}",
            _dumps({"features": p["features"], "route_reasons": p["route_reasons"], "input_sha256": p["input_sha256"]}),
            "",
            "",
            "",
        ]
    ]
    for a in document["assignments"]:
        rows.append(["assignment", a["claimed_at"], a["reviewer"], f"assignment {a['status']}", _dumps(a), "", "", ""])
    for r in document["reviews"]:
        rows.append(["review", r["created_at"], r["reviewer"], f"review: {r['label']}", _dumps(r), "", "", ""])
    d = document["decision"]
    if d is not None:
        summary = f"final decision: {d['final_label']} ({d['source']})"
        rows.append(["decision", d["decided_at"], d["decided_by"] or "system", summary, _dumps(d), "", "", ""])
    for w in document["webhook_deliveries"]:
        rows.append(
            ["webhook", w["delivered_at"] or "", "system", f"{w['event']} {w['status']}", _dumps(w), "", "", ""]
        )
    for h in document["history"]:
        summary = f"{h['what']} {h['object_id']} {h['kind']}"
        rows.append(["history", h["at"], h["user"], summary, _dumps(h), "", "", ""])
    for e in document["ledger"]:
        verified = "yes" if e["hash_verified"] and e["link_verified"] else "NO"
        detail = _dumps(e["payload"])
        rows.append(
            ["ledger", e["created_at"], e["actor"], e["event_type"], detail, e["event_id"], e["hash"], verified]
        )
    rows.sort(key=lambda row: row[1] or "")
    return rows


def write_case_export(sink: TextSink, *, export: Export) -> int:
    """Write one case's trail; return the number of timeline rows (CSV) or ledger events (JSON)."""
    assert export.prediction_id is not None, "a case export names its case (a check constraint)"
    trail = case_trail(prediction_id=export.prediction_id)
    assert trail is not None, "the export protects its prediction from deletion"
    document = case_document(trail)
    if export.format == ExportFormat.JSON:
        head_id, head_hash = ledger_head_now()
        document["export"] = {
            "export_id": export.pk,
            "kind": export.kind,
            "generated_at": timezone.now().isoformat(),
            "requested_by": export.requested_by.get_username(),
            "ledger_head_at_export": {"event_id": head_id, "hash": head_hash},
        }
        sink.write(_dumps(document))
        return len(document["ledger"])
    writer = csv_writer(sink)
    writer.writerow(CASE_COLUMNS)
    rows = _case_timeline(document)
    writer.writerows(rows)
    return len(rows)
