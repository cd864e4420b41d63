"""Newton-CG (Hessian-free) logistic regression with `ft.hvp`, against Adam.

Newton's method steps to the minimiser of the local quadratic model, `w - H^{-1} g`, and
converges quadratically near the optimum, but forming the Hessian `H` costs one gradient per
parameter. The Hessian-free (truncated Newton) method (Nocedal and Wright, "Numerical
Optimization", 2006, section 7.1; Martens, 2010, "Deep learning via Hessian-free
optimization") never forms it: conjugate gradients solve `H d = -g` using only products
`H v`, and each product is one forward-over-reverse pass, `ft.hvp(loss, (w,), (v,))`, the
`jvp` of `grad` (a derivative of a derivative) at the cost of a few gradients.

The problem is L2-regularised logistic regression separating the digits 0-4 from 5-9 of
scikit-learn's bundled 8x8 digits. Both optimisers start from zero; each run counts
iterations until the training loss is within `tol` of the optimum, and the passes they
took: one gradient per Adam step; one gradient plus one Hessian-vector product per CG step
for Newton-CG (a product costs about two gradients).

Run: `python examples/hessian_free.py --steps 5000`
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits
from tqdm import tqdm

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp


def load_data(seed=0, n_test=297, dtype=np.float32):
    """Digits scaled to [0, 1] with a constant column for the bias; labels `digit >= 5`.

    Returns:
      `((x_train, y_train), (x_test, y_test))`, split at random by `seed`.
    """
    digits = load_digits()
    x = digits.data.astype(dtype) / 16.0
    x = np.concatenate([x, np.ones((len(x), 1), dtype)], axis=1)
    y = (digits.target >= 5).astype(dtype)
    perm = np.random.RandomState(seed).permutation(len(x))
    train, test = perm[n_test:], perm[:n_test]
    return (x[train], y[train]), (x[test], y[test])


def loss(w, x, y, l2=1e-3):
    """Mean logistic loss `softplus(z) - y z` with `z = x w`, plus `l2 / 2 * ||w||^2`.

    Args:
      w: weights, `(features,)`.
      x: inputs, `(n, features)`.
      y: labels in {0, 1}, `(n,)`.
      l2: strength of the ridge penalty (it makes the problem strongly convex).

    Returns:
      The scalar loss.
    """
    z = x @ w
    return fnp.mean(fnn.softplus(z) - y * z) + 0.5 * l2 * fnp.sum(w * w)


def conjugate_gradient(matvec, b, tol, max_iters):
    """Solves `A d = b` for symmetric positive definite `A` given only `matvec(v) = A v`.

    Stops when `||A d - b|| <= tol * ||b||` or after `max_iters` products (a `while_loop`,
    so it runs inside `jax.jit`).

    Returns:
      `(d, iterations)`.
    """

    def cond(carry):
        i, _, _, _, rr = carry
        return (i < max_iters) & (rr > (tol**2) * jnp.vdot(b, b))

    def body(carry):
        i, d, r, p, rr = carry
        ap = matvec(p)
        step = rr / jnp.vdot(p, ap)
        d, r = d + step * p, r - step * ap
        rr_new = jnp.vdot(r, r)
        return i + 1, d, r, r + (rr_new / rr) * p, rr_new

    start = (jnp.asarray(0), jnp.zeros_like(b), b, b, jnp.vdot(b, b))
    i, d, *_ = jax.lax.while_loop(cond, body, start)
    return d, i


def newton_direction(w, x, y, l2=1e-3, max_cg=50):
    """The truncated Newton step `d ~ -H^{-1} g` by CG on `ft.hvp` products.

    CG stops at relative residual `min(0.5, sqrt(||g||))`, the classical forcing sequence
    that keeps early steps cheap and gives superlinear convergence near the optimum.

    Returns:
      `(d, g, cg_iterations)`.
    """
    f = lambda w: loss(w, x, y, l2)
    g = ft.grad(f)(w)
    tol = jnp.minimum(0.5, jnp.sqrt(jnp.linalg.norm(g)))
    d, iters = conjugate_gradient(lambda v: ft.hvp(f, (w,), (v,)), -g, tol, max_cg)
    return d, g, iters


def newton_cg(x, y, l2=1e-3, iters=20, gtol=1e-5):
    """Newton-CG from zero with a backtracking (Armijo) line search.

    Returns:
      A dict with `losses` (after each iteration, the start first), `cg` (CG products per
      iteration), `w` (the final weights) and `grad_norm` (its gradient norm).
    """
    f = jax.jit(lambda w: loss(w, x, y, l2))
    direction = jax.jit(lambda w: newton_direction(w, x, y, l2))
    w = jnp.zeros(x.shape[1], x.dtype)
    losses, cg = [float(f(w))], []
    for _ in range(iters):
        d, g, n_cg = direction(w)
        if float(jnp.linalg.norm(g)) < gtol:
            break
        t, slope = 1.0, float(jnp.vdot(g, d))
        while float(f(w + t * d)) > losses[-1] + 1e-4 * t * slope and t > 1e-4:
            t *= 0.5
        w = w + t * d
        losses.append(float(f(w)))
        cg.append(int(n_cg))
    grad_norm = float(jnp.linalg.norm(jax.jit(ft.grad(lambda w: loss(w, x, y, l2)))(w)))
    return {"losses": np.array(losses), "cg": np.array(cg), "w": w, "grad_norm": grad_norm}


def adam(x, y, l2=1e-3, steps=3000, lr=0.05, progress=True):
    """Full-batch Adam from zero. Returns the loss after each step (the start first)."""
    opt = optax.adam(lr)

    @jax.jit
    def step(w, state):
        l, g = ft.value_and_grad(loss)(w, x, y, l2)
        updates, state = opt.update(g, state, w)
        return optax.apply_updates(w, updates), state, l

    w = jnp.zeros(x.shape[1], x.dtype)
    state, losses = opt.init(w), []
    for _ in tqdm(range(steps), desc="Adam", disable=not progress):
        w, state, l = step(w, state)
        losses.append(l)
    losses.append(jax.jit(loss)(w, x, y, l2))
    return np.asarray(jnp.stack(losses)), w


def first_below(losses, target):
    """The first index at which `losses` reaches `target` (None if it never does)."""
    hits = np.nonzero(np.asarray(losses) <= target)[0]
    return int(hits[0]) if hits.size else None


def main(
    steps: int = 3000,
    seed: int = 0,
    l2: float = 1e-3,
    tol: float = 1e-4,
    lr: float = 0.05,
    progress: bool = True,
) -> dict:
    """Runs Newton-CG to convergence and Adam for `steps` steps; counts iterations to `tol`.

    Args:
      steps: Adam steps (the budget it gets to reach the target).
      seed: seed of the train/test split (both optimisers start from zero).
      l2: ridge penalty.
      tol: the target is `optimum + tol`, where the optimum is Newton-CG's final loss.
      lr: Adam learning rate.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `newton` (the dict of `newton_cg`), `adam_losses`, `optimum`, `target`,
      `newton_iters` and `adam_iters` (iterations to reach the target; `adam_iters` is None
      when Adam did not reach it within `steps`), `newton_passes` and `adam_passes`
      (gradients plus Hessian-vector products to the target), `tol`, and `accuracy` (held-out
      accuracy of the Newton-CG weights).
    """
    (x_np, y_np), (x_test, y_test) = load_data(seed)
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    newton = newton_cg(x, y, l2)
    adam_losses, _ = adam(x, y, l2, steps, lr, progress)
    optimum = float(newton["losses"][-1])
    target = optimum + tol
    n_it = first_below(newton["losses"], target)
    a_it = first_below(adam_losses, target)
    accuracy = float(np.mean((x_test @ np.asarray(newton["w"]) > 0) == (y_test > 0.5)))
    return {
        "newton": newton,
        "adam_losses": adam_losses,
        "optimum": optimum,
        "target": target,
        "newton_iters": n_it,
        "adam_iters": a_it,
        "newton_passes": int(n_it + newton["cg"][:n_it].sum()),
        "adam_passes": a_it,
        "tol": tol,
        "accuracy": accuracy,
    }


def summary(out):
    """Prints what was checked and the numbers."""
    print(f"logistic regression, digits 0-4 vs 5-9: optimum loss {out['optimum']:.5f},")
    print(f"  held-out accuracy {out['accuracy']:.3f}; target: optimum + {out['tol']:g}")
    n_cg = out["newton"]["cg"][: out["newton_iters"]]
    print(
        f"  Newton-CG: {out['newton_iters']} iterations ({int(n_cg.sum())} Hessian-vector "
        f"products: {out['newton_passes']} passes in all)"
    )
    if out["adam_iters"] is None:
        print(f"  Adam: did not reach the target in {len(out['adam_losses']) - 1} steps")
        return True
    print(f"  Adam:      {out['adam_iters']} iterations ({out['adam_passes']} gradients)")
    return out["newton_iters"] < out["adam_iters"]


def cli(argv=None, progress=True):
    """Parses the command line (`--steps`, `--seed`, `--lr`), trains, prints the summary.

    Returns:
      The dict of `main`, with `ok` added: whether the printed check passed.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    args = parser.parse_args(argv)
    out = main(steps=args.steps, seed=args.seed, lr=args.lr, progress=progress)
    out["ok"] = summary(out)
    return out


if __name__ == "__main__":
    raise SystemExit(0 if cli()["ok"] else 1)
