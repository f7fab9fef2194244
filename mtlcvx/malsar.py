r"""MALSAR's least-squares formulations by name, with the objective MALSAR's code minimises.

MALSAR (Zhou, Chen & Ye) is the MATLAB toolbox most multi-task learning users know. Each of
its ``Least_*`` solvers minimises a fixed objective; this module builds the same objective
as an mtlcvx :class:`~mtlcvx.Problem`, so a MALSAR script moves over by name and its
parameters keep their meaning::

    import mtlcvx as mc
    prob = mc.malsar.problem("Least_L21", data, rho1=500.0)  # ½Σ‖X_t w_t − y_t‖² + 500 Σ_j‖w^j‖₂
    sol = prob.solve()                                      # certified optimum
    report = mc.malsar.compare("Least_L21", data, W_malsar, rho1=500.0)

``sol.objective`` is the number MALSAR's objective gives at ``sol.W``. The loss follows the
solver's *code*, not MALSAR's manual: most solvers use ``Σ_t ½‖X_t w_t − y_t‖²``
(``SquaredLoss(scale="sum")``); ``Least_Dirty``, ``Least_rMTFL``, ``Least_RMTL`` and
``Least_SparseTrace`` drop the ½ (``SquaredLoss(scale="sum", task_weights=2)``).
:func:`formulations` lists every formulation with its objective and the plain mtlcvx
penalties it becomes.

Data may be a :class:`~mtlcvx.MultiTaskData` or MALSAR's cell arrays as
``scipy.io.loadmat`` returns them: the whole ``loadmat`` dict (keys ``"X"`` and ``"Y"``) or a
pair ``(X, Y)`` of cell arrays (or lists) with ``X{t}`` of shape ``(n_t, d)``
(``Least_CFGLasso`` takes ``(d, n_t)``, as in MALSAR; the orientation is read from the
targets' lengths wherever it is unambiguous). MALSAR appends no intercept: keep its bias
column in ``X`` (the problems have ``fit_intercept=False``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import relations
from ._linalg import issparse
from ._threads import blas_limited
from .certificates import Certificate, certify
from .data import MultiTaskData, as_float_array
from .exceptions import DataError, PenaltyError
from .first_order import _Variable
from .losses import SquaredLoss
from .penalties import (
    L1,
    L21,
    Dirty,
    FusedL1,
    GraphLaplacian,
    LearnedClusters,
    MeanRegularized,
    Penalty,
    Ridge,
    RobustFeatureLearning,
    RobustMTL,
    SparsePlusLowRank,
    TaskRelation,
    TraceNorm,
)
from .penalties.base import check_strength
from .problem import Problem
from .relation_learning import RelationResult, learn_relation
from .solution import Solution

__all__ = ["Formulation", "Comparison", "RuleRun", "formulations", "label", "as_data",
           "problem", "learn", "compare", "default_rule"]

_HALF = "½Σ_t‖X_t w_t − y_t‖²"
_FULL = "Σ_t‖X_t w_t − y_t‖²"


@dataclass(frozen=True)
class Formulation:
    """One MALSAR least-squares solver.

    Attributes
    ----------
    name : str
        MALSAR's function name, e.g. ``"Least_L21"``.
    parameters : tuple of str
        Its parameters in MALSAR's order (``rho1``, ``rho2``, … and ``R`` or ``k``).
    objective : str
        The objective MALSAR's code minimises (``W`` is d × T, ``w^j`` row j, ``w_t``
        column t, ``R_chain`` the T × (T−1) matrix with columns ``e_t − e_{t+1}``).
    mtlcvx : str
        The same objective in plain mtlcvx terms (loss and penalties).
    halved : bool
        True when the loss is ``Σ_t ½‖·‖²``; False for the solvers whose code drops the ½.
    notes : str
        What MALSAR's own solver does differently from the objective (known defects,
        conventions).
    school : tuple of dict
        The parameters used on School in the documentation, the example and the benchmark
        (one dict per configuration).
    outputs : str
        MALSAR's call and outputs; for ``W = P + Q`` formulations the parts it returns are
        what :func:`compare` takes as ``parts``.
    part_outputs : dict
        mtlcvx part name (``sol.parts`` key) -> MALSAR's output variable holding it.
    relation : str or None
        For the formulations that learn a matrix ``M`` with ``W`` (CMTL, CASO), the
        :func:`mtlcvx.learn_relation` kind; :func:`learn` solves them.
    """

    name: str
    parameters: tuple[str, ...]
    objective: str
    mtlcvx: str
    build: Callable[[MultiTaskData, dict[str, Any]], list[Penalty]] = field(
        repr=False, compare=False)
    halved: bool = True
    notes: str = ""
    school: tuple[dict[str, Any], ...] = ()
    outputs: str = ""
    part_outputs: Mapping[str, str] = field(default_factory=dict)
    relation: str | None = None
    layout: str = field(default="nd", repr=False)


# ---------------------------------------------------------------------- task structure R
def _structure(R: Any, alpha: float, n_tasks: int) -> Penalty:
    """``(alpha/2)‖W R‖²_F`` for MALSAR's R (T, m), kept as the factor of ``K = R Rᵀ``.

    A sparse R stays sparse. ``"chain"`` is MALSAR's ``R_chain`` (its ``R Rᵀ`` is the chain
    Laplacian) and ``"mean"`` is ``I − 11ᵀ/T`` (idempotent: ``‖W R‖²_F = Σ_t ‖w_t − w̄‖²``).
    """
    if isinstance(R, str):
        if R == "chain":
            return GraphLaplacian(relations.chain(n_tasks), alpha=alpha)
        if R == "mean":
            return MeanRegularized(alpha=alpha)
        raise PenaltyError(f"R must be 'chain', 'mean' or a (T, m) matrix, got {R!r}")
    shape = R.shape if issparse(R) else as_float_array(R, "R", 2).shape
    if shape[0] != n_tasks:
        hint = ("; pass R.T (MALSAR's R is T × m and enters as W @ R)"
                if shape[1] == n_tasks else "")
        raise DataError(f"R has shape {shape} but the data have {n_tasks} tasks: R must be "
                        f"({n_tasks}, m){hint}")
    return TaskRelation.from_factor(R, alpha=alpha)


# ---------------------------------------------------------------------- the catalogue
def _lasso(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [L1(p["rho1"])]


def _l21(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [L21(p["rho1"])]


def _trace(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [TraceNorm(p["rho1"])]


def _srmtl(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [_structure(p["R"], 2.0 * p["rho1"], data.n_tasks), L1(p["rho2"])]


def _tgl(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [Ridge(2.0 * p["rho1"]),
            GraphLaplacian(relations.chain(data.n_tasks), alpha=2.0 * p["rho2"]),
            L21(p["rho3"])]


def _cfglasso(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [L1(p["rho1"]), FusedL1(relations.chain(data.n_tasks), alpha=p["rho2"]),
            L21(p["rho3"])]


def _dirty(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [Dirty(alpha_rows=p["rho1"], alpha_entries=p["rho2"], rows="linf")]


def _rmtfl(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [RobustFeatureLearning(alpha_rows=p["rho1"], alpha_tasks=p["rho2"])]


def _rmtl(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [RobustMTL(alpha_lowrank=p["rho1"], alpha_tasks=p["rho2"])]


def _sparse_trace(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [SparsePlusLowRank(alpha_sparse=p["rho1"], trace_bound=p["rho2"])]


def _clusters(p: Mapping[str, float], side: str) -> LearnedClusters:
    """MALSAR's ``ρ₁η(1+η) tr(W (ηI + M)⁻¹ Wᵀ)``, ``η = ρ₂/ρ₁``, with M minimised out."""
    eta = p["rho2"] / p["rho1"]
    return LearnedClusters(alpha=2.0 * p["rho1"] * eta * (1.0 + eta), k=p["k"], eta=eta,
                           side=side)


