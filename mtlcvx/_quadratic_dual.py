r"""The dual bound of a convex quadratic problem, singular couplings included.

For ``F(W) = Σ_t (c_t/2)‖X̃_t w_t − ỹ_t‖² + ½⟨W, 𝒬W⟩`` with ``𝒬W = W K_t + K_f W``
(``X̃, ỹ`` task-centred when intercepts are profiled out), weak duality gives, for any
``θ = (θ_t ∈ R^{n_t})``,

.. math::

    F^\star \ge D(\theta) = \sum_t \Big(\theta_t^\top \tilde y_t
    - \frac{\lVert\theta_t\rVert^2}{2c_t}\Big) - h^*(V), \qquad
    V = [\tilde X_1^\top\theta_1, \dots, \tilde X_T^\top\theta_T],

with ``h*(V) = ½⟨V, 𝒬⁺V⟩`` when ``V ∈ range(𝒬)`` and ``+∞`` otherwise. The residual
point ``θ_t = c_t(ỹ_t − X̃_t w_t)`` gives ``V = −∇ℓ(W)``, which leaves ``range(𝒬)`` as
soon as ``𝒬`` is singular. The loss's curvature repairs it: with ``P`` (d×p) and ``N``
(T×k) orthonormal bases of the null spaces of ``K_f`` and ``K_t`` (``P = I`` without a
feature side), ``null(𝒬)`` is spanned by ``B_{ja} = P_a N_jᵀ``, and the correction
``θ_t ← θ_t − δ_t``, ``δ_t = c_t X̃_t P Z N_tᵀ`` (``Z`` p×k), removes the null
components of ``V`` exactly when

.. math::

    \sum_t c_t\,(N_{tj} N_{tl})\, P^\top \tilde X_t^\top \tilde X_t P \; z_{l} = P^\top V N_{:j}
    \quad (j = 1..k),

the least-squares system of the loss restricted to ``null(𝒬)``; its minimum-norm
solution (``δ`` of least ``Σ‖δ_t‖²/c_t``) is computed by ``lstsq``. At the optimum
``V ∈ range(𝒬)`` already, so the correction vanishes and the gap is quadratic in the
distance to the optimum. The system is consistent whenever ``F`` is bounded below (a
direction of zero curvature in both the loss and ``𝒬`` has zero slope).

**What rounding leaves in ``null(𝒬)``.** The computed ``V`` keeps null components ``ν``
(the solve's residue and ``V``'s rounding), where ``h*`` is infinite. At one minimiser
``W*``, ``F* = F(W*) ≥ Σ_t(…) − (⟨sV, W*⟩ − h(W*))`` for the dual point ``sθ``, and
``⟨sV, W*⟩ − h(W*) ≤ h*(sV_r) + s⟨ν, W*⟩`` (``V_r`` the range part), so the dual value
needs ``s⟨ν, W*⟩`` less, at most ``s‖ν‖(‖W‖ + ‖Δ_ν‖)``, ``Δ = W − W*``, ``Δ_ν`` its part
that ``ν`` sees. Take ``W*`` the minimiser nearest ``W``: ``Δ ⊥ null(H)``, ``H = 𝒜 + 𝒬``
(``𝒜`` the loss's Hessian), and ``g = F(W) − F* = ½⟨Δ, HΔ⟩``. Split ``Δ = Δ_N + Δ_R``
along ``null(𝒬)`` and its complement: ``‖Δ_R‖² ≤ 2g/λ⁺(𝒬)`` and ``‖Δ_N‖_𝒜 ≤ ‖Δ‖_𝒜 +
‖Δ_R‖_𝒜 ≤ (2g)^{1/2}(1 + (‖𝒜‖/λ⁺(𝒬))^{1/2})``. The exact ``V = X̃ᵀθ`` lies in
``range(𝒜)``, so ``ν`` is orthogonal to ``null(H) = null(𝒬) ∩ null(𝒜)`` and sees only
the part of ``Δ_N`` off it, where ``𝒜`` (restricted to ``null(𝒬)``) is at least its
smallest positive eigenvalue ``λ⁺(𝒜|N)``. Hence ``|⟨ν, Δ⟩| ≤ ‖ν‖(2g/μ_ν)^{1/2}`` with

.. math:: \mu_\nu = \lambda^+(\mathcal A|_N)\,\big/\,\big(1 + (\lVert\mathcal A\rVert
          /\lambda^+(\mathcal Q))^{1/2}\big)^2,

the modulus the certificate solves its quadratic inequality in ``g^{1/2}`` with (as
``μ`` when ``F`` is strongly convex), whatever ``W`` is: no ``F`` without a positive
``μ_ν`` needs ``‖W‖`` to stand in for ``‖W*‖``. ``λ⁺(𝒬)`` and ``λ⁺(𝒜|N)`` are the
smallest computed eigenvalues (singular values squared, of the least-squares system's
matrix, whose Gram is ``𝒜`` in the null basis) above the round-off cutoff, less it;
``‖𝒜‖ ≤ max_t c_t‖X̃_t‖_F²``. Eigenvalues within the cutoff are taken as exact zeros:
float64 cannot tell a smaller genuine one from 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._linalg import psd_cutoff
from ._rounding import _ETA, norm_up

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["quadratic_dual"]

#: Largest ``rows × null dimension`` of the dense correction system (memory guard).
_DENSE_LIMIT = 4_000_000


def _null_basis(K: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(λ, U, null mask)`` of a PSD ``K`` (``None`` is the zero matrix).

    A diagonal ``K`` keeps its exact eigenpairs (``λ = diag K``, ``U = I``); otherwise
    ``eigh``. Eigenvalues within round-off of zero (:func:`~mtlcvx._linalg.psd_cutoff`)
    count as null.
    """
    if K is None:
        lam, U = np.zeros(n), np.eye(n)
    elif not np.any(K - np.diag(np.diag(K))):
        lam, U = np.diag(K).copy(), np.eye(n)
    else:
        lam, U = np.linalg.eigh(K)
    return lam, U, lam <= psd_cutoff(np.abs(lam).max(initial=0.0), n)


