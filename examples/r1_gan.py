"""A GAN with the R1 zero-centred gradient penalty, written with functrans.

Mescheder et al. (2018, "Which Training Methods for GANs do actually Converge?") regularise
the discriminator of a non-saturating GAN by penalising its input gradient on real data,
towards zero:

    L_D = E[softplus(D(fake))] + E[softplus(-D(real))] + gamma/2 * E[||grad_x D(real)||^2]
    L_G = E[softplus(-D(G(z)))]

The penalty is a gradient, and the discriminator is trained on the gradient of a loss that
contains it: a derivative of a derivative, which functrans gives by nesting `ft.grad`.

Two variants: MLPs on the 2-D mixture of eight Gaussians of `wgan_gp.py` (`--model mlp`),
and a small convolutional discriminator (`ft.lax.conv_general_dilated`) with an MLP
generator on the 8x8 digit images that scikit-learn ships (`--model conv`).

Run: `python examples/r1_gan.py --steps 2000 --gamma 0.1` or `python examples/r1_gan.py
--model conv`.
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import wgan_gp  # examples/ is on sys.path: scripts, tests and notebooks
from tqdm import tqdm

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp

# --- data ---------------------------------------------------------------------------------


def load_digit_images(dtype=np.float32):
    """scikit-learn's bundled 8x8 digits, scaled to [-1, 1], shape `(1797, 8, 8, 1)` (NHWC).

    Example:
      >>> load_digit_images().shape
      (1797, 8, 8, 1)
    """
    from sklearn.datasets import load_digits

    images = load_digits().images / 16.0 * 2.0 - 1.0
    return images[..., None].astype(dtype)


# --- the convolutional discriminator -------------------------------------------------------


def init_conv_discriminator(rng, channels=(8, 16), dtype=jnp.float32):
    """Parameters of `conv_discriminator`: two 3x3 convolutions and a linear read-out.

    Args:
      rng: a `numpy.random.Generator`.
      channels: output channels of the two convolutions.
      dtype: floating dtype.

    Returns:
      A dict with `conv` (a list of `{"w": HWIO kernel, "b"}`) and `out` (`{"w", "b"}`).

    Example:
      >>> p = init_conv_discriminator(np.random.default_rng(0))
      >>> [c["w"].shape for c in p["conv"]], p["out"]["w"].shape
      ([(3, 3, 1, 8), (3, 3, 8, 16)], (256, 1))
    """
    c1, c2 = channels

    def normal(shape, fan_in):
        return jnp.asarray(rng.standard_normal(shape) / math.sqrt(fan_in), dtype)

    return {
        "conv": [
            {"w": normal((3, 3, 1, c1), 9), "b": jnp.zeros((c1,), dtype)},
            {"w": normal((3, 3, c1, c2), 9 * c1), "b": jnp.zeros((c2,), dtype)},
        ],
        "out": {"w": normal((4 * 4 * c2, 1), 16 * c2), "b": jnp.zeros((1,), dtype)},
    }


def conv_discriminator(params, x):
    """Score 8x8 images `x` of shape `(batch, 8, 8, 1)`; returns shape `(batch,)`.

    A 3x3 convolution (stride 1) and a 3x3 convolution (stride 2, to 4x4), each followed by
    a leaky ReLU, then a linear layer.
    """
    dims = ("NHWC", "HWIO", "NHWC")
    for layer, stride in zip(params["conv"], (1, 2)):
        x = ft.lax.conv_general_dilated(
            x, layer["w"], (stride, stride), "SAME", dimension_numbers=dims
        )
        x = fnn.leaky_relu(x + layer["b"], 0.2)
    x = x.reshape(x.shape[0], -1)
    return (x @ params["out"]["w"] + params["out"]["b"])[:, 0]


def mlp_discriminator(params, x):
    """The MLP discriminator's score of each point, shape `(batch,)`."""
    return wgan_gp.mlp(params, x)[:, 0]


def digit_generator(params, z):
    """An MLP from noise to 8x8 images in [-1, 1], shape `(batch, 8, 8, 1)`."""
    return fnp.tanh(wgan_gp.mlp(params, z)).reshape(z.shape[0], 8, 8, 1)


