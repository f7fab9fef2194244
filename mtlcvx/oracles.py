r"""NumPy oracles of a :class:`~mtlcvx.Problem`: what first-order methods and certificates ask.

Split ``F = f + h + g``: ``f`` the loss, ``h`` the smooth penalties (the quadratic
ones summed into a task-side ``K_t`` and a feature-side ``K_f``), ``g`` the rest,
handled through its proximal operator. Everything here reads the problem's current
data, weights and penalty values; the functions returning closures resolve them once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ._linalg import issparse, lambda_min, min_block_eigenvalue
from .coupling import TaskCoupling
from .penalties.base import Penalty

if TYPE_CHECKING:
    from .problem import Problem

__all__ = ["coupling", "quadratic_coupling", "smooth_terms", "smooth_oracle", "merge_terms",
           "prox_chain",
           "prox_plan", "parts_term", "prox_operator", "lipschitz", "gram_extremes",
           "strong_convexity", "deferred_strong_convexity"]


def coupling(problem: Problem) -> tuple[TaskCoupling, np.ndarray | None]:
    """Task-side ``Σ α K`` in its structure and feature-side ``Σ α D`` (d, d, or None).

    Sums over the quadratic terms, so their part of the objective is
    ``½ tr(W K_t Wᵀ) + ½ tr(Wᵀ K_f W)`` and its gradient ``W K_t + K_f W``. Sparse and
    factor-given ``K`` stay so (:class:`~mtlcvx.coupling.TaskCoupling`). Cached on the
    problem until a strength or a matrix changes.
    """
    d, T = problem.n_features, problem.n_tasks
    terms = _quadratic_terms(problem, d, T)
    # a penalty's matrix (or its band, or factor) is an object replaced, never edited, when
    # one of its parameters changes, so its identity tracks its value while it is alive:
    # the cache holds the terms, so the ids in its key cannot be reused
    key = (d, T, *[(id(p), id(M), p.side, p.alpha, ridge) for p, M, ridge, _ in terms])
    cache = problem.__dict__.get("_coupling_cache")
    if cache is None or cache[0] != key:
        cache = (key, *_build_coupling(terms, d, T), terms)
        problem.__dict__["_coupling_cache"] = cache
    return cache[1], cache[2]


def _quadratic_terms(problem: Problem, d: int, T: int) -> list[tuple]:
    """``(p, M, ridge, how)`` of every quadratic term: ``M`` its factor ``R`` (``how`` =
    "factor", ``K = R Rᵀ + ridge·I``), its lower band ("band") or its matrix ("matrix")."""
    terms = []
    for p in problem.penalties:
        if p.structure != "quadratic":
            continue
        low_rank = p.low_rank()
        if low_rank is not None:
            terms.append((p, *low_rank, "factor"))
            continue
        band = p.band(d, T)
        terms.append((p, band, None, "band") if band is not None
                     else (p, p.matrix(d, T), None, "matrix"))
    return terms


def _build_coupling(terms: list[tuple], d: int,
                    T: int) -> tuple[TaskCoupling, np.ndarray | None]:
    Kt = TaskCoupling(T)
    Kf = None
    for p, M, ridge, how in terms:
        if p.side == "task":
            if how == "factor":
                Kt.add_factor(M, ridge, p.alpha)
            elif how == "band":  # the sparse matrix built only if a route asks for it
                Kt.add_band(M, p.alpha, lambda p=p: p.matrix(d, T))
            else:
                Kt.add_matrix(M, p.alpha)
        else:
            M = p.alpha * (M.toarray() if issparse(M) else M)
            Kf = M if Kf is None else Kf + M
    return Kt, Kf


def quadratic_coupling(problem: Problem) -> tuple[np.ndarray, np.ndarray | None]:
    """Task-side ``Σ α K`` (T, T) and feature-side ``Σ α D`` (d, d, or None), dense.

    For small problems and inspection; the solvers use :func:`coupling`.
    """
    Kt, Kf = coupling(problem)
    return Kt.to_dense(), Kf


def smooth_terms(problem: Problem) -> list[Penalty]:
    """The smooth terms that are not quadratic (each answers ``gradient``)."""
    return [p for p in problem.smooth_penalties() if p.structure != "quadratic"]


def smooth_oracle(problem: Problem) -> Callable[[np.ndarray, bool],
                                                tuple[float, np.ndarray | None]]:
    """A snapshot of the smooth part ``f + h`` for iterative methods.

    Returns ``oracle(W, need_gradient) -> (value, gradient or None)`` with the data,
    weights and quadratic coupling resolved once (penalty values are read now, so make
    a new oracle after changing them). The loss is evaluated on the compressed data
    (exact: the dropped constant is added back), intercepts profiled out when the
    problem fits them.
    """
    loss = problem.loss.oracle(problem.data, problem.fit_intercept)
    Kt, Kf = coupling(problem)
    has_task = not Kt.is_zero
    others = smooth_terms(problem)

    def oracle(W: np.ndarray, need_gradient: bool = True) -> tuple[float, np.ndarray | None]:
        value, grad = loss(W, need_gradient)
        quad = Kt.apply(W) if has_task else None
        if Kf is not None:
            quad = Kf @ W if quad is None else quad + Kf @ W
        if quad is not None:
            value += 0.5 * float(np.sum(quad * W))
        value += sum(p.value(W) for p in others)
        if not need_gradient:
            return value, None
        if quad is not None:
            grad += quad
        for p in others:
            grad += p.gradient(W)
        return value, grad

    return oracle


def merge_terms(terms: list[Penalty]) -> list[Penalty]:
    """``terms`` with every pair that :meth:`~mtlcvx.Penalty.merge` joins replaced by one term."""
    merged: list[Penalty] = []
    for term in terms:
        for i, other in enumerate(merged):
            joint = other.merge(term) or term.merge(other)
            if joint is not None:
                merged[i] = joint
                break
        else:
            merged.append(term)
    return merged


def prox_chain(terms: list[Penalty]) -> list[Penalty] | str:
    """Terms whose proxes, applied in order, give the exact prox of ``Σ terms``.

    Terms of one kind merge (strengths add); terms compose in an order where every term
    declares :meth:`~mtlcvx.Penalty.prox_composes_with` each later one (e.g. FusedL1 on
    a chain, then L1, then L21: CFGLasso). Otherwise a string saying which terms lack
    what.
    """
    missing = [p.label for p in terms if not p.provides("prox")]
    if missing:
        return (f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no proximal "
                "operator (give Custom a prox=...)")
    merged = merge_terms(terms)
    if 1 < len(merged) <= 4:
        for order in itertools.permutations(merged):
            if all(a.prox_composes_with(b) for i, a in enumerate(order) for b in order[i + 1:]):
                return list(order)
    if len(merged) > 1:
        return (f"{' + '.join(p.label for p in merged)}: no exact proximal operator of the "
                "sum (no term declares that its prox composes with the others')")
    return merged


def prox_plan(problem: Problem) -> list[Penalty] | str:
    """:func:`prox_chain` of the problem's non-smooth part ``g`` (its terms with strength)."""
    return prox_chain([p for p in problem.nonsmooth_penalties() if p.active])


