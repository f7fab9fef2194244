"""mtlcvx: multi-task learning as convex programs, solved to certified exact optima.

Declare a problem from per-task data, a loss and penalties that couple the tasks, and
solve it with any backend (Clarabel, SCS, ECOS, OSQP, or an exact direct solve)::

    import mtlcvx as mc
    data = mc.MultiTaskData([X1, X2], [y1, y2])
    prob = mc.Problem(data, penalties=[mc.TaskRelation(K, alpha=0.1), mc.L21(alpha=0.01)])
    sol = prob.solve(backend="clarabel")

Conventions: ``W`` is (n_features, n_tasks); quadratic penalties carry ½.

``mc.MultiTaskRegressor`` (the scikit-learn estimator, ``pip install 'mtlcvx[sklearn]'``)
is imported on first use, so the core never needs scikit-learn.
"""

from typing import Any

from . import datasets, first_order, malsar, plotting, relations, spec
from ._io import load
from .backends import available_backends
from .certificates import Certificate, certify
from .data import MultiTaskData
from .exceptions import (
    ArgumentError,
    BackendUnavailable,
    ConvergenceWarning,
    DataError,
    IncompatibleBackend,
    MTLError,
    PenaltyError,
    ResultFileError,
    SolverFailed,
    SpecError,
)
from .losses import SquaredLoss
from .path import (
    CVResult,
    PathResult,
    TaskShuffleSplit,
    alpha_max,
    cross_validate,
    regularization_path,
)
from .penalties import (
    L1,
    L21,
    Custom,
    Dirty,
    FactoredTaskRelation,
    FeatureRelation,
    FusedL1,
    GraphLaplacian,
    LearnedClusters,
    MeanRegularized,
    Penalty,
    Ridge,
    RobustFeatureLearning,
    RobustMTL,
    SparseGroup,
    SparsePlusLowRank,
    SquaredL21,
    SquaredTraceNorm,
    TaskRelation,
    TraceNorm,
)
from .problem import Problem
from .relation_learning import RelationResult, learn_relation
from .solution import Solution
from .validation import ValidationReport, validate

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "MultiTaskRegressor":  # lazy: scikit-learn is an optional extra
        from .estimators import MultiTaskRegressor

        return MultiTaskRegressor
    raise AttributeError(f"module 'mtlcvx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "MultiTaskRegressor"])


__all__ = [
    "MultiTaskData",
    "SquaredLoss",
    "Problem",
    "Solution",
    "Penalty",
    "Ridge",
    "TaskRelation",
    "FactoredTaskRelation",
    "GraphLaplacian",
    "MeanRegularized",
    "FeatureRelation",
    "L1",
    "L21",
    "SquaredL21",
    "TraceNorm",
    "SquaredTraceNorm",
    "Custom",
    "LearnedClusters",
    "learn_relation",
    "RelationResult",
    "Dirty",
    "RobustMTL",
    "RobustFeatureLearning",
    "SparsePlusLowRank",
    "FusedL1",
    "SparseGroup",
    "available_backends",
    "certify",
    "Certificate",
    "first_order",
    "validate",
    "regularization_path",
    "alpha_max",
    "PathResult",
    "cross_validate",
    "CVResult",
    "TaskShuffleSplit",
    "load",
    "ValidationReport",
    "plotting",
    "relations",
    "datasets",
    "spec",
    "malsar",
    "MTLError",
    "DataError",
    "ArgumentError",
    "PenaltyError",
    "BackendUnavailable",
    "IncompatibleBackend",
    "SolverFailed",
    "SpecError",
    "ResultFileError",
    "ConvergenceWarning",
    "__version__",
]
