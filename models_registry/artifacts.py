"""Model files: accepted only in skops format, checked against an explicit allowlist, and loaded through one door.

Why skops: a pickle or joblib file runs arbitrary code the moment it is loaded. A skops file is a zip archive
whose ``schema.json`` names every type and function it will construct, so the names can be checked before
anything is built. What a file may name is ``allowlist.MODEL_FILE_ALLOWLIST``: full dotted names, exactly as skops
records them, with no prefix rule and no deny list, because a harmless-looking module can re-export a dangerous
built-in (``numpy.lib._datasource._open`` is ``open``). Every name the schema gives (each node's type, a bound
method, a random generator's bit generator) and every name skops' own audit declares is checked, including names
skops would trust by default; a file naming anything else is refused, and the message names it. The file is then
loaded with exactly those names trusted. Only the skops format version (protocol) of the pinned skops is loaded:
older protocols are read by older node classes that record some names elsewhere.

Before any of that, the archive is bounded without expanding it: at most ``MAX_ARCHIVE_MEMBERS`` members and
``MODEL_FILE_MAX_EXPANDED_BYTES`` (a setting, 200 MiB by default) of declared expanded size. Each member is then
expanded in bounded chunks to check that it holds exactly the size and checksum it declares, so no later reader
can be made to expand more than was counted; only stored and deflated members (what skops writes) are accepted.
After loading, the estimator must be fitted, predict only the model's labels, and cache nothing on disk.

``model_file_inspect`` validates an upload and says why it is refused; ``load_trusted_model`` is the only way
the platform loads a stored file for scoring, re-checking its SHA-256, the archive and the allowlist, and keeping
a small per-process cache keyed by SHA-256 (a file's content never changes under the same hash).
``model_file_make_read_only`` makes a stored file read-only on the local file system, so that scoring code
cannot rewrite it.
"""

import copy
import hashlib
import io
import json
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import skops
import skops.io as sio
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import FileSystemStorage
from django.db.models.fields.files import FieldFile
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from models_registry.allowlist import is_allowed

if TYPE_CHECKING:
    from models_registry.models import ModelVersion

# The skops format version that the pinned skops writes (see pyproject.toml).
SKOPS_PROTOCOL = 2
MAX_ARCHIVE_MEMBERS = 100_000
DEFAULT_MAX_EXPANDED_BYTES = 200 * 1024 * 1024
MAX_LISTED_REFUSALS = 20
MAX_LISTED_NAME_LENGTH = 200
MODEL_CACHE_SIZE = 8
READ_ONLY_MODE = 0o444

# Every entry of a zip archive's central directory starts with this signature.
_CENTRAL_DIRECTORY_ENTRY = b"PK\x01\x02"
_ACCEPTED_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_ENCRYPTED_FLAG = 0x1
_MEMBER_READ_CHUNK = 1 << 20

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
    # The loaded estimator, so the registry can check it against the model's schema without loading it again.
    estimator: Any = field(default=None, repr=False, compare=False)


class ModelFileUnavailable(Exception):
    """A stored model file cannot be used for scoring: missing, altered since registration, or no longer trusted."""


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


def _schema_dicts(schema: Any) -> Iterator[dict]:
    # Iterative walk: a hostile schema may nest deeper than Python's recursion limit.
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _sklearn_version(schema: dict) -> str | None:
    for node in _schema_dicts(schema):
        value = node.get("_sklearn_version")
        if isinstance(value, dict) and isinstance(value.get("content"), str):
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


def _max_expanded_bytes() -> int:
    return getattr(settings, "MODEL_FILE_MAX_EXPANDED_BYTES", DEFAULT_MAX_EXPANDED_BYTES)


