import hashlib
import importlib
import io
import json
import os
import stat
import struct
import zipfile
import zlib

import numpy as np
import pandas as pd
import pytest
import sklearn
import skops
import skops.io as sio
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    AdaBoostClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    StackingClassifier,
    VotingClassifier,
)
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import BernoulliNB, GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
)
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from models_registry import artifacts
from models_registry.artifacts import (
    ModelFileUnavailable,
    load_trusted_model,
    model_file_inspect,
    model_file_make_read_only,
)
from models_registry.models import ModelVersion
from models_registry.services import model_version_register
from tests.models_registry.factories import (
    MLModelFactory,
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


# The explicit allowlist: every name a file gives is checked, including names skops would trust by default.


def schema_nodes(schema):
    if isinstance(schema, dict):
        if "__loader__" in schema:
            yield schema
        for value in schema.values():
            yield from schema_nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from schema_nodes(value)


def with_schema(content: bytes, change) -> bytes:
    """The same skops file with ``change(schema)`` applied to its schema.json, as a hostile uploader would."""

    def rewrite(name, data):
        if name != "schema.json":
            return data
        schema = json.loads(data)
        change(schema)
        return json.dumps(schema).encode()

    return rezip(content, rewrite)


def credit_matrix(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(250, 20000, 300), rng.integers(4, 72, 300), rng.integers(19, 75, 300)])
    return X, np.where(X[:, 0] / X[:, 1] < 300, "approve", "deny")


def probe_file(module: str, name: str) -> bytes:
    """A real fitted pipeline whose FunctionTransformer's function is renamed to ``module.name``.

    This is how the outside probe built its files: dump a pipeline with a harmless function, then rename the
    function in schema.json.
    """
    pipeline = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=500))
    content = skops_bytes(pipeline.fit(*credit_matrix()))

    def rename(schema):
        [function] = [node for node in schema_nodes(schema) if node["__loader__"] == "FunctionNode"]
        function["__module__"], function["__class__"] = module, name

    return with_schema(content, rename)


PROBES = [
    pytest.param("numpy.lib._datasource", "_open", "builtins.open", id="open-under-numpy"),
    pytest.param("sklearn.utils.discovery", "import_module", "importlib.import_module", id="import-under-sklearn"),
]


@pytest.mark.parametrize(("module", "name", "really"), PROBES)
def test_the_probes_files_really_hide_a_dangerous_builtin_behind_an_allowed_module(module, name, really):
    content = probe_file(module, name)
    pipeline = sio.loads(content, trusted=sio.get_untrusted_types(data=content))
    really_module, really_name = really.rsplit(".", 1)
    assert pipeline.steps[0][1].func is getattr(importlib.import_module(really_module), really_name)


@pytest.mark.parametrize(("module", "name", "really"), PROBES)
def test_it_refuses_a_function_that_is_a_dangerous_builtin_re_exported_by_an_allowed_module(module, name, really):
    error = refusal(probe_file(module, name))
    assert error.code == "untrusted_types"
    assert f"{module}.{name}" in error.messages[0]


@pytest.mark.parametrize(("module", "name", "really"), PROBES)
def test_the_api_refuses_the_probes_files_with_a_400_naming_the_function(
    api_client_for, ml_engineer, module, name, really
):
    MLModelFactory(name="credit", owner=ml_engineer)
    response = api_client_for(ml_engineer).post(
        "/api/v1/models/credit/versions/", {"artifact": skops_upload(probe_file(module, name))}, format="multipart"
    )
    assert response.status_code == 400
    assert f"{module}.{name}" in response.json()["artifact"][0]
    assert not ModelVersion.objects.exists()


def stored_version(content: bytes) -> ModelVersion:
    """A version whose stored file was never inspected (registered before today's allowlist, or put in place)."""
    version = ModelVersionFactory(artifact_sha256=hashlib.sha256(content).hexdigest(), artifact_size=len(content))
    version.artifact.save("model.skops", ContentFile(content))
    return version


