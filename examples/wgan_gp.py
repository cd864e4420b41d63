"""WGAN-GP on a 2-D mixture of eight Gaussians, written with functrans.

The critic of a Wasserstein GAN should be 1-Lipschitz. Gulrajani et al. (2017, "Improved
Training of Wasserstein GANs") enforce this softly with a one-centred gradient penalty on
random interpolates between real and generated points:

    L_critic = E[D(fake)] - E[D(real)] + lam * E[(||grad_x D(x_hat)||_2 - 1)^2].

The penalty contains a gradient, so training the critic differentiates a derivative: the
parameter gradient of `L_critic` goes through `ft.grad(D)` with respect to the input. In
functrans that is just `ft.grad` inside the loss; there is no flag to remember.

Run: `python examples/wgan_gp.py` (1200 steps, a few seconds) or with `--steps 5000`.
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp

RADIUS = 2.0  # the eight centres lie on a circle of this radius
STD = 0.05  # standard deviation of each Gaussian
MODE_DISTANCE = 0.5  # within this distance of a centre (a third of the gap between centres)


# --- data ---------------------------------------------------------------------------------


def mode_centres(modes=8, radius=RADIUS, dtype=jnp.float32):
    """The centres of the mixture: `modes` points evenly spaced on a circle.

    Args:
      modes: number of Gaussians.
      radius: radius of the circle.
      dtype: floating dtype of the result.

    Returns:
      An array of shape `(modes, 2)`.

    Example:
      >>> c = mode_centres(4, radius=1.0)
      >>> c.shape, c[1].round(3).tolist()
      ((4, 2), [0.0, 1.0])
    """
    angles = 2 * math.pi * np.arange(modes) / modes
    return jnp.asarray(radius * np.stack([np.cos(angles), np.sin(angles)], axis=1), dtype)


def sample_mixture(rng, n, modes=8, std=STD, dtype=np.float32):
    """Draw `n` points from the mixture of `modes` Gaussians around `mode_centres`.

    Args:
      rng: a `numpy.random.Generator` (host-side randomness needs no compilation).
      n: number of samples.
      modes: number of Gaussians.
      std: standard deviation of each Gaussian.
      dtype: floating dtype of the result.

    Returns:
      A NumPy array of shape `(n, 2)`.

    Example:
      >>> sample_mixture(np.random.default_rng(0), 5).shape
      (5, 2)
    """
    which = rng.integers(0, modes, n)
    centres = np.asarray(mode_centres(modes), np.float64)
    return (centres[which] + std * rng.standard_normal((n, 2))).astype(dtype)


def mode_coverage(samples, modes=8, distance=MODE_DISTANCE, min_fraction=0.01):
    """How many modes the samples cover, and how many samples are of high quality.

    A mode is covered when at least `min_fraction` of the samples lie within `distance` of
    its centre.

    Args:
      samples: array of shape `(n, 2)`.
      modes: number of Gaussians of the mixture.
      distance: radius around each centre that counts as "on the mode".
      min_fraction: share of all samples a mode needs to count as covered.

    Returns:
      `(covered, quality)`: the number of covered modes and the fraction of samples within
      `distance` of some centre.

    Example:
      >>> mode_coverage(mode_centres(8))
      (8, 1.0)
    """
    samples = np.asarray(samples, np.float64)
    centres = np.asarray(mode_centres(modes), np.float64)
    dist = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
    near = dist.min(axis=1) < distance
    nearest = dist.argmin(axis=1)
    counts = np.bincount(nearest[near], minlength=modes)
    covered = int(np.sum(counts >= min_fraction * len(samples)))
    return covered, float(near.mean())


# --- models -------------------------------------------------------------------------------


def init_mlp(rng, sizes, dtype=jnp.float32):
    """Parameters of a multilayer perceptron: a list of `{"w", "b"}` dicts.

    Args:
      rng: a `numpy.random.Generator`.
      sizes: layer widths, input first, e.g. `(2, 64, 64, 1)`.
      dtype: floating dtype of the parameters.

    Returns:
      A list with one dict per layer (LeCun scaling of the weights, zero biases).

    Example:
      >>> [p["w"].shape for p in init_mlp(np.random.default_rng(0), (2, 8, 1))]
      [(2, 8), (8, 1)]
    """
    return [
        {
            "w": jnp.asarray(rng.standard_normal((m, n)) / math.sqrt(m), dtype),
            "b": jnp.zeros((n,), dtype),
        }
        for m, n in zip(sizes[:-1], sizes[1:])
    ]


def mlp(params, x):
    """Apply `init_mlp`'s network with leaky-ReLU hidden layers and a linear output.

    Args:
      params: the list of layer dicts.
      x: inputs of shape `(batch, sizes[0])`.

    Returns:
      Outputs of shape `(batch, sizes[-1])`.

    Example:
      >>> mlp(init_mlp(np.random.default_rng(0), (2, 8, 3)), jnp.ones((4, 2))).shape
      (4, 3)
    """
    for layer in params[:-1]:
        x = fnn.leaky_relu(x @ layer["w"] + layer["b"], 0.2)
    return x @ params[-1]["w"] + params[-1]["b"]


def critic(params, x):
    """The critic's score of each point, shape `(batch,)`."""
    return mlp(params, x)[:, 0]


