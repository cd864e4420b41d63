"""`ft.vmap` against `jax.vmap`: every primitive batched, in_axes/out_axes, compositions.

The primitive cases are taken from `test_primitives.py` (a subset that together binds every
primitive, plus a few local cases for those no `functrans.numpy` function reaches). Each case
runs under several batchings at once, inside one `jax.jit` per side, so that the suite pays
two compilations per case rather than one per operation:

- `axes0`: every argument mapped over axis 0;
- `last`: the first argument mapped over its last axis (`in_axes=-1`), the output batched
  along its last axis (`out_axes=-1`);
- `shared`: all arguments but the first shared by every example (`in_axes=None`);
- `vmap_of_vjp`: per-example VJPs with a batch of cotangents (batches every VJP rule);
- `jvp_of_vmap`: forward mode through the batched function (batch rules differentiated).
"""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_primitives as tp

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close, assert_jax_arrays
from functrans._src.prims import elementwise as ew
from functrans._src.prims import linalg as la
from functrans._src.prims.indexing import _IndexUpdateHelper, getitem

B = 2  # batch size


def _lax(np_):
    return ft.lax if np_ is fnp else jax.lax


# Cases for primitives that no case of `test_primitives.py` binds in its forward pass.
LOCAL = [
    tp.C("cumsum", lambda np_, x: np_.cumsum(x * x, axis=1), tp.normal(3, 4)),
    tp.C("cumsum_flat", lambda np_, x: np_.sin(np_.cumsum(x)), tp.normal(3, 4)),
    tp.C(
        "pad",
        lambda np_, x: _lax(np_).pad(x * x, 0.5, ((1, 0, 1), (0, 2, 0))),
        tp.normal(3, 4),
    ),
    tp.C(
        "floor_ceil_round",
        lambda np_, x: np_.floor(x) * x + np_.ceil(x) * np_.round(x * 3.0),
        tp.normal(3, 4),
    ),
    tp.C(
        "logical",
        lambda np_, x, y: np_.where(
            np_.logical_xor(
                np_.logical_and(x > 0, y > 0), np_.logical_not(np_.logical_or(x > 1, y < -1))
            ),
            x * y,
            x,
        ),
        tp.normal(3, 1),
        tp.normal(4),
    ),
    tp.C("rsqrt", lambda np_, x: _lax(np_).rsqrt(x), tp.positive(3, 4)),
    tp.C(
        "inverse_hyperbolic",
        lambda np_, x: np_.arcsinh(x) + np_.arccosh(x + 2.0) + np_.arctanh(x / 3.0),
        tp.uniform(-0.9, 0.9, 3, 4),
    ),
    tp.C(
        "dot_general_free_batch",
        lambda np_, x, y: _lax(np_).dot_general(x, np_.sin(y), (((2,), (1,)), ((0,), (2,)))),
        tp.normal(2, 3, 4),
        tp.normal(5, 4, 2),
    ),
    tp.C(
        "integer_pow_logistic",
        lambda np_, x: _lax(np_).integer_pow(x, 3) * _lax(np_).logistic(x),
        tp.normal(3, 4),
    ),
]

NAMES = [
    # together these bind every primitive of the registry reachable from `functrans.numpy`
    *["mlp_layer", "op_eq_ne", "concatenate_axis1", "softplus", "std", "solve_spd_vector"],
    *["op_lt_gt", "op_le_ge", "one_hot", "abs", "sign", "expm1", "log1p", "tan", "arcsin"],
    *["arccos", "arctan", "sinh", "cosh", "power", "arctan2", "minimum", "prod", "argmin"],
    *["matmul_broadcast_batch", "at_set", "at_add_repeated", "det", "cholesky"],
    *["op_floordiv", "op_mod", "gelu_exact"],
    # harder layouts of the same primitives
    *["argmax", "sum_axes_keepdims", "einsum_batched", "tensordot_axes_lists", "split_indices"],
    *["index_int_array_2d", "index_int_arrays_pair", "index_none", "at_set_slice"],
    *["at_add_broadcast", "det_batched", "solve_general_matrix", "slogdet_negative_det"],
    *["broadcast_to", "scalar_input"],
]
CASES = [tp.CASES_BY_NAME[n] for n in NAMES] + LOCAL