def _check_declared_sizes(members: list[zipfile.ZipInfo]) -> None:
    limit = _max_expanded_bytes()
    expanded = sum(member.file_size for member in members)
    if expanded > limit:
        raise _reject(
            f"The model file's archive expands to {expanded:,} bytes; the limit is {limit:,} bytes.",
            "too_large",
        )


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    if member.flag_bits & _ENCRYPTED_FLAG:
        raise _reject(f"The model file is corrupt: {member.filename} is encrypted.", "corrupt")
    if member.compress_type not in _ACCEPTED_COMPRESSION:
        raise _reject(
            f"The model file's member {member.filename} is compressed with a method this server does not expand: "
            "save the model with skops.io.dump, uncompressed (the default) or with compression=zipfile.ZIP_DEFLATED.",
            "unsupported_compression",
        )
    # zipfile stops expanding a member at its declared size, so a member whose data expands further would pass a
    # plain read here and then blow up in memory when skops reads it whole. Allowing one byte more than declared
    # shows whether there is more.
    probe = copy.copy(member)
    probe.file_size = member.file_size + 1
    expanded = 0
    with archive.open(probe) as handle:
        while chunk := handle.read(_MEMBER_READ_CHUNK):
            expanded += len(chunk)
    if expanded != member.file_size:
        raise _reject(
            f"The model file is corrupt: {member.filename} does not expand to the size the archive declares.",
            "corrupt",
        )


