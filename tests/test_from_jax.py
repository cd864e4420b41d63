"""`ft.from_jax`: JAX programs (jax.numpy, jax.nn, jax.lax, equinox, flax) under functrans.

The oracle is JAX itself: the same JAX function, differentiated by `jax.grad` / `jax.jvp` /
`jax.vmap`, in float64.
"""

import os
import pathlib
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close
from functrans._src.from_jax_rules import RULES
from functrans.extend import register_jax_rule

R = np.random.RandomState(0)
X = jnp.asarray(R.uniform(0.2, 0.9, (3, 4)))  # in the domain of every function below
Y = jnp.asarray(R.uniform(0.2, 0.9, (3, 4)))
SQ = R.randn(3, 3) + 3 * np.eye(3)
IDX = np.array([2, 0, 1])

# =============================================================================================
# A sweep over jax.numpy / jax.nn / jax.lax: value and gradient of `sum(f(x, y))`
# =============================================================================================

SWEEP = {
    # elementwise
    "exp": lambda x, y: jnp.exp(x), "log": lambda x, y: jnp.log(x),
    "log2": lambda x, y: jnp.log2(x), "log10": lambda x, y: jnp.log10(x),
    "exp2": lambda x, y: jnp.exp2(x), "expm1_log1p": lambda x, y: jnp.expm1(x) * jnp.log1p(y),
    "trig": lambda x, y: jnp.sin(x) * jnp.cos(y) + jnp.tan(x),
    "inverse_trig": lambda x, y: jnp.arcsin(x) + jnp.arccos(y) + jnp.arctan(x),
    "hyperbolic": lambda x, y: jnp.sinh(x) + jnp.cosh(y) * jnp.tanh(x),
    "inverse_hyperbolic": lambda x, y: jnp.arcsinh(x) + jnp.arccosh(1 + y) + jnp.arctanh(x),
    "sqrt_cbrt": lambda x, y: jnp.sqrt(x) + jnp.cbrt(y) + jax.lax.rsqrt(x),
    "power": lambda x, y: x**y + x**3 + jnp.square(y) + x**-2,
    "divide": lambda x, y: x / y + jnp.reciprocal(x) + 1.0 / x,
    "arctan2": lambda x, y: jnp.arctan2(x, y - 0.5),
    "abs_sign": lambda x, y: jnp.abs(x - 0.5) * jnp.sign(y - 0.5),
    "max_min": lambda x, y: jnp.maximum(x, y) + jnp.minimum(x, 0.5) + jnp.clip(y, 0.3, 0.7),
    "where": lambda x, y: jnp.where(x > y, x * y, x - y),
    "rounding": lambda x, y: jnp.floor(3 * x) * x + jnp.ceil(3 * y) + jnp.round(3 * x) * y,
    "remainder": lambda x, y: jnp.remainder(3 * x, y - 0.5) + jnp.fmod(3 * x - 1, y - 0.5),
    "integer_division": lambda x, y: x * (jax.lax.div(IDX - 1, 2) + jax.lax.rem(IDX - 2, -2))[:, None],
    "erf_erfc": lambda x, y: jax.scipy.special.erf(x) + jax.lax.erfc(y),
    "logaddexp": lambda x, y: jnp.logaddexp(x, y),
    "hypot": lambda x, y: jnp.hypot(x, y),
    "sinc": lambda x, y: jnp.sinc(x),
    "isfinite_nan_to_num": lambda x, y: jnp.where(jnp.isfinite(x / (y - 0.5)), x, 0.0),
    # jax.nn
    "relu_sigmoid": lambda x, y: jax.nn.relu(x - 0.5) + jax.nn.sigmoid(y),
    "gelu_tanh": lambda x, y: jax.nn.gelu(x),
    "gelu_exact": lambda x, y: jax.nn.gelu(x, approximate=False),
    "silu_softplus": lambda x, y: jax.nn.silu(x) + jax.nn.softplus(y),
    "elu_selu_celu": lambda x, y: jax.nn.elu(x - 0.5) + jax.nn.selu(y - 0.5) + jax.nn.celu(x),
    "leaky_relu_relu6": lambda x, y: jax.nn.leaky_relu(x - 0.5) + jax.nn.relu6(6 * y),
    "log_sigmoid_hard_tanh": lambda x, y: jax.nn.log_sigmoid(x) + jax.nn.hard_tanh(y),
    "softmax": lambda x, y: jax.nn.softmax(x) * y,
    "log_softmax": lambda x, y: jax.nn.log_softmax(x, axis=0) * y,
    "logsumexp": lambda x, y: jax.nn.logsumexp(x, axis=1) + jax.scipy.special.logsumexp(y),
    "standardize": lambda x, y: jax.nn.standardize(x, axis=-1),
    "one_hot": lambda x, y: jax.nn.one_hot(IDX, 4) * x,
    # reductions
    "sum_mean": lambda x, y: jnp.sum(x, axis=0) + jnp.mean(y, axis=0, keepdims=True),
    "prod": lambda x, y: jnp.prod(x, axis=1),
    "max_min_reduce": lambda x, y: jnp.max(x, axis=1) + jnp.min(y) + jnp.amax(x),
    "var_std": lambda x, y: jnp.var(x, axis=0) + jnp.std(y),
    "argmax_argmin": lambda x, y: x[jnp.argmax(y, axis=0), jnp.arange(4)] + jnp.argmin(x),
    "cumsum": lambda x, y: jnp.cumsum(x, axis=1) * y,
    "cumsum_reverse": lambda x, y: jax.lax.cumsum(x, axis=0, reverse=True),
    "cumprod_cummax": lambda x, y: jnp.cumprod(x, axis=1) + jax.lax.cummax(y, axis=0, reverse=True),
    "cummin_cumlogsumexp": lambda x, y: jax.lax.cummin(x, 1) + jax.lax.cumlogsumexp(y, 0),
    "norm": lambda x, y: jnp.linalg.norm(x) + jnp.linalg.norm(y, axis=1),
    "all_any": lambda x, y: jnp.where(jnp.all(x > 0.1) & jnp.any(y > 0.8), x, y),
    # shapes
    "reshape_transpose": lambda x, y: x.reshape(2, 6).T @ y.reshape(2, 6),
    "expand_squeeze": lambda x, y: jnp.squeeze(jnp.expand_dims(x, 1), 1) * y,
    "broadcast": lambda x, y: x[:, None, :] * y[None, :, :],
    "concatenate_stack": lambda x, y: jnp.concatenate([x, y], 0) + jnp.stack([x, y]).sum(0)[0],
    "split": lambda x, y: sum(a * b for a, b in zip(jnp.split(x, 2, 1), jnp.split(y, 2, 1))),
    "flip_roll": lambda x, y: jnp.flip(x, 1) * jnp.roll(y, 1, axis=0),
    "tile_repeat": lambda x, y: jnp.tile(x, (1, 2)) + jnp.repeat(y, 2, axis=1),
    "pad": lambda x, y: jnp.pad(x, ((1, 0), (0, 2))) + jnp.pad(y, 1, mode="edge")[:4],
    "tril_triu_diag": lambda x, y: jnp.tril(x @ x.T) + jnp.triu(y @ y.T) + jnp.diag(x @ y.T),
    "lax_pad_negative": lambda x, y: jax.lax.pad(x, 0.5, ((-1, 2, 1), (1, -2, 0))),
    # indexing
    "slicing": lambda x, y: x[1:, ::2] * y[:2, 1::2],
    "int_array_index": lambda x, y: x[IDX] * y[IDX[::-1]] + x[IDX, IDX][:, None],
    "take_along_axis": lambda x, y: jnp.take_along_axis(x, (IDX[:, None] + IDX) % 4, axis=1),
    "take": lambda x, y: jnp.take(x, IDX, axis=1) + jnp.take(y.ravel(), IDX),
    "at_set_add": lambda x, y: x.at[IDX].add(y) + x.at[:, 1].set(y[:, 0]),
    "at_mul": lambda x, y: x.at[0, 1:].multiply(y[0, :3]),
    "dynamic_slice": lambda x, y: jax.lax.dynamic_slice(x, (IDX[0] - 1, 1), (2, 3)),
    "dynamic_update": lambda x, y: jax.lax.dynamic_update_slice(x, y[:2, :2] ** 2, (1, 2)),
    "cho_solve": lambda x, y: jax.scipy.linalg.cho_solve(
        jax.scipy.linalg.cho_factor(x @ x.T + jnp.eye(3)), y
    ),
    "solve_triangular": lambda x, y: jax.scipy.linalg.solve_triangular(
        x[:, :3] + 2 * jnp.eye(3), y, lower=True, trans=1
    ).sum()
    + jax.scipy.linalg.solve_triangular(x[:, :3], y[:, :3].T, lower=False, unit_diagonal=True),
    "triangular_right_side": lambda x, y: jax.lax.linalg.triangular_solve(
        x[:, :3] + 2 * jnp.eye(3), y.T, left_side=False, lower=True
    ),
    # control flow
    "cond": lambda x, y: jax.lax.cond(jnp.sum(x) > 3, jnp.sin, jnp.cos, x * y),
    "switch": lambda x, y: jax.lax.switch(jnp.argmax(y[0]), [jnp.sin, jnp.cos, jnp.tanh], x),
    "scan": lambda x, y: jax.lax.scan(lambda c, r: (c * r + 1, jnp.sin(c)), y[0], x)[1],
    "fori_loop": lambda x, y: jax.lax.fori_loop(0, 3, lambda i, c: jnp.sin(c) * y + i, x),
    # linear algebra
    "matmul_dot": lambda x, y: x @ y.T + jnp.dot(x, y.T) + jnp.outer(x[0], y[0])[:3, :3],
    "einsum": lambda x, y: jnp.einsum("ij,kj->ik", x, y) + jnp.einsum("ij,ij->i", x, y),
    "tensordot": lambda x, y: jnp.tensordot(x, y, axes=([0], [0])),
    "batched_matmul": lambda x, y: jnp.matmul(x.reshape(3, 2, 2), y.reshape(3, 2, 2)),
    "lax_dot_general": lambda x, y: jax.lax.dot_general(x, y, (((1,), (1,)), ((0,), (0,)))),
    "pool": lambda x, y: jax.lax.reduce_window(x, 0.0, jax.lax.add, (2, 2), (1, 2), "VALID"),
    "max_pool": lambda x, y: jax.lax.reduce_window(
        x * y, -jnp.inf, jax.lax.max, (2, 3), (1, 1), ((1, 0), (0, 1))
    ),
    "convert": lambda x, y: x.astype(jnp.float32).astype(jnp.float64) + y.astype(int),
}  # fmt: skip