def test_the_trusted_loader_refuses_a_stored_file_naming_an_unlisted_function(db):
    version = stored_version(probe_file("numpy.lib._datasource", "_open"))
    with pytest.raises(ModelFileUnavailable, match=r"numpy\.lib\._datasource\._open"):
        load_trusted_model(version)


def test_it_refuses_names_skops_trusts_by_default_when_the_allowlist_does_not_list_them():
    X, y = credit_matrix()
    sine = skops_bytes(make_pipeline(FunctionTransformer(np.sin), LogisticRegression()).fit(X, y))
    texts = ["small loan", "large loan for a car", "loan", "another large loan"] * 10
    vectorizer = skops_bytes(
        make_pipeline(CountVectorizer(), LogisticRegression()).fit(texts, ["approve", "deny"] * 20)
    )
    assert "numpy.sin" not in sio.get_untrusted_types(data=sine)
    assert not sio.get_untrusted_types(data=vectorizer)

    assert "numpy.sin" in refusal(sine).messages[0]
    assert "sklearn.feature_extraction.text.CountVectorizer" in refusal(vectorizer).messages[0]


def test_it_refuses_a_bound_method_as_a_function():
    X, y = credit_matrix()
    method = FunctionTransformer(StandardScaler().fit(X).transform)
    error = refusal(skops_bytes(make_pipeline(method, LogisticRegression()).fit(X, y)))
    assert error.code == "untrusted_types"
    assert "sklearn.preprocessing._data.StandardScaler.transform" in error.messages[0]


def test_it_refuses_a_random_generator_whose_bit_generator_names_another_function():
    content = skops_bytes(HistGradientBoostingClassifier(max_iter=3).fit(*credit_matrix()))

    def rename(schema):
        generators = [node for node in schema_nodes(schema) if node["__loader__"] == "RandomGeneratorNode"]
        assert generators
        for node in generators:
            node["content"]["bit_generator"]["content"]["bit_generator"]["content"] = json.dumps("seed")

    error = refusal(with_schema(content, rename))
    assert error.code == "untrusted_types"
    assert "numpy.random.seed" in error.messages[0]


def test_the_refusal_lists_twenty_names_and_counts_the_rest():
    functions = [np.sin, np.cos, np.tan, np.arcsin, np.arccos, np.arctan, np.sinh, np.cosh, np.tanh, np.arcsinh]
    functions += [np.arccosh, np.arctanh, np.deg2rad, np.rad2deg, np.floor, np.ceil, np.trunc, np.rint]
    functions += [np.negative, np.positive, np.reciprocal, np.exp2, np.fabs, np.spacing, np.isnan]
    error = refusal(sio.dumps([FunctionTransformer(function) for function in functions]))
    assert "numpy.arccos" in error.messages[0]
    assert "and 5 more" in error.messages[0]


def test_it_refuses_an_older_skops_protocol():
    error = refusal(with_schema(skops_bytes(), lambda schema: schema.update(protocol=1)))
    assert error.code == "skops_protocol"
    assert skops.__version__ in error.messages[0]


def test_it_refuses_a_pipeline_that_caches_its_steps_on_disk(tmp_path):
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())], memory=str(tmp_path))
    error = refusal(skops_bytes(pipeline.fit(*credit_matrix())))
    assert error.code == "disk_cache"
    assert "memory" in error.messages[0]


# The files the platform's users produce: common estimators, with the usual preprocessing, still load and predict.

NUMBERS = ["credit_amount", "duration", "age"]


def credit_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "credit_amount": rng.uniform(250, 20000, 300),
            "duration": rng.integers(4, 72, 300).astype(float),
            "age": rng.integers(19, 75, 300).astype(float),
            "purpose": rng.choice(["car", "furniture", "education"], 300),
        }
    )
    labels = np.where(frame["credit_amount"] / frame["duration"] < 300, "approve", "deny")
    frame.loc[::23, "credit_amount"] = np.nan
    return frame, labels


def scaled_and_encoded() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMBERS),
            ("purpose", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
        ]
    )


def logged_and_ordinal() -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(), FunctionTransformer(np.log1p), MinMaxScaler()), NUMBERS),
            ("purpose", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["purpose"]),
        ]
    )