def parts_term(problem: Problem) -> Penalty | None:
    """The decomposition term (``W = P + Q``) that is the whole non-smooth part ``g`` and
    answers ``prox_parts``, or None.

    First-order methods then iterate on its parts stacked, the loss seen through their
    sum, with the separable prox over the parts.
    """
    terms = [p for p in problem.nonsmooth_penalties() if p.active]
    if len(terms) == 1 and terms[0].part_names and terms[0].provides("prox_parts"):
        return terms[0]
    return None


def prox_operator(problem: Problem) -> Callable[[np.ndarray, float], np.ndarray]:
    """``prox(V, step)`` of the non-smooth part ``g``, its plan resolved once.

    Raises NotImplementedError naming the terms when there is no exact prox.
    """
    plan = prox_plan(problem)
    if isinstance(plan, str):
        raise NotImplementedError(plan)

    def prox(V: np.ndarray, step: float) -> np.ndarray:
        for pen in plan:
            V = pen.prox(V, step)
        return V

    return prox


def _state(problem: Problem, coupled: tuple[TaskCoupling, np.ndarray | None] | None = None
           ) -> tuple:
    """What the spectra depend on, as it is now: ``(data, fit_intercept, c, K_t, K_f)``
    (each replaced, never edited, when it changes: a new ``K_t`` for new quadratic terms);
    ``coupled``: :func:`coupling` of the problem now, when the caller has it."""
    return (problem.data, problem.fit_intercept, problem.loss_weights(),
            *(coupled or coupling(problem)))