def _batchings(xs):
    """The in_axes/out_axes of each batching mode that applies to inputs `xs` (per example)."""
    n = len(xs)
    modes = {"axes0": ((0,) * n, 0)}
    if np.ndim(xs[0]) >= 1:
        modes["last"] = ((-1,) + (0,) * (n - 1), -1)
    if n > 1:
        modes["shared"] = ((0,) + (None,) * (n - 1), 0)
    return modes


def _place(x, ax):
    """Batched `x` (batch first) laid out for in_axes entry `ax`."""
    return x[0] if ax is None else jnp.moveaxis(x, 0, ax)


def _every_mode(T, f, xs, ts, cts):
    out = {}
    for name, (in_axes, out_axes) in _batchings([x[0] for x in xs]).items():
        args = [_place(x, ax) for x, ax in zip(xs, in_axes)]
        out[name] = T.vmap(f, in_axes=in_axes, out_axes=out_axes)(*args)
    out["vmap_of_vjp"] = T.vmap(lambda ct, *a: T.vjp(f, *a)[1](ct))(cts, *xs)
    out["jvp_of_vmap"] = T.jvp(T.vmap(f), tuple(xs), tuple(ts))
    return out


def _inputs(case):
    rng = np.random.RandomState(zlib.crc32(case.name.encode()))
    xs = [jnp.asarray(np.stack([make(rng) for _ in range(B)])) for make in case.makers]
    ts = [jnp.asarray(rng.standard_normal(x.shape)) for x in xs]
    out = jax.eval_shape(jax.vmap(case.bind(jnp, jax.nn)), *xs)
    cts = jax.tree_util.tree_map(lambda s: jnp.asarray(rng.standard_normal(s.shape)), out)
    return xs, ts, cts


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_vmap_primitive(case):
    xs, ts, cts = _inputs(case)
    run = lambda T, f: jax.jit(lambda xs, ts, cts: _every_mode(T, f, xs, ts, cts))
    expected = run(jax, case.bind(jnp, jax.nn))(xs, ts, cts)
    actual = run(ft, case.bind(fnp, fnn))(xs, ts, cts)
    assert_close(actual, expected)


@pytest.mark.parametrize(
    "name,fun,ref",
    [
        ("nextafter", lambda x, y: ew.nextafter_p.bind(x, y), jnp.nextafter),
        (
            "triangular_solve",
            lambda a, b: la.triangular_solve(a, b, lower=True),
            lambda a, b: jax.lax.linalg.triangular_solve(a, b, left_side=True, lower=True),
        ),
        (
            "triangular_solve_transposed",
            lambda a, b: la.triangular_solve(a, b, lower=False, transpose_a=True),
            lambda a, b: jax.lax.linalg.triangular_solve(
                a, b, left_side=True, lower=False, transpose_a=True
            ),
        ),
    ],
)
@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None), (1, 2)], ids=str)
def test_vmap_primitive_without_numpy_function(name, fun, ref, in_axes, rng):
    a = 3.0 * np.eye(3) + rng.uniform(0.1, 0.5, (3, 3))
    b = rng.standard_normal((3, 3))
    xs = [np.stack([a, a.T + 0.1]), np.stack([b, 2.0 * b])]
    args = [jnp.asarray(_place(x, ax)) for x, ax in zip(xs, in_axes)]
    assert_close(ft.vmap(fun, in_axes)(*args), jax.vmap(ref, in_axes)(*args))


# ---------------------------------------------------------------------------------------------
# Indexing with batched index arrays, every layout of the advanced axes.

X4 = np.random.RandomState(1).standard_normal((B, 4, 5, 6))
I4 = np.random.RandomState(2).randint(0, 4, (B, 2))
J5 = np.random.RandomState(3).randint(0, 5, (B, 2))

INDICES = {
    "front": lambda i, j: i,
    "middle": lambda i, j: (slice(None), j),
    "pair": lambda i, j: (i, j),
    "separated": lambda i, j: (i, slice(None), 1),
    "int_then_array": lambda i, j: (1, j),
    "separated_arrays": lambda i, j: (j[:1] % 4, slice(1, 3), i),
    "none": lambda i, j: (None, slice(None), j),
    "ellipsis": lambda i, j: (Ellipsis, i[0]),
    "scalar": lambda i, j: i[0],
}


