"""Problem specification files: a whole problem in one TOML file.

``mtlcvx solve spec.toml`` and ``mtlcvx validate spec.toml iterates.npz`` read them, and
:func:`load_spec` gives the same :class:`~mtlcvx.Problem` in Python. The format::

    [data]
    path = "schools.csv"        # .csv, .npz or .mat; relative to the spec file
    task = "school"             # .csv, long format: the task column
    target = "score"            # .csv: the target column (a list: shared design, one task each)
    features = ["hours", "age"] # .csv, optional: default every other column

    [loss]                      # optional
    scale = "mean"              # "mean": 1/(2 n_t) per task; "sum": 1/2
    fit_intercept = true        # default true
    task_weights = [1.0, 2.0]   # optional, one per task

    [[penalty]]                 # zero or more, added up
    name = "TaskRelation"       # a class of mtlcvx.penalties
    alpha = 0.1
    K = {relation = "mean_regularizer"}   # or a nested list, or "K.npy" / "K.csv"

    [solve]                     # optional
    backend = "clarabel"        # default: the package's rule
    tol = 1e-8
    max_iter = 10000
    refine = false              # polish an uncertified point with certified FISTA

Data files: a ``.npz`` or ``.mat`` holds ``X`` (n, d) with ``y`` (n,) and ``task`` (n,)
(stacked rows, long format) or ``Y`` (n, T) (shared design); a ``.mat`` may instead hold
MALSAR's cell arrays ``X`` and ``Y`` (1, T). Optional arrays ``feature_names`` and
``tasks`` label a shared design.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import penalties as _penalties
from . import relations
from ._optional import require
from .data import MultiTaskData
from .exceptions import SpecError
from .losses import SquaredLoss
from .problem import Problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Spec", "load_spec", "penalty_classes", "read_data"]

_SECTIONS = {"data": {"path", "task", "target", "features"},
             "loss": {"scale", "fit_intercept", "task_weights"},
             "penalty": None, "solve": {"backend", "tol", "max_iter", "refine"}}
#: Named matrices a matrix parameter may ask for: ``{relation = "chain"}``.
_RELATIONS = {"chain": relations.chain, "mean_regularizer": relations.mean_regularizer,
              "identity": np.eye}
_NOT_BY_NAME = {"Penalty", "QuadraticPenalty", "Custom"}


@dataclass
class Spec:
    """A loaded specification.

    Attributes
    ----------
    problem : Problem
    backend : str or None
    tol : float
    max_iter : int or None
    refine : bool
    path : Path
        The spec file.
    """

    problem: Problem
    backend: str | None
    tol: float
    max_iter: int | None
    refine: bool
    path: Path

    def solve(self):
        """``problem.solve(backend, tol, max_iter, refine)`` with the spec's settings."""
        return self.problem.solve(backend=self.backend, tol=self.tol, max_iter=self.max_iter,
                                  refine=self.refine)


def penalty_classes() -> dict[str, type]:
    """Penalties a spec may name: every public class of :mod:`mtlcvx.penalties` whose
    parameters are numbers or matrices (``Custom`` needs Python callables)."""
    return {name: getattr(_penalties, name) for name in _penalties.__all__
            if name not in _NOT_BY_NAME and inspect.isclass(getattr(_penalties, name))
            and issubclass(getattr(_penalties, name), _penalties.Penalty)}


