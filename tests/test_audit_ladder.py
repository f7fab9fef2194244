"""The certificate ladder on the catalogue's tiny known-answer problems: at the known
optimum and at points around it the certified gap is never below the exact gap, and the
dual value never above the known ``F*``.

``F*`` is the catalogue's closed form (a rational); ``F(W)`` at the float points is
evaluated in rationals, the norms (irrational) from below by integer square roots, so
``F(W) − F*`` is bounded from below exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import mtlcvx as mc


def _sqrt_below(q: Fraction) -> Fraction:
    """A rational lower bound on ``√q`` to 40 digits."""
    scale = 10 ** 40
    return Fraction(math.isqrt(q.numerator * scale * scale // q.denominator), scale)


def _loss(X, Y, W):
    """``½Σ_t‖X w_t − y_t‖²`` in rationals for a shared ``X`` (n, d) and ``Y`` (n, T)."""
    Xf = [[Fraction(v) for v in row] for row in X.tolist()]
    Wf = [[Fraction(v) for v in row] for row in W.tolist()]
    total = Fraction(0)
    for t in range(W.shape[1]):
        for row, y in zip(Xf, Y[:, t].tolist(), strict=True):
            r = sum(a * Wf[i][t] for i, a in enumerate(row)) - Fraction(y)
            total += r * r / 2
    return total


def _lap(W):  # ½ tr(W L Wᵀ), L of one edge
    return (Fraction(W[0, 0]) - Fraction(W[0, 1])) ** 2 / 2


def _ep(W):  # Ridge(0.5) + MeanRegularized(0.5), d = 1, T = 2
    a, b = Fraction(W[0, 0]), Fraction(W[0, 1])
    return (a * a + b * b) / 4 + ((a - b) / 2) ** 2 / 2


def _l21(W):  # ‖W‖_{2,1}, from below
    return sum(_sqrt_below(sum(Fraction(v) ** 2 for v in row)) for row in W.tolist())


def _nuclear(W):  # ‖W‖_* of a 2×2 matrix from below: √(‖W‖_F² + 2|det W|)
    a, b, c, e = (Fraction(v) for v in W.ravel().tolist())
    return _sqrt_below(a * a + b * b + c * c + e * e + 2 * abs(a * e - b * c))


CASES = {  # X, Y (shared design), penalties, W*, F*, exact penalty value from below
    "T-Lap": (np.eye(1), np.array([[1.0, -1.0]]),
              lambda: [mc.GraphLaplacian(np.array([[0.0, 1.0], [1.0, 0.0]]), 1.0)],
              [[1 / 3, -1 / 3]], Fraction(2, 3), _lap),
    "T-EP": (np.eye(1), np.array([[1.0, 3.0]]),
             lambda: [mc.Ridge(0.5), mc.MeanRegularized(0.5)],
             [[5 / 6, 11 / 6]], Fraction(11, 6), _ep),
    "T-L21": (np.eye(2), np.array([[3.0, 4.0], [0.3, 0.4]]), lambda: [mc.L21(1.0)],
              [[2.4, 3.2], [0.0, 0.0]], Fraction(37, 8), _l21),
    "T-Nuc": (np.eye(2), np.diag([3.0, 1.0]), lambda: [mc.TraceNorm(1.5)],
              [[1.5, 0.0], [0.0, 0.0]], Fraction(31, 8), lambda W: Fraction(3, 2) * _nuclear(W)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_ladder_on_known_answers(rng, name):
    X, Y, penalties, W_star, F_star, penalty = CASES[name]
    prob = mc.Problem(mc.MultiTaskData.shared(X, Y), mc.SquaredLoss("sum"), penalties())
    W_star = np.array(W_star)
    assert prob.solve().objective == pytest.approx(float(F_star), rel=1e-8)
    points = [W_star, 0.5 * W_star, 1.5 * W_star, W_star + 1e-9 * rng.standard_normal(
        W_star.shape), W_star + 0.1 * rng.standard_normal(W_star.shape), 0.0 * W_star]
    for W in points:
        true = _loss(X, Y, W) + penalty(W) - F_star  # ≤ the exact gap
        for gram in (True, False):
            cert = mc.certify(prob, W, gram=gram)
            assert cert.gap is not None and Fraction(cert.gap) >= true, (cert, float(true))
            if cert.dual_objective is not None:
                assert Fraction(cert.dual_objective) <= F_star, cert
    # the known optimum, rounded, is certified to the rounding level
    assert mc.certify(prob, W_star).relative_gap <= 1e-12
