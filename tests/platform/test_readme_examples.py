"""README.md's curl walk-through of an ML engineer's work, run as written against a live server."""

import json
import shutil
import subprocess
import sys

import pytest

from models_registry.models import MLModel
from reviews.models import Prediction
from tests.conftest import REPO_ROOT
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def readme_curl_example() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Each person's work") :]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_curl_example_registers_a_model_and_a_version_and_routes_a_prediction(
    live_server, ml_engineer, tmp_path, settings
):
    settings.MEDIA_ROOT = tmp_path / "media"
    script = (
        readme_curl_example()
        .replace("localhost:8000", live_server.url.removeprefix("http://"))
        .replace('"username": "mia"', f'"username": "{ml_engineer.username}"')
        .replace("<printed by make demo>", TEST_PASSWORD)
        .replace(".venv/bin/python", sys.executable)
    )

    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert ran.returncode == 0, ran.stderr
    answers = [json.loads(line) for line in ran.stdout.replace("}{", "}\n{").splitlines()]
    model, version, promotion, prediction, decisions = answers
    assert (model["name"], model["owner"]) == ("loans", ml_engineer.username)
    assert (version["number"], version["stage"], version["metrics"]) == (1, "candidate", {"accuracy": 0.75})
    assert (promotion["target_stage"], promotion["status"]) == ("staging", "pending")
    assert (prediction["external_id"], prediction["route"]) == ("application-1", "review")
    assert decisions["results"] == []
    stored = Prediction.objects.get(external_id="application-1")
    assert (stored.model, stored.version.number) == (MLModel.objects.get(name="loans"), 1)
    assert stored.predicted_label in {"approve", "deny"}
