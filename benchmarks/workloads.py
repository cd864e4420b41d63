"""The seven benchmark workloads, each written once against a namespace of array operations.

A `Lib` bundles what a workload needs: the array namespace (`functrans.numpy` or
`jax.numpy`), the activations, and the transformations (`grad`, `vmap`, `jvp`, `jacrev`,
`hessian`). `workloads(lib, size)` returns, for each workload, the function to time and its
arguments; the same code then runs on functrans and on JAX, so the two columns of the table
compute the same thing by construction, and `tests/test_benchmarks.py` checks they agree.

Sizes: `"full"` is the issue's configuration; `"tiny"` keeps every structure (nesting,
`vmap`, Jacobians) at shapes small enough for a smoke test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

ORDER = 8  # W6: the n-th derivative by nested `grad`


@dataclasses.dataclass(frozen=True)
class Lib:
    name: str
    np: Any
    sigmoid: Callable
    relu: Callable
    leaky_relu: Callable
    log_softmax: Callable
    grad: Callable
    vmap: Callable
    jvp: Callable
    jacrev: Callable
    hessian: Callable


def functrans_lib() -> Lib:
    import functrans as ft
    import functrans.nn as fnn
    import functrans.numpy as fnp

    return Lib("functrans", fnp, fnn.sigmoid, fnn.relu, fnn.leaky_relu, fnn.log_softmax,
               ft.grad, ft.vmap, ft.jvp, ft.jacrev, ft.hessian)  # fmt: skip


def jax_lib() -> Lib:
    import jax
    import jax.numpy as jnp

    return Lib("jax", jnp, jax.nn.sigmoid, jax.nn.relu, jax.nn.leaky_relu, jax.nn.log_softmax,
               jax.grad, jax.vmap, jax.jvp, jax.jacrev, jax.hessian)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Data: fixed seeds, float32 unless asked otherwise
# ---------------------------------------------------------------------------------------------


def _mlp_params(rng, sizes, dtype):
    params = []
    for m, n in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(size=(m, n)) / np.sqrt(m)
        params.append((w.astype(dtype), np.zeros(n, dtype)))
    return params


def _mlp(lib, params, x, act):
    for w, b in params[:-1]:
        x = act(x @ w + b)
    w, b = params[-1]
    return x @ w + b


SIZES = {
    "full": dict(gp=(16, 3, 32, 32), mlp=(784, 512, 512, 10), mlp_batch=128, gan=(2, 256, 256, 1),
                 gan_batch=256, maml=(1, 40, 40, 1), tasks=25, shots=10, hess=300,
                 cae=(64, 32), cae_batch=128, order=ORDER),
    "tiny": dict(gp=(2, 3, 4, 4), mlp=(12, 8, 8, 3), mlp_batch=4, gan=(2, 8, 8, 1),
                 gan_batch=6, maml=(1, 5, 5, 1), tasks=3, shots=4, hess=6,
                 cae=(6, 4), cae_batch=5, order=3),
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


def w1_gradient_penalty(lib, s, rng, dtype):
    """NNabla's gradient penalty: the gradient of a penalty on a gradient."""
    np_ = lib.np
    x = rng.normal(size=s["gp"]).astype(dtype)

    def penalty(x):
        g = lib.grad(lambda x: np_.sum(lib.sigmoid(x)))(x)
        norms = np_.sqrt(np_.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))
        return np_.mean((norms - 1.0) ** 2)

    return lib.grad(penalty), (x,)


def w2_mlp(lib, s, rng, dtype):
    """A tanh MLP classifier: softmax cross-entropy, gradient with respect to the parameters."""
    np_ = lib.np
    sizes, batch = s["mlp"], s["mlp_batch"]
    params = _mlp_params(rng, sizes, dtype)
    x = rng.normal(size=(batch, sizes[0])).astype(dtype)
    y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]

    def loss(params, x, y):
        logits = _mlp(lib, params, x, np_.tanh)
        return -np_.mean(np_.sum(y * lib.log_softmax(logits), axis=-1))

    return lib.grad(loss), (params, x, y)


def w3_wgan_gp(lib, s, rng, dtype):
    """A WGAN-GP critic step: one-centred gradient penalty on interpolates, weight 10."""
    np_ = lib.np
    sizes, batch = s["gan"], s["gan_batch"]
    params = _mlp_params(rng, sizes, dtype)
    real = rng.normal(size=(batch, sizes[0])).astype(dtype)
    fake = (rng.normal(size=(batch, sizes[0])) + 2.0).astype(dtype)
    eps = rng.uniform(size=(batch, 1)).astype(dtype)

    def critic(params, x):
        return _mlp(lib, params, x, lambda h: lib.leaky_relu(h, 0.2))

    def loss(params, real, fake, eps):
        inter = eps * real + (1.0 - eps) * fake
        g = lib.grad(lambda x: np_.sum(critic(params, x)))(inter)
        norms = np_.sqrt(np_.sum(g * g, axis=1))
        gp = np_.mean((norms - 1.0) ** 2)
        return np_.mean(critic(params, fake)) - np_.mean(critic(params, real)) + 10.0 * gp

    return lib.grad(loss), (params, real, fake, eps)