# JAX has no reverse mode through `while_loop`: these are checked in forward mode.
FORWARD_ONLY = {
    "while_loop": lambda x, y: jax.lax.while_loop(
        lambda c: c[1] < 3, lambda c: (jnp.cos(c[0]) * y, c[1] + 1), (x, 0)
    )[0],
}


def _summed(fn):
    return lambda x, y: jnp.sum(fn(x, y))


@pytest.mark.parametrize("name", sorted(SWEEP))
def test_sweep_value_and_grad(name):
    # Under `jax.jit`: one compilation per side instead of one per eager operation.
    f = _summed(SWEEP[name])
    ours = ft.from_jax(f)
    got = jax.jit(lambda x, y: (ours(x, y), ft.grad(ours, argnums=(0, 1))(x, y)))(X, Y)
    want = jax.jit(lambda x, y: (f(x, y), jax.grad(f, argnums=(0, 1))(x, y)))(X, Y)
    assert_close(got, want)


VMAPPED = ["softmax", "take_along_axis", "pool", "dynamic_slice", "pad", "cond", "scan"]


@pytest.mark.parametrize("name", VMAPPED)
def test_sweep_under_vmap(name):
    # functrans' own batching rules run on the interpreted program (gathers included).
    f = _summed(SWEEP[name])
    xs, ys = jnp.stack([X, 2 * X]), jnp.stack([Y, Y**2])
    got = jax.jit(ft.vmap(ft.grad(ft.from_jax(f))))(xs, ys)
    assert_close(got, jax.vmap(jax.grad(f))(xs, ys))


