r"""Seed 004 done right: a task-relation matrix A = Z Zᵀ built from task descriptors
================================================================================

The seed article describes every task t by a descriptor vector z_t (the rows of
Z ∈ R^{T×p}), forms the outer product A = Z Zᵀ (T×T, A_st = ⟨z_s, z_t⟩), and adds it to
the per-task mean squared error,

    L(W) = Σ_t (1/n_t) ‖X_t w_t − y_t‖² + λ tr(W A Wᵀ).

What the article's code gets wrong, and what this example does instead:

* **A must come from task descriptors.** Its code computes ``np.outer(Theta, Theta)`` of
  the model parameters: a d×d matrix (2×2) instead of a T×T task matrix, which depends on
  the unknown itself (as a penalty that would be a quartic, non-convex term) and is then
  never used in the update. Here ``A = mc.relations.outer(Z)`` from fixed descriptors.
* The code also slices ``X[:, i, :]`` (sample i of every task, not task i), lets ``mse``
  broadcast a (3, 1) prediction against a (100,) target without complaint, flips the sign
  of the gradient (``-2 * X.T @ ...`` then ``Theta -= ...`` is gradient *ascent*), and
  raises ``ValueError`` on the gradient line; the example runs it and prints the error.
* **A is only positive semidefinite.** rank(A) ≤ p < T, so tr(W A Wᵀ) = ‖W Z‖²_F vanishes
  on every W whose rows are orthogonal to the columns of Z; the penalty alone does not make
  the optimum unique. Here the loss does: every task has n_t > d samples (X_tᵀX_t ≻ 0).

**What the penalty does.** ‖W Z‖²_F = Σ_k ‖Σ_t Z_tk w_t‖² shrinks, for each descriptor k,
the descriptor-weighted sum of the task weight vectors, and leaves the directions (in task
space) orthogonal to the columns of Z free. In Bayesian terms, (A + εI) is the precision
of a Gaussian prior on each row w^j ∈ R^T (feature j across tasks): variance ≈ 1/ε → ∞
orthogonal to the descriptors, small along them. So it helps when the true weights vary
little along the descriptor directions, and it hurts when the weights grow *with* the
descriptors (w_t = B z_t): then the right task matrix is the complement I − Z Z⁺, or a
descriptor graph (``mc.relations.knn_graph(Z, k)`` with :class:`mtlcvx.GraphLaplacian`).
The example generates both kinds of truth from the same descriptors and shows both.

**mtlcvx conventions.** With the per-task mean loss the seed objective is exactly twice

    SquaredLoss(scale="mean") + TaskRelation(outer(Z), alpha=λ),

since 2·[Σ_t 1/(2n_t)‖·‖² + (λ/2) tr(W A Wᵀ)] = Σ_t (1/n_t)‖·‖² + λ tr(W A Wᵀ) (checked
at random W). It is solved exactly with "direct" and cross-checked with Clarabel; the
uncoupled baseline is independent per-task least squares (``np.linalg.lstsq``), which is
also what mtlcvx returns at λ = 0.

Run ``python examples/seed_task_features.py``; ``run(quick=True)`` uses fewer test
samples and a shorter λ path.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

import mtlcvx as mc

N_TASKS, N_DESCRIPTORS, N_FEATURES = 8, 2, 10


def make_descriptor_tasks(truth: str, *, n_test: int = 500, tau: float = 0.1,
                          noise: float = 1.0, random_state: int = 0) -> dict:
    """Synthetic tasks whose true weights are tied to task descriptors Z (T, p).

    Parameters
    ----------
    truth : {"balanced", "linear"}
        "balanced": each feature's row w^j ∈ R^T of the true W is Gaussian with
        covariance (I − P_Z) + τ² P_Z, ``P_Z = Z Z⁺`` the projector onto the columns of
        Z, so the descriptor-weighted sums W Z are small (the prior that
        tr(W Z Zᵀ Wᵀ) encodes). "linear": ``W = B Zᵀ + τ·noise``, weights linear in the
        descriptors (W Z large).
    n_test : int
        Held-out samples per task.
    tau, noise : float
        Size of the component along the descriptors ("balanced") or of the deviation
        from B Zᵀ ("linear"); standard deviation of the target noise.
    random_state : int
        The descriptors, designs and n_t do not depend on ``truth`` (same seed, same Z).

    Returns
    -------
    dict
        ``Z`` (T, p), ``W_true`` (d, T), ``train`` / ``test`` (MultiTaskData),
        ``n_train`` (T,).
    """
    rng = np.random.default_rng(random_state)
    T, p, d = N_TASKS, N_DESCRIPTORS, N_FEATURES
    Z = rng.standard_normal((T, p))
    n_train = rng.integers(12, 25, size=T)  # n_t > d: each task's least squares is unique
    G1, G2 = rng.standard_normal((d, T)), rng.standard_normal((d, T))
    B = rng.standard_normal((d, p))
    X_train = [rng.standard_normal((n, d)) for n in n_train]
    eps_train = [noise * rng.standard_normal(n) for n in n_train]
    # test data last, so n_test changes neither the truth nor the training set
    X_test = [rng.standard_normal((n_test, d)) for _ in range(T)]
    eps_test = [noise * rng.standard_normal(n_test) for _ in range(T)]
    P_Z = Z @ np.linalg.pinv(Z)
    if truth == "balanced":
        W_true = G1 @ (np.eye(T) - P_Z) + tau * G2 @ P_Z
    elif truth == "linear":
        W_true = B @ Z.T + tau * G2
    else:
        raise ValueError(f"truth must be 'balanced' or 'linear', got {truth!r}")
    train = mc.MultiTaskData(X_train, [X_train[t] @ W_true[:, t] + eps_train[t]
                                       for t in range(T)])
    test = mc.MultiTaskData(X_test, [X_test[t] @ W_true[:, t] + eps_test[t] for t in range(T)])
    return {"Z": Z, "W_true": W_true, "train": train, "test": test, "n_train": n_train}


def seed_objective(train: mc.MultiTaskData, W: np.ndarray, A: np.ndarray, lam: float) -> float:
    """The seed's objective Σ_t mean((X_t w_t − y_t)²) + λ tr(W A Wᵀ), written literally."""
    mse = sum(float(np.mean((Xt @ W[:, t] - yt) ** 2))
              for t, (Xt, yt) in enumerate(zip(train.X, train.y, strict=True)))
    return mse + lam * float(np.trace(W @ A @ W.T))


