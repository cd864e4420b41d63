"""Contractive autoencoder on scikit-learn's 8x8 digits: a Jacobian inside the loss.

A contractive autoencoder (Rifai, Vincent, Muller, Glorot and Bengio, 2011, "Contractive
Auto-Encoders: Explicit Invariance During Feature Extraction") adds to the reconstruction
error the squared Frobenius norm of the encoder's Jacobian,

    loss = mean ||decode(encode(x)) - x||^2 + lam * mean ||d encode(x) / dx||_F^2,

so the code `h = encode(x)` is insensitive to most directions of input space and follows
only the directions in which the data actually vary. Training needs the gradient with
respect to the parameters of a loss that already contains a derivative with respect to the
input: `ft.grad` over `ft.vmap(ft.jacrev(encode))`. functrans expands the Jacobian into a
graph of ordinary primitives and differentiates that graph again; `jax.jit` compiles it.

The encoder is `sigmoid(x W + b)` and the decoder is tied, `sigmoid(h W^T + c)`, as in the
paper. A plain autoencoder (`lam = 0`) is trained from the same start on the same batches;
both are scored on held-out digits for reconstruction error and Jacobian norm.

Run: `python examples/contractive_autoencoder.py --steps 5000`
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
    """The 1,797 digits of `sklearn.datasets.load_digits`, scaled to [0, 1], split at random.

    Returns:
      `(x_train, x_test)`, arrays of shape `(n, 64)`.
    """
    x = load_digits().data.astype(dtype) / 16.0
    perm = np.random.RandomState(seed).permutation(len(x))
    return x[perm[n_test:]], x[perm[:n_test]]


def init_params(key, n_in=64, n_hidden=32, dtype=jnp.float32):
    """Tied-weight autoencoder parameters: `W` (n_in, n_hidden), biases `b` and `c`."""
    scale = float(np.sqrt(6.0 / (n_in + n_hidden)))
    w = jax.random.uniform(key, (n_in, n_hidden), dtype, -scale, scale)
    return {"W": w, "b": jnp.zeros((n_hidden,), dtype), "c": jnp.zeros((n_in,), dtype)}


def encode(params, x):
    """The code `sigmoid(x W + b)` of one input (or a batch, row-wise)."""
    return fnn.sigmoid(x @ params["W"] + params["b"])


def decode(params, h):
    """The tied decoder `sigmoid(h W^T + c)`."""
    return fnn.sigmoid(h @ params["W"].T + params["c"])


def encoder_jacobians(params, x):
    """The Jacobians `d encode(x_i) / d x_i`, one `(hidden, 64)` matrix per row of `x`."""
    return ft.vmap(ft.jacrev(encode, argnums=1), in_axes=(None, 0))(params, x)


def loss(params, x, lam):
    """Reconstruction error plus `lam` times the mean squared Frobenius norm of the Jacobian.

    Args:
      params: the dict of `init_params`.
      x: a batch of inputs, `(n, 64)`.
      lam: weight of the contractive penalty (0 gives a plain autoencoder).

    Returns:
      The scalar loss.
    """
    recon = fnp.mean(fnp.sum((decode(params, encode(params, x)) - x) ** 2, axis=1))
    jac = encoder_jacobians(params, x)
    return recon + lam * fnp.mean(fnp.sum(jac**2, axis=(1, 2)))


@jax.jit
def scores(params, x):
    """Mean reconstruction error and mean Frobenius norm of the Jacobian on `x`."""
    recon = jnp.mean(jnp.sum((decode(params, encode(params, x)) - x) ** 2, axis=1))
    jac = encoder_jacobians(params, x)
    return recon, jnp.mean(jnp.sqrt(jnp.sum(jac**2, axis=(1, 2))))


def main(
    steps: int = 1500,
    seed: int = 0,
    lam: float = 0.1,
    hidden: int = 32,
    batch: int = 64,
    lr: float = 1e-2,
    progress: bool = True,
) -> dict:
    """Trains a contractive and a plain autoencoder from the same start on the same batches.

    Args:
      steps: Adam steps of each model.
      seed: seed of the split, the initial parameters and the batches.
      lam: weight of the contractive penalty.
      hidden: size of the code.
      batch: minibatch size.
      lr: Adam learning rate.
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `x_train`, `x_test`, `init`, and for each model `"cae"` and `"ae"`
      under `params`, `history` (training loss per step), `recon` (held-out reconstruction
      error) and `jac_norm` (held-out mean Frobenius norm of `d encode / dx`);
      `baseline` is the held-out error of always answering the mean training digit.
    """
    x_train, x_test = load_data(seed)
    key_init, key_batch = jax.random.split(jax.random.key(seed))
    init = init_params(key_init, x_train.shape[1], hidden)
    idx = jax.random.randint(key_batch, (steps, batch), 0, x_train.shape[0])
    x_train_j = jnp.asarray(x_train)
    opt = optax.adam(lr)

    @jax.jit
    def step(params, state, rows, lam):
        l, g = ft.value_and_grad(loss)(params, x_train_j[rows], lam)
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state, l

    baseline = np.mean(np.sum((x_test - x_train.mean(axis=0)) ** 2, axis=1))
    out = {"x_train": x_train, "x_test": x_test, "init": init, "baseline": float(baseline)}
    out.update(params={}, history={}, recon={}, jac_norm={})
    for name, weight in (("cae", lam), ("ae", 0.0)):
        params, state, history = init, opt.init(init), []
        for rows in tqdm(idx, desc=name.upper(), disable=not progress):
            params, state, l = step(params, state, rows, weight)
            history.append(l)
        out["params"][name] = params
        out["history"][name] = np.asarray(jnp.stack(history)) if history else np.zeros(0)
        recon, jac_norm = scores(params, jnp.asarray(x_test))
        out["recon"][name], out["jac_norm"][name] = float(recon), float(jac_norm)
    return out


def summary(out):
    """Prints what was checked and the numbers."""
    print(f"held-out digits ({out['x_test'].shape[0]}): reconstruction error, ||dh/dx||_F")
    for name, label in (("cae", "contractive"), ("ae", "plain")):
        print(f"  {label:<12} recon {out['recon'][name]:.3f}   ||J||_F {out['jac_norm'][name]:.3f}")
    print(f"  {'mean digit':<12} recon {out['baseline']:.3f}")
    ratio = out["jac_norm"]["ae"] / out["jac_norm"]["cae"]
    print(f"the contractive code is {ratio:.1f}x less sensitive to its input")
    return ratio > 1.0


def cli(argv=None, progress=True):
    """Parses the command line (`--steps`, `--seed`, `--lam`), trains, prints the summary.

    Returns:
      The dict of `main`, with `ok` added: whether the printed check passed.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lam", type=float, default=0.1, help="contractive penalty weight")
    args = parser.parse_args(argv)
    out = main(steps=args.steps, seed=args.seed, lam=args.lam, progress=progress)
    out["ok"] = summary(out)
    return out


if __name__ == "__main__":
    raise SystemExit(0 if cli()["ok"] else 1)