# --- losses -------------------------------------------------------------------------------


def input_gradient_norms(critic_params, x):
    """`||grad_x D(x_i)||_2` for every row `x_i` of `x`.

    The critic scores each row independently, so the gradient of the summed scores with
    respect to `x` holds every per-sample input gradient at once.
    """
    g = ft.grad(lambda x: fnp.sum(critic(critic_params, x)))(x)
    return fnp.sqrt(fnp.sum(g * g, axis=1) + 1e-12)  # the epsilon keeps sqrt' finite at 0


def critic_loss(critic_params, gen_params, real, z, eps, lam=10.0):
    """The WGAN-GP critic loss with the one-centred penalty on interpolates.

    Args:
      critic_params: the critic's parameters.
      gen_params: the generator's parameters (held fixed).
      real: data points, shape `(batch, 2)`.
      z: latent codes, shape `(batch, latent)`.
      eps: interpolation weights, shape `(batch, 1)`, uniform in [0, 1].
      lam: weight of the gradient penalty.

    Returns:
      `(loss, penalty)`, both scalars.
    """
    fake = mlp(gen_params, z)
    x_hat = eps * real + (1.0 - eps) * fake
    penalty = fnp.mean((input_gradient_norms(critic_params, x_hat) - 1.0) ** 2)
    wasserstein = fnp.mean(critic(critic_params, fake)) - fnp.mean(critic(critic_params, real))
    return wasserstein + lam * penalty, penalty


def generator_loss(gen_params, critic_params, z):
    """The generator maximises the critic's score of its samples."""
    return -fnp.mean(critic(critic_params, mlp(gen_params, z)))


# --- training -----------------------------------------------------------------------------


def init_state(seed=0, hidden=64, latent=2, dtype=jnp.float32, lr=2e-3):
    """Parameters and Adam states of the generator and the critic.

    Args:
      seed: random seed.
      hidden: width of the two hidden layers of both networks.
      latent: dimension of the generator's input noise.
      dtype: floating dtype of the parameters.
      lr: Adam learning rate (betas 0.5, 0.9, as in the WGAN-GP paper).

    Returns:
      `(state, optimiser)` where `state` is a dict with `gen`, `critic`, `gen_opt`,
      `critic_opt` and `optimiser` is the `optax` transformation used for both.
    """
    rng = np.random.default_rng(seed)
    gen = init_mlp(rng, (latent, hidden, hidden, 2), dtype)
    crit = init_mlp(rng, (2, hidden, hidden, 1), dtype)
    opt = optax.adam(lr, b1=0.5, b2=0.9)
    state = {"gen": gen, "critic": crit, "gen_opt": opt.init(gen), "critic_opt": opt.init(crit)}
    return state, opt


def critic_update(opt, state, real, z, eps, lam=10.0):
    """One Adam step on the critic; returns the new state and `(loss, penalty)`."""
    (loss, penalty), g = ft.value_and_grad(critic_loss, has_aux=True)(
        state["critic"], state["gen"], real, z, eps, lam
    )
    updates, critic_opt = opt.update(g, state["critic_opt"], state["critic"])
    state = dict(state, critic=optax.apply_updates(state["critic"], updates))
    return dict(state, critic_opt=critic_opt), (loss, penalty)


def generator_update(opt, state, z):
    """One Adam step on the generator; returns the new state and its loss."""
    loss, g = ft.value_and_grad(generator_loss)(state["gen"], state["critic"], z)
    updates, gen_opt = opt.update(g, state["gen_opt"], state["gen"])
    state = dict(state, gen=optax.apply_updates(state["gen"], updates))
    return dict(state, gen_opt=gen_opt), loss


def draw_batch(rng, batch, latent, dtype=np.float32):
    """Real points, latent codes and interpolation weights for one critic step (NumPy)."""
    real = sample_mixture(rng, batch, dtype=dtype)
    z = rng.standard_normal((batch, latent)).astype(dtype)
    eps = rng.uniform(size=(batch, 1)).astype(dtype)
    return real, z, eps