# =============================================================================================
# Models: equinox and flax
# =============================================================================================


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


class Block(eqx.Module):
    """A pre-norm transformer block: attention + LayerNorm + a GELU MLP."""

    ln1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    ln2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP

    def __init__(self, d, key):
        k1, k2 = jax.random.split(key)
        self.ln1, self.ln2 = eqx.nn.LayerNorm(d), eqx.nn.LayerNorm(d)
        self.attn = eqx.nn.MultiheadAttention(2, d, key=k1)
        self.mlp = eqx.nn.MLP(d, d, 2 * d, 1, activation=jax.nn.gelu, key=k2)

    def __call__(self, x):
        h = jax.vmap(self.ln1)(x)
        x = x + self.attn(h, h, h)
        return x + jax.vmap(self.mlp)(jax.vmap(self.ln2)(x))


class CNN(eqx.Module):
    conv: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(2, 3, 3, padding=1, key=k1)
        self.head = eqx.nn.Linear(3 * 3 * 3, 1, key=k2)

    def __call__(self, x):
        h = jax.nn.relu(self.conv(x))
        h = eqx.nn.MaxPool2d(2, 2)(h)
        return self.head(h.ravel())


def _eqx_case(model, x):
    params, static = eqx.partition(model, eqx.is_array)

    def loss(params, x):
        return jnp.mean(jax.vmap(eqx.combine(params, static))(x) ** 2)

    return loss, _f64(params), x


