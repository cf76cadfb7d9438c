"""linear-learner's polish: a trained linear model moved to the exact optimum of its objective.

Mini-batch Adam or SGD with a decaying rate ends near a convex model's optimum, not at it;
on a few hundred rows that difference flips a test row or two against a solver that runs to
convergence (scikit-learn's L-BFGS). So, once a configuration is chosen, its weights are
refined by L-BFGS-B (``scipy.optimize.minimize``, full batch, float64), starting from the
trained weights, on the very objective the network trained: the mean over the rows of the
per-row loss (squared error on the scaled target, sigmoid or softmax cross-entropy; rows
unweighted, as in ``parallel._loss``) plus ``l2 * |W|^2`` and ``l1 * |W|_1`` on the kernel,
never the bias. The L1 term is made smooth the usual way: ``W = P - N`` with ``P, N >= 0``
as L-BFGS-B bounds, whose optimum is the L1 problem's.

Guards: nothing runs when one full-batch evaluation would be too large (``MAX_WORK``), and
the result is kept only when the optimizer reports convergence with a lower objective than
the start; otherwise the trained weights stay, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

from orchestrator.algorithms.parallel import CrossValidated, logits_of, row_losses

MAX_WORK = 100_000_000
"""Largest rows x features x units polished: one evaluation is two matrix products of that
many multiply-adds in float64 (about 0.1 s on one core) and L-BFGS needs hundreds, so past it
the polish would cost more than the training it refines."""
MAX_ITERATIONS = 2000
GRADIENT_TOLERANCE = 1e-9  # on the largest (projected) gradient entry of the mean loss
VALUE_TOLERANCE = 1e-14  # relative decrease per iteration under which it stops


@dataclass(frozen=True)
class Polished:
    """The weights to use, and what the polish did."""

    kernel: np.ndarray  # [d, units]
    bias: np.ndarray  # [units]
    ran: bool  # whether the weights are the optimizer's
    iterations: int
    reason: str  # "converged", or why the trained weights were kept
    start: float  # the objective at the trained weights
    value: float  # at the kept weights

    def document(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "iterations": self.iterations,
            "reason": self.reason,
            "objective_before": self.start,
            "objective_after": self.value,
        }


def objective(
    predictor_type: str,
    x: np.ndarray,
    y: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    l2: float,
    l1: float = 0.0,
) -> float:
    """The training objective of one model (``kernel`` ``[d, units]``) on normalised ``x``."""
    loss, _ = _data_loss(predictor_type, x, y, kernel, bias)
    return float(loss + l2 * np.sum(kernel**2) + l1 * np.sum(np.abs(kernel)))


def polish(
    predictor_type: str,
    x: np.ndarray,
    y: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    l2: float,
    l1: float = 0.0,
    max_work: int | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> Polished:
    """``kernel``/``bias`` at the optimum of ``objective`` on ``x, y`` (or as given, why not).

    ``x`` is normalised and ``y`` the trained target (scaled, 0/1, or class indices);
    ``max_work`` defaults to ``MAX_WORK``.
    """
    x = np.ascontiguousarray(x, np.float64)
    y = np.asarray(y, np.float64)
    kernel = np.asarray(kernel, np.float64)
    bias = np.asarray(bias, np.float64)
    d, units = kernel.shape
    with np.errstate(all="ignore"):
        start = objective(predictor_type, x, y, kernel, bias, l2=l2, l1=l1)

    def keep(reason: str, iterations: int = 0) -> Polished:
        return Polished(kernel, bias, False, iterations, reason, start, start)

    work, bound = len(x) * d * units, MAX_WORK if max_work is None else max_work
    if work > bound:
        return keep(f"skipped: rows x features x units = {work} > {bound}")
    if len(x) == 0 or not np.isfinite(start):
        return keep("skipped: no rows or a non-finite starting objective")
    fun, theta0, bounds, unpack = _problem(predictor_type, x, y, kernel, bias, l2=l2, l1=l1)
    try:
        with np.errstate(all="ignore"):
            result = minimize(
                fun,
                theta0,
                method="L-BFGS-B",
                jac=True,
                bounds=bounds,
                options={
                    "maxiter": max_iterations,
                    "gtol": GRADIENT_TOLERANCE,
                    "ftol": VALUE_TOLERANCE,
                },
            )
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return keep(f"failed: {exc}")
    iterations = int(result.nit)
    value = float(result.fun)
    if not _converged(result) or not np.isfinite(value) or value > start:
        message = str(result.message)
        return keep(f"failed: {message} (objective {value:.6g} from {start:.6g})", iterations)
    new_kernel, new_bias = unpack(np.asarray(result.x, np.float64))
    return Polished(new_kernel, new_bias, True, iterations, "converged", start, value)


def _converged(result: object) -> bool:
    """Converged, or stopped in a line search with the gradient already near zero (the last
    digits of float64: L-BFGS-B reports an abnormal line search there)."""
    if bool(getattr(result, "success", False)):
        return True
    grad = np.asarray(getattr(result, "jac", np.array([np.inf])))
    return int(getattr(result, "status", -1)) == 2 and float(np.max(np.abs(grad))) <= 1e-6


Unpack = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _problem(
    predictor_type: str,
    x: np.ndarray,
    y: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray,
    *,
    l2: float,
    l1: float,
) -> tuple[
    Callable[[np.ndarray], tuple[float, np.ndarray]],
    np.ndarray,
    list[tuple[float | None, float | None]] | None,
    Unpack,
]:
    """The flat function (value, gradient), start, bounds and unpacking for L-BFGS-B."""
    d, units = kernel.shape
    size = d * units
    split = l1 > 0.0

    def unpack(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if split:
            w = theta[:size] - theta[size : 2 * size]
            return w.reshape(d, units), theta[2 * size :].copy()
        return theta[:size].reshape(d, units).copy(), theta[size:].copy()

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = unpack(theta)
        loss, g = _data_loss(predictor_type, x, y, w, b)
        grad_w = (x.T @ g + 2.0 * l2 * w).ravel()
        grad_b = g.sum(axis=0)
        value = loss + l2 * float(np.sum(w * w))
        if not split:
            return value, np.concatenate([grad_w, grad_b])
        value += l1 * float(np.sum(theta[: 2 * size]))
        return value, np.concatenate([grad_w + l1, -grad_w + l1, grad_b])

    if not split:
        return fun, np.concatenate([kernel.ravel(), bias]), None, unpack
    flat = kernel.ravel()
    theta0 = np.concatenate([np.maximum(flat, 0.0), np.maximum(-flat, 0.0), bias])
    bounds: list[tuple[float | None, float | None]] = [(0.0, None)] * (2 * size) + [
        (None, None)
    ] * units
    return fun, theta0, bounds, unpack


def _data_loss(
    predictor_type: str, x: np.ndarray, y: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> tuple[float, np.ndarray]:
    """The mean per-row loss and its gradient with respect to the logits ``[rows, units]``."""
    n = len(x)
    z = x @ kernel + bias
    if predictor_type == "multiclass_classifier":
        shifted = z - z.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        labels = y.astype(np.int64)
        rows = np.arange(n)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, labels]))
        g = exp / total
        g[rows, labels] -= 1.0
        return loss, g / n
    z1 = z[:, 0]
    if predictor_type == "regressor":
        r = z1 - y
        return float(np.mean(r * r)), (2.0 * r / n)[:, None]
    # sigmoid cross-entropy, stable: log(1 + exp(-|z|)) + max(z, 0) - z * y
    loss = float(np.mean(np.logaddexp(0.0, -np.abs(z1)) + np.maximum(z1, 0.0) - z1 * y))
    p = 0.5 * (1.0 + np.tanh(0.5 * z1))  # the sigmoid, without overflow
    return loss, ((p - y) / n)[:, None]


@dataclass(frozen=True)
class FoldsPolished:
    """Cross-validation re-scored with every fold model polished (those that converged)."""

    cv: CrossValidated
    models: int
    converged: int
    iterations: int  # all models' together

    def document(self) -> dict[str, object]:
        return {"models": self.models, "converged": self.converged, "iterations": self.iterations}


def polish_folds(
    predictor_type: str,
    xy: tuple[np.ndarray, np.ndarray],
    folds: np.ndarray,
    cv: CrossValidated,
    l2s: list[float],
    *,
    l1: float = 0.0,
    max_work: int | None = None,
) -> FoldsPolished:
    """Each fold's models polished on the rows they trained on, then scored out of fold.

    Model ``f * m + c`` (configuration ``c``, L2 ``l2s[c]``) trained on the rows outside
    fold ``f``, its mean loss there plus its penalty; a model whose polish does not converge
    keeps its trained weights. Returns ``cv`` with the out-of-fold losses and logits anew.
    """
    x, y = xy
    m, k = len(l2s), int(folds.max()) + 1
    kernels, biases = cv.fold_kernels.copy(), cv.fold_biases.copy()
    converged = iterations = 0
    oof = np.empty_like(cv.logits)
    for f in range(k):
        inside = folds != f
        for c in range(m):
            i = f * m + c
            done = polish(
                predictor_type,
                x[inside],
                y[inside],
                kernels[i],
                biases[i],
                l2=l2s[c],
                l1=l1,
                max_work=max_work,
            )
            kernels[i], biases[i] = done.kernel, done.bias
            converged += int(done.ran)
            iterations += done.iterations
        held = folds == f
        oof[held] = logits_of(kernels[f * m : (f + 1) * m], biases[f * m : (f + 1) * m], x[held])
    with np.errstate(all="ignore"):
        per = row_losses(predictor_type, oof, y)
    means = per.mean(axis=0)
    rescored = replace(
        cv,
        row_losses=per,
        logits=oof,
        best_losses=[float(v) if np.isfinite(v) else math.inf for v in means],
        fold_kernels=kernels,
        fold_biases=biases,
    )
    return FoldsPolished(rescored, k * m, converged, iterations)