def point_generator(params, z):
    """An MLP from noise to points of the plane, shape `(batch, 2)`."""
    return wgan_gp.mlp(params, z)


# --- losses -------------------------------------------------------------------------------


def r1_penalty(disc, disc_params, real):
    """`E[||grad_x D(x)||^2]` over the real batch (per-sample input gradients).

    Args:
      disc: the discriminator, `disc(params, x) -> scores of shape (batch,)`.
      disc_params: its parameters.
      real: a batch of data.

    Returns:
      A scalar.
    """
    g = ft.grad(lambda x: fnp.sum(disc(disc_params, x)))(real)
    return fnp.mean(fnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))


def discriminator_loss(disc_params, gen_params, real, z, disc, gen, gamma):
    """Non-saturating discriminator loss plus `gamma/2` times the R1 penalty.

    Returns:
      `(loss, penalty)`.
    """
    fake = gen(gen_params, z)
    penalty = r1_penalty(disc, disc_params, real)
    gan = fnp.mean(fnn.softplus(disc(disc_params, fake))) + fnp.mean(
        fnn.softplus(-disc(disc_params, real))
    )
    return gan + 0.5 * gamma * penalty, penalty


def generator_loss(gen_params, disc_params, z, disc, gen):
    """Non-saturating generator loss `E[softplus(-D(G(z)))]`."""
    return fnp.mean(fnn.softplus(-disc(disc_params, gen(gen_params, z))))


# --- training -----------------------------------------------------------------------------

MODELS = ("mlp", "conv")


def setup(model="mlp", seed=0, hidden=64, latent=2, lr=1e-3, dtype=jnp.float32):
    """Networks, parameters, optimiser and a data sampler for one of `MODELS`.

    Args:
      model: `"mlp"` (eight Gaussians) or `"conv"` (digits, convolutional discriminator).
      seed: random seed.
      hidden: width of the MLPs' hidden layers.
      latent: noise dimension of the generator.
      lr: Adam learning rate (betas 0.5, 0.99).
      dtype: floating dtype.

    Returns:
      A dict with `disc`, `gen` (functions), `state` (parameters and optimiser states),
      `opt` and `sample_real(rng, n)` (NumPy data from a `numpy.random.Generator`).
    """
    if model not in MODELS:
        raise ValueError(
            f"`r1_gan.setup` expected `model` to be one of {MODELS}, got {model!r} instead."
        )
    rng = np.random.default_rng(seed)
    if model == "mlp":
        disc, gen = mlp_discriminator, point_generator
        disc_params = wgan_gp.init_mlp(rng, (2, hidden, hidden, 1), dtype)
        gen_params = wgan_gp.init_mlp(rng, (latent, hidden, hidden, 2), dtype)

        def sample_real(rng, n):
            return wgan_gp.sample_mixture(rng, n, dtype=dtype)

    else:
        disc, gen = conv_discriminator, digit_generator
        disc_params = init_conv_discriminator(rng, dtype=dtype)
        gen_params = wgan_gp.init_mlp(rng, (latent, hidden, hidden, 64), dtype)
        images = load_digit_images(dtype)

        def sample_real(rng, n):
            return images[rng.integers(0, len(images), n)]

    opt = optax.adam(lr, b1=0.5, b2=0.99)
    state = {
        "gen": gen_params,
        "disc": disc_params,
        "gen_opt": opt.init(gen_params),
        "disc_opt": opt.init(disc_params),
    }
    return {"disc": disc, "gen": gen, "state": state, "opt": opt, "sample_real": sample_real}