def _spectrum_values(problem: Problem, state: tuple | None = None) -> dict:
    """The spectra cache of the problem's current data, weights and quadratic terms (or
    of ``state``, an earlier :func:`_state`): a dict holding ``"coupling"``, ``(λ_max,
    λ_min)`` bounds of ``K_t ⊕ K_f``, and the task blocks' ``"top"``, ``"low"`` (and
    ``"shared"``) once computed."""
    data, center, c, Kt, Kf = state or _state(problem)
    key = (data, center, c.tobytes(), Kt)
    cache = problem.__dict__.get("_spectra_cache")
    if cache is None or cache[0] != key:
        lf = None if Kf is None else np.linalg.eigvalsh(Kf)
        cache = (key, {"coupling": coupling_bounds(Kt, lf)})
        problem.__dict__["_spectra_cache"] = cache
    return cache[1]


def coupling_bounds(Kt: TaskCoupling, lf: np.ndarray | None) -> tuple[float, float]:
    """``(λ_max, λ_min)`` bounds of ``K_t ⊕ K_f`` from ``K_t``'s own bounds and the
    computed ascending eigenvalues ``lf`` of ``K_f`` (None without one): the
    :func:`coupling_top` and :func:`coupling_bottom`."""
    return coupling_top(Kt, lf), coupling_bottom(Kt, lf)


def coupling_top(Kt: TaskCoupling, lf: np.ndarray | None) -> float:
    """The upper bound of :func:`coupling_bounds` alone."""
    top = max(Kt.bounds()[0], 0.0)
    return top if lf is None else top + max(float(lf[-1]), 0.0)


def coupling_bottom(Kt: TaskCoupling, lf: np.ndarray | None) -> float:
    """The lower bound of :func:`coupling_bounds` alone: each part's round-off cutoff
    (:func:`~mtlcvx._linalg.psd_cutoff`) taken off (no eigenvalue problem for a low-rank
    part, which only raises the top)."""
    low = Kt.lower_bound()
    return low if lf is None else low + float(lambda_min(lf))


def _block_eigenvalues(values: dict, H: np.ndarray, c: np.ndarray, shared: bool) -> None:
    """``values["top"]``, ``["low"]`` (``max_t c_t λ_max``, ``min_t c_t λ_min`` of the task
    blocks ``c_t H_t``) from ``eigvalsh`` of ``H`` (1 block for a shared design, else T),
    and ``["shared"]`` (a shared design's computed ``(λ_min, λ_max)``)."""
    lam = np.linalg.eigvalsh(H)
    values["top"] = float((c * lam[:, -1]).max())
    values["low"] = float((c * lambda_min(lam)).min())
    if shared:
        values["shared"] = (float(lam[0, 0]), float(lam[0, -1]))


