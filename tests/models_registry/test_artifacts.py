import hashlib
import io
import os
import zipfile

import numpy as np
import pytest
import sklearn
import skops
import skops.io as sio
from django.core.exceptions import ValidationError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from models_registry.artifacts import (
    ModelFileUnavailable,
    load_trusted_model,
    model_file_inspect,
    untrusted_type_is_allowed,
)
from tests.models_registry.factories import (
    ModelVersionFactory,
    joblib_bytes,
    pickle_bytes,
    skops_bytes,
    skops_upload,
    trained_credit_pipeline,
)

LABELS = ["approve", "deny"]


class HomeMadeScorer:
    """Defined in this test module, so neither skops nor our allowlist trusts it."""

    def __init__(self):
        self.threshold = 0.5

    def predict(self, X):
        return ["approve" for _ in X]


def inspect(content: bytes):
    return model_file_inspect(file=skops_upload(content), labels=LABELS)


def refusal(content: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as error:
        inspect(content)
    return error.value


def rezip(content: bytes, change) -> bytes:
    """Rewrite a skops archive member by member, letting ``change(name, data)`` alter or drop each one."""
    source = zipfile.ZipFile(io.BytesIO(content))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            data = change(name, source.read(name))
            if data is not None:
                target.writestr(name, data)
    return buffer.getvalue()


def test_it_accepts_a_skops_pipeline_and_reads_its_hash_size_and_library_versions():
    content = skops_bytes()
    inspected = inspect(content)
    assert inspected.sha256 == hashlib.sha256(content).hexdigest()
    assert inspected.size == len(content)
    assert inspected.library_versions["skops"] == skops.__version__
    assert inspected.library_versions["scikit-learn"] == sklearn.__version__
    assert inspected.library_versions["skops_protocol"].isdigit()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda: pickle_bytes(), id="pickle"),
        pytest.param(lambda: joblib_bytes(), id="joblib"),
        pytest.param(lambda: joblib_bytes(compress=3), id="joblib-zlib"),
        pytest.param(lambda: joblib_bytes(compress=("gzip", 3)), id="joblib-gzip"),
        pytest.param(lambda: joblib_bytes(compress=("bz2", 3)), id="joblib-bz2"),
        pytest.param(lambda: joblib_bytes(compress=("xz", 3)), id="joblib-xz"),
        pytest.param(lambda: joblib_bytes(compress=("lzma", 3)), id="joblib-lzma"),
    ],
)
def test_it_refuses_pickle_and_joblib_files_and_says_why(content):
    error = refusal(content())
    assert error.code == "pickle"
    assert "pickle or joblib" in error.messages[0]
    assert "skops.io.dump" in error.messages[0]


def test_it_refuses_a_skops_file_holding_a_type_outside_the_allowlist():
    error = refusal(sio.dumps(HomeMadeScorer()))
    assert error.code == "untrusted_types"
    assert "tests.models_registry.test_artifacts.HomeMadeScorer" in error.messages[0]


@pytest.mark.parametrize(
    ("function", "type_name"),
    [(os.system, "system"), (np.load, "numpy.load"), (np.fromfile, "numpy.fromfile")],
)
def test_it_refuses_functions_that_reach_the_system_or_the_file_system(function, type_name):
    error = refusal(sio.dumps(FunctionTransformer(function)))
    assert error.code == "untrusted_types"
    assert type_name in error.messages[0]


@pytest.mark.parametrize(
    ("type_name", "allowed"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.dtype", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("sklearn.calibration._SigmoidCalibration", True),
        ("builtins.eval", False),
        ("posix.system", False),
        ("numpy.load", False),
        ("numpy.f2py.f2py2e.run_main", False),
        ("sklearn.datasets._openml.fetch_openml", False),
        ("scipy.io.matlab._mio.savemat", False),
        ("sklearnx.Evil", False),
        ("tests.models_registry.test_artifacts.HomeMadeScorer", False),
    ],
)
def test_the_allowlist_trusts_scikit_learn_numpy_and_scipy_but_not_their_io(type_name, allowed):
    assert untrusted_type_is_allowed(type_name) is allowed


def test_it_refuses_a_file_that_is_not_a_zip_archive():
    error = refusal(b"just some text, certainly not a model")
    assert error.code == "not_skops"


def test_it_refuses_a_truncated_skops_file():
    content = skops_bytes()
    error = refusal(content[: len(content) // 2])
    assert error.code == "corrupt"


def test_it_refuses_a_zip_without_a_schema():
    content = rezip(skops_bytes(), lambda name, data: None if name == "schema.json" else data)
    assert refusal(content).code == "not_skops"


def test_it_refuses_a_schema_that_is_not_json():
    content = rezip(skops_bytes(), lambda name, data: b"{not json" if name == "schema.json" else data)
    assert refusal(content).code == "corrupt"


def test_it_refuses_a_file_whose_checksum_does_not_match():
    content = bytearray(skops_bytes())
    # Flip a byte inside the stored (uncompressed) schema.json, leaving its recorded CRC unchanged.
    position = bytes(content).index(b'"protocol"') + 2
    content[position] ^= 0x01
    error = refusal(bytes(content))
    assert error.code == "corrupt"


def test_it_refuses_a_file_over_the_size_limit(settings):
    content = skops_bytes()
    settings.MODEL_FILE_MAX_BYTES = len(content) - 1
    error = refusal(content)
    assert error.code == "too_large"
    assert f"{len(content) - 1:,}" in error.messages[0]


def test_it_refuses_an_empty_file():
    assert refusal(b"").code == "empty"


def test_it_refuses_an_unfitted_estimator():
    assert refusal(sio.dumps(LogisticRegression())).code == "not_fitted"


def test_it_refuses_an_estimator_whose_labels_the_model_does_not_allow():
    with pytest.raises(ValidationError) as error:
        model_file_inspect(file=skops_upload(), labels=["yes", "no"])
    assert error.value.code == "labels_mismatch"
    assert "approve" in error.value.messages[0]


def test_the_trusted_loader_returns_a_working_estimator_and_caches_it_by_hash(db):
    version = ModelVersionFactory(with_artifact=True)

    estimator = load_trusted_model(version)

    assert list(estimator.predict([[1000.0, 24, 40]])) in (["approve"], ["deny"])
    os.remove(version.artifact.path)
    assert load_trusted_model(version) is estimator


def test_the_trusted_loader_refuses_a_file_altered_after_registration(db):
    version = ModelVersionFactory(with_artifact=True)
    with open(version.artifact.path, "wb") as handle:
        handle.write(skops_bytes(trained_credit_pipeline(seed=1)))
    with pytest.raises(ModelFileUnavailable, match="changed since it was registered"):
        load_trusted_model(version)


def test_the_trusted_loader_refuses_a_version_without_a_file(db):
    with pytest.raises(ModelFileUnavailable, match="no model file"):
        load_trusted_model(ModelVersionFactory())