COMMON_ESTIMATORS = {
    "logistic-regression": lambda: LogisticRegression(max_iter=500),
    "sgd": lambda: SGDClassifier(loss="log_loss", random_state=0),
    "ridge": RidgeClassifier,
    "linear-svc": LinearSVC,
    "svc": SVC,
    "calibrated-svc": lambda: CalibratedClassifierCV(SVC(), ensemble=False),
    "decision-tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    "random-forest": lambda: RandomForestClassifier(n_estimators=10, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=10, random_state=0),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=10, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    "knn": KNeighborsClassifier,
    "knn-ball-tree": lambda: KNeighborsClassifier(algorithm="ball_tree", metric="manhattan"),
    "gaussian-nb": GaussianNB,
    "bernoulli-nb": BernoulliNB,
    "mlp": lambda: MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=500, random_state=0),
    "calibrated-sigmoid": lambda: CalibratedClassifierCV(LinearSVC(), cv=3),
    "calibrated-isotonic": lambda: CalibratedClassifierCV(GaussianNB(), method="isotonic", cv=3),
    "adaboost": lambda: AdaBoostClassifier(n_estimators=5, random_state=0),
    "voting": lambda: VotingClassifier([("lr", LogisticRegression()), ("nb", GaussianNB())], voting="soft"),
    "stacking": lambda: StackingClassifier([("lr", LogisticRegression()), ("tree", DecisionTreeClassifier())]),
    "grid-search": lambda: GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, scoring="roc_auc"),
}


def common_pipelines():
    for name, estimator in COMMON_ESTIMATORS.items():
        yield pytest.param(lambda estimator=estimator: make_pipeline(scaled_and_encoded(), estimator()), id=name)
    yield pytest.param(
        lambda: make_pipeline(logged_and_ordinal(), LogisticRegression(max_iter=500)), id="log1p-minmax-ordinal"
    )
    yield pytest.param(
        lambda: make_pipeline(
            ColumnTransformer([("numbers", make_pipeline(SimpleImputer(), SplineTransformer()), NUMBERS)]),
            LogisticRegression(max_iter=500),
        ),
        id="spline",
    )
    yield pytest.param(
        lambda: HistGradientBoostingClassifier(max_iter=10, categorical_features=["purpose"], random_state=0),
        id="hist-gradient-boosting-native-categories",
    )


@pytest.mark.parametrize("build", list(common_pipelines()))
def test_the_files_of_common_pipelines_are_accepted_and_predict_as_before(db, build):
    frame, labels = credit_frame()
    pipeline = build().fit(frame, labels)
    content = skops_bytes(pipeline)

    inspect(content)
    loaded = load_trusted_model(stored_version(content))

    assert list(loaded.predict(frame)) == list(pipeline.predict(frame))
    if hasattr(pipeline, "predict_proba"):
        np.testing.assert_allclose(loaded.predict_proba(frame), pipeline.predict_proba(frame))


# Archive limits: the expanded size and the member count are bounded before anything is expanded.


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """A real skops file plus a member of 256 MiB of zeros, deflated to a few hundred kilobytes."""
    buffer = io.BytesIO(skops_bytes())
    with (
        zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("padding.npy", "w") as member,
    ):
        zeros = bytes(1 << 20)
        for _ in range(256):
            member.write(zeros)
    return buffer.getvalue()


