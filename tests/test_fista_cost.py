"""What fista's checks cost, and that the cheaper evaluations stay valid bounds.

Spectral norms rounded up (checked against exact rank-one values and LAPACK's SVD), and
the check schedule predicted from the gaps' linear rate (closed forms).
"""

from __future__ import annotations

import numpy as np
import pytest

import mtlcvx as mc
from mtlcvx import first_order
from mtlcvx._linalg import spectral_norm_bound


@pytest.mark.parametrize("shape", [(200, 500), (500, 200), (7, 1), (1, 9), (30, 30)])
def test_spectral_norm_bound_is_above_the_svd_and_tight(rng, shape):
    V = rng.standard_normal(shape)
    exact = np.linalg.svd(V, compute_uv=False)[0]
    bound = spectral_norm_bound(V)
    assert exact <= bound <= exact * (1 + 1e-9)


def test_spectral_norm_bound_of_an_exact_rank_one_matrix():
    u, v = np.arange(1.0, 6.0), np.array([2.0, -1.0, 2.0])  # ‖u‖ = √55, ‖v‖ = 3
    bound = spectral_norm_bound(np.outer(u, v))
    assert 3.0 * np.sqrt(55.0) <= bound <= 3.0 * np.sqrt(55.0) * (1 + 1e-12)
    assert spectral_norm_bound(np.zeros((3, 0))) == 0.0


def test_next_check_follows_the_linear_rate():
    # gaps 1e-3 at 10 and 1e-6 at 20 fall 0.3 decades per iteration, so 1e-8 comes
    # 2/0.3 = 6.7 iterations after 20: the check at 27, predicted to certify
    assert first_order._next_check(20, 10, [(10, 1e-3), (20, 1e-6)], 1e-8) == (27, True)
    # too slow to land before the regular check (every k // 10 = 10 iterations later)
    assert first_order._next_check(20, 10, [(10, 1e-3), (20, 1e-4)], 1e-8) == (30, False)
    # a gap that grew, or a single gap: the regular schedule
    assert first_order._next_check(20, 10, [(10, 1e-5), (20, 1e-4)], 1e-8) == (30, False)
    assert first_order._next_check(10, 10, [(10, 1e-5)], 1e-8) == (20, False)


def test_fista_checks_skip_the_gradient_mapping_but_certify(rng):
    X = rng.standard_normal((60, 8))
    Y = X @ rng.standard_normal((8, 5)) + rng.standard_normal((60, 5))
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), penalties=[mc.TraceNorm(0.5)])
    trace = first_order.fista(prob, tol=1e-9)
    assert trace.converged and trace.certificate.relative_gap <= 1e-9
    assert trace.certificate.grad_mapping is None
    ref = prob.solve("clarabel")
    assert trace.certificate.objective - ref.objective <= trace.certificate.gap
    assert mc.certify(prob, trace.W).grad_mapping is not None
