"""Per-task data-fitting losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ._linalg import abs_product
from .data import MultiTaskData, as_float_array, column_means, frozen_copy
from .exceptions import DataError

__all__ = ["SquaredLoss", "LossDual"]


class LossDual(NamedTuple):
    r"""The loss's part of the dual at the point ``θ_t = c_t (ỹ_t − X̃_t w_t)``.

    For ``s ≥ 0`` the dual point ``sθ`` contributes ``s·linear_t − s²·quadratic_t``
    per task to the dual objective ``Σ_t (θ_tᵀỹ_t − ‖θ_t‖²/(2c_t))``, and
    ``V = [X̃_1ᵀθ_1, …, X̃_Tᵀθ_T] = −∇ℓ(W)``.

    Attributes
    ----------
    linear : ndarray (T,)
        ``θ_tᵀ ỹ_t``.
    quadratic : ndarray (T,)
        ``‖θ_t‖² / (2 c_t)`` (0 where ``c_t = 0``).
    V : ndarray (d, T)
        ``−∇ℓ(W)``.
    """

    linear: np.ndarray
    quadratic: np.ndarray
    V: np.ndarray


def _block_residuals(data: MultiTaskData, W: np.ndarray, keep: bool = True) -> np.ndarray:
    """``X_t w_t − y_t`` of tasks of equal size (T, n), or (P, T, n) for a batch ``W``
    (P, d, T) (one batched product); one point's kept for this ``W`` unless not ``keep``."""
    X3, Y = data.equal_blocks()
    if W.ndim == 2 and keep:  # the objective's product, kept for this W
        return data._residual_product(W).reshape(Y.shape)
    return np.matmul(X3, np.swapaxes(W, -1, -2)[..., None])[..., 0] - Y