def _open_archive(content: bytes) -> dict:
    if _looks_like_pickle(content):
        raise _reject(_PICKLE_HINT, "pickle")
    if not content.startswith(b"PK"):
        raise _reject("This is not a skops file: a skops file is a zip archive holding a schema.json.", "not_skops")
    # Counted before zipfile builds an object per entry: a small file can declare millions of them. The count is
    # never below the number of entries, so the limit holds.
    if content.count(_CENTRAL_DIRECTORY_ENTRY) > MAX_ARCHIVE_MEMBERS:
        raise _reject(
            f"The model file's archive holds more than {MAX_ARCHIVE_MEMBERS:,} members, more than this server accepts.",
            "too_large",
        )
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            _check_declared_sizes(members)
            if "schema.json" not in archive.namelist():
                raise _reject("This zip archive has no schema.json, so it is not a skops file.", "not_skops")
            for member in members:
                _check_member(archive, member)
            schema = json.loads(archive.read("schema.json"))
    except ValidationError:
        raise
    except zipfile.BadZipFile as exc:
        raise _reject(f"The model file is corrupt: {exc}", "corrupt") from exc
    except (zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise _reject(f"The model file is corrupt or truncated: {exc}", "corrupt") from exc
    except RecursionError as exc:
        raise _reject("The model file's schema.json is nested too deeply.", "corrupt") from exc
    if not isinstance(schema, dict) or "protocol" not in schema or "_skops_version" not in schema:
        raise _reject("The schema.json is not a skops schema (no protocol or skops version).", "not_skops")
    protocol = schema["protocol"]
    if protocol != SKOPS_PROTOCOL:
        shown = protocol if isinstance(protocol, int) else "(not a number)"
        raise _reject(
            f"The model file uses skops format protocol {shown}; this server loads protocol {SKOPS_PROTOCOL} only: "
            f"save the model again with skops {skops.__version__}.",
            "skops_protocol",
        )
    return schema


def _bit_generator_name(content: Any) -> str:
    # Where skops keeps a Generator's bit generator: a class name inside the state, called when loading.
    try:
        name = json.loads(content["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError):
        return ""
    return name if isinstance(name, str) else ""


def _named_types(schema: dict) -> set[str]:
    """Every type and function the schema names, whether or not skops would trust it by default."""
    names = set()
    for node in _schema_dicts(schema):
        loader = node.get("__loader__")
        if not isinstance(loader, str):
            continue
        module, name = node.get("__module__"), node.get("__class__")
        if not isinstance(module, str) or not isinstance(name, str):
            raise _reject("The model file's schema.json has an object without a type name.", "corrupt")
        names.add(f"{module}.{name}")
        content = node.get("content")
        if loader == "MethodNode":
            method = content.get("func") if isinstance(content, dict) else None
            names.add(f"{module}.{name}.{method}")
        elif loader == "RandomGeneratorNode":
            names.add(f"numpy.random.{_bit_generator_name(content)}")
    return names


def _refuse_unlisted(names: set[str]) -> None:
    refused = sorted(name for name in names if not is_allowed(name))
    if not refused:
        return
    # A hostile file chooses these names, so the message is bounded in count and length.
    listed = ", ".join(name[:MAX_LISTED_NAME_LENGTH] for name in refused[:MAX_LISTED_REFUSALS])
    if len(refused) > MAX_LISTED_REFUSALS:
        listed += f" and {len(refused) - MAX_LISTED_REFUSALS} more"
    raise _reject(
        f"The model file names types or functions that are not on the model-file allowlist: {listed}. "
        "A model file may hold scikit-learn estimators and pipelines, numpy and scipy data, and a few pure "
        "numerical functions (such as numpy.log1p) for a FunctionTransformer.",
        "untrusted_types",
    )


def _load_allowlisted(content: bytes, schema: dict) -> Any:
    """Construct the object if every name in the file, and every name skops declares, is on the allowlist."""
    names = _named_types(schema)
    # Checked before skops reads the tree, so an unlisted module is never even looked at.
    _refuse_unlisted(names)
    try:
        declared = set(sio.get_untrusted_types(data=content))
    except Exception as exc:
        # Parsing a hostile file can fail anywhere inside skops; any failure here means "not loadable".
        raise _reject(f"The skops file cannot be read: {exc}", "corrupt") from exc
    names |= declared
    _refuse_unlisted(names)
    try:
        return sio.loads(content, trusted=sorted(names))
    except Exception as exc:
        raise _reject(f"The skops file could not be loaded: {exc}", "corrupt") from exc


def _check_estimator(estimator: Any, labels: Sequence[str]) -> None:
    if not callable(getattr(estimator, "predict", None)):
        raise _reject("The model file does not hold an estimator with a predict() method.", "not_estimator")
    try:
        check_is_fitted(estimator)
    except (NotFittedError, TypeError) as exc:
        raise _reject("The estimator in the model file is not fitted.", "not_fitted") from exc
    try:
        parameters = estimator.get_params(deep=True)
    except Exception as exc:
        raise _reject(f"The estimator's parameters cannot be read: {exc}", "not_estimator") from exc
    # A ``memory`` makes fitting (retraining fits a clone of exactly these parameters) pickle its steps into a
    # directory the file names, and unpickle them from there on the next fit.
    disk_caches = sorted(
        name for name, value in parameters.items() if name.rsplit("__", 1)[-1] == "memory" and value is not None
    )
    if disk_caches:
        raise _reject(
            f"The estimator caches fitted steps on disk ({', '.join(disk_caches)}): save it with memory=None; "
            "a model file may not choose where the platform writes.",
            "disk_cache",
        )
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

    Accepted: a skops archive within ``MODEL_FILE_MAX_BYTES`` and the archive limits, naming only types and
    functions on the allowlist, holding a fitted estimator that caches nothing on disk and whose classes are
    among the model's labels.
    """
    limit = settings.MODEL_FILE_MAX_BYTES
    if file.size is not None and file.size > limit:
        raise _reject(f"The model file is {file.size:,} bytes; the limit is {limit:,} bytes.", "too_large")
    content = _read_limited(file, limit)
    if not content:
        raise _reject("The model file is empty.", "empty")
    schema = _open_archive(content)
    estimator = _load_allowlisted(content, schema)
    _check_estimator(estimator, labels)
    return InspectedModelFile(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        library_versions=_library_versions(schema),
        estimator=estimator,
    )


_MODEL_CACHE: OrderedDict[str, Any] = OrderedDict()
_MODEL_CACHE_LOCK = threading.Lock()


def load_trusted_model(version: "ModelVersion") -> Any:
    """The estimator of a version, for scoring: SHA-256, archive and allowlist checked again; cached per process."""
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
        estimator = _load_allowlisted(content, _open_archive(content))
    except ValidationError as exc:
        raise ModelFileUnavailable(f"The model file of {version} cannot be loaded: {exc.messages[0]}") from exc
    with _MODEL_CACHE_LOCK:
        _MODEL_CACHE[sha256] = estimator
        _MODEL_CACHE.move_to_end(sha256)
        while len(_MODEL_CACHE) > MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
    return estimator


def model_file_make_read_only(*, file: FieldFile) -> None:
    """Make a stored model file read-only (mode 0o444) where its storage is the local file system.

    A file's SHA-256 is checked on every load, so a rewrite would only break scoring; read-only, a scoring-time bug
    cannot rewrite it at all. Other storages keep their own permissions.
    """
    if isinstance(file.storage, FileSystemStorage):
        os.chmod(file.path, READ_ONLY_MODE)