def _positive_bottom(Z: np.ndarray) -> float:
    """A lower bound on the smallest positive eigenvalue of ``ZᵀZ`` from the singular
    values of ``Z`` above the round-off cutoff (:func:`~mtlcvx._linalg.psd_cutoff`):
    ``(σ̂ − cutoff)²``; ``inf`` when every one is within it (``ZᵀZ = 0`` to round-off)."""
    sigma = np.linalg.svd(Z, compute_uv=False)
    cut = psd_cutoff(sigma.max(initial=0.0), max(Z.shape))
    live = sigma[sigma > 2.0 * cut]
    return float((live.min() - cut) ** 2) if live.size else np.inf


def quadratic_dual(problem: Problem, W: np.ndarray, Kt: np.ndarray, Kf: np.ndarray | None
                   ) -> tuple[float, float, float, float, float, float, float] | str:
    """The curvature-corrected dual pieces at ``W`` (see the module docstring).

    Returns ``(linear, quadratic, conjugate, sensitivity, null_residue, norm, mu_null)`` such
    that for
    every scale ``s ≥ 0``, ``D(sθ) = s·linear − s²·(quadratic + conjugate)`` is a lower
    bound on ``F*`` up to rounding: ``sensitivity = ‖𝒬‖·‖𝒬⁺V‖²`` (times ``γ_n`` it bounds
    the conjugate's change under the eigendecomposition's backward error) and
    ``null_residue`` the norm of the null
    components of ``V`` left by the least-squares solve (zero in exact arithmetic);
    ``norm = ‖𝒬⁺V‖``; ``mu_null`` the modulus ``μ_ν`` that bounds what the null components
    see of the distance to the optimum (see the module docstring; 0 where no positive one
    is proven, ``inf`` without null components). A string says why no bound is computed.
    """
    data = problem.data
    d, T = problem.n_features, problem.n_tasks
    c = problem.loss_weights()
    X, y, task = data.stacked()
    r = data.stacked_residuals(W)
    if problem.fit_intercept:
        n = data.n_samples
        r = r - (data.task_sums(r) / n)[task]
        y = y - (data.task_sums(y) / n)[task]
        X = X - (data.task_sums(X) / n[:, None])[task]
    theta = -c[task] * r
    lt, Ut, null_t = _null_basis(Kt, T)
    lf, Uf, null_f = _null_basis(Kf, d)
    N, P = Ut[:, null_t], Uf[:, null_f]
    k, p = N.shape[1], P.shape[1]
    V = data.task_sums(X * theta[:, None]).T
    mu_null = np.inf
    if k and p:
        XP = X @ P
        sc = np.sqrt(c)[task]
        if not np.any(Kt - np.diag(np.diag(Kt))):
            # diagonal K_t: the null task directions are coordinate vectors, so the system
            # splits into one least-squares problem per null task
            delta = np.zeros_like(theta)
            for t in np.flatnonzero(null_t):
                rows = task == t
                Zt = sc[rows, None] * XP[rows]
                delta[rows] = sc[rows] * np.linalg.lstsq(Zt.T, P.T @ V[:, t], rcond=None)[0]
                mu_null = min(mu_null, _positive_bottom(Zt))
        elif X.shape[0] * k * p <= _DENSE_LIMIT:
            Z = (sc[:, None, None] * N[task][:, :, None] * XP[:, None, :]).reshape(-1, k * p)
            rhs = (P.T @ V @ N).T.ravel()
            delta = sc * np.linalg.lstsq(Z.T, rhs, rcond=None)[0]
            mu_null = _positive_bottom(Z)  # ZᵀZ: the loss's Hessian in the null basis
        else:
            return (f"the quadratic terms have a null space of dimension {k * p}, too large "
                    "for the curvature-corrected dual; a small Ridge term gives a gap")
        theta = theta - delta
        V = data.task_sums(X * theta[:, None]).T
    linear = float(theta @ y)
    safe_c = np.where(c > 0, c, 1.0)
    quadratic = float(np.sum(np.where(c > 0, data.task_sums(theta * theta) / (2.0 * safe_c),
                                      0.0)))
    Vr = Uf.T @ V @ Ut
    denom = lf[:, None] + lt[None, :]
    in_range = ~(null_f[:, None] & null_t[None, :])
    U = np.where(in_range, Vr / np.where(in_range, denom, 1.0), 0.0)  # 𝒬⁺V, rotated
    # ½Σ U∘Vr, not ½Σ Vr²/λ: a Vr² that underflows is lost before a small λ scales it up
    # (α = 1e-300 with V ~ 1e-310 made the conjugate 0, the dual value above F*); each
    # product or quotient that underflows is off by η/2 at most, times |Vr| for U's
    conj = 0.5 * float(np.sum(U * Vr)) + _ETA * (Vr.size + float(np.sum(np.abs(Vr))))
    norm = norm_up(U)
    if np.isfinite(mu_null):  # μ_ν = λ⁺(𝒜|N)/(1 + (‖𝒜‖/λ⁺(𝒬))^{1/2})²
        cut = psd_cutoff(np.abs(lt).max(initial=0.0), T) + psd_cutoff(
            np.abs(lf).max(initial=0.0), d)
        q_bottom = float(denom[in_range].min(initial=np.inf)) - cut
        a_top = float(np.max(c * data.task_sums(X * X).sum(axis=1), initial=0.0)) * (
            1.0 + 4.0 * X.shape[0] * d * np.finfo(float).eps)
        mu_null = mu_null / (1.0 + np.sqrt(a_top / q_bottom)) ** 2 if q_bottom > 0 else 0.0
    return (linear, quadratic, conj, float(denom.max(initial=0.0)) * norm * norm,
            norm_up(Vr[~in_range]), norm, mu_null)