def _nnx_case(kind):
    from flax import nnx

    rngs = nnx.Rngs(0)
    opts = dict(rngs=rngs, param_dtype=jnp.float64)
    if kind == "mlp":
        model = nnx.Sequential(nnx.Linear(4, 8, **opts), nnx.gelu, nnx.Linear(8, 1, **opts))
        x = jnp.asarray(R.randn(3, 4))
    elif kind == "cnn":
        model = nnx.Sequential(
            nnx.Conv(2, 3, (3, 3), **opts), nnx.relu,
            lambda h: nnx.avg_pool(h, (2, 2), (2, 2)).reshape(h.shape[0], -1),
            nnx.Linear(3 * 2 * 2, 1, **opts),
        )  # fmt: skip
        x = jnp.asarray(R.randn(2, 5, 5, 2))
    else:
        model = nnx.Sequential(
            nnx.LayerNorm(8, **opts),
            nnx.MultiHeadAttention(2, 8, qkv_features=8, decode=False, dtype=jnp.float64, **opts),
        )
        x = jnp.asarray(R.randn(2, 3, 8))
    graphdef, state = nnx.split(model)

    def loss(state, x):
        return jnp.mean(nnx.merge(graphdef, state)(x) ** 2)

    return loss, state, x


def _model_case(name):
    key = jax.random.PRNGKey(1)
    if name == "eqx_mlp":
        mlp = eqx.nn.MLP(4, 2, 8, 2, activation=jax.nn.softplus, key=key)
        return _eqx_case(mlp, jnp.asarray(R.randn(3, 4)))
    if name == "eqx_cnn":
        return _eqx_case(CNN(key), jnp.asarray(R.randn(2, 2, 6, 6)))
    if name == "eqx_transformer":
        return _eqx_case(Block(8, key), jnp.asarray(R.randn(2, 4, 8)))
    return _nnx_case(name.removeprefix("nnx_"))


MODELS = ["eqx_mlp", "eqx_cnn", "eqx_transformer", "nnx_mlp", "nnx_cnn", "nnx_attention"]


