"""The model-file allowlist: explicit names only, each resolving to something that cannot reach files or code.

The walk test imports every module of scikit-learn, numpy and scipy, takes every attribute as ``module.attr``
(the way skops resolves a name), and checks each one the allowlist accepts against the callables of the modules
that open files, import, execute or spawn, so that a dangerous built-in re-exported under an innocent-looking
name (``numpy.lib._datasource._open`` is ``open``) can never be accepted.
"""

import ast
import contextlib
import functools
import importlib
import inspect
import pkgutil
import sys
import types
import warnings
from pathlib import Path

import pytest
from sklearn.utils import all_estimators

from models_registry import allowlist, fair_mixture
from models_registry.allowlist import MODEL_FILE_ALLOWLIST, is_allowed
from models_registry.fair_mixture import FairMixtureClassifier

LIBRARIES = ("sklearn", "numpy", "scipy")
# Modules whose callables open files, import, execute code or start processes, and their C implementations.
DANGEROUS_MODULES = (
    "builtins",
    "os",
    "posix",
    "subprocess",
    "_posixsubprocess",
    "io",
    "_io",
    "importlib",
    "_imp",
    "pickle",
    "_pickle",
    "marshal",
    "ctypes",
    "_ctypes",
    "shutil",
    "runpy",
    "tempfile",
    "urllib",
    "sys",
    "socket",
    "_socket",
    "multiprocessing",
    "code",
    "codeop",
    "pty",
)
# Parameter names of callables that take a file or a path (numpy.load, numpy.memmap, scipy.io.loadmat...).
FILE_PARAMETERS = frozenset({"file", "fname", "filename", "file_name", "filepath", "path", "mmap_mode"})
SKIPPED_MODULE_PARTS = frozenset({"tests", "testing", "_testing", "conftest", "__main__"})
# Left out on purpose (see the allowlist's docstring).
EXCLUDED_ESTIMATORS = frozenset(
    {
        "sklearn.feature_extraction.text.CountVectorizer",
        "sklearn.feature_extraction.text.HashingVectorizer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.cluster._birch.Birch",
    }
)
PLAIN_TYPES = {bool, dict, float, int, list, object, set, slice, str, tuple, functools.partial}


def resolve(name: str):
    """Resolve a dotted name as skops does: import the module, take the attribute."""
    module, attribute = name.rsplit(".", 1)
    return getattr(importlib.import_module(module), attribute)


def importable_modules(root: str) -> list[types.ModuleType]:
    """``root`` and every submodule that imports, private ones included, test packages left out."""
    modules = [importlib.import_module(root)]
    with warnings.catch_warnings():
        # Importing every module trips deprecation warnings of modules nobody uses.
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(modules[0].__path__, f"{root}.", onerror=lambda name: None):
            if SKIPPED_MODULE_PARTS & set(info.name.split(".")):
                continue
            try:
                modules.append(importlib.import_module(info.name))
            except (Exception, SystemExit, pytest.fail.Exception):
                # Optional dependencies, other platforms, modules that run a command-line tool or use test markers
                # when imported.
                continue
    return modules


def in_dangerous_family(module_name: str) -> bool:
    return any(module_name == name or module_name.startswith(f"{name}.") for name in DANGEROUS_MODULES)


@pytest.fixture(scope="module")
def library_names() -> dict[str, object]:
    """Every ``module.attr`` of scikit-learn, numpy and scipy, private modules included."""
    names = {}
    modules = [module for root in LIBRARIES for module in importable_modules(root)]
    with warnings.catch_warnings():
        # Deprecated aliases warn when read.
        warnings.simplefilter("ignore")
        for module in modules:
            for attribute in dir(module):
                try:
                    names[f"{module.__name__}.{attribute}"] = getattr(module, attribute)
                except AttributeError:
                    continue
    return names


@pytest.fixture(scope="module")
def dangerous_callables() -> dict[int, str]:
    """The callables of the dangerous modules and their submodules, by identity."""
    modules = []
    for name in DANGEROUS_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        modules.append(module)
        if hasattr(module, "__path__"):
            modules.extend(importable_modules(name))
    modules.extend(module for name, module in list(sys.modules.items()) if in_dangerous_family(name))
    found = {}
    for module in modules:
        for attribute in dir(module):
            value = getattr(module, attribute, None)
            if callable(value):
                found.setdefault(id(value), f"{module.__name__}.{attribute}")
    return found


def danger(value: object, dangerous_callables: dict[int, str]) -> str | None:
    """Why ``value`` may open files, import, execute or spawn, or None."""
    candidates = [value]
    with contextlib.suppress(ValueError):
        candidates.append(inspect.unwrap(value))
    if isinstance(value, functools.partial):
        candidates.append(value.func)
    for candidate in candidates:
        if id(candidate) in dangerous_callables:
            return f"is {dangerous_callables[id(candidate)]}"
        module = getattr(candidate, "__module__", None)
        if isinstance(module, str) and in_dangerous_family(module):
            return f"comes from {module}"
        owner = getattr(candidate, "__self__", None)
        if isinstance(owner, types.ModuleType) and in_dangerous_family(owner.__name__):
            return f"is bound to {owner.__name__}"
    return None


