"""An R1-regularised GAN whose equinox models are differentiated by functrans (`ft.from_jax`).

The generator and the discriminator are ordinary `equinox.nn.MLP`s, written with JAX and never
rewritten for functrans. `ft.from_jax` interprets their jaxprs with functrans primitives, so
the discriminator loss can hold the R1 penalty of Mescheder et al. (2018, "Which Training
Methods for GANs do actually Converge?"), a gradient of the discriminator with respect to its
input, and still be differentiated with respect to the discriminator's parameters:

    L_D = E[softplus(D(fake))] + E[softplus(-D(real))] + gamma/2 * E[||grad_x D(real)||^2]
    L_G = E[softplus(-D(G(z)))]

The data is the 2-D mixture of eight Gaussians on a circle. The training step (both
gradients, `optax.adam` updates) is one `jax.jit`-compiled function. Before training, the
script checks the functrans gradient of L_D (a second-order derivative through equinox)
against `jax.grad` of the same loss.

Run: `python examples/r1_equinox.py --steps 2000`
"""

from __future__ import annotations

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp

# --- data and models ---------------------------------------------------------------------


def eight_gaussians(rng, n, radius=2.0, std=0.05):
    """`n` points from eight Gaussians evenly spaced on a circle.

    Args:
      rng: a `numpy.random.Generator`.
      n: number of points.
      radius: radius of the circle of centres.
      std: standard deviation of each Gaussian.

    Returns:
      A float32 array of shape `(n, 2)`.

    Example:
      >>> eight_gaussians(np.random.default_rng(0), 5).shape
      (5, 2)
    """
    angles = rng.integers(0, 8, n) * (2 * np.pi / 8)
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


def make_models(seed=0, width=64):
    """An equinox generator (2-D noise to 2-D points) and discriminator (2-D point to score).

    Args:
      seed: PRNG seed for the initial weights.
      width: hidden width of both MLPs.

    Returns:
      `(params, statics)`: dicts with keys `"G"` and `"D"`: the array leaves of each model
      (what is trained) and the rest (`eqx.partition`).
    """
    kg, kd = jax.random.split(jax.random.PRNGKey(seed))
    gen = eqx.nn.MLP(2, 2, width, 2, activation=jax.nn.silu, key=kg)
    disc = eqx.nn.MLP(2, "scalar", width, 2, activation=jax.nn.silu, key=kd)
    parts = {name: eqx.partition(m, eqx.is_array) for name, m in (("G", gen), ("D", disc))}
    return {k: p for k, (p, _) in parts.items()}, {k: s for k, (_, s) in parts.items()}


# --- losses ------------------------------------------------------------------------------


def losses(statics, gamma):
    """The GAN losses, with the models run by functrans through `ft.from_jax`.

    Args:
      statics: the non-array parts of the models (from `make_models`).
      gamma: R1 penalty weight.

    Returns:
      `(d_loss, g_loss)`: `d_loss(d_params, g_params, real, z) -> (loss, r1)` and
      `g_loss(g_params, d_params, z) -> loss`.
    """

    def gen_jax(g_params, z):
        return jax.vmap(eqx.combine(g_params, statics["G"]))(z)

    def disc_jax(d_params, x):
        return jax.vmap(eqx.combine(d_params, statics["D"]))(x)

    gen, disc = ft.from_jax(gen_jax), ft.from_jax(disc_jax)

    def d_loss(d_params, g_params, real, z):
        fake = ft.stop_gradient(gen(g_params, z))
        # grad_x of the summed scores: each row is that example's input gradient.
        g = ft.grad(lambda x: fnp.sum(disc(d_params, x)))(real)
        r1 = fnp.mean(fnp.sum(g**2, axis=1))
        adv = fnp.mean(fnn.softplus(disc(d_params, fake))) + fnp.mean(
            fnn.softplus(-disc(d_params, real))
        )
        return adv + 0.5 * gamma * r1, r1

    def g_loss(g_params, d_params, z):
        return fnp.mean(fnn.softplus(-disc(d_params, gen(g_params, z))))

    return d_loss, g_loss


def d_loss_jax(statics, gamma):
    """The discriminator loss written with JAX alone: the oracle for the functrans gradient."""

    def disc(d_params, x):
        return jax.vmap(eqx.combine(d_params, statics["D"]))(x)

    def loss(d_params, g_params, real, z):
        fake = jax.lax.stop_gradient(jax.vmap(eqx.combine(g_params, statics["G"]))(z))
        g = jax.grad(lambda x: jnp.sum(disc(d_params, x)))(real)
        r1 = jnp.mean(jnp.sum(g**2, axis=1))
        adv = jnp.mean(jax.nn.softplus(disc(d_params, fake))) + jnp.mean(
            jax.nn.softplus(-disc(d_params, real))
        )
        return adv + 0.5 * gamma * r1

    return loss