@pytest.mark.parametrize("name", MODELS)
def test_model_grad(name):
    loss, params, x = _model_case(name)
    ours = ft.from_jax(loss)
    got = jax.jit(ft.value_and_grad(ours))(params, x)
    want = jax.jit(jax.value_and_grad(loss))(params, x)
    # flax computes attention weights in float32 whatever the parameters' dtype
    tol = dict(rtol=1e-4, atol=1e-7) if name == "nnx_attention" else dict(atol=1e-12)
    assert_close(got, want, **tol)


def test_eqx_model_passed_whole():
    # Non-array leaves (the activation function) are held fixed, as `eqx.filter_jit` does.
    mlp = _f64(eqx.filter(eqx.nn.MLP(3, 1, 4, 1, key=jax.random.PRNGKey(2)), eqx.is_array))
    model = eqx.combine(mlp, eqx.filter(eqx.nn.MLP(3, 1, 4, 1, key=jax.random.PRNGKey(2)),
                                        eqx.is_array, inverse=True))  # fmt: skip
    x = jnp.asarray(R.randn(3))
    assert_close(ft.from_jax(lambda m, x: m(x))(model, x), model(x))
    f = lambda x: model(x)[0]
    assert_close(jax.jit(ft.grad(ft.from_jax(f)))(x), jax.jit(jax.grad(f))(x))


# =============================================================================================
# Second order: an R1 / WGAN-GP style gradient penalty through an equinox discriminator
# =============================================================================================


@pytest.fixture(scope="module")
def critic():
    mlp = eqx.nn.MLP(3, "scalar", 8, 2, activation=jax.nn.softplus, key=jax.random.PRNGKey(3))
    params, static = eqx.partition(mlp, eqx.is_array)

    def score(params, x):  # sum over the batch: its x-gradient holds per-example gradients
        return jnp.sum(jax.vmap(eqx.combine(params, static))(x))

    return score, _f64(params), jnp.asarray(R.randn(4, 3))


def _penalty(np_, grad, score):
    def penalty(params, x):
        g = grad(score, argnums=1)(params, x)
        return np_.mean((np_.sqrt(np_.sum(g**2, axis=1)) - 1) ** 2)

    return penalty


def test_gradient_penalty_second_order(critic):
    score, params, x = critic
    ours = jax.jit(ft.grad(_penalty(fnp, ft.grad, ft.from_jax(score))))(params, x)
    want = jax.jit(jax.grad(_penalty(jnp, jax.grad, score)))(params, x)
    assert_close(ours, want, atol=1e-12)


def test_jvp_and_hessian(critic):
    score, params, x = critic
    t = jax.tree_util.tree_map(jnp.ones_like, params)
    ours = ft.from_jax(score)
    jvp = lambda f: jax.jit(lambda p, x: f(p, x, t, x))
    assert_close(
        jvp(lambda p, x, tp, tx: ft.jvp(ours, (p, x), (tp, tx)))(params, x),
        jvp(lambda p, x, tp, tx: jax.jvp(score, (p, x), (tp, tx)))(params, x),
    )
    f = lambda x: score(params, x)
    assert_close(jax.jit(ft.hessian(ft.from_jax(f)))(x), jax.jit(jax.hessian(f))(x), atol=1e-12)


# =============================================================================================
# The interpreter itself: caching, constants, random bits, graphs, errors, extension
# =============================================================================================


def test_custom_jvp_rules_of_jax_are_kept():
    # `jax.nn.relu`'s rule gives 0 at 0 where the `max` in its body would give 1/2; JAX's
    # rule is interpreted too, so it is differentiated again for the Hessian.
    x = jnp.array([0.0, -1.0, 2.0])
    f = lambda x: jnp.sum(jax.nn.relu(x) * x**2 + jax.nn.softplus(x) ** 2)
    ours = jax.jit(lambda x: (ft.grad(ft.from_jax(f))(x), ft.hessian(ft.from_jax(f))(x)))(x)
    assert_close(ours, jax.jit(lambda x: (jax.grad(f)(x), jax.hessian(f)(x)))(x))