def _index_ops(get, at):
    return {
        "get": lambda x, i, j, idx: get(x, idx(i, j)) ** 2,
        "add": lambda x, i, j, idx: at(x * x)[idx(i, j)].add(get(x, idx(i, j)) * 3.0),
        "set": lambda x, i, j, idx: at(x * x)[idx(i, j)].set(get(x, idx(i, j)) * 3.0),
        "set_scalar": lambda x, i, j, idx: at(x * x)[idx(i, j)].set(2.0),
    }


FT_OPS = _index_ops(getitem, _IndexUpdateHelper)
JAX_OPS = _index_ops(lambda x, idx: x[idx], lambda x: x.at)


INDEX_AXES = [(0, 0, 0), (None, 0, 0), (2, 0, None)]  # x and indices; x alone; x at axis 2


@pytest.mark.parametrize("index", list(INDICES))
def test_vmap_indexing_with_batched_indices(index):
    idx = INDICES[index]
    args = [[jnp.asarray(_place(v, a)) for v, a in zip((X4, I4, J5), ax)] for ax in INDEX_AXES]

    @functools.partial(jax.jit, static_argnums=(0, 1))
    def every_batching(T, name, args):
        ops, np_ = (FT_OPS, fnp) if name == "ft" else (JAX_OPS, jnp)

        def grad_of(op):
            return lambda x, i, j: T.grad(lambda x: np_.sum(np_.sin(ops[op](x, i, j, idx))))(x)

        out = {}
        for ax, xs in zip(INDEX_AXES, args):
            for op, f in ops.items():
                out[f"{ax}-{op}"] = T.vmap(lambda x, i, j, f=f: f(x, i, j, idx), ax)(*xs)
            for op in ("get", "add"):
                out[f"{ax}-grad_{op}"] = T.vmap(grad_of(op), ax)(*xs)
        return out

    assert_close(every_batching(ft, "ft", args), every_batching(jax, "jax", args))


# ---------------------------------------------------------------------------------------------
# in_axes / out_axes as pytrees, negative axes, keyword arguments.


def test_in_axes_pytree_with_none(rng):
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal((5, 4))}
    x = rng.standard_normal((3, 5))

    def f(np_):
        return lambda p, x: np_.tanh(x @ p["w"] + p["b"])

    in_axes = ({"w": None, "b": 0}, 1)
    assert_close(ft.vmap(f(fnp), in_axes)(params, x), jax.vmap(f(jnp), in_axes)(params, x))


def test_out_axes_pytree_and_unbatched_output(rng):
    x = jnp.asarray(rng.standard_normal((3, 4)))

    def f(np_):
        return lambda x: {"a": np_.sin(x), "b": (np_.cos(x), np_.ones(2))}

    out_axes = {"a": 1, "b": (-1, 0)}
    assert_close(ft.vmap(f(fnp), out_axes=out_axes)(x), jax.vmap(f(jnp), out_axes=out_axes)(x))


def test_out_axes_none_for_unbatched_output(rng):
    x = jnp.asarray(rng.standard_normal((3, 4)))
    out = ft.vmap(lambda x: (fnp.sin(x), fnp.ones(2)), out_axes=(0, None))(x)
    assert_close(out, (jnp.sin(x), jnp.ones(2)))


def test_out_axes_none_for_batched_output_raises():
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(fnp.sin, out_axes=None)(jnp.ones((3, 2)))


def test_keyword_arguments_are_mapped(rng):
    x, y = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.standard_normal((3, 4)))
    out = ft.vmap(lambda x, *, y: fnp.dot(x, y))(x, y=y)
    assert_close(out, jnp.sum(x * y, axis=1))


def test_in_axes_list_means_one_entry_per_argument(rng):
    x, y = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.standard_normal(4))
    assert_close(ft.vmap(fnp.dot, [0, None])(x, y), x @ y)


def test_in_axes_not_a_prefix_raises():
    with pytest.raises(ValueError, match="in_axes"):
        ft.vmap(lambda p: p["a"], in_axes=({"b": 0},))({"a": jnp.ones(3)})