def per_task_least_squares(train: mc.MultiTaskData) -> np.ndarray:
    """Independent least squares per task (no coupling), W (d, T)."""
    return np.column_stack([np.linalg.lstsq(Xt, yt, rcond=None)[0]
                            for Xt, yt in zip(train.X, train.y, strict=True)])


def test_mse(test: mc.MultiTaskData, W: np.ndarray) -> np.ndarray:
    """Held-out mean squared error per task (T,)."""
    return np.array([float(np.mean((Xt @ W[:, t] - yt) ** 2))
                     for t, (Xt, yt) in enumerate(zip(test.X, test.y, strict=True))])


def run_article_code() -> tuple[tuple[int, ...], str]:
    """Run the article's code (section 4) verbatim; return A's shape and the error raised."""
    # the article's legacy global-state RNG, kept as written
    np.random.seed(0)  # noqa: NPY002
    n_tasks = 3
    X = np.random.rand(n_tasks, 100, 2)  # noqa: NPY002
    y = np.random.rand(n_tasks, 100)  # noqa: NPY002
    Theta = np.random.rand(2, 1)  # noqa: NPY002
    A = np.outer(Theta, Theta)

    def mse(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)

    learning_rate = 0.01
    try:
        for _ in range(1000):
            loss = 0
            for i in range(n_tasks):
                y_pred = X[:, i, :] @ Theta
                loss += mse(y[i], y_pred)
            gradient = -2 * X.T @ (X @ Theta - y).T
            Theta -= learning_rate * gradient
    except ValueError as err:
        return A.shape, f"ValueError: {str(err).strip()}"
    return A.shape, "no error"  # pragma: no cover - the article's code always fails