def _spectra(problem: Problem) -> tuple[float, float, float]:
    """``max_t c_t λ_max`` of the task Hessian blocks ``c_t A_tᵀA_t`` and ``(λ_max,
    λ_min)`` bounds of the coupling ``K_t ⊕ K_f``; cached on their inputs."""
    values = _spectrum_values(problem)
    if "top" not in values:
        gram = problem.data.gram(problem.fit_intercept)
        H = gram.G[None] if gram is not None else problem.data.task_grams(
            problem.fit_intercept).H  # a shared design: one eigenproblem, not T identical
        _block_eigenvalues(values, H, problem.loss_weights(), gram is not None)
    return (values["top"], *values["coupling"])


def _block_bottom(state: tuple, values: dict) -> float:
    """``min_t c_t λ_min(X̃_tᵀX̃_t)`` of ``state``'s data (:func:`_state`), stored in
    ``values`` (the spectra cache) when first computed.

    Per-task blocks need no eigenvalues for their bottom alone: a task with fewer
    (centred) rows than features has a singular block (the minimum is exactly 0, c ≥ 0),
    else :func:`~mtlcvx._linalg.min_block_eigenvalue`.
    """
    if "low" not in values:  # (a Lipschitz bound may have filled it)
        data, center, c = state[:3]
        gram = data.gram(center)
        if gram is not None:
            _block_eigenvalues(values, gram.G[None], c, True)
        elif np.any(data.n_samples - int(center) < data.n_features):
            values["low"] = 0.0
        else:
            values["low"] = min_block_eigenvalue(data.task_grams(center).H, c)
    return values["low"]


def gram_extremes(problem: Problem) -> tuple[float, float] | None:
    """Computed ``(λ_min, λ_max)`` of a shared design's ``X̃ᵀX̃`` (centred when the problem
    fits intercepts); None for per-task designs. Cached with the Lipschitz bound."""
    if not problem.data.is_shared:
        return None
    _spectra(problem)
    return _spectrum_values(problem)["shared"]


def lipschitz(problem: Problem) -> float | None:
    """Upper bound on the Lipschitz constant of ∇(f + h).

    ``max_t c_t λ_max(A_tᵀA_t) + λ_max(K_t) + λ_max(K_f)`` plus every other smooth
    term's ``lipschitz``; None when one of them states no constant (first-order methods
    then backtrack).
    """
    others = smooth_terms(problem)
    if any(not p.provides("lipschitz") for p in others):
        return None
    top, coupling_top, _ = _spectra(problem)
    d, T = problem.n_features, problem.n_tasks
    return top + coupling_top + sum(p.lipschitz(d, T) for p in others)


def strong_convexity(problem: Problem) -> float:
    """Lower bound ``μ ≥ 0`` on the strong-convexity modulus of ``f + h``.

    ``min_t c_t λ_min(X̃_tᵀX̃_t) + λ_min(K_t) + λ_min(K_f)`` (exact for a shared design
    with equal weights) plus the other smooth terms' ``strong_convexity``; 0 when
    nothing guarantees strong convexity.
    """
    return deferred_strong_convexity(problem)()


def deferred_strong_convexity(problem: Problem,
                              coupled: tuple[TaskCoupling, np.ndarray | None] | None = None
                              ) -> Callable[[], float]:
    """:func:`strong_convexity` of the problem as it is now, as a function that computes
    it on its first call only (the coupling's bounds and the task blocks' smallest
    eigenvalues: none of it unless asked).

    For a bound that may never be read (a certificate's ``distance_bound``): later
    changes to the problem do not reach it (it holds the data, weights and coupling of
    now, and the other smooth terms' moduli of now). ``coupled``: :func:`coupling` of the
    problem now, when the caller has it.
    """
    state = _state(problem, coupled)
    d, T = problem.n_features, problem.n_tasks
    rest = sum(p.strong_convexity(d, T) for p in smooth_terms(problem)
               if p.provides("strong_convexity"))
    known: list[float] = []

    def mu() -> float:
        if not known:
            values = _spectrum_values(problem, state)
            known.append(max(_block_bottom(state, values) + values["coupling"][1] + rest, 0.0))
        return known[0]

    return mu