def test_all_none_in_axes_raises():
    with pytest.raises(ValueError, match="in_axes"):
        ft.vmap(fnp.sin, in_axes=None)(jnp.ones(3))


def test_escaped_batch_tracer_raises():
    leaked = []
    ft.vmap(lambda x: leaked.append(x) or x)(jnp.ones(3))
    with pytest.raises(RuntimeError, match="vmap"):
        fnp.sin(leaked[0])


# ---------------------------------------------------------------------------------------------
# Compositions: per-example gradients, grad of vmap, vmap of vmap, jvp of vmap, vmap of jvp.


def _mlp_loss(np_, nn_):
    def loss(params, x, y):
        h = nn_.gelu(x @ params["w1"] + params["b1"])
        logits = h @ params["w2"]
        return -np_.sum(nn_.log_softmax(logits) * y)

    return loss


@pytest.fixture
def mlp(rng):
    params = {
        "w1": jnp.asarray(rng.standard_normal((3, 5))),
        "b1": jnp.asarray(rng.standard_normal(5)),
        "w2": jnp.asarray(rng.standard_normal((5, 2))),
    }
    xs = jnp.asarray(rng.standard_normal((4, 3)))
    ys = jax.nn.one_hot(jnp.array([0, 1, 1, 0]), 2)
    return params, xs, ys


def test_per_example_gradients(mlp):
    params, xs, ys = mlp
    per_example = ft.vmap(ft.grad(_mlp_loss(fnp, fnn)), in_axes=(None, 0, 0))(params, xs, ys)
    expected = jax.vmap(jax.grad(_mlp_loss(jnp, jax.nn)), in_axes=(None, 0, 0))(params, xs, ys)
    assert_jax_arrays(per_example)
    assert_close(per_example, expected)


def test_grad_of_vmap(mlp):
    params, xs, ys = mlp

    def batch_loss(T, np_, nn_):
        return lambda p: np_.mean(T.vmap(_mlp_loss(np_, nn_), (None, 0, 0))(p, xs, ys) ** 2)

    @jax.jit
    def actual(p):
        loss = batch_loss(ft, fnp, fnn)
        return ft.grad(loss)(p), ft.hvp(loss, (p,), (p,))

    @jax.jit
    def expected(p):
        loss = batch_loss(jax, jnp, jax.nn)
        return jax.grad(loss)(p), jax.jvp(jax.grad(loss), (p,), (p,))[1]

    assert_close(actual(params), expected(params))


def test_vmap_of_vmap(rng):
    x = jnp.asarray(rng.standard_normal((2, 3, 4)))
    w = jnp.asarray(rng.standard_normal((5, 4)))

    def f(np_):
        return lambda x, w: np_.tanh(np_.outer(x, w)) * np_.sum(x)

    def nested(T, np_):
        return T.vmap(T.vmap(f(np_), in_axes=(1, None)), in_axes=(2, 1), out_axes=1)

    assert_close(nested(ft, fnp)(x, w), nested(jax, jnp)(x, w))


def test_jvp_of_vmap_and_vmap_of_jvp(rng):
    x, t = jnp.asarray(rng.standard_normal((3, 4))), jnp.asarray(rng.standard_normal((3, 4)))

    def f(np_, nn_):
        return lambda x: nn_.softmax(np_.sin(x)) * np_.max(x)

    out = ft.jvp(ft.vmap(f(fnp, fnn)), (x,), (t,))
    assert_close(out, jax.jvp(jax.vmap(f(jnp, jax.nn)), (x,), (t,)))
    out = ft.vmap(lambda x, t: ft.jvp(f(fnp, fnn), (x,), (t,)))(x, t)
    assert_close(out, jax.vmap(lambda x, t: jax.jvp(f(jnp, jax.nn), (x,), (t,)))(x, t))


def test_second_order_through_vmap(rng):
    x = jnp.asarray(rng.standard_normal((3, 2)))

    def f(T, np_):
        return lambda x: np_.sum(T.vmap(lambda r: np_.sin(r[0]) * np_.exp(r[1]) * r @ r)(x))

    actual = jax.jit(ft.hessian(f(ft, fnp)))(x)
    assert_close(actual, jax.jit(jax.hessian(f(jax, jnp)))(x))