def load_spec(path: str | Path) -> Spec:
    """Read a spec file and build its :class:`~mtlcvx.Problem`.

    Parameters
    ----------
    path : str or Path
        The TOML file; relative paths inside it are relative to its directory.

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        A missing or unreadable file, invalid TOML, an unknown section, key, penalty or
        parameter, or a value of the wrong type; the message names it.
    DataError, PenaltyError
        Data or penalties the package refuses (shapes, NaN, a K that is not PSD, …).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file {str(path)!r} does not exist") from None
    except OSError as err:
        raise SpecError(f"cannot read spec file {str(path)!r}: {err.strerror}") from None
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path.name} is not valid TOML: {err}") from None
    for section, value in spec.items():
        if section not in _SECTIONS:
            raise SpecError(f"{path.name}: unknown section [{section}]; the sections are "
                            f"{', '.join(f'[{s}]' for s in _SECTIONS)}")
        allowed = _SECTIONS[section]
        if allowed is not None:
            if not isinstance(value, dict):
                raise SpecError(f"{path.name}: [{section}] must be a table")
            unknown = sorted(set(value) - allowed)
            if unknown:
                raise SpecError(f"{path.name}: unknown key {unknown[0]!r} in [{section}]; "
                                f"its keys are {', '.join(sorted(allowed))}")
    if not isinstance(spec.get("data", {}).get("path"), str):
        raise SpecError(f"{path.name}: [data] path = \"<file>\" is required")
    data = read_data(spec["data"], path.parent)
    loss_spec = dict(spec.get("loss", {}))
    fit_intercept = _flag(loss_spec.pop("fit_intercept", True), "[loss] fit_intercept")
    loss = SquaredLoss(**loss_spec)
    pens = spec.get("penalty", [])
    if not isinstance(pens, list):
        raise SpecError(f"{path.name}: penalties are [[penalty]] tables (double brackets)")
    built = [_penalty(p, i, data, path.parent) for i, p in enumerate(pens)]
    solve = spec.get("solve", {})
    return Spec(Problem(data, loss, built, fit_intercept=fit_intercept),
                backend=solve.get("backend"), tol=solve.get("tol", 1e-8),
                max_iter=solve.get("max_iter"),
                refine=_flag(solve.get("refine", False), "[solve] refine"), path=path)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where} must be true or false, got {value!r}")
    return value


def _file(value: str, base: Path, what: str) -> Path:
    file = base / value
    if not file.is_file():
        raise SpecError(f"{what} file {str(file)!r} does not exist")
    return file


def read_data(section: dict[str, Any], base: Path) -> MultiTaskData:
    """The :class:`~mtlcvx.MultiTaskData` a spec's ``[data]`` table describes.

    Parameters
    ----------
    section : dict
        ``path`` and, for a ``.csv``, ``task``, ``target`` and ``features``.
    base : Path
        Directory ``path`` is relative to.
    """
    file = _file(section["path"], base, "data")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return _read_csv(file, section)
    if {"task", "target", "features"} & set(section):
        raise SpecError(f"[data] task/target/features name columns of a .csv; {file.name} "
                        "holds named arrays (X with y and task, or X with Y)")
    if suffix == ".npz":
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as err:
            raise SpecError(f"cannot read {file.name} as a .npz file ({err})") from None
    elif suffix == ".mat":
        import scipy.io

        try:
            arrays = {k: v for k, v in scipy.io.loadmat(file).items() if not k.startswith("__")}
        except (OSError, ValueError, TypeError) as err:
            raise SpecError(f"cannot read {file.name} as a .mat file ({err})") from None
    else:
        raise SpecError(f"data file {file.name} must end in .csv, .npz or .mat")
    return _from_arrays(arrays, file.name)


def _read_csv(file: Path, section: dict[str, Any]) -> MultiTaskData:
    pd = require("pandas", "pandas", "reading .csv data")
    try:
        df = pd.read_csv(file)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise SpecError(f"cannot read {file.name} as a .csv file ({err})") from None
    target = section.get("target")
    features = section.get("features")
    if features is not None and not isinstance(features, list):
        raise SpecError(f"[data] features must be a list of column names, got {features!r}")
    if isinstance(target, list):
        if "task" in section:
            raise SpecError("[data] target is a list (a shared design, one task per target "
                            "column), so task must not be given")
        missing = [c for c in target if c not in df.columns]
        if missing:
            raise SpecError(f"{file.name} has no column {missing[0]!r}")
        features = [c for c in df.columns if c not in target] if features is None else features
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise SpecError(f"{file.name} has no column {missing[0]!r}")
        return MultiTaskData.shared(df[features].to_numpy(), df[target].to_numpy(),
                                    tasks=target, feature_names=features)
    if not isinstance(target, str) or not isinstance(section.get("task"), str):
        raise SpecError("[data] of a .csv needs task = \"<column>\" and target = \"<column>\" "
                        "(long format), or target = [\"<column>\", …] (shared design)")
    return MultiTaskData.from_frame(df, task=section["task"], target=target, features=features)


def _from_arrays(arrays: dict[str, np.ndarray], name: str) -> MultiTaskData:
    if "X" not in arrays:
        raise SpecError(f"{name} has no array 'X' (it has {', '.join(arrays) or 'none'})")
    X = arrays["X"]
    if X.dtype == object:  # MALSAR's cell arrays X{t}, Y{t}
        if "Y" not in arrays:
            raise SpecError(f"{name} has the cell array X but no cell array Y")
        return MultiTaskData([np.asarray(x, dtype=float) for x in X.ravel()],
                             [np.asarray(y, dtype=float).ravel() for y in arrays["Y"].ravel()])
    names = arrays.get("feature_names")
    names = None if names is None else np.ravel(names).tolist()
    if "Y" in arrays:
        tasks = arrays.get("tasks")
        return MultiTaskData.shared(X, arrays["Y"], feature_names=names,
                                    tasks=None if tasks is None else np.ravel(tasks).tolist())
    if "y" not in arrays or "task" not in arrays:
        raise SpecError(f"{name} needs 'y' and 'task' (stacked rows) or 'Y' (shared design) "
                        "next to 'X'")
    return MultiTaskData.from_stacked(X, np.ravel(arrays["y"]), np.ravel(arrays["task"]),
                                      feature_names=names)


def _penalty(table: Any, index: int, data: MultiTaskData, base: Path) -> Any:
    where = f"[[penalty]] #{index + 1}"
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise SpecError(f"{where} needs name = \"<penalty class>\"")
    classes = penalty_classes()
    params = dict(table)
    name = params.pop("name")
    cls = classes.get(name)
    if cls is None:
        raise SpecError(f"{where}: unknown penalty {name!r}; choose one of "
                        f"{', '.join(classes)}")
    valid = list(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise SpecError(f"{where}: {name} has no parameter {unknown[0]!r}; its parameters "
                        f"are {', '.join(valid)}")
    values = {key: _value(value, key, where, data, base) for key, value in params.items()}
    try:
        return cls(**values)
    except TypeError as err:  # a required parameter is missing
        raise SpecError(f"{where}: {name}: {err}") from None


def _value(value: Any, key: str, where: str, data: MultiTaskData, base: Path) -> Any:
    """A parameter value: a number, a string, a nested list, a .npy/.csv/.txt file or a
    named relation."""
    if isinstance(value, list):
        try:
            return np.asarray(value, dtype=float)
        except (ValueError, TypeError):
            raise SpecError(f"{where}: {key} must be a list of equal-length lists of numbers"
                            ) from None
    if isinstance(value, str) and value.lower().endswith((".npy", ".csv", ".txt")):
        file = _file(value, base, f"{where} {key}")
        try:
            if file.suffix.lower() == ".npy":
                return np.load(file, allow_pickle=False)
            return np.loadtxt(file, delimiter=",", ndmin=2)
        except (OSError, ValueError) as err:
            raise SpecError(f"{where}: cannot read {key} from {file.name} ({err})") from None
    if isinstance(value, dict):
        relation = value.get("relation")
        if set(value) != {"relation"} or relation not in _RELATIONS:
            raise SpecError(f"{where}: {key} = {{relation = \"...\"}} takes one of "
                            f"{', '.join(_RELATIONS)}")
        size = data.n_features if key == "D" else data.n_tasks
        return _RELATIONS[relation](size)
    return value
