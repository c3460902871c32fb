"""Model files: accepted only in skops format, with an allowlist of trusted types, and loaded through one door.

Why skops: a pickle or joblib file runs arbitrary code the moment it is loaded. A skops file is a zip archive
whose ``schema.json`` names every type it will construct, so the types can be checked before anything is built.
We trust the types skops trusts by default plus anything from scikit-learn, numpy and scipy, minus the corners
of those libraries that read or write files or build code (defence in depth: a ``FunctionTransformer`` could
otherwise name ``numpy.load`` as its function and call it at scoring time).

``model_file_inspect`` validates an upload and says why it is refused; ``load_trusted_model`` is the only way
the platform loads a stored file for scoring, re-checking its SHA-256 and the allowlist, and keeping a small
per-process cache keyed by SHA-256 (a file's content never changes under the same hash).
"""

import hashlib
import io
import json
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import skops.io as sio
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from models_registry.models import ModelVersion

TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")
# Modules and functions of the trusted libraries that touch the file system, the network or a compiler.
DENIED_TYPE_PREFIXES = (
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "numpy.lib.format",
    "numpy.lib._npyio_impl",
    "numpy.lib.npyio",
    "numpy.ctypeslib",
    "sklearn.datasets",
    "sklearn.utils._testing",
    "scipy.io",
    "scipy._lib",
)
DENIED_TYPE_NAMES = frozenset(
    {
        "load",
        "loads",
        "loadtxt",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "genfromtxt",
        "fromfile",
        "fromregex",
        "tofile",
        "memmap",
        "open_memmap",
    }
)
# A zip archive may expand far beyond its own size; skops writes uncompressed archives by default.
UNCOMPRESSED_SIZE_FACTOR = 4
MAX_ARCHIVE_MEMBERS = 100_000
MODEL_CACHE_SIZE = 8

_PICKLE_HINT = (
    "This looks like a pickle or joblib file. Those can run arbitrary code when loaded, so only skops files "
    "are accepted: save the model with skops.io.dump(model, 'model.skops')."
)
# First bytes of pickles (protocols 2-5 open with PROTO, 0x80) and of joblib's compressed containers.
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"]\x00\x00", b"\x04\x22\x4d\x18", b"ZF0x")


def _looks_like_pickle(content: bytes) -> bool:
    if content.startswith(_PICKLE_MAGIC + _COMPRESSED_MAGIC):
        return True
    # A zlib stream (joblib's default compression): CMF 0x78 and a header checksum divisible by 31.
    return len(content) >= 2 and content[0] == 0x78 and (content[0] * 256 + content[1]) % 31 == 0


@dataclass(frozen=True)
class InspectedModelFile:
    """What the registry stores about an accepted model file."""

    content: bytes
    sha256: str
    size: int
    library_versions: dict[str, str]


class ModelFileUnavailable(Exception):
    """A stored model file cannot be used for scoring: missing, altered since registration, or no longer trusted."""


def untrusted_type_is_allowed(type_name: str) -> bool:
    """Whether a type that skops does not trust by default is on our allowlist."""
    if not type_name.startswith(TRUSTED_TYPE_PREFIXES):
        return False
    if type_name.startswith(DENIED_TYPE_PREFIXES):
        return False
    return type_name.rsplit(".", 1)[-1] not in DENIED_TYPE_NAMES