def draw_iteration(rng, batch=256, n_critic=5, latent=2, dtype=np.float32):
    """The random inputs of one training iteration: `n_critic` critic batches, one for G.

    Returns:
      A dict: `real`, `z`, `eps` stacked over the critic steps (leading axis `n_critic`,
      batch axis 1) and `gen_z` of shape `(batch, latent)`.
    """
    real, z, eps = zip(*(draw_batch(rng, batch, latent, dtype) for _ in range(n_critic)))
    gen_z = rng.standard_normal((batch, latent)).astype(dtype)
    return {"real": np.stack(real), "z": np.stack(z), "eps": np.stack(eps), "gen_z": gen_z}


def train_step(opt, state, data, lam=10.0):
    """One iteration: `n_critic` critic steps (a `jax.lax.scan`), then one generator step.

    Args:
      opt: the `optax` transformation of `init_state`.
      state: parameters and optimiser states.
      data: a dict from `draw_iteration`.
      lam: weight of the gradient penalty.

    Returns:
      `(state, metrics)` with the last critic loss, penalty and the generator loss.
    """

    def one_critic_step(state, xs):
        state, (loss, penalty) = critic_update(opt, state, *xs, lam=lam)
        return state, (loss, penalty)

    state, (c_loss, penalty) = jax.lax.scan(
        one_critic_step, state, (data["real"], data["z"], data["eps"])
    )
    state, g_loss = generator_update(opt, state, data["gen_z"])
    return state, {"critic_loss": c_loss[-1], "penalty": penalty[-1], "gen_loss": g_loss}


def main(
    steps=1200,
    seed=0,
    batch=256,
    n_critic=5,
    lam=10.0,
    hidden=64,
    latent=2,
    lr=2e-3,
    dtype=jnp.float32,
    n_samples=2000,
    progress=True,
):
    """Train WGAN-GP on the eight-Gaussian mixture.

    Args:
      steps: generator steps; each follows `n_critic` critic steps.
      seed: random seed (parameters and data).
      batch: points per step.
      n_critic: critic steps per generator step.
      lam: weight of the gradient penalty.
      hidden, latent, lr, dtype: model size, noise dimension, learning rate, dtype.
      n_samples: generated points used for the final evaluation.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `state` (final parameters), `real` and `samples` (points for plots),
      `grad_norm_start`/`grad_norm_end` (mean critic input-gradient norm at interpolates),
      `modes_covered`, `quality` (fraction of samples near a centre) and `history` (per
      step: critic loss, penalty, generator loss).
    """
    state, opt = init_state(seed, hidden, latent, dtype, lr)
    step = jax.jit(partial(train_step, opt, lam=lam))
    grad_norm = jax.jit(lambda p, x: jnp.mean(input_gradient_norms(p, x)))

    rng = np.random.default_rng(seed + 1)
    eval_real, eval_z, eval_eps = draw_batch(rng, n_samples, latent, dtype)

    def interpolates(state):
        fake = mlp(state["gen"], eval_z)
        return eval_eps * eval_real + (1 - eval_eps) * fake

    norm_start = float(grad_norm(state["critic"], interpolates(state)))
    history = {"critic_loss": [], "penalty": [], "gen_loss": []}
    for _ in tqdm(range(steps), desc="WGAN-GP", disable=not progress):
        state, metrics = step(state, draw_iteration(rng, batch, n_critic, latent, dtype))
        for name, value in metrics.items():
            history[name].append(value)
    samples = np.asarray(mlp(state["gen"], eval_z))
    norm_end = float(grad_norm(state["critic"], interpolates(state)))
    covered, quality = mode_coverage(samples)
    return {
        "state": state,
        "real": np.asarray(eval_real),
        "samples": samples,
        "grad_norm_start": norm_start,
        "grad_norm_end": norm_end,
        "modes_covered": covered,
        "quality": quality,
        "history": {k: np.asarray(jnp.stack(v)) for k, v in history.items()},
    }


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200, help="generator steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lam", type=float, default=10.0, help="gradient-penalty weight")
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    out = main(steps=args.steps, seed=args.seed, lam=args.lam)
    print(
        f"critic input-gradient norm at interpolates: {out['grad_norm_start']:.3f} at start, "
        f"{out['grad_norm_end']:.3f} after {args.steps} steps (the penalty pulls it to 1)"
    )
    print(
        f"modes covered: {out['modes_covered']} of 8; "
        f"{100 * out['quality']:.1f}% of samples within {MODE_DISTANCE} of a centre"
    )