def _cmtl(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [_clusters(p, "task")]


def _caso(data: MultiTaskData, p: dict[str, Any]) -> list[Penalty]:
    return [_clusters(p, "feature")]


_DOUBLED = "SquaredLoss('sum', task_weights=2)"
_LEARN_NOTE = ("mc.malsar.problem gives the objective with M minimised out (for evaluation "
               "and certificates); mc.malsar.learn solves it and returns W and M.")

_CATALOGUE: tuple[Formulation, ...] = (
    Formulation(
        "Least_Lasso", ("rho1",), f"{_HALF} + rho1 ‖W‖₁",
        "SquaredLoss('sum'), L1(rho1)", school=({"rho1": 50.0},), build=_lasso),
    Formulation(
        "Least_L21", ("rho1",), f"{_HALF} + rho1 Σ_j ‖w^j‖₂",
        "SquaredLoss('sum'), L21(rho1)", school=({"rho1": 500.0},), build=_l21),
    Formulation(
        "Least_Trace", ("rho1",), f"{_HALF} + rho1 ‖W‖_*",
        "SquaredLoss('sum'), TraceNorm(rho1)", school=({"rho1": 1000.0},), build=_trace),
    Formulation(
        "Least_SRMTL", ("R", "rho1", "rho2"), f"{_HALF} + rho1 ‖W R‖²_F + rho2 ‖W‖₁",
        "SquaredLoss('sum'), TaskRelation.from_factor(R, alpha=2 rho1), L1(rho2); "
        "R='chain': GraphLaplacian(relations.chain(T), alpha=2 rho1); "
        "R='mean' (I − 11ᵀ/T): MeanRegularized(alpha=2 rho1)",
        notes="R is T × m as MALSAR takes it; 'chain' and 'mean' name the two usual choices.",
        school=({"R": "chain", "rho1": 10.0, "rho2": 20.0},
                {"R": "mean", "rho1": 10.0, "rho2": 20.0}),
        build=_srmtl),
    Formulation(
        "Least_TGL", ("rho1", "rho2", "rho3"),
        f"{_HALF} + rho1 ‖W‖²_F + rho2 ‖W R_chain‖²_F + rho3 Σ_j ‖w^j‖₂",
        "SquaredLoss('sum'), Ridge(2 rho1), GraphLaplacian(relations.chain(T), alpha=2 rho2), "
        "L21(rho3)", school=({"rho1": 1.0, "rho2": 10.0, "rho3": 500.0},), build=_tgl),
    Formulation(
        "Least_CFGLasso", ("rho1", "rho2", "rho3"),
        f"{_HALF} + rho1 ‖W‖₁ + rho2 ‖W R_chain‖₁ + rho3 Σ_j ‖w^j‖₂",
        "SquaredLoss('sum'), L1(rho1), FusedL1(relations.chain(T), alpha=rho2), L21(rho3)",
        notes="MALSAR takes X{t} as d × n_t for this solver only (no transpose inside).",
        school=({"rho1": 50.0, "rho2": 20.0, "rho3": 200.0},), layout="dn",
        build=_cfglasso),
    Formulation(
        "Least_Dirty", ("rho1", "rho2"),
        f"{_FULL} + rho1 Σ_j ‖p^j‖_∞ + rho2 ‖Q‖₁ over W = P + Q",
        f"{_DOUBLED}, Dirty(alpha_rows=rho1, alpha_entries=rho2, rows='linf')",
        halved=False,
        notes="MALSAR's code drops the ½ of the loss; its parameters are named lambda1, lambda2.",
        school=({"rho1": 1000.0, "rho2": 200.0},),
        outputs="[W, funcVal, P, Q] = Least_Dirty(X, Y, rho1, rho2): parts={'P': P, 'Q': Q}",
        part_outputs={"P": "P", "Q": "Q"}, build=_dirty),
    Formulation(
        "Least_rMTFL", ("rho1", "rho2"),
        f"{_FULL} + rho1 Σ_j ‖p^j‖₂ + rho2 Σ_t ‖q_t‖₂ over W = P + Q",
        f"{_DOUBLED}, RobustFeatureLearning(alpha_rows=rho1, alpha_tasks=rho2)",
        halved=False,
        notes="MALSAR's code drops the ½ of the loss; its parameters are named lambda1, lambda2.",
        school=({"rho1": 1000.0, "rho2": 500.0},),
        outputs="[W, funcVal, P, Q] = Least_rMTFL(X, Y, rho1, rho2): parts={'P': P, 'Q': Q}",
        part_outputs={"P": "P", "Q": "Q"}, build=_rmtfl),
    Formulation(
        "Least_RMTL", ("rho1", "rho2"),
        f"{_FULL} + rho1 ‖L‖_* + rho2 Σ_t ‖s_t‖₂ over W = L + S",
        f"{_DOUBLED}, RobustMTL(alpha_lowrank=rho1, alpha_tasks=rho2)",
        halved=False,
        notes="MALSAR's header says ½ but its gradient is that of the loss without ½, which is "
        "what it minimises.",
        school=({"rho1": 2000.0, "rho2": 500.0},),
        outputs="[W, funcVal, L_hat, S_hat] = Least_RMTL(X, Y, rho1, rho2): "
        "parts={'L': L_hat, 'S': S_hat}",
        part_outputs={"L": "L_hat", "S": "S_hat"}, build=_rmtl),
    Formulation(
        "Least_SparseTrace", ("rho1", "rho2"),
        f"{_FULL} + rho1 ‖P‖₁ subject to ‖Q‖_* ≤ rho2, W = P + Q",
        f"{_DOUBLED}, SparsePlusLowRank(alpha_sparse=rho1, trace_bound=rho2)",
        halved=False,
        notes="MALSAR's code drops the ½ of the loss and soft-thresholds P at 2·rho1/γ instead "
        "of rho1/γ, so it stays about 1.7e-3 relatively above this optimum however long it "
        "runs; its parameters are named gamma, tau.",
        school=({"rho1": 100.0, "rho2": 100.0},),
        outputs="[W, funcVal, Tp, Tq] = Least_SparseTrace(X, Y, rho1, rho2): "
        "parts={'P': Tp, 'Q': Tq}",
        part_outputs={"P": "Tp", "Q": "Tq"}, build=_sparse_trace),
    Formulation(
        "Least_CMTL", ("rho1", "rho2", "k"),
        f"{_HALF} + rho1 η(1+η) tr(W (ηI + M)⁻¹ Wᵀ), η = rho2/rho1, over M (T × T), "
        "0 ⪯ M ⪯ I, tr M = k",
        "learn_relation(Problem(data, SquaredLoss('sum')), kind='clusters', "
        "alpha=2 rho1 η(1+η), k=k, eta=η); with M minimised out: "
        "LearnedClusters(alpha=2 rho1 η(1+η), k=k, eta=η)",
        notes="MALSAR's solver runs accelerated projected gradient on (W, M) with an "
        "M-gradient that is wrong unless M commutes with WᵀW: it ends at least 17 % above "
        "this optimum on School however long it runs, and its funcVal is not this "
        "objective. " + _LEARN_NOTE, school=({"rho1": 10.0, "rho2": 0.1, "k": 3.0},),
        outputs="[W, funcVal, M] = Least_CMTL(X, Y, rho1, rho2, k): M=M",
        relation="clusters", build=_cmtl),
    Formulation(
        "Least_CASO", ("rho1", "rho2", "k"),
        f"{_HALF} + rho1 η(1+η) tr(Wᵀ (ηI + M)⁻¹ W), η = rho2/rho1, over M (d × d), "
        "0 ⪯ M ⪯ I, tr M = k",
        "learn_relation(Problem(data, SquaredLoss('sum')), kind='feature_clusters', "
        "alpha=2 rho1 η(1+η), k=k, eta=η); with M minimised out: "
        "LearnedClusters(alpha=2 rho1 η(1+η), k=k, eta=η, side='feature')",
        notes="MALSAR's solver runs accelerated projected gradient on (W, M) like "
        "Least_CMTL's, and its funcVal is not this objective. " + _LEARN_NOTE,
        school=({"rho1": 10.0, "rho2": 0.1, "k": 3.0},),
        outputs="[W, funcVal, M] = Least_CASO(X, Y, rho1, rho2, k): M=M",
        relation="feature_clusters", build=_caso),
)
_BY_KEY = {f.name.lower(): f for f in _CATALOGUE}


def label(name: str, params: Mapping[str, Any]) -> str:
    """Short label of a configuration: the name, plus ``(R=chain)`` when R is named."""
    R = params.get("R")
    return name + (f"(R={R})" if isinstance(R, str) else "")


def formulations() -> tuple[Formulation, ...]:
    """Every MALSAR least-squares formulation this module reproduces, in MALSAR's order.

    Returns
    -------
    tuple of Formulation
        Each with its ``name``, ``parameters``, ``objective`` (as MALSAR's code minimises
        it), the equivalent ``mtlcvx`` loss and penalties, and ``notes``.

    Examples
    --------
    >>> import mtlcvx as mc
    >>> [f.name for f in mc.malsar.formulations()][:3]
    ['Least_Lasso', 'Least_L21', 'Least_Trace']
    """
    return _CATALOGUE


def _lookup(name: Any) -> Formulation:
    key = str(name).lower()
    found = _BY_KEY.get(key) or _BY_KEY.get("least_" + key)
    if found is None:
        valid = ", ".join(f.name for f in _CATALOGUE)
        raise PenaltyError(f"unknown MALSAR formulation {name!r}; valid names: {valid}")
    return found


def _check_params(form: Formulation, params: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(form.parameters))
    if unknown:
        raise PenaltyError(f"{form.name} has no parameter {', '.join(unknown)}; its parameters "
                           f"are {', '.join(form.parameters)}")
    missing = [p for p in form.parameters if p not in params]
    if missing:
        raise PenaltyError(f"{form.name} needs {', '.join(missing)} (its parameters are "
                           f"{', '.join(form.parameters)}), e.g. "
                           f"mc.malsar.problem({form.name!r}, data, "
                           + ", ".join(f"{p}=..." for p in form.parameters) + ")")
    checked = {k: (v if k == "R" else check_strength(v, k)) for k, v in params.items()}
    if form.relation is not None and not (checked["rho1"] > 0 and checked["rho2"] > 0):
        raise PenaltyError(f"{form.name} needs rho1 > 0 and rho2 > 0 (η = rho2/rho1), got "
                           f"rho1={checked['rho1']:g}, rho2={checked['rho2']:g}")
    return checked


# ---------------------------------------------------------------------- data
def _cells(value: Any, name: str) -> list[Any]:
    """A MALSAR cell array (object ndarray of any shape) or a list, as a flat list."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel(order="F"))
    if isinstance(value, (list, tuple)):
        return list(value)
    raise DataError(f"{name} must be a cell array (as scipy.io.loadmat returns it) or a list "
                    f"with one array per task, got {type(value).__name__}")


def as_data(data: Any, layout: str = "nd") -> MultiTaskData:
    """MALSAR-format data as a :class:`~mtlcvx.MultiTaskData`.

    Parameters
    ----------
    data : MultiTaskData, dict or (X, Y)
        A ``MultiTaskData`` (returned unchanged); the dict ``scipy.io.loadmat`` returns for
        a MALSAR data file (keys ``"X"`` and ``"Y"``); or a pair ``(X, Y)`` of cell arrays or
        lists, ``X{t}`` (n_t, d) or (d, n_t), ``Y{t}`` (n_t,) or (n_t, 1).
    layout : {"nd", "dn"}
        How ``X{t}`` is laid out when the targets' lengths cannot tell (every task has
        ``n_t = d``): ``"nd"`` (n_t × d, MALSAR's convention for every solver except
        ``Least_CFGLasso``) or ``"dn"`` (d × n_t, ``Least_CFGLasso``'s).

    Returns
    -------
    MultiTaskData
        ``X_t`` of shape (n_t, d) in task order (MATLAB's column-major cell order).

    Raises
    ------
    DataError
        Missing ``X``/``Y``, different task counts, or designs whose sizes match neither
        layout.
    """
    if isinstance(data, MultiTaskData):
        return data
    if layout not in ("nd", "dn"):
        raise DataError(f"layout must be 'nd' or 'dn', got {layout!r}")
    if isinstance(data, Mapping):
        if "X" not in data or "Y" not in data:
            keys = ", ".join(k for k in data if not str(k).startswith("__")) or "none"
            raise DataError(f"the .mat data must hold MALSAR's cell arrays 'X' and 'Y'; "
                            f"found variables: {keys}")
        X, Y = data["X"], data["Y"]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        X, Y = data
    else:
        raise DataError(f"data must be a MultiTaskData, a loadmat dict with 'X' and 'Y', or a "
                        f"pair (X, Y) of cell arrays; got {type(data).__name__}")
    Xs = [as_float_array(x, f"X{{{t + 1}}}", 2) for t, x in enumerate(_cells(X, "X"))]
    ys = [as_float_array(y, f"Y{{{t + 1}}}", (1, 2)).ravel() for t, y in enumerate(_cells(Y, "Y"))]
    if len(Xs) != len(ys):
        raise DataError(f"X has {len(Xs)} tasks but Y has {len(ys)}; give one Y{{t}} per X{{t}}")
    fits = {
        "nd": all(x.shape[0] == y.size for x, y in zip(Xs, ys, strict=True))
        and len({x.shape[1] for x in Xs}) == 1,
        "dn": all(x.shape[1] == y.size for x, y in zip(Xs, ys, strict=True))
        and len({x.shape[0] for x in Xs}) == 1,
    }
    if not any(fits.values()):
        sizes = ", ".join(f"X{{{t + 1}}} {x.shape} / Y{{{t + 1}}} {y.size}"
                          for t, (x, y) in enumerate(zip(Xs[:3], ys[:3], strict=True)))
        raise DataError(f"the designs fit neither n_t × d nor d × n_t with one d for all tasks "
                        f"({sizes}, ...)")
    use = layout if fits[layout] else next(k for k, ok in fits.items() if ok)
    if use == "dn":
        Xs = [x.T for x in Xs]
    return MultiTaskData(Xs, ys)


# ---------------------------------------------------------------------- problems
def problem(name: str, data: Any, **params: Any) -> Problem:
    r"""The :class:`~mtlcvx.Problem` whose objective is exactly MALSAR's ``name``.

    Parameters
    ----------
    name : str
        MALSAR's solver name, e.g. ``"Least_TGL"`` (case-insensitive, ``"Least_"``
        optional); :func:`formulations` lists them.
    data : MultiTaskData, dict or (X, Y)
        See :func:`as_data`.
    **params
        MALSAR's parameters by name (``rho1``, ``rho2``, ``rho3``; ``R`` for SRMTL; ``k``
        for CMTL and CASO), in MALSAR's order (``Least_Dirty``'s and ``Least_rMTFL``'s
        ``lambda1, lambda2`` and ``Least_SparseTrace``'s ``gamma, tau`` are ``rho1, rho2``).

    Returns
    -------
    Problem
        ``prob.objective(W)`` and ``sol.objective`` equal MALSAR's objective at ``W``
        (d, T). No intercept (keep MALSAR's bias column in ``X``).

    Notes
    -----
    The objectives (``w^j`` row j of ``W``, ``w_t`` column t, ``R_chain`` the T × (T−1)
    matrix with columns ``e_t − e_{t+1}``) and their mtlcvx form; mtlcvx's quadratic terms
    carry ½, so a MALSAR ``rho‖W R‖²_F`` is a quadratic term of strength ``2 rho``:

    * ``Least_Lasso``: ``½Σ‖X_t w_t − y_t‖² + ρ₁‖W‖₁`` → ``L1(ρ₁)``
    * ``Least_L21``: ``½Σ‖·‖² + ρ₁ Σ_j ‖w^j‖₂`` → ``L21(ρ₁)``
    * ``Least_Trace``: ``½Σ‖·‖² + ρ₁‖W‖_*`` → ``TraceNorm(ρ₁)``
    * ``Least_SRMTL``: ``½Σ‖·‖² + ρ₁‖W R‖²_F + ρ₂‖W‖₁`` →
      ``TaskRelation.from_factor(R, alpha=2ρ₁), L1(ρ₂)`` (``K = R Rᵀ`` kept as its factor)
    * ``Least_TGL``: ``½Σ‖·‖² + ρ₁‖W‖²_F + ρ₂‖W R_chain‖²_F + ρ₃ Σ_j ‖w^j‖₂`` →
      ``Ridge(2ρ₁), GraphLaplacian(relations.chain(T), alpha=2ρ₂), L21(ρ₃)``
    * ``Least_CFGLasso``: ``½Σ‖·‖² + ρ₁‖W‖₁ + ρ₂‖W R_chain‖₁ + ρ₃ Σ_j ‖w^j‖₂`` →
      ``L1(ρ₁), FusedL1(relations.chain(T), alpha=ρ₂), L21(ρ₃)``

    all with ``SquaredLoss(scale="sum")``, and, **without the ½** in the loss as MALSAR's
    code has it (``SquaredLoss(scale="sum", task_weights=2)``, so ``Σ_t‖X_t w_t − y_t‖²``):

    * ``Least_Dirty``: ``Σ‖·‖² + ρ₁ Σ_j ‖p^j‖_∞ + ρ₂‖Q‖₁``, ``W = P + Q`` →
      ``Dirty(alpha_rows=ρ₁, alpha_entries=ρ₂, rows="linf")``
    * ``Least_rMTFL``: ``Σ‖·‖² + ρ₁ Σ_j ‖p^j‖₂ + ρ₂ Σ_t ‖q_t‖₂``, ``W = P + Q`` →
      ``RobustFeatureLearning(alpha_rows=ρ₁, alpha_tasks=ρ₂)``
    * ``Least_RMTL``: ``Σ‖·‖² + ρ₁‖L‖_* + ρ₂ Σ_t ‖s_t‖₂``, ``W = L + S`` →
      ``RobustMTL(alpha_lowrank=ρ₁, alpha_tasks=ρ₂)``
    * ``Least_SparseTrace``: ``Σ‖·‖² + ρ₁‖P‖₁`` s.t. ``‖Q‖_* ≤ ρ₂``, ``W = P + Q`` →
      ``SparsePlusLowRank(alpha_sparse=ρ₁, trace_bound=ρ₂)``

    For these four ``sol.parts`` holds the parts and ``prob.objective(W, parts=sol.parts)``
    is MALSAR's objective at them.

    ``Least_CMTL`` and ``Least_CASO`` learn a matrix ``M`` with ``W``; here ``M`` is
    minimised out in closed form, so ``prob.objective(W)`` is MALSAR's objective at ``W``
    and the best ``M`` (``η = ρ₂/ρ₁``):

    * ``Least_CMTL``: ``½Σ‖·‖² + ρ₁η(1+η) tr(W (ηI + M)⁻¹ Wᵀ)``, ``0 ⪯ M ⪯ I`` (T × T),
      ``tr M = k`` → ``LearnedClusters(alpha=2ρ₁η(1+η), k=k, eta=η)``
    * ``Least_CASO``: the same with ``tr(Wᵀ (ηI + M)⁻¹ W)``, M d × d →
      ``LearnedClusters(..., side="feature")``

    :func:`learn` solves these two and also returns ``M`` (the alternation plus a
    certified polish); ``prob.solve()`` certifies ``W`` as fast on School (fista with
    the learned term in the gradient steps and the loss in the prox).

    ``R`` for ``Least_SRMTL`` is MALSAR's T × m matrix (dense or sparse), or ``"chain"``
    (``R_chain``, the chain graph's Laplacian) or ``"mean"`` (``I − 11ᵀ/T``,
    mean-regularized MTL: ``MeanRegularized(2ρ₁)``).

    Examples
    --------
    >>> import mtlcvx as mc
    >>> data = mc.datasets.make_related_tasks(n_tasks=4, n_features=5, random_state=0)
    >>> prob = mc.malsar.problem("Least_SRMTL", data, R="chain", rho1=1.0, rho2=0.5)
    >>> sol = prob.solve(backend="clarabel")
    >>> sol.status
    'optimal'
    """
    form = _lookup(name)
    checked = _check_params(form, params)
    data = as_data(data, form.layout)
    weights = None if form.halved else np.full(data.n_tasks, 2.0)
    return Problem(data, SquaredLoss(scale="sum", task_weights=weights),
                   form.build(data, checked))


def learn(name: str, data: Any, *, rho1: float, rho2: float, k: float,
          **options: Any) -> RelationResult:
    r"""Solve MALSAR's ``Least_CMTL`` or ``Least_CASO``: ``W`` and ``M``, certified.

    Minimises ``½Σ_t‖X_t w_t − y_t‖² + ρ₁η(1+η) tr(W (ηI + M)⁻¹ Wᵀ)`` (CMTL; CASO has
    ``tr(Wᵀ (ηI + M)⁻¹ W)``) jointly over ``W`` and ``M`` with ``0 ⪯ M ⪯ I``,
    ``tr M = k``, ``η = ρ₂/ρ₁``: :func:`mtlcvx.learn_relation` with kind ``"clusters"``
    (``"feature_clusters"``), ``alpha = 2ρ₁η(1+η)``, ``eta = η`` and
    ``SquaredLoss(scale="sum")``.

    Parameters
    ----------
    name : {"Least_CMTL", "Least_CASO"}
    data : MultiTaskData, dict or (X, Y)
        See :func:`as_data`.
    rho1, rho2 : float > 0
        MALSAR's parameters.
    k : float
        MALSAR's ``k`` (the number of clusters, ``tr M``); at most T (CMTL) or d (CASO).
    **options
        Passed to :func:`mtlcvx.learn_relation` (``method``, ``tol``, ``max_iter``, …).

    Returns
    -------
    RelationResult
        ``res.objective`` is MALSAR's objective at ``(res.W, res.matrix)``; ``res.matrix``
        is ``M``; ``res.certificate`` bounds its distance to the optimum.
    """
    form = _lookup(name)
    if form.relation is None:
        raise PenaltyError(f"{form.name} learns no matrix; use mc.malsar.problem({form.name!r}, "
                           "data, ...).solve()")
    p = _check_params(form, {"rho1": rho1, "rho2": rho2, "k": k})
    data = as_data(data, form.layout)
    term = _clusters(p, "task" if form.relation == "clusters" else "feature")
    term.check_shape(data.n_features, data.n_tasks)
    return learn_relation(Problem(data, SquaredLoss(scale="sum")), kind=form.relation,
                          alpha=term.alpha, k=term.k, eta=term.eta, **options)


def _objective_at_M(prob: Problem, W: np.ndarray, M: Any) -> float:
    """MALSAR's CMTL/CASO objective at ``(W, M)`` for a feasible ``M``."""
    term = prob.penalties[0]
    n = term.size(prob.n_features, prob.n_tasks)
    M = as_float_array(M, "M", 2)
    if M.shape != (n, n):
        raise DataError(f"M has shape {M.shape}, expected ({n}, {n})")
    lam = np.linalg.eigvalsh((M + M.T) / 2)
    tol = 1e-6 * max(1.0, term.k)
    if (np.abs(M - M.T).max() > tol or lam[0] < -tol or lam[-1] > 1 + tol
            or abs(lam.sum() - term.k) > tol):
        raise DataError(f"M is not feasible: it must be symmetric with 0 ⪯ M ⪯ I and "
                        f"tr M = k = {term.k:g}; its eigenvalues span [{lam[0]:.3g}, "
                        f"{lam[-1]:.3g}] and its trace is {lam.sum():.6g}")
    A = term.eta * np.eye(n) + (M + M.T) / 2
    X = W.T if term.side == "task" else W  # tr(W A⁻¹ Wᵀ) = tr(Wᵀ... ) on the matching side
    quad = float(np.sum(X * np.linalg.solve(A, X)))
    return prob.loss.value(prob.data, W) + 0.5 * term.alpha * quad


# ---------------------------------------------------------------------- compare
@dataclass
class Comparison:
    """How far a MALSAR result is from the certified optimum of the same objective.

    Attributes
    ----------
    name : str
        The formulation.
    objective : float
        MALSAR's objective at the given ``W``, recomputed in NumPy.
    optimum : float
        The objective at the certified optimum mtlcvx found.
    optimum_gap : float
        Certified bound on ``optimum − F*``: ``F*`` lies in ``[optimum − optimum_gap, optimum]``.
    excess : float
        ``objective − optimum``: a lower bound on the true excess ``objective − F*``.
    excess_bound : float
        ``excess + optimum_gap``: a guaranteed upper bound on ``objective − F*``.
    relative_excess : float
        ``excess / max(1, |optimum|)`` ("how far above the optimum", relatively).
    certificate : Certificate
        The certificate of the given ``W`` alone (a bound computed from ``W`` without any
        solve; compare its gap with ``excess_bound``).
    solution : Solution or RelationResult
        The certified optimum (a RelationResult for CMTL and CASO).
    """

    name: str
    objective: float
    optimum: float
    optimum_gap: float
    excess: float
    excess_bound: float
    relative_excess: float
    certificate: Certificate
    solution: Solution | RelationResult

    def summary(self) -> str:
        """A short human-readable report."""
        return "\n".join([
            f"{self.name}: MALSAR's objective at the given W  {self.objective:.12g}",
            f"  certified optimum                  {self.optimum:.12g} "
            f"(F* within {self.optimum_gap:.2e} below)",
            f"  excess over the optimum            {self.excess:.6g} (relative "
            f"{self.relative_excess:.3e}; at most {self.excess_bound:.6g})",
            f"  certificate of the given W alone   {self.certificate}",
        ])

    def __str__(self) -> str:
        return self.summary()


def compare(name: str, data: Any, W: Any, *, parts: Mapping[str, Any] | None = None,
            M: Any = None, backend: str | None = None, tol: float = 1e-8,
            **params: Any) -> Comparison:
    """Certify a ``W`` exported from MALSAR: its true objective and how far above the optimum.

    Parameters
    ----------
    name, data, **params
        As in :func:`problem` (the same objective MALSAR minimised).
    W : array_like (d, T)
        MALSAR's ``W`` output.
    parts : dict, optional
        For the ``W = P + Q`` formulations, the parts MALSAR returned (``Formulation.outputs``
        says which: ``{"P": P, "Q": Q}``, ``{"L": L_hat, "S": S_hat}`` for ``Least_RMTL``);
        the objective is evaluated at them. Needed except for ``Least_Dirty``, whose value
        at ``W`` alone (the best split) has a closed form.
    M : array_like, optional
        For ``Least_CMTL`` (T × T) and ``Least_CASO`` (d × d), MALSAR's ``M`` output: the
        objective is evaluated at ``(W, M)`` (``M`` must be feasible: symmetric,
        ``0 ⪯ M ⪯ I``, ``tr M = k``). Without it, at ``W`` and the best ``M``.
    backend : str, optional
        Backend for the reference solve (default: the package's rule; CMTL and CASO are
        solved by :func:`learn`).
    tol : float, default 1e-8
        Certified relative gap of the reference solve.

    Returns
    -------
    Comparison
        ``objective`` (MALSAR's objective at ``W``), ``optimum``, ``excess`` and
        ``excess_bound`` bracketing the true excess ``objective − F*``, and
        ``relative_excess``.

    Raises
    ------
    DataError
        ``W`` is not (d, T) for the data (a (T, d) array is refused with the fix), or an
        infeasible ``M``.
    """
    form = _lookup(name)
    if M is not None and form.relation is None:
        raise PenaltyError(f"M is only for Least_CMTL and Least_CASO, not {form.name}")
    prob = problem(name, data, **params)
    W = prob.check_W(W)
    try:
        objective = (prob.objective(W, parts=parts) if M is None
                     else _objective_at_M(prob, W, M))
    except PenaltyError as err:
        if parts is None and form.outputs:
            raise PenaltyError(f"{form.name}'s objective at W alone is a minimisation over the "
                               f"split; pass the parts MALSAR returned: {form.outputs}") from err
        raise
    if form.relation is None:
        sol: Solution | RelationResult = prob.solve(backend=backend, tol=tol)
    else:
        sol = learn(name, prob.data, tol=tol, backend=backend, **params)
    gap = sol.certificate.gap if sol.certificate is not None else None
    gap = math.inf if gap is None else float(gap)
    excess = objective - sol.objective
    return Comparison(
        name=form.name, objective=objective, optimum=sol.objective, optimum_gap=gap,
        excess=excess, excess_bound=excess + gap,
        relative_excess=excess / max(1.0, abs(sol.objective)),
        certificate=certify(prob, W, parts=parts), solution=sol)


# ---------------------------------------------------------------------- MALSAR's own stopping
@dataclass
class RuleRun:
    """The run of :func:`default_rule`.

    Attributes
    ----------
    W : ndarray (d, T)
        The last iterate (MALSAR's output ``W``).
    parts : dict
        Its parts for the ``W = P + Q`` formulations (empty otherwise).
    iterations : int
    stopped : str
        ``"relative change"`` (the rule fired), ``"small step"`` (MALSAR's ``bFlag``: the
        step changed ``W`` by ``‖ΔW‖²_F ≤ 1e-20``) or ``"max_iter"``.
    objective : ndarray
        The objective after every iteration (MALSAR's ``funcVal``).
    time : float
        Seconds.
    """

    W: np.ndarray
    parts: dict[str, np.ndarray]
    iterations: int
    stopped: str
    objective: np.ndarray
    time: float


@blas_limited
def default_rule(prob: Problem, tol: float = 1e-4, max_iter: int = 1000) -> RuleRun:
    """Where MALSAR's solver stops at its default settings, emulated on ``prob``.

    Accelerated proximal gradient in the form of MALSAR's ``Least_*`` solvers: start at
    ``W = 0``, Nesterov momentum ``(t_{k−1} − 1)/t_k`` without restart, step ``1/γ`` with
    ``γ`` starting at 1 and doubled until the quadratic upper bound holds (never
    decreased), and MALSAR's default stopping rule (``opts.tFlag = 1``): stop when
    ``|F_k − F_{k−1}| ≤ tol·F_{k−1}`` from the third iteration on, or after ``max_iter``
    iterations (``opts.tol = 1e-4``, ``opts.maxIter = 1000``). (``Least_Dirty`` and
    ``Least_rMTFL`` start ``γ`` at an estimate of the Lipschitz constant instead of 1, which
    changes only the first steps.) For a ``W = P + Q`` term
    it iterates on the parts together, as MALSAR does, from ``P = Q = 0``. It says nothing
    about optimality; score its ``W`` with :func:`compare` or :func:`mtlcvx.certify`.
    For ``Least_CMTL`` and ``Least_CASO`` it is *not* MALSAR's algorithm, which iterates on
    ``(W, M)`` with its own (inexact) ``M``-gradient; here ``M`` is minimised out. Runs
    under the package's BLAS thread limit, like its solvers.

    Parameters
    ----------
    prob : Problem
        Every non-smooth term needs an exact prox (or the problem's only non-smooth term
        is a decomposition with a prox over its parts), e.g. from :func:`problem`.
    tol : float, default 1e-4
    max_iter : int, default 1000

    Returns
    -------
    RuleRun
    """
    start = time.perf_counter()
    var = _Variable(prob)
    prox = var.prox()

    def nonsmooth(Z: np.ndarray) -> float:
        return prob.nonsmooth_value(Z) if var.term is None else var.term.part_values(*Z)

    Z = var.start(None)
    Z_old = Z
    t, t_old, gamma = 1.0, 0.0, 1.0
    values: list[float] = []
    stopped = "max_iter"
    for _ in range(max_iter):
        S = Z + ((t_old - 1.0) / t) * (Z - Z_old)
        fS, gS = var.smooth(S)
        while True:
            Zn = prox(S - gS / gamma, 1.0 / gamma)
            fZ, _ = var.smooth(Zn, False)
            step = Zn - S
            r_sum = float(np.sum(step * step))
            if r_sum <= 1e-20 or fZ <= fS + float(np.sum(step * gS)) + 0.5 * gamma * r_sum:
                break
            gamma *= 2.0
        Z_old, Z = Z, Zn
        values.append(fZ + nonsmooth(Z))
        if r_sum <= 1e-20:
            stopped = "small step"
            break
        if len(values) >= 3 and abs(values[-1] - values[-2]) <= tol * values[-2]:
            stopped = "relative change"
            break
        t_old, t = t, 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
    return RuleRun(var.W(Z), var.parts(Z), len(values), stopped, np.array(values),
                   time.perf_counter() - start)