def run(quick: bool | None = None) -> dict:
    """Solve the descriptor-coupled problem exactly and compare with per-task least squares.

    Parameters
    ----------
    quick : bool, optional
        None reads the ``MTLCVX_QUICK`` environment variable (the docs gallery sets it).
        200 instead of 2,000 held-out samples per task and a 4-point instead of a
        7-point λ path.

    Returns
    -------
    dict
        ``Z``, ``A`` (= outer(Z)), ``A_eigenvalues``, ``A_rank``, ``A_is_psd``, ``lam``
        (the λ of the main table), ``problem`` (mtlcvx Problem at that λ), ``balanced``
        and ``linear`` (the two synthetic sets, see :func:`make_descriptor_tasks`),
        ``W_coupled`` (direct), ``W_clarabel``, ``W_independent`` (lstsq),
        ``W_lambda0`` (mtlcvx at λ = 0), ``objective_mtlcvx``, ``objective_seed`` (seed
        scale at W_coupled), ``conversion_max_rel_diff``, ``test_mse_independent`` /
        ``test_mse_coupled`` (T,), ``WZ_norm`` (dict: truth / independent / coupled),
        ``path`` (dict: ``lam`` and mean test MSE per λ for each truth and penalty),
        ``article_A_shape``, ``article_error``.
    """
    quick = mc.datasets.quick_mode(quick)
    n_test = 200 if quick else 2000
    lams = [0.0, 0.1, 1.0, 10.0] if quick else [0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0]
    lam = 1.0
    balanced = make_descriptor_tasks("balanced", n_test=n_test)
    linear = make_descriptor_tasks("linear", n_test=n_test)
    Z = balanced["Z"]
    train, test = balanced["train"], balanced["test"]
    T, p = Z.shape
    print(f"Seed 004: A = Z Zᵀ from task descriptors Z ({T} tasks × {p} descriptors), "
          f"{N_FEATURES} features, n_t = {balanced['n_train'].tolist()} training samples, "
          f"{n_test} held-out per task")

    # -- 1. A ----------------------------------------------------------------------
    A = mc.relations.outer(Z)
    eig = scipy.linalg.eigvalsh(A)
    rank = int(np.sum(eig > 1e-10 * eig[-1]))
    psd = mc.relations.is_psd(A)
    art_shape, art_err = run_article_code()
    print("\n1. A = mc.relations.outer(Z)")
    print(f"   eigenvalues: {T - rank} of size ≤ {np.abs(eig[:T - rank]).max():.0e} (zero up to "
          f"round-off), nonzero {np.array2string(eig[T - rank:], precision=3)}")
    print(f"   rank {rank} = p < T = {T}; mc.relations.is_psd(A) = {psd}: only PSD, so the "
          "loss (n_t > d, X_tᵀX_t ≻ 0) is what makes the optimum unique")
    print(f"   the article's np.outer(Theta, Theta) is {art_shape} (d×d, from the parameters); "
          f"its loop raises {art_err}")

    # -- 2. exact solves -----------------------------------------------------------------
    pen = mc.TaskRelation(A, alpha=lam)
    prob = mc.Problem(train, loss=mc.SquaredLoss(scale="mean"), penalties=[pen])
    rng = np.random.default_rng(1)
    conv = max(abs(seed_objective(train, W, A, lam) - 2.0 * prob.objective(W))
               / seed_objective(train, W, A, lam)
               for W in rng.standard_normal((5, N_FEATURES, T)))
    sol = prob.solve(backend="direct")
    sol_c = prob.solve(backend="clarabel", tol=1e-10)
    F_seed = seed_objective(train, sol.W, A, lam)
    print(f"\n2. seed objective = 2 × [SquaredLoss('mean') + TaskRelation(outer(Z), alpha=λ)], "
          f"λ = {lam:g} (max relative difference at 5 random W: {conv:.1e})")
    print(f"   direct   ({sol.info['method']}): mtlcvx F* = {sol.objective:.12f}, "
          f"seed-scale F* = {F_seed:.12f}")
    print(f"   clarabel: mtlcvx F  = {sol_c.objective:.12f}, "
          f"relative difference {abs(sol_c.objective - sol.objective) / sol.objective:.1e}, "
          f"max |ΔW| = {np.abs(sol_c.W - sol.W).max():.1e}")

    # -- 3. coupled vs independent --------------------------------------------------------
    W_ind = per_task_least_squares(train)
    pen.alpha = 0.0
    W_0 = prob.solve(backend="direct").W
    pen.alpha = lam
    W_true = balanced["W_true"]
    mse_ind, mse_cpl = test_mse(test, W_ind), test_mse(test, sol.W)
    print(f"\n3. truth 'balanced' (W_true Z small): held-out MSE per task, λ = {lam:g} "
          f"(noise variance 1.0; mtlcvx at λ = 0 equals lstsq to "
          f"{np.abs(W_0 - W_ind).max():.1e})")
    print(f"   {'task':>4} {'n_t':>4} {'z_t':>16} {'MSE indep.':>11} {'MSE coupled':>12} "
          f"{'‖Δw‖ indep.':>12} {'‖Δw‖ coupled':>13}")
    for t in range(T):
        z = np.array2string(Z[t], precision=2, floatmode="fixed")
        print(f"   {t:>4d} {balanced['n_train'][t]:>4d} {z:>16} {mse_ind[t]:>11.3f} "
              f"{mse_cpl[t]:>12.3f} {np.linalg.norm(W_ind[:, t] - W_true[:, t]):>12.3f} "
              f"{np.linalg.norm(sol.W[:, t] - W_true[:, t]):>13.3f}")
    print(f"   {'mean':>4} {'':>4} {'':>16} {mse_ind.mean():>11.3f} {mse_cpl.mean():>12.3f}")
    wz = {"truth": float(np.linalg.norm(W_true @ Z)),
          "independent": float(np.linalg.norm(W_ind @ Z)),
          "coupled": float(np.linalg.norm(sol.W @ Z))}
    print(f"   ‖W Z‖_F: truth {wz['truth']:.3f}, independent {wz['independent']:.3f}, "
          f"coupled {wz['coupled']:.3f} (the penalty shrinks exactly this)")

    # -- 4. λ path, both truths, A vs its complement -----------------------------------
    complement = np.eye(T) - Z @ np.linalg.pinv(Z)
    path: dict[str, list[float]] = {"lam": lams}
    print("\n4. mean held-out MSE along λ (pen.alpha = λ, then re-solve with 'direct')")
    print(f"   {'λ':>6} {'balanced, A':>12} {'linear, A':>10} {'linear, I−ZZ⁺':>14}")
    runs = [("balanced_A", balanced, A), ("linear_A", linear, A),
            ("linear_complement", linear, complement)]
    for key, _, _ in runs:
        path[key] = []
    for key, ds, M in runs:
        pen_k = mc.TaskRelation(M, alpha=0.0)
        prob_k = mc.Problem(ds["train"], loss=mc.SquaredLoss(scale="mean"), penalties=[pen_k])
        for lam_k in lams:
            pen_k.alpha = lam_k
            path[key].append(float(test_mse(ds["test"], prob_k.solve(backend="direct").W).mean()))
    for i, lam_k in enumerate(lams):
        print(f"   {lam_k:>6g} {path['balanced_A'][i]:>12.3f} {path['linear_A'][i]:>10.3f} "
              f"{path['linear_complement'][i]:>14.3f}")
    print("   A = ZZᵀ helps when the weights vary little along the descriptors and hurts when "
          "they grow with them; then penalise the complement I − ZZ⁺ instead")

    return {
        "Z": Z,
        "A": A,
        "A_eigenvalues": eig,
        "A_rank": rank,
        "A_is_psd": psd,
        "lam": lam,
        "problem": prob,
        "balanced": balanced,
        "linear": linear,
        "W_coupled": sol.W,
        "W_clarabel": sol_c.W,
        "W_independent": W_ind,
        "W_lambda0": W_0,
        "objective_mtlcvx": sol.objective,
        "objective_clarabel": sol_c.objective,
        "objective_seed": F_seed,
        "conversion_max_rel_diff": float(conv),
        "test_mse_independent": mse_ind,
        "test_mse_coupled": mse_cpl,
        "WZ_norm": wz,
        "path": path,
        "article_A_shape": art_shape,
        "article_error": art_err,
    }


if __name__ == "__main__":
    run()
