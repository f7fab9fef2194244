"""Shared fixtures: the backends to test and their tolerances."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

import mtlcvx as mc

matplotlib.use("Agg")

#: Relative objective tolerance per backend on the catalogue of known answers.
BACKEND_RTOL = {"direct": 1e-10, "clarabel": 1e-7, "ecos": 1e-6, "scs": 1e-6, "osqp": 1e-7,
                "fista": 1e-8}


def installed_backends(include_fista: bool = False) -> list[str]:
    """Installed backends; the first-order "fista" only when asked (it has its own tests)."""
    return [name for name, info in mc.available_backends().items()
            if info.installed and (include_fista or name != "fista")]


@pytest.fixture(autouse=True)
def _seed_and_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", mc.ConvergenceWarning)
        # ECOS returns points ~1e-5 from the optimum in W (objective ~1e-9): the certificate
        # rightly refuses tol=1e-8 and warns. Tests still assert ECOS's objective accuracy.
        warnings.filterwarnings("ignore", message="backend 'ecos' returned",
                                category=mc.ConvergenceWarning)
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
