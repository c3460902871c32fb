"""The Python client against the real server (pytest-django's live_server), as an ML engineer's script uses it.

Network failures are staged by ``FlakyNetwork``, a local HTTP proxy in front of the live server that answers
502/503/504 on cue, or forwards a request and then drops the connection before the answer (the server did the
work, the client never hears of it), or cuts an answer short.
"""

import csv
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import skops.io
from django.core.cache import cache
from knox.models import AuthToken
from sklearn.linear_model import LogisticRegression

from audits.models import BiasAudit
from hitl_platform.client import HitlApiError, HitlClient, HitlConnectionError, HitlWaitTimeout
from models_registry import artifacts
from models_registry.choices import Stage
from models_registry.models import MLModel
from reviews.models import Prediction
from tests.audits.retraining_data import credit_cases_make
from tests.factories import TEST_PASSWORD
from tests.models_registry.factories import (
    CREDIT_FEATURE_SCHEMA,
    MLModelFactory,
    ModelVersionFactory,
    trained_credit_pipeline,
)

pytestmark = pytest.mark.django_db(transaction=True)

HOP_BY_HOP_HEADERS = frozenset({"connection", "content-length", "host", "keep-alive", "transfer-encoding"})


@dataclass(frozen=True)
class Fault:
    """What the flaky network does to one request: answer ``status`` itself, or forward the request and then
    drop the connection before answering, or send only half of the answer's body."""

    status: int | None = None
    retry_after: str | None = None
    drop_after_forwarding: bool = False
    cut_answer_short: bool = False


