"""Penalties, grouped by the cone a conic backend needs."""

from .base import CONES, Penalty
from .custom import Custom
from .decomposition import Dirty, RobustFeatureLearning, RobustMTL, SparsePlusLowRank
from .learned import LearnedClusters
from .quadratic import (
    FactoredTaskRelation,
    FeatureRelation,
    GraphLaplacian,
    MeanRegularized,
    QuadraticPenalty,
    Ridge,
    TaskRelation,
)
from .sparse import L1, L21, SquaredL21
from .spectral import SquaredTraceNorm, TraceNorm
from .structured import FusedL1, SparseGroup

__all__ = [
    "CONES",
    "Penalty",
    "QuadraticPenalty",
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
    "Dirty",
    "RobustMTL",
    "RobustFeatureLearning",
    "SparsePlusLowRank",
    "FusedL1",
    "SparseGroup",
]