def max_abs_difference(a, b):
    """The largest absolute difference between the leaves of two pytrees."""
    diffs = jax.tree_util.tree_map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)
    return max(jax.tree_util.tree_leaves(diffs))


# --- training ----------------------------------------------------------------------------


def main(steps=300, seed=0, batch=256, gamma=1.0, lr=1e-3, progress=True):
    """Train the GAN; return losses, samples and the check of the gradient against JAX.

    Args:
      steps: training steps (one discriminator and one generator update each).
      seed: random seed.
      batch: examples per step.
      gamma: R1 penalty weight.
      lr: Adam learning rate of both players.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with the histories `d_loss`, `g_loss`, `r1`; `real` and `fake` samples
      (arrays of shape `(1000, 2)`); `grad_check` (largest difference between functrans'
      and JAX's gradient of L_D at the first batch); `modes` (how many of the eight
      Gaussians hold at least 2% of the generated points); `seconds_per_step` (after the
      first, compiling, step).
    """
    params, statics = make_models(seed)
    d_loss, g_loss = losses(statics, gamma)
    opt = optax.adam(lr, b1=0.5)
    state = {"params": params, "opt": {k: opt.init(v) for k, v in params.items()}}
    rng = np.random.default_rng(seed)

    def draw():
        return jnp.asarray(eight_gaussians(rng, batch)), jnp.asarray(
            rng.standard_normal((batch, 2)).astype(np.float32)
        )

    real, z = draw()
    ours = jax.jit(ft.grad(d_loss, has_aux=True))(params["D"], params["G"], real, z)[0]
    theirs = jax.jit(jax.grad(d_loss_jax(statics, gamma)))(params["D"], params["G"], real, z)
    grad_check = max_abs_difference(ours, theirs)

    @jax.jit
    def step(state, real, z):
        p, o = state["params"], state["opt"]
        (dl, r1), gd = ft.value_and_grad(d_loss, has_aux=True)(p["D"], p["G"], real, z)
        upd, o_d = opt.update(gd, o["D"], p["D"])
        p_d = optax.apply_updates(p["D"], upd)
        gl, gg = ft.value_and_grad(g_loss)(p["G"], p_d, z)
        upd, o_g = opt.update(gg, o["G"], p["G"])
        p_g = optax.apply_updates(p["G"], upd)
        new = {"params": {"D": p_d, "G": p_g}, "opt": {"D": o_d, "G": o_g}}
        return new, {"d_loss": dl, "g_loss": gl, "r1": r1}

    history = {"d_loss": [], "g_loss": [], "r1": []}
    t0 = None
    for i in tqdm(range(steps), desc="R1 GAN (equinox via ft.from_jax)", disable=not progress):
        if i > 0:
            real, z = draw()
        state, metrics = step(state, real, z)
        for k, v in metrics.items():
            history[k].append(float(v))
        if i == 0:
            t0 = time.perf_counter()
    seconds = (time.perf_counter() - t0) / max(steps - 1, 1) if steps else 0.0

    gen = eqx.combine(state["params"]["G"], statics["G"])
    fake = np.asarray(jax.vmap(gen)(jnp.asarray(rng.standard_normal((1000, 2)), jnp.float32)))
    centres = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)])
    nearest = np.linalg.norm(fake[:, :, None] - centres[None], axis=1)
    close = nearest.min(axis=1) < 0.5
    counts = np.bincount(nearest.argmin(axis=1)[close], minlength=8)
    return {
        **{k: np.asarray(v) for k, v in history.items()},
        "real": eight_gaussians(rng, 1000),
        "fake": fake,
        "grad_check": grad_check,
        "modes": int(np.sum(counts >= 0.02 * len(fake))),
        "seconds_per_step": seconds,
    }


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gamma", type=float, default=1.0, help="R1 penalty weight")
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    out = main(steps=args.steps, seed=args.seed, gamma=args.gamma)
    print(f"grad of L_D (R1 inside), functrans vs jax.grad: max |diff| = {out['grad_check']:.2e}")
    print(
        f"after {args.steps} steps: L_D {out['d_loss'][-1]:.3f}, L_G {out['g_loss'][-1]:.3f}, "
        f"R1 {out['r1'][-1]:.4f}; modes covered {out['modes']}/8; "
        f"{1e3 * out['seconds_per_step']:.1f} ms per step"
    )