def _half_scaled(squares: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``‖θ_t‖²/(2c_t)`` from the per-task ``squares`` (..., T), 0 where ``c_t = 0`` (its
    ``θ_t`` is 0)."""
    if c.min(initial=1.0) > 0:  # (the usual case: no mask)
        return squares / (2.0 * c)
    return np.where(c > 0, squares / (2.0 * np.where(c > 0, c, 1.0)), 0.0)


def _gram_residuals(B: np.ndarray, yy: np.ndarray, W: np.ndarray,
                    GW: np.ndarray) -> np.ndarray:
    """``‖y_t − X w_t‖² = w_tᵀGw_t − 2w_tᵀb_t + ‖y_t‖²`` of a shared design from its Gram
    statistics ``B = XᵀY``, ``yy = ‖y_t‖²`` and ``GW = G W``."""
    return (np.einsum("...dt,...dt->...t", W, GW) - 2.0 * np.einsum("...dt,...dt->...t", W, B)
            + yy)


class SquaredLoss:
    r"""Per-task squared loss.

    .. math::

        \ell(W, b) = \sum_t \frac{c_t}{2} \lVert X_t w_t + b_t - y_t \rVert^2,
        \qquad c_t = \omega_t / n_t \ (\text{scale="mean"}),\quad
        c_t = \omega_t \ (\text{scale="sum"}).

    ``scale="mean"`` gives Σ_t 1/(2 n_t) ‖X_t w_t + b_t − y_t‖² (scikit-learn's
    ``1/(2n)`` for a shared design); ``scale="sum"`` gives Σ_t ½‖X_t w_t + b_t − y_t‖²
    (MALSAR's code). ``task_weights`` ω_t multiply each task's term. Intercepts ``b_t``
    are never penalized.

    Parameters
    ----------
    scale : {"mean", "sum"}, default "mean"
    task_weights : array_like (T,), optional
        Non-negative weight per task (default all ones).
    """

    def __init__(self, scale: str = "mean", task_weights: Any = None):
        self.scale = scale
        self.task_weights = task_weights

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "scale" and value not in ("mean", "sum"):
            raise DataError(f"scale must be 'mean' or 'sum', got {value!r}")
        if name == "task_weights" and value is not None:
            value = frozen_copy(as_float_array(value, "task_weights", 1))
            if np.any(value < 0):
                raise DataError("task_weights must be non-negative")
        super().__setattr__(name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, scikit-learn style."""
        return {"scale": self.scale, "task_weights": self.task_weights}

    def set_params(self, **params: Any) -> SquaredLoss:
        """Set constructor parameters (validated), scikit-learn style."""
        for key, value in params.items():
            if key not in ("scale", "task_weights"):
                raise ValueError(f"SquaredLoss has no parameter {key!r}")
            setattr(self, key, value)
        return self

    def weights(self, data: MultiTaskData) -> np.ndarray:
        """Per-task factors ``c_t`` (T,) for ``data`` (read-only).

        Kept on the (read-only) data for the last scale and ``task_weights`` object asked
        for (a new value is a new object): a solve and its certificate ask a dozen times.
        """
        cache = data.__dict__.get("_loss_weights")
        if cache is not None and cache[0] == self.scale and cache[1] is self.task_weights:
            return cache[2]
        c = self._weights(data)
        c.flags.writeable = False
        data.__dict__["_loss_weights"] = (self.scale, self.task_weights, c)
        return c

    def _weights(self, data: MultiTaskData) -> np.ndarray:
        c = 1.0 / data.n_samples if self.scale == "mean" else np.ones(data.n_tasks)
        if self.task_weights is not None:
            if self.task_weights.shape != (data.n_tasks,):
                raise DataError(
                    f"task_weights has shape {self.task_weights.shape}, "
                    f"expected ({data.n_tasks},) (one weight per task)"
                )
            c = c * self.task_weights
        return c

    def value(self, data: MultiTaskData, W: np.ndarray,
              intercept: np.ndarray | None = None) -> float | np.ndarray:
        """Loss at ``(W, b)`` on the original data, in float64; per point (P,) for a batch
        ``W`` (P, d, T) of per-task designs with tasks of equal size, without ``b``."""
        if W.ndim == 3:
            R = _block_residuals(data, W)
            return 0.5 * np.einsum("...tn,...tn->...t", R, R) @ self.weights(data)
        if data.is_shared:  # the (n, T) residual as it is: no stacked copy, no squares array
            R = data.shared_residuals(W)
            if intercept is not None:
                R = R + intercept
            per_task = np.einsum("nt,nt->t", R, R)
        else:
            r = (data._residual_product(W) if intercept is None
                 else data.stacked_residuals(W, intercept))
            per_task = data.task_sums(r * r)
        return 0.5 * float(self.weights(data) @ per_task)

    def residual_gradient(self, data: MultiTaskData,
                          W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The residuals' squares and the loss's gradient at ``W``, as computed, on the
        original data (no intercepts).

        The residuals ``r̂_t = fl(fl(X_tw_t) − y_t)`` (one product per entry, then the
        subtraction) once; no dual pieces. Tasks of equal size do not keep their residuals
        for this ``W`` (a certificate at a solver's point: nothing evaluates it again).

        Parameters
        ----------
        data : MultiTaskData
        W : ndarray (d, T)

        Returns
        -------
        squares : ndarray (T,)
            ``fl(‖r̂_t‖²)``: the loss is ``Σ_t (c_t/2)·squares_t``.
        gradient : ndarray (d, T)
            ``∇̂_t = fl(X_tᵀfl(c_tr̂_t))`` (``X_tᵀr̂_t`` itself with unit weights), the
            loss's gradient ``c_tX_tᵀ(X_tw_t − y_t)`` as computed.
        """
        unit = self.scale == "sum" and self.task_weights is None  # (c_t = 1: no products)
        c = self.weights(data)
        if data.is_shared:
            R = data.shared_residuals(W)
            return np.einsum("nt,nt->t", R, R), data.X[0].T @ (R if unit else R * c)
        if data.equal_blocks() is not None:
            R = _block_residuals(data, W, keep=False)
            scaled = R if unit else R * c[:, None]
            return np.einsum("tn,tn->t", R, R), data.task_products(scaled.ravel())
        r = data._residual_product(W)
        return data.task_sums(r * r), data.task_products(r if unit else r * c[data.stacked()[2]])

    def offset(self, data: MultiTaskData, center: bool) -> float:
        """Constant ``Σ_t (c_t/2) offset_t`` the compressed data drop (see ``data.compressed``)."""
        return float(0.5 * self.weights(data) @ data.compressed(center).offset)

    def oracle(self, data: MultiTaskData,
               center: bool) -> Callable[[np.ndarray, bool], tuple[float, np.ndarray | None]]:
        """``oracle(W, need_gradient) -> (ℓ(W), ∇ℓ(W) or None)`` from the normal equations.

        Per-task designs through ``X_tᵀX_t, X_tᵀy_t, ‖y_t‖²``; a shared design through
        ``XᵀX`` held once (n ≥ d), or the design itself (n < d): ``d²·T`` per call, no
        QR, nothing stacked T times. With ``center`` the intercepts are profiled out (each
        task centred). Weights are read now: make a new oracle after changing them.
        Certificates bound the cancellation in ``wᵀHw − 2wᵀb + ‖y‖²`` when they use the
        same statistics (:meth:`gram_dual`), and recompute residuals where it is too large.
        """
        c = self.weights(data)
        gram = data.gram(center)
        if gram is not None and data.X[0].shape[0] >= data.n_features:
            B = gram.B

            def shared_gram(W: np.ndarray, need_gradient: bool = True) -> tuple[
                    float, np.ndarray | None]:
                GW = gram.G @ W
                quad = _gram_residuals(B, gram.yy, W, GW)
                value = 0.5 * float(c @ quad)
                return value, ((GW - B) * c if need_gradient else None)

            return shared_gram
        if gram is not None:  # n ≤ d: the design itself, held once
            comp = data.compressed(center)
            offset = self.offset(data, center)
            A, Z = comp.A[0], np.stack(comp.z, axis=1)

            def shared(W: np.ndarray, need_gradient: bool = True) -> tuple[float,
                                                                            np.ndarray | None]:
                R = A @ W - Z
                value = 0.5 * float(c @ np.einsum("mt,mt->t", R, R)) + offset
                return value, (A.T @ (R * c) if need_gradient else None)

            return shared
        grams = data.task_grams(center)  # per-task normal equations, no QR
        H, B, yy = grams.H, grams.B, grams.yy

        def oracle(W: np.ndarray, need_gradient: bool = True) -> tuple[float,
                                                                        np.ndarray | None]:
            HW = np.matmul(H, W.T[:, :, None])[:, :, 0].T  # (d, T): column t is H_t w_t
            quad = np.einsum("dt,dt->t", W, HW) - 2.0 * np.einsum("dt,dt->t", W, B) + yy
            value = 0.5 * float(c @ quad)
            return value, ((HW - B) * c if need_gradient else None)

        return oracle

    def gram_dual(self, data: MultiTaskData, W: np.ndarray, center: bool,
                  shift: Any = None, product: np.ndarray | None = None,
                  work: np.ndarray | None = None
                  ) -> tuple[float, LossDual, np.ndarray] | None:
        r"""Loss value and dual pieces of a shared design (n ≥ d) from ``G = X̃ᵀX̃``,
        ``B = X̃ᵀỸ`` and ``‖ỹ_t‖²``: ``d²T`` operations instead of ``2ndT``. None otherwise.

        ``‖r_t‖² = w_tᵀGw_t − 2w_tᵀb_t + ‖ỹ_t‖²``, ``θ_tᵀỹ_t = c_t(‖ỹ_t‖² − w_tᵀb_t)`` and
        ``V = c(B − GW)`` cancel near a good fit: their float errors are bounded by
        ``γ·m_t²`` and ``γ·c_t‖x̃_i‖·m_t`` with the per-task magnitudes returned third,

        .. math:: m_t = \sum_i \lVert\tilde x_i\rVert\,|w_{it}| + \lVert\tilde y_t\rVert
                  \ \ge\ \big\lVert |\tilde X||w_t| + |\tilde y_t| \big\rVert

        (triangle and Cauchy–Schwarz inequalities on Higham's bound for each sum of
        products, the rounding of ``G`` and ``B`` included). The certificate turns them
        into its rounding bound, and uses the residuals directly where they are too large.

        ``shift`` (fields ``R`` (d, T), ``B`` = ``X̃ᵀÊ``, ``ee`` = ``‖ê_t‖²``, ``ye`` =
        ``ỹ_tᵀê_t``, for a computed residual ``Ê = Ỹ − X̃R`` of a reference point ``R``)
        expands around ``R`` instead of 0: with ``Δ = W − R``, ``‖r_t‖² = ‖ê_t‖² −
        2Δ_tᵀX̃ᵀê_t + Δ_tᵀGΔ_t``, ``θ_tᵀỹ_t = c_t(ỹ_tᵀê_t − Δ_tᵀb_t)``, ``V = c(X̃ᵀÊ −
        GΔ)`` and ``m_t = Σ_i ‖x̃_i‖|Δ_it| + ‖ê_t‖``: small where ``W`` is near ``R``
        (:class:`mtlcvx._rounding.GramRounding` bounds what ``Ê``'s own rounding adds).

        ``W`` may be a batch (P, d, T) of points: then every piece comes per point (the
        value (P,), the others with a leading P axis), from one product ``G [W_1 … W_P]``.
        ``product``: ``G W`` when already known (not with ``shift``). ``work``: for a batch,
        an array (2, P, d, T) the call may write over instead of fresh arrays (a batch's
        fresh arrays fault their pages): ``Δ`` into ``work[0]``, ``G Δ`` into ``work[1]``,
        then ``V`` over ``G Δ`` (over ``product`` too, when given with ``work``).
        """
        gram = data.gram(center)
        if gram is None or data.X[0].shape[0] < data.n_features:
            return None
        c = self.weights(data)
        if shift is None:
            D, B, ee, ye = W, gram.B, gram.yy, gram.yy
        else:
            D = np.subtract(W, shift.R, out=None if work is None else work[0])
            B, ee, ye = shift.B, shift.ee, shift.ye
        if product is not None:
            GD = product
        elif D.ndim == 2:
            GD = data.gram_product(D, center)
        else:
            GD = np.matmul(gram.G, D, out=None if work is None else work[1])
        quadratic = 0.5 * c * _gram_residuals(B, ee, D, GD)
        linear = c * (ye - np.einsum("...dt,dt->...t", D, gram.B))
        magnitudes = abs_product(np.sqrt(np.maximum(np.diag(gram.G), 0.0)), D) + np.sqrt(ee)
        value = quadratic.sum(axis=-1)
        # over G Δ when it is this call's own or the caller's to overwrite (a batch's)
        own = D.ndim == 3 and (product is None or work is not None)
        V = np.subtract(B, GD, out=GD if own else None)
        V *= c  # (in place: a batch's V is a large array, and each new one faults its pages)
        return float(value) if D.ndim == 2 else value, LossDual(linear, quadratic, V), magnitudes

    def dual(self, data: MultiTaskData, W: np.ndarray, center: bool) -> LossDual:
        """The loss's dual pieces at the scaled residual of ``W`` (see :class:`LossDual`).

        Computed on the original data; with ``center`` each task's residual and target
        lose their means (the intercepts profiled out). Per-task designs with tasks of
        equal size also take a batch ``W`` (P, d, T): the pieces then have a leading P axis.
        """
        c = self.weights(data)
        if data.is_shared:  # residual computed directly on X (n, d), never stacked T times
            R = data.shared_residuals(W)  # read-only: θ is a new array
            Y = data.shared_targets()
            if center:
                Theta = R - column_means(R)
                Y = Y - data.shared_means()[1]
            else:
                Theta = R.copy()
            np.multiply(Theta, -c, out=Theta)
            return LossDual(np.einsum("nt,nt->t", Theta, Y),
                            _half_scaled(np.einsum("nt,nt->t", Theta, Theta), c),
                            data.X[0].T @ Theta)
        blocks = data.equal_blocks()
        if blocks is not None:  # equal task sizes: batched over tasks, nothing stacked
            X3, Y = blocks
            R = _block_residuals(data, W)  # (T, n), or (P, T, n) for a batch of points
            if center:
                R = R - R.mean(axis=-1, keepdims=True)
                Y = Y - Y.mean(axis=1, keepdims=True)
            Theta = -c[:, None] * R
            quadratic = _half_scaled(np.einsum("...tn,...tn->...t", Theta, Theta), c)
            V = np.swapaxes(np.matmul(X3.transpose(0, 2, 1), Theta[..., None])[..., 0], -1, -2)
            return LossDual(np.einsum("...tn,tn->...t", Theta, Y), quadratic, V)
        _, y, task = data.stacked()
        r = data.stacked_residuals(W)
        if center:
            r = r - (data.task_sums(r) / data.n_samples)[task]
            y = y - (data.task_sums(y) / data.n_samples)[task]
        theta = -c[task] * r
        linear = data.task_sums(theta * y)
        quadratic = _half_scaled(data.task_sums(theta * theta), c)
        # V[:, t] = X̃_tᵀθ_t; the centring drops out because θ_t sums to zero per task
        return LossDual(linear, quadratic, data.task_products(theta))

    def cvxpy_expression(self, data: MultiTaskData, W: Any, center: bool) -> Any:
        """CVXPY expression of the loss on the compressed data (without :meth:`offset`)."""
        import cvxpy as cp
        import scipy.sparse as sp

        comp = data.compressed(center)
        c = self.weights(data)
        if comp.shared:
            resid = comp.A[0] @ W - np.stack(comp.z, axis=1)
            if np.all(c == c[0]):  # exact: near-equal weights are different problems
                return c[0] / 2.0 * cp.sum_squares(resid)
            return 0.5 * cp.sum_squares(cp.multiply(resid, np.sqrt(c)[None, :]))
        A = sp.block_diag([np.sqrt(ct) * At for ct, At in zip(c, comp.A, strict=True)],
                          format="csr")
        z = np.concatenate([np.sqrt(ct) * zt for ct, zt in zip(c, comp.z, strict=True)])
        return 0.5 * cp.sum_squares(A @ cp.vec(W, order="F") - z)

    def __repr__(self) -> str:
        extra = "" if self.task_weights is None else ", task_weights=..."
        return f"SquaredLoss(scale={self.scale!r}{extra})"
