"""A physics-informed network for the 1-D Poisson equation: second derivatives in the loss.

A physics-informed neural network (Raissi, Perdikaris and Karniadakis, 2019, "Physics-informed
neural networks", J. Comput. Phys. 378) solves a differential equation by training a network
`u(x)` to satisfy it at sampled points. Here the equation is

    u''(x) = f(x)  on (0, 1),   u(0) = u(1) = 0,   f(x) = -(k pi)^2 sin(k pi x),

whose exact solution is `u(x) = sin(k pi x)`, so the error of the trained network can be
measured. The loss is the mean squared residual `u''(x) - f(x)` at random collocation points
plus the squared boundary values. The residual needs the second derivative of the network
with respect to its input, and training needs the gradient of that with respect to the
parameters: a third-order composition, written `ft.vmap(ft.grad(ft.grad(u, 1), 1))` inside
`ft.grad`, compiled by `jax.jit`.

Run: `python examples/pinn.py --steps 20000`
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import functrans as ft
import functrans.numpy as fnp


def exact(x, k=2):
    """The exact solution `sin(k pi x)`."""
    return jnp.sin(k * jnp.pi * x)


def source(x, k=2):
    """The right-hand side `f = u''` of the exact solution."""
    return -((k * np.pi) ** 2) * fnp.sin(k * np.pi * x)


def init_mlp(key, hidden=(32, 32), dtype=jnp.float32):
    """Xavier-initialised `[W1, b1, ..., Wn, bn]` of a scalar-to-scalar MLP."""
    sizes = (1, *hidden, 1)
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
        scale = float(np.sqrt(2.0 / (n_in + n_out)))
        params.append(jax.random.normal(k, (n_in, n_out), dtype) * scale)
        params.append(jnp.zeros((n_out,), dtype))
    return params


def u(params, x):
    """The network at one scalar point `x`: a tanh MLP returning a scalar."""
    h = fnp.reshape(x, (1,))
    for w, b in zip(params[:-2:2], params[1:-2:2]):
        h = fnp.tanh(h @ w + b)
    return fnp.sum(h @ params[-2] + params[-1])


def u_xx(params, x):
    """`d^2 u / dx^2` at a batch of points: `grad` of `grad` in `x`, mapped by `vmap`."""
    return ft.vmap(ft.grad(ft.grad(u, argnums=1), argnums=1), in_axes=(None, 0))(params, x)


def loss(params, x, k=2, boundary_weight=10.0):
    """Mean squared PDE residual at the collocation points `x` plus the boundary penalty.

    Args:
      params: the MLP parameters.
      x: interior collocation points, shape `(n,)`.
      k: frequency of the exact solution.
      boundary_weight: weight of `u(0)^2 + u(1)^2`.

    Returns:
      The scalar loss.
    """
    residual = u_xx(params, x) - source(x, k)
    edges = u(params, fnp.zeros_like(x[0])) ** 2 + u(params, fnp.ones_like(x[0])) ** 2
    return fnp.mean(residual**2) + boundary_weight * edges


@jax.jit
def solution(params, x):
    """The network at a batch of points (for plots and errors)."""
    return ft.vmap(u, in_axes=(None, 0))(params, x)


def errors(params, k=2, n=1001):
    """Relative L2 error and maximum absolute error against `sin(k pi x)` on a uniform grid."""
    x = jnp.linspace(0.0, 1.0, n, dtype=params[0].dtype)
    diff = solution(params, x) - exact(x, k)
    rel_l2 = jnp.sqrt(jnp.sum(diff**2) / jnp.sum(exact(x, k) ** 2))
    return float(rel_l2), float(jnp.max(jnp.abs(diff)))


def main(
    steps: int = 3000,
    seed: int = 0,
    k: int = 2,
    n_points: int = 64,
    hidden: int = 32,
    lr: float = 5e-3,
    progress: bool = True,
) -> dict:
    """Trains the PINN with Adam (cosine-decayed learning rate) on fresh random points.

    Args:
      steps: Adam steps.
      seed: seed of the initial parameters and the collocation points.
      k: frequency of the exact solution `sin(k pi x)`.
      n_points: collocation points per step.
      hidden: width of the two hidden layers.
      lr: initial learning rate.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `params`, `init`, `history` (loss per step), `rel_l2` and `max_err` (the
      errors against the exact solution) and `init_rel_l2` (the untrained network's).
    """
    key_init, key_pts = jax.random.split(jax.random.key(seed))
    init = init_mlp(key_init, (hidden, hidden))
    opt = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=1e-2))

    @jax.jit
    def step(params, state, key):
        x = jax.random.uniform(key, (n_points,), params[0].dtype)
        l, g = ft.value_and_grad(loss)(params, x, k)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state, l

    params, state, history = init, opt.init(init), []
    bar = tqdm(jax.random.split(key_pts, steps), desc="PINN", disable=not progress)
    for i, key in enumerate(bar):
        params, state, l = step(params, state, key)
        history.append(l)
        if progress and i % 500 == 0:
            bar.set_postfix(loss=f"{float(l):.3g}")
    rel_l2, max_err = errors(params, k)
    return {
        "params": params,
        "init": init,
        "k": k,
        "history": np.asarray(jnp.stack(history)) if history else np.zeros(0),
        "rel_l2": rel_l2,
        "max_err": max_err,
        "init_rel_l2": errors(init, k)[0],
    }


def summary(out):
    """Prints what was checked and the numbers."""
    print(f"u'' = -({out['k']} pi)^2 sin({out['k']} pi x) on [0, 1], u(0) = u(1) = 0")
    print(f"  relative L2 error against sin({out['k']} pi x): {out['rel_l2']:.2e}")
    print(f"  maximum absolute error:                 {out['max_err']:.2e}")
    print(f"  (untrained network: relative L2 error {out['init_rel_l2']:.2f})")
    return out["rel_l2"] < 0.05


def cli(argv=None, progress=True):
    """Parses the command line (`--steps`, `--seed`, `--k`), trains, prints the summary.

    Returns:
      The dict of `main`, with `ok` added: whether the printed check passed.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=2, help="frequency of sin(k pi x)")
    args = parser.parse_args(argv)
    out = main(steps=args.steps, seed=args.seed, k=args.k, progress=progress)
    out["ok"] = summary(out)
    return out


if __name__ == "__main__":
    raise SystemExit(0 if cli()["ok"] else 1)