def train_step(setup_, state, real, z, gz, gamma=1.0):
    """One discriminator step on `(real, z)`, then one generator step on `gz`."""
    disc, gen, opt = setup_["disc"], setup_["gen"], setup_["opt"]
    d_loss_fn = lambda d, g, real, z: discriminator_loss(d, g, real, z, disc, gen, gamma)
    (d_loss, penalty), g = ft.value_and_grad(d_loss_fn, has_aux=True)(
        state["disc"], state["gen"], real, z
    )
    updates, disc_opt = opt.update(g, state["disc_opt"], state["disc"])
    state = dict(state, disc=optax.apply_updates(state["disc"], updates), disc_opt=disc_opt)

    g_loss_fn = lambda g, d, z: generator_loss(g, d, z, disc, gen)
    g_loss, g = ft.value_and_grad(g_loss_fn)(state["gen"], state["disc"], gz)
    updates, gen_opt = opt.update(g, state["gen_opt"], state["gen"])
    state = dict(state, gen=optax.apply_updates(state["gen"], updates), gen_opt=gen_opt)
    return state, {"disc_loss": d_loss, "penalty": penalty, "gen_loss": g_loss}


def main(
    steps=800,
    seed=0,
    gamma=1.0,
    model="mlp",
    batch=128,
    hidden=64,
    latent=None,
    lr=1e-3,
    dtype=jnp.float32,
    n_samples=2000,
    progress=True,
):
    """Train the R1-regularised GAN.

    Args:
      steps: iterations (one discriminator and one generator step each).
      seed: random seed.
      gamma: weight of the R1 penalty (`gamma / 2` multiplies it).
      model: `"mlp"` (eight Gaussians) or `"conv"` (digits).
      batch, hidden, lr, dtype: batch size, MLP width, Adam learning rate, dtype.
      latent: noise dimension (default 2 for `"mlp"`, 16 for `"conv"`).
      n_samples: generated samples kept for evaluation and plots.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `state`, `real` and `samples` (for plots), `history` (per step: the
      discriminator loss, the R1 penalty, the generator loss), `penalty_start` and
      `penalty_end` (R1 penalty on a fixed real batch) and, for `"mlp"`, `modes_covered`
      and `quality` (see `wgan_gp.mode_coverage`).
    """
    latent = latent or (2 if model == "mlp" else 16)
    s = setup(model, seed, hidden, latent, lr, dtype)
    state = s["state"]
    step = jax.jit(partial(train_step, s, gamma=gamma))
    penalty = jax.jit(partial(r1_penalty, s["disc"]))

    rng = np.random.default_rng(seed + 1)
    eval_real = s["sample_real"](rng, n_samples)
    eval_z = rng.standard_normal((n_samples, latent)).astype(dtype)

    penalty_start = float(penalty(state["disc"], eval_real))
    history = {"disc_loss": [], "penalty": [], "gen_loss": []}
    for _ in tqdm(range(steps), desc=f"R1 GAN ({model})", disable=not progress):
        real = s["sample_real"](rng, batch)
        z, gz = rng.standard_normal((2, batch, latent)).astype(dtype)
        state, metrics = step(state, real, z, gz)
        for name, value in metrics.items():
            history[name].append(value)
    out = {
        "state": state,
        "real": np.asarray(eval_real),
        "samples": np.asarray(s["gen"](state["gen"], eval_z)),
        "penalty_start": penalty_start,
        "penalty_end": float(penalty(state["disc"], eval_real)),
        "history": {k: np.asarray(jnp.stack(v)) for k, v in history.items()},
    }
    if model == "mlp":
        out["modes_covered"], out["quality"] = wgan_gp.mode_coverage(out["samples"])
    return out


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gamma", type=float, default=1.0, help="R1 penalty weight")
    parser.add_argument("--model", choices=MODELS, default="mlp")
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    out = main(steps=args.steps, seed=args.seed, gamma=args.gamma, model=args.model)
    print(
        f"R1 penalty E||grad_x D(real)||^2: {out['penalty_start']:.4f} at start, "
        f"{out['penalty_end']:.4f} after {args.steps} steps (gamma={args.gamma})"
    )
    if args.model == "mlp":
        print(
            f"modes covered: {out['modes_covered']} of 8; {100 * out['quality']:.1f}% of "
            f"samples within {wgan_gp.MODE_DISTANCE} of a centre"
        )
    else:
        real, fake = out["real"], out["samples"]
        print(
            f"pixel mean/std: data {real.mean():.3f}/{real.std():.3f}, "
            f"generated {fake.mean():.3f}/{fake.std():.3f}"
        )