class FlakyNetwork:
    """An HTTP proxy to the live server that applies the queued faults, one per request, in order."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname, upstream.port)
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _forward(self, method: str, path: str, headers, body: bytes) -> http.client.HTTPResponse:
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        kept = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP_HEADERS}
        connection.request(method, path, body=body, headers=kept)
        return connection.getresponse()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        network = self

        class Handler(BaseHTTPRequestHandler):
            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                network.requests.append(f"{self.command} {self.path.split('?')[0]}")
                fault = network.faults.pop(0) if network.faults else Fault()
                if fault.status is not None:
                    content = b"<html><body>The gateway is having a bad day.</body></html>"
                    self.send_response(fault.status)
                    if fault.retry_after is not None:
                        self.send_header("Retry-After", fault.retry_after)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                    return
                answer = network._forward(self.command, self.path, self.headers, body)
                content = answer.read()
                if fault.drop_after_forwarding:
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content[: len(content) // 2] if fault.cut_answer_short else content)

            do_GET = do_POST = relay

            def log_message(self, format, *args) -> None:
                pass

        return Handler


@pytest.fixture(autouse=True)
def isolated(settings, tmp_path) -> Iterator[None]:
    # Model files go to this test's folder; token requests are rate limited through the cache.
    settings.MEDIA_ROOT = tmp_path / "media"
    artifacts._MODEL_CACHE.clear()
    cache.clear()
    yield
    artifacts._MODEL_CACHE.clear()
    cache.clear()


@pytest.fixture
def token(ml_engineer) -> str:
    return AuthToken.objects.create(user=ml_engineer)[1]


@pytest.fixture
def hitl(live_server, token) -> HitlClient:
    return HitlClient(live_server.url, token, backoff=0)


@pytest.fixture
def network(live_server) -> Iterator[FlakyNetwork]:
    proxy = FlakyNetwork(live_server.url)
    yield proxy
    proxy.close()


@pytest.fixture
def hitl_via_network(network, token) -> HitlClient:
    return HitlClient(network.url, token, backoff=0)


@pytest.fixture
def production(ml_engineer):
    """A production version of the ``loans`` model, with a real model file."""
    model = MLModelFactory(name="loans", owner=ml_engineer)
    return ModelVersionFactory(model=model, stage=Stage.PRODUCTION, created_by=ml_engineer, with_artifact=True)


def applications(count: int, *, confidence: float = 0.95, prefix: str = "loan") -> list[dict]:
    return [
        {
            "external_id": f"{prefix}-{index}",
            "features": {"credit_amount": 1000.0 + index, "duration": 12, "age": 30 + index % 40},
            "attributes": {"sex": "female" if index % 2 else "male", "age_band": "<35"},
            "label": "approve" if index % 3 else "deny",
            "confidence": confidence,
        }
        for index in range(count)
    ]


# --- logging in ---


def test_a_username_and_password_buy_a_token_that_opens_the_api_until_revoked(live_server, ml_engineer):
    hitl = HitlClient.login(live_server.url, ml_engineer.username, TEST_PASSWORD)

    assert hitl.token and hitl.token_expiry
    assert list(hitl.iter_models()) == []
    revoked = hitl.token
    hitl.revoke_token()
    with pytest.raises(HitlApiError) as refused:
        list(HitlClient(live_server.url, revoked).iter_models())
    assert refused.value.status == 401 and not AuthToken.objects.exists()


def test_a_wrong_password_is_an_api_error_that_says_why(live_server, ml_engineer):
    with pytest.raises(HitlApiError) as refused:
        HitlClient.login(live_server.url, ml_engineer.username, "not-the-password")

    assert refused.value.status == 400
    assert "Unable to log in" in refused.value.field_errors["non_field_errors"][0]


# An ML engineer's script: it imports the client by its name, with no Django settings, and no Django is imported.
STANDALONE_SCRIPT = """
import json, sys
from hitl_platform.client import HitlClient
django = sorted(name for name in sys.modules if name.partition(".")[0] == "django")
hitl = HitlClient.login(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"django": django, "models": [model["name"] for model in hitl.iter_models()]}))
"""


def test_a_script_without_django_settings_logs_in_and_lists_models(live_server, ml_engineer, production, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(STANDALONE_SCRIPT)
    environment = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}

    run = subprocess.run(
        [sys.executable, str(script), live_server.url, ml_engineer.username, TEST_PASSWORD],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )

    assert json.loads(run.stdout) == {"django": [], "models": ["loans"]}


# --- models and versions ---


def test_a_model_and_a_version_are_registered_from_a_fitted_pipeline(hitl, ml_engineer, monkeypatch):
    saved: list[bytes] = []
    dumps = skops.io.dumps

    def dumps_and_keep(estimator) -> bytes:
        saved.append(dumps(estimator))
        return saved[-1]

    monkeypatch.setattr(skops.io, "dumps", dumps_and_keep)
    pipeline = trained_credit_pipeline(seed=1)

    model = hitl.register_model(
        "credit",
        labels=["approve", "deny"],
        positive_label="approve",
        feature_schema=CREDIT_FEATURE_SCHEMA,
        sensitive_attributes=["sex", "age_band"],
        risk_tier="high",
        intended_use="Pre-screening of consumer credit applications.",
    )
    version = hitl.register_version("credit", pipeline, metrics={"accuracy": 0.93}, description="Seed 1.")

    assert (model["name"], model["owner"], model["risk_tier"], model["task"]) == (
        "credit",
        ml_engineer.username,
        "high",
        "binary",
    )
    assert (version["number"], version["stage"], version["metrics"]) == (1, "candidate", {"accuracy": 0.93})
    assert version["artifact_sha256"] == hashlib.sha256(saved[0]).hexdigest()
    assert version["artifact_size"] == len(saved[0]) and "scikit-learn" in version["library_versions"]
    assert hitl.get_version("credit", 1) == version
    assert [row["number"] for row in hitl.iter_versions("credit")] == [1]
    assert hitl.get_model("credit")["latest_version"] == 1
    promotion = hitl.request_promotion("credit", 1, target_stage="staging", rationale="Beats the baseline.")
    assert (promotion["status"], promotion["requester"]) == ("pending", ml_engineer.username)
    assert hitl.get_promotion_request(promotion["id"])["target_stage"] == "staging"


def test_refused_fields_come_back_as_field_errors(hitl, production):
    rng = np.random.default_rng(0)
    wrong_labels = LogisticRegression().fit(rng.normal(size=(40, 3)), ["yes", "no"] * 20)

    with pytest.raises(HitlApiError) as model_refused:
        hitl.register_model("Not a slug!", labels=[])
    with pytest.raises(HitlApiError) as version_refused:
        hitl.register_version("loans", wrong_labels)

    assert model_refused.value.status == 400
    assert set(model_refused.value.field_errors) == {"name", "labels"}
    assert version_refused.value.status == 400 and list(version_refused.value.field_errors) == ["artifact"]
    assert "artifact:" in str(version_refused.value)
    assert not MLModel.objects.exclude(name="loans").exists()


# --- predictions and decisions ---


def test_a_batch_resent_after_a_lost_answer_creates_nothing_twice(hitl_via_network, network, production):
    batch = applications(20)
    network.faults = [Fault(status=502), Fault(drop_after_forwarding=True)]

    results = hitl_via_network.submit_predictions("loans", batch)

    assert network.requests == ["POST /api/v1/models/loans/predictions/"] * 3
    assert [result["external_id"] for result in results] == [item["external_id"] for item in batch]
    assert all(result["replayed"] for result in results)
    assert Prediction.objects.filter(model__name="loans").count() == 20
    again = hitl_via_network.submit_predictions("loans", batch)
    assert [result["id"] for result in again] == [result["id"] for result in results]
    assert sorted(result["id"] for result in results) == sorted(Prediction.objects.values_list("id", flat=True))


def test_a_refused_batch_names_its_items_by_their_place_in_everything_sent(hitl, production):
    batch = applications(4)
    with pytest.raises(ValueError, match="Prediction 1 has no external_id"):
        hitl.submit_predictions("loans", [batch[0], {"features": batch[1]["features"]}])
    del batch[3]["features"]["age"]

    with pytest.raises(HitlApiError) as refused:
        hitl.submit_predictions("loans", batch, batch_size=2)

    assert refused.value.status == 400
    assert [name for name in refused.value.field_errors] == ["predictions[3].features"]
    assert refused.value.detail.startswith("Predictions 2 onwards were not stored (the 2 before them were)")
    assert Prediction.objects.count() == 2
    batch[3]["features"]["age"] = 52
    assert [result["replayed"] for result in hitl.submit_predictions("loans", batch)] == [True, True, False, False]
    changed = {**batch[0], "label": "deny" if batch[0]["label"] == "approve" else "approve"}
    with pytest.raises(HitlApiError) as conflict:
        hitl.submit_predictions("loans", [changed])
    assert conflict.value.status == 409 and list(conflict.value.field_errors) == ["predictions[0].external_id"]


def test_decisions_are_waited_for_and_paged_through(hitl, production):
    confident = applications(12)
    unsure = applications(2, confidence=0.55, prefix="unsure")

    results = hitl.submit_predictions("loans", confident + unsure, batch_size=5)

    decided = [result for result in results if result["decision"] is not None]
    to_review = [result for result in results if result["route"] == "review"]
    assert {result["external_id"] for result in to_review} >= {"unsure-0", "unsure-1"}
    assert len(decided) > 4
    labels = {item["external_id"]: item["label"] for item in confident}
    decisions = hitl.wait_for_decisions("loans", [result["external_id"] for result in decided], timeout=5)
    assert {external_id: decision["label"] for external_id, decision in decisions.items()} == {
        result["external_id"]: labels[result["external_id"]] for result in decided
    }
    paged = list(hitl.iter_decisions(model="loans", page_size=4))
    assert [decision["id"] for decision in paged] == sorted(decision["id"] for decision in decisions.values())
    assert list(hitl.iter_decisions(model="loans", after=paged[-1]["id"])) == []
    with pytest.raises(HitlWaitTimeout) as waited:
        hitl.wait_for_decisions("loans", [decided[0]["external_id"], "unsure-0"], timeout=0)
    assert list(waited.value.last) == [decided[0]["external_id"]]
    case = hitl.get_prediction(to_review[0]["id"])
    assert case["decision"] is None and case["review_task"]["status"] == "open"
    assert [row["external_id"] for row in hitl.iter_predictions(model="loans", external_id="unsure-1")] == ["unsure-1"]
    first = hitl.report_outcome(decided[0]["id"], "deny")
    assert hitl.report_outcome(decided[0]["id"], "deny") == first and first["outcome_label"] == "deny"


# --- audits, retraining, training data ---


def test_an_audit_is_started_and_waited_for_to_its_verdict(hitl, production):
    hitl.submit_predictions("loans", applications(60))

    audit = hitl.start_audit("loans", population="model", sensitive_attributes=["sex"])
    finished = hitl.wait_for_audit(audit["id"], timeout=30)

    assert (audit["model"], audit["population"]) == ("loans", "model")
    assert (finished["status"], finished["progress"], finished["case_count"]) == ("succeeded", 100, 60)
    assert finished["verdict"] in {"passed", "failed", "inconclusive"} and finished["summary"]
    assert [row["id"] for row in hitl.iter_audits("loans")] == [audit["id"]]
    with pytest.raises(HitlApiError) as refused:
        hitl.start_audit("loans", population="model", sensitive_attributes=["religion"])
    assert "not a sensitive attribute" in refused.value.field_errors["sensitive_attributes"][0]


def test_a_retraining_job_is_started_and_waited_for_to_its_candidate(hitl, production):
    credit_cases_make(production, count=120)

    job = hitl.start_retraining("loans", seed=3)
    finished = hitl.wait_for_retraining_job(job["id"], timeout=60)

    assert (finished["status"], finished["base_version"], finished["candidate_version"]) == (
        "succeeded",
        production.number,
        production.number + 1,
    )
    assert finished["snapshot"]["row_count"] == 120 and finished["promotion_request"] is not None
    assert [row["id"] for row in hitl.iter_retraining_jobs("loans")] == [job["id"]]
    with pytest.raises(HitlApiError) as refused:
        hitl.start_retraining("loans", mitigation="equalized_odds", mitigation_attribute="religion")
    assert list(refused.value.field_errors) == ["mitigation_attribute"]


def test_training_data_is_downloaded_whole_or_not_at_all(hitl, hitl_via_network, network, production, tmp_path):
    credit_cases_make(production, count=40)

    network.faults = [Fault(cut_answer_short=True)]
    path = hitl_via_network.download_training_data("loans", tmp_path / "loans.csv")
    rows = list(hitl.iter_training_data("loans", since=datetime(2020, 1, 1, tzinfo=UTC), sources=["consensus"]))
    with pytest.raises(HitlApiError) as sensitive:
        list(hitl.iter_training_data("loans", include_sensitive=True))
    network.faults = [Fault(cut_answer_short=True)]
    with pytest.raises(HitlConnectionError, match="stopped arriving"):
        list(hitl_via_network.iter_training_data("loans"))

    assert network.requests == ["GET /api/v1/models/loans/training-data/"] * 3
    with path.open(newline="") as file:
        table = list(csv.DictReader(file))
    assert len(table) == 40 and {"case_id", "feature.credit_amount", "label", "source"} <= set(table[0])
    assert not Path(f"{path}.part").exists()
    assert len(rows) == 40 and set(rows[0]["features"]) == {"credit_amount", "duration", "age"}
    assert [row["case_id"] for row in rows] == [row["case_id"] for row in table]
    assert sensitive.value.status == 403 and "may not see sensitive attributes" in sensitive.value.detail


# --- retries ---


def test_a_5xx_is_retried_until_it_passes_and_raised_when_it_does_not(hitl_via_network, network, production):
    network.faults = [Fault(status=504), Fault(status=503, retry_after="0")]
    assert hitl_via_network.get_model("loans")["name"] == "loans"
    assert len(network.requests) == 3

    network.requests.clear()
    network.faults = [Fault(status=503, retry_after="0")] * 4
    with pytest.raises(HitlApiError) as unavailable:
        hitl_via_network.get_model("loans")

    assert unavailable.value.status == 503 and "bad day" in unavailable.value.detail
    assert len(network.requests) == 4


def test_what_must_not_be_resent_is_sent_once(hitl_via_network, network, production):
    network.faults = [Fault(status=502)]
    with pytest.raises(HitlApiError) as gateway:
        hitl_via_network.start_audit("loans", population="model", sensitive_attributes=["sex"])
    network.faults = [Fault(drop_after_forwarding=True)]
    with pytest.raises(HitlConnectionError, match="not sent again"):
        hitl_via_network.register_model("scoring", labels=["yes", "no"])
    with pytest.raises(HitlApiError) as missing:
        hitl_via_network.get_model("nobody")
    network.faults = [Fault(status=503, retry_after="3600")]
    with pytest.raises(HitlApiError) as later:
        hitl_via_network.get_model("loans")

    assert gateway.value.status == 502 and not BiasAudit.objects.exists()
    assert MLModel.objects.filter(name="scoring").count() == 1
    assert missing.value.status == 404 and missing.value.detail == "No model named 'nobody' that you can access."
    assert (later.value.status, later.value.retry_after) == (503, 3600)
    assert len(network.requests) == 4


def test_a_server_that_cannot_be_reached_is_a_connection_error_after_the_retries(token):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{unused.getsockname()[1]}"

    with pytest.raises(HitlConnectionError, match="after 3 attempts"):
        HitlClient(address, token, retries=2, backoff=0).get_model("loans")