def w4_maml(lib, s, rng, dtype):
    """MAML on sinusoids: one inner SGD step per task, meta-gradient through it, vmap'd."""
    np_ = lib.np
    sizes, tasks, shots = s["maml"], s["tasks"], s["shots"]
    params = _mlp_params(rng, sizes, dtype)
    amp = rng.uniform(0.1, 5.0, size=(tasks, 1, 1))
    phase = rng.uniform(0.0, np.pi, size=(tasks, 1, 1))
    xs = rng.uniform(-5.0, 5.0, size=(2, tasks, shots, 1))
    ys = amp * np.sin(xs + phase)
    x_tr, x_te = xs.astype(dtype)
    y_tr, y_te = ys.astype(dtype)

    def mse(params, x, y):
        return np_.mean((_mlp(lib, params, x, lib.relu) - y) ** 2)

    def task_loss(params, x_tr, y_tr, x_te, y_te):
        g = lib.grad(mse)(params, x_tr, y_tr)
        adapted = [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, g)]
        return mse(adapted, x_te, y_te)

    def meta_loss(params, x_tr, y_tr, x_te, y_te):
        losses = lib.vmap(task_loss, in_axes=(None, 0, 0, 0, 0))(params, x_tr, y_tr, x_te, y_te)
        return np_.mean(losses)

    return lib.grad(meta_loss), (params, x_tr, y_tr, x_te, y_te)


def _w5_data(lib, s, rng, dtype):
    n = s["hess"]
    w = (rng.normal(size=(n, n)) / np.sqrt(n)).astype(dtype)
    x = rng.normal(size=n).astype(dtype)
    v = rng.normal(size=n).astype(dtype)

    def f(x, w):
        return lib.np.sum(lib.np.tanh(w @ x))

    return f, w, x, v


def w5_hessian(lib, s, rng, dtype):
    """The full Hessian of `sum(tanh(W x))`."""
    f, w, x, _ = _w5_data(lib, s, rng, dtype)
    return lib.hessian(f), (x, w)


def w5_hvp(lib, s, rng, dtype):
    """A Hessian-vector product of `sum(tanh(W x))`, forward over reverse."""
    f, w, x, v = _w5_data(lib, s, rng, dtype)

    def hvp(x, v, w):
        return lib.jvp(lambda x: lib.grad(f)(x, w), (x,), (v,))[1]

    return hvp, (x, v, w)


def nested_grad(lib, f, n):
    for _ in range(n):
        f = lib.grad(f)
    return f


def w6_tanh(lib, s, rng, dtype, order=None):
    """The n-th derivative of `tanh` by nested `grad`."""
    order = order or s["order"]
    return nested_grad(lib, lib.np.tanh, order), (np.asarray(0.3, dtype),)


def w6_sin_exp(lib, s, rng, dtype, order=None):
    """The n-th derivative of `sin(x) * exp(x)` by nested `grad`."""
    order = order or s["order"]
    f = lambda x: lib.np.sin(x) * lib.np.exp(x)
    return nested_grad(lib, f, order), (np.asarray(0.3, dtype),)


def w7_contractive_ae(lib, s, rng, dtype):
    """A contractive autoencoder: reconstruction + 0.1 ||dh/dx||_F^2 by `jacrev`, per sample."""
    np_ = lib.np
    (d, h), batch = s["cae"], s["cae_batch"]
    params = _mlp_params(rng, (d, h, d), dtype)
    x = rng.uniform(size=(batch, d)).astype(dtype)

    def encode(params, x):
        w, b = params[0]
        return lib.sigmoid(x @ w + b)

    def loss(params, x):
        code = encode(params, x)
        w, b = params[1]
        recon = lib.sigmoid(code @ w + b)
        jac = lib.vmap(lib.jacrev(encode, argnums=1), in_axes=(None, 0))(params, x)
        contractive = np_.mean(np_.sum(jac**2, axis=(1, 2)))
        return np_.mean(np_.sum((recon - x) ** 2, axis=1)) + 0.1 * contractive

    return lib.grad(loss), (params, x)


WORKLOADS = {
    "W1 grad penalty": w1_gradient_penalty,
    "W2 MLP": w2_mlp,
    "W3 WGAN-GP": w3_wgan_gp,
    "W4 MAML": w4_maml,
    "W5 Hessian": w5_hessian,
    "W5 HVP": w5_hvp,
    "W6 tanh^(8)": w6_tanh,
    "W6 (sin*exp)^(8)": w6_sin_exp,
    "W7 contractive AE": w7_contractive_ae,
}


def build(name, lib, size="full", dtype=np.float32, seed=0):
    """`(fun, args)` of workload `name` for `lib`, with data from a fixed seed."""
    rng = np.random.default_rng(seed)
    fun, args = WORKLOADS[name](lib, SIZES[size], rng, dtype)
    return fun, args