def test_it_refuses_a_zip_bomb_without_expanding_it(zip_bomb, monkeypatch):
    opened = []
    open_member = zipfile.ZipFile.open

    def spy(archive, member, *args, **kwargs):
        opened.append(getattr(member, "filename", member))
        return open_member(archive, member, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    assert len(zip_bomb) < 1 << 20

    error = refusal(zip_bomb)

    assert error.code == "too_large"
    assert "the limit is 209,715,200 bytes" in error.messages[0]
    assert opened == []


def test_the_expanded_size_limit_is_a_setting(settings):
    content = skops_bytes()
    expanded = sum(member.file_size for member in zipfile.ZipFile(io.BytesIO(content)).infolist())
    settings.MODEL_FILE_MAX_EXPANDED_BYTES = expanded
    inspect(content)

    settings.MODEL_FILE_MAX_EXPANDED_BYTES = expanded - 1
    error = refusal(content)
    assert error.code == "too_large"
    assert f"expands to {expanded:,} bytes" in error.messages[0]


def with_lying_member(content: bytes) -> bytes:
    """Add a member of 8 MiB of deflated zeros that claims, checksum included, to expand to 1,000 bytes."""
    buffer = io.BytesIO(content)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("padding.npy", bytes(8 << 20))
    data = bytearray(buffer.getvalue())
    local_header = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("padding.npy").header_offset
    # The central directory follows the members; the name tells this member's entry from look-alike bytes.
    directory_entry = data.index(b"PK\x01\x02", local_header)
    while data[directory_entry + 46 : directory_entry + 46 + len(b"padding.npy")] != b"padding.npy":
        directory_entry = data.index(b"PK\x01\x02", directory_entry + 4)
    claimed = struct.pack("<I", zlib.crc32(bytes(1000)))
    # Local header: checksum at 14, expanded size at 22. Central directory entry: at 16 and 24.
    data[local_header + 14 : local_header + 18] = claimed
    data[local_header + 22 : local_header + 26] = struct.pack("<I", 1000)
    data[directory_entry + 16 : directory_entry + 20] = claimed
    data[directory_entry + 24 : directory_entry + 28] = struct.pack("<I", 1000)
    return bytes(data)


def test_it_refuses_a_member_that_expands_beyond_the_size_it_declares():
    content = with_lying_member(skops_bytes())
    declared = zipfile.ZipFile(io.BytesIO(content)).getinfo("padding.npy")
    assert declared.file_size == 1000

    error = refusal(content)

    assert error.code == "corrupt"
    assert "padding.npy" in error.messages[0]


def test_it_refuses_an_archive_with_too_many_members_before_reading_its_directory(monkeypatch):
    content = skops_bytes()
    members = len(zipfile.ZipFile(io.BytesIO(content)).namelist())
    monkeypatch.setattr(artifacts, "MAX_ARCHIVE_MEMBERS", members)
    inspect(content)
    crowded = io.BytesIO(content)
    with zipfile.ZipFile(crowded, "a") as archive:
        archive.writestr("extra.bin", b"")

    def never(*args, **kwargs):
        raise AssertionError("the archive's directory was read")

    monkeypatch.setattr(zipfile, "ZipFile", never)
    error = refusal(crowded.getvalue())

    assert error.code == "too_large"
    assert f"more than {members:,} members" in error.messages[0]


def test_it_refuses_members_compressed_with_a_method_it_does_not_expand_in_bounded_steps():
    buffer = io.BytesIO()
    sio.dump(trained_credit_pipeline(), buffer, compression=zipfile.ZIP_BZIP2)
    error = refusal(buffer.getvalue())
    assert error.code == "unsupported_compression"
    assert "ZIP_DEFLATED" in error.messages[0]


def test_it_accepts_a_deflated_skops_file():
    buffer = io.BytesIO()
    sio.dump(trained_credit_pipeline(), buffer, compression=zipfile.ZIP_DEFLATED)
    assert inspect(buffer.getvalue()).size == len(buffer.getvalue())


# Stored model files are read-only.


def test_a_registered_model_file_is_read_only(ml_engineer):
    model = MLModelFactory(owner=ml_engineer)
    version = model_version_register(model=model, actor=ml_engineer, artifact=skops_upload())
    assert stat.S_IMODE(os.stat(version.artifact.path).st_mode) == 0o444
    assert list(load_trusted_model(version).predict([[1000.0, 24, 40]])) in (["approve"], ["deny"])


def test_making_a_file_read_only_leaves_a_storage_without_local_paths_alone(db):
    field_file = ModelVersionFactory().artifact
    field_file.storage = InMemoryStorage()
    field_file.save("model.skops", ContentFile(skops_bytes()), save=False)
    model_file_make_read_only(file=field_file)
    assert field_file.storage.exists(field_file.name)