def _reject(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def _read_limited(file: File, limit: int) -> bytes:
    file.seek(0)
    content = file.read(limit + 1)
    if len(content) > limit:
        raise _reject(
            f"The model file is larger than the limit of {limit:,} bytes.",
            "too_large",
        )
    return content


def _schema_values(schema: Any) -> Iterator[tuple[str, Any]]:
    # Iterative walk: a hostile schema may nest deeper than Python's recursion limit.
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _sklearn_version(schema: dict) -> str | None:
    for key, value in _schema_values(schema):
        if key == "_sklearn_version" and isinstance(value, dict) and isinstance(value.get("content"), str):
            try:
                version = json.loads(value["content"])
            except ValueError:
                continue
            if isinstance(version, str):
                return version
    return None


def _library_versions(schema: dict) -> dict[str, str]:
    # skops records its own version and protocol, and scikit-learn records its version in each estimator's
    # state; numpy and scipy versions are not written into skops files, so they cannot be read from one.
    versions = {"skops": str(schema.get("_skops_version", "")), "skops_protocol": str(schema.get("protocol", ""))}
    sklearn_version = _sklearn_version(schema)
    if sklearn_version:
        versions["scikit-learn"] = sklearn_version
    return {name: value for name, value in versions.items() if value}


def _open_archive(content: bytes) -> dict:
    if _looks_like_pickle(content):
        raise _reject(_PICKLE_HINT, "pickle")
    if not content.startswith(b"PK"):
        raise _reject("This is not a skops file: a skops file is a zip archive holding a schema.json.", "not_skops")
    limit = settings.MODEL_FILE_MAX_BYTES * UNCOMPRESSED_SIZE_FACTOR
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            if len(members) > MAX_ARCHIVE_MEMBERS or sum(member.file_size for member in members) > limit:
                raise _reject("The model file's archive expands to more than this server accepts.", "too_large")
            if "schema.json" not in archive.namelist():
                raise _reject("This zip archive has no schema.json, so it is not a skops file.", "not_skops")
            broken = archive.testzip()
            if broken is not None:
                raise _reject(f"The model file is corrupt: {broken} fails its checksum.", "corrupt")
            schema = json.loads(archive.read("schema.json"))
    except ValidationError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise _reject(f"The model file is corrupt or truncated: {exc}", "corrupt") from exc
    except RecursionError as exc:
        raise _reject("The model file's schema.json is nested too deeply.", "corrupt") from exc
    if not isinstance(schema, dict) or "protocol" not in schema or "_skops_version" not in schema:
        raise _reject("The schema.json is not a skops schema (no protocol or skops version).", "not_skops")
    return schema


def _load_allowlisted(content: bytes) -> Any:
    """Construct the object if every type it names is trusted by skops or on our allowlist."""
    try:
        untrusted = sio.get_untrusted_types(data=content)
    except Exception as exc:
        # Parsing a hostile file can fail anywhere inside skops; any failure here means "not loadable".
        raise _reject(f"The skops file cannot be read: {exc}", "corrupt") from exc
    refused = [name for name in untrusted if not untrusted_type_is_allowed(name)]
    if refused:
        raise _reject(
            f"The model file contains types outside the allowlist (scikit-learn, numpy, scipy): {', '.join(refused)}.",
            "untrusted_types",
        )
    try:
        return sio.loads(content, trusted=untrusted)
    except Exception as exc:
        raise _reject(f"The skops file could not be loaded: {exc}", "corrupt") from exc


def _check_estimator(estimator: Any, labels: Sequence[str]) -> None:
    if not callable(getattr(estimator, "predict", None)):
        raise _reject("The model file does not hold an estimator with a predict() method.", "not_estimator")
    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as exc:
        raise _reject("The estimator in the model file is not fitted.", "not_fitted") from exc
    classes = getattr(estimator, "classes_", None)
    if classes is not None:
        unknown = sorted({str(label) for label in classes} - set(labels))
        if unknown:
            raise _reject(
                f"The estimator predicts labels the model does not allow: {', '.join(unknown)} "
                f"(allowed: {', '.join(labels)}).",
                "labels_mismatch",
            )


def model_file_inspect(*, file: File, labels: Sequence[str]) -> InspectedModelFile:
    """Validate an uploaded model file; raise a ``ValidationError`` that says why it is refused.

    Accepted: a skops archive within ``MODEL_FILE_MAX_BYTES`` whose types are all trusted, holding a fitted
    estimator whose classes are among the model's labels.
    """
    limit = settings.MODEL_FILE_MAX_BYTES
    if file.size is not None and file.size > limit:
        raise _reject(f"The model file is {file.size:,} bytes; the limit is {limit:,} bytes.", "too_large")
    content = _read_limited(file, limit)
    if not content:
        raise _reject("The model file is empty.", "empty")
    schema = _open_archive(content)
    estimator = _load_allowlisted(content)
    _check_estimator(estimator, labels)
    return InspectedModelFile(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        library_versions=_library_versions(schema),
    )


_MODEL_CACHE: OrderedDict[str, Any] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()


def load_trusted_model(version: "ModelVersion") -> Any:
    """The estimator of a version, for scoring: SHA-256 and allowlist checked again, cached per process."""
    sha256 = version.artifact_sha256
    if not version.artifact or not sha256:
        raise ModelFileUnavailable(f"{version} has no model file; it is scored by its caller.")
    with _MODEL_CACHE_LOCK:
        if sha256 in _MODEL_CACHE:
            _MODEL_CACHE.move_to_end(sha256)
            return _MODEL_CACHE[sha256]
    try:
        with version.artifact.open("rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise ModelFileUnavailable(f"The model file of {version} cannot be read: {exc}") from exc
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ModelFileUnavailable(f"The model file of {version} changed since it was registered.")
    try:
        estimator = _load_allowlisted(content)
    except ValidationError as exc:
        raise ModelFileUnavailable(f"The model file of {version} cannot be loaded: {exc.messages[0]}") from exc
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE[sha256] = estimator
        _MODEL_CACHE.move_to_end(sha256)
        while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return estimator