def test_traces_once_per_signature():
    calls = []

    def f(x, scale=2.0):
        calls.append(1)
        return jnp.sum(jnp.sin(x) * scale)

    ours = ft.from_jax(f)
    for _ in range(3):
        ours(X, scale=3.0)
    ft.grad(ours)(X)
    assert len(calls) == 2  # one signature with the keyword, one without
    assert_close(ours(X, scale=3.0), f(X, scale=3.0))


def test_pytrees_constants_and_random_bits():
    w = jnp.asarray(R.randn(4))  # a closed-over constant becomes a jaxpr const

    def f(tree, key):
        noise = jax.random.normal(key, (3, 4), jnp.float64)  # integer work: run by JAX
        return {"out": [jnp.tanh(tree["a"] @ w + noise.sum()), tree["b"] * 2], "none": None}

    tree, key = {"a": X, "b": Y[0]}, jax.random.PRNGKey(0)
    assert_close(ft.from_jax(f)(tree, key), jax.jit(f)(tree, key))
    loss = lambda t, k: jnp.sum(f(t, k)["out"][0] ** 2)
    ours = jax.jit(ft.grad(ft.from_jax(loss)))(tree, key)
    assert_close(ours, jax.jit(jax.grad(loss))(tree, key))


def test_graph_holds_only_functrans_primitives():
    f = lambda x: jnp.sum(jax.nn.softmax(x) * jnp.take(x, IDX, axis=0))
    graph = ft.make_graph(ft.grad(ft.from_jax(f)))(X)
    assert set(graph.primitive_counts()) <= set(ft.extend.all_primitives())
    assert_close(jax.jit(graph.to_jax())(X), jax.grad(f)(X))


def test_unsupported_primitive_error(monkeypatch):
    monkeypatch.delitem(RULES, "sort")  # as if functrans had no rule for it
    f = ft.from_jax(lambda x: jnp.sum(jnp.sort(x, axis=1)[:, 0]))
    with pytest.raises(NotImplementedError, match=r"JAX primitive `sort`.*register_jax_rule"):
        ft.grad(f)(X)
    with pytest.raises(TypeError, match=r"`ft.from_jax` expects a callable"):
        ft.from_jax(3.0)


def test_register_jax_rule(monkeypatch):
    monkeypatch.setitem(RULES, "sort", RULES["sort"])  # the built-in rule comes back after
    del RULES["sort"]
    f = lambda x: jnp.sum(jnp.sort(x, axis=1)[:, 1:] ** 2)
    with pytest.raises(NotImplementedError, match="sort"):
        ft.grad(ft.from_jax(f))(X)

    @register_jax_rule("sort")
    def sort(x, *, dimension, is_stable, num_keys):  # rank by counting: fine for tiny axes
        x = fnp.moveaxis(x, dimension, -1)
        n = x.shape[-1]
        # rank[k] = number of entries below x[k] (ties broken by position)
        below = (x[..., None, :] < x[..., :, None]) | (
            (x[..., None, :] == x[..., :, None]) & (fnp.arange(n) < fnp.arange(n)[:, None])
        )
        rank = fnp.sum(below, axis=-1)
        out = fnp.sum(fnp.where(rank[..., :, None] == fnp.arange(n), x[..., :, None], 0.0), -2)
        return [fnp.moveaxis(out, -1, dimension)]

    assert_close(jax.jit(ft.grad(ft.from_jax(f)))(X), jax.grad(f)(X))


# =============================================================================================
# The notebook (which runs examples/r1_equinox.py)
# =============================================================================================


def test_notebook_runs(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    root = pathlib.Path(__file__).resolve().parent.parent
    monkeypatch.setenv("FUNCTRANS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(root / "notebooks" / "from_jax.ipynb", as_version=4)
    resources = {"metadata": {"path": str(root / "notebooks")}}
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "Traceback" not in text, text[-2000:]
    diffs = re.findall(r"max \|diff\| = ([0-9.e+-]+)", text)
    assert diffs and float(diffs[0]) < 1e-5, text[-2000:]
    assert "JAX primitive `softclip`" in text and "register_jax_rule" in text