def file_parameters(value: object) -> set[str]:
    try:
        parameters = inspect.signature(value).parameters
    except (TypeError, ValueError):
        return set()
    return set(parameters) & FILE_PARAMETERS


def test_no_accepted_name_in_scikit_learn_numpy_or_scipy_opens_files_imports_executes_or_spawns(
    library_names, dangerous_callables
):
    accepted = {name: value for name, value in library_names.items() if is_allowed(name)}

    dangerous = {name: reason for name, value in accepted.items() if (reason := danger(value, dangerous_callables))}
    taking_files = {name: found for name, value in accepted.items() if (found := file_parameters(value))}

    assert dangerous == {}
    assert taking_files == {}


def test_the_walk_sees_every_listed_name_of_the_three_libraries(library_names):
    listed = {name for name in MODEL_FILE_ALLOWLIST if name.split(".")[0] in LIBRARIES}
    assert listed - set(library_names) == set()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("numpy.lib._datasource._open", "is builtins.open"),
        ("sklearn.utils.discovery.import_module", "importlib"),
    ],
)
def test_the_walk_test_would_catch_the_names_of_the_outside_probe(library_names, dangerous_callables, name, reason):
    assert reason in danger(library_names[name], dangerous_callables)
    assert not is_allowed(name)


@pytest.mark.parametrize("name", ["numpy.load", "numpy.fromfile", "numpy.memmap", "numpy.loadtxt", "scipy.io.loadmat"])
def test_the_walk_test_recognises_numpys_and_scipys_own_file_readers(name):
    assert file_parameters(resolve(name))


def test_every_listed_name_still_resolves():
    stale = []
    for name in sorted(MODEL_FILE_ALLOWLIST):
        try:
            resolve(name)
        except (ImportError, AttributeError):
            stale.append(name)
    assert stale == []


def test_names_outside_the_three_libraries_are_plain_data_types_partial_and_the_platform_s_fair_mixture_only():
    outside = {name: resolve(name) for name in MODEL_FILE_ALLOWLIST if name.split(".")[0] not in LIBRARIES}
    assert set(outside.values()) == PLAIN_TYPES | {FairMixtureClassifier}
    assert all(name == f"{kind.__module__}.{kind.__name__}" for name, kind in outside.items())


def test_the_fair_mixture_module_reaches_nothing_but_numpy_pandas_and_scikit_learn():
    tree = ast.parse(Path(fair_mixture.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"numpy", "pandas", "sklearn.base"}


def test_it_lists_every_scikit_learn_estimator_except_the_text_vectorizers_and_birch():
    estimators = {f"{cls.__module__}.{cls.__name__}" for _, cls in all_estimators()}
    assert estimators - MODEL_FILE_ALLOWLIST == EXCLUDED_ESTIMATORS


@pytest.mark.parametrize(
    "name",
    [
        "numpy.lib._datasource._open",
        "sklearn.utils.discovery.import_module",
        "builtins.open",
        "builtins.eval",
        "builtins.exec",
        "builtins.compile",
        "builtins.getattr",
        "builtins.__import__",
        "builtins.type",
        "posix.system",
        "os.system",
        "subprocess.Popen",
        "importlib.import_module",
        "pickle.loads",
        "joblib.load",
        "numpy.load",
        "numpy.fromfile",
        "numpy.memmap",
        "numpy.loadtxt",
        "numpy.lib.format.open_memmap",
        "numpy.f2py.f2py2e.run_main",
        "numpy.sin",
        "scipy.io.loadmat",
        "scipy.special.expit",
        "sklearn.datasets._openml.fetch_openml",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.feature_extraction.text.CountVectorizer",
        "sklearn.metrics._dist_metrics.PyFuncDistance64",
        "operator.methodcaller",
        "operator.attrgetter",
        "sklearn.linear_model._logistic.LogisticRegression.fit",
        "sklearn.",
        "sklearn",
        "numpy.",
        "sklearn.tree._tree.Tree ",
        "SKLEARN.tree._tree.Tree",
        "",
    ],
)
def test_it_refuses_anything_not_listed_letter_for_letter(name):
    assert not is_allowed(name)


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.pipeline.Pipeline",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.calibration._SigmoidCalibration",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.random.mtrand.RandomState",
        "numpy.random.PCG64",
        "scipy.sparse._csr.csr_matrix",
        "numpy.log1p",
        "builtins.dict",
    ],
)
def test_it_accepts_what_fitted_pipelines_are_made_of(name):
    assert is_allowed(name)


def test_the_allowlist_module_imports_no_django():
    tree = ast.parse(Path(allowlist.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == set()
