"""Independent reference solutions, computed the textbook way (dense Kronecker systems).

Deliberately different from the package's code paths: no QR compression, no centring,
intercepts as explicit unknowns, the Kronecker product formed densely (tests only use
small problems).
"""

from __future__ import annotations

import numpy as np


def quadratic_optimum(Xs, ys, c, K_task, D_feat=None, fit_intercept=False):
    """Minimise Σ_t c_t/2‖X_t w_t + b_t − y_t‖² + ½ tr(W K Wᵀ) + ½ tr(Wᵀ D W).

    Returns (W (d, T), b (T,) or None, F*).
    """
    T = len(Xs)
    d = Xs[0].shape[1]
    p = d + (1 if fit_intercept else 0)
    n = p * T
    H = np.zeros((n, n))
    g = np.zeros(n)
    for t in range(T):
        Xa = np.hstack([Xs[t], np.ones((Xs[t].shape[0], 1))]) if fit_intercept else Xs[t]
        sl = slice(t * p, (t + 1) * p)
        H[sl, sl] += c[t] * Xa.T @ Xa
        g[sl] += c[t] * Xa.T @ ys[t]
    # penalty on the W part only: vec over (p, T) column-major, W rows 0..d-1
    sel = np.zeros((p, p))
    sel[:d, :d] = np.eye(d)
    H += np.kron(K_task, sel)
    if D_feat is not None:
        Dp = np.zeros((p, p))
        Dp[:d, :d] = D_feat
        H += np.kron(np.eye(T), Dp)
    theta = np.linalg.lstsq(H, g, rcond=None)[0]
    Theta = theta.reshape(T, p).T
    W = Theta[:d]
    b = Theta[d] if fit_intercept else None
    F = objective(Xs, ys, c, W, b, K_task, D_feat)
    return W, b, F


def objective(Xs, ys, c, W, b, K_task, D_feat=None):
    F = 0.0
    for t in range(len(Xs)):
        r = Xs[t] @ W[:, t] - ys[t] + (0.0 if b is None else b[t])
        F += 0.5 * c[t] * r @ r
    F += 0.5 * np.trace(W @ K_task @ W.T)
    if D_feat is not None:
        F += 0.5 * np.trace(W.T @ D_feat @ W)
    return F
