"""Result dtypes as in `jax.numpy`, input dtype by input dtype (x64 on, as in the suite).

JAX computes an int32 array's `sqrt`, `/` or `mean` in float32 even with x64 on (float64 only
for 64-bit integers), and returns integers from `floor`/`ceil`/`round`/`trunc` as they are.
"""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

import functrans as ft
import functrans.numpy as fnp

DTYPES = ["bool", "int8", "uint8", "int16", "int32", "int64", "uint32", "float16", "float32",
          "float64"]  # fmt: skip

FUNCTIONS = {
    "sqrt": lambda np, x: np.sqrt(x),
    "exp": lambda np, x: np.exp(x),
    "sin": lambda np, x: np.sin(x),
    "log1p": lambda np, x: np.log1p(x),
    "tanh": lambda np, x: np.tanh(x),
    "divide": lambda np, x: x / x,
    "divide_int_literal": lambda np, x: x / 2,
    "arctan2": lambda np, x: np.arctan2(x, x),
    "logaddexp": lambda np, x: np.logaddexp(x, x),
    "mean": lambda np, x: np.mean(x),
    "var": lambda np, x: np.var(x, axis=0),
    "std": lambda np, x: np.std(x),
    "norm": lambda np, x: np.linalg.norm(x),
    "floor": lambda np, x: np.floor(x),
    "ceil": lambda np, x: np.ceil(x),
    "trunc": lambda np, x: np.trunc(x),
    "round": lambda np, x: np.round(x),
    "round_1": lambda np, x: np.round(x, 1),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_result_dtype_as_in_jax(name, dtype):
    f = FUNCTIONS[name]
    x = jnp.asarray(onp.array([[1, 2, 3], [0, 1, 1]]), dtype)
    try:
        want = f(jnp, x)
    except Exception:  # noqa: BLE001 - JAX refuses this dtype (round of booleans)
        pytest.skip("JAX refuses it")
    got = f(fnp, x)
    assert (got.dtype, got.weak_type) == (want.dtype, want.weak_type)
    tol = {"float16": 1e-3, "bfloat16": 1e-2}.get(str(want.dtype), 1e-6)
    onp.testing.assert_allclose(onp.float64(got), onp.float64(want), rtol=tol, atol=tol)


def test_int32_data_stays_float32_inside_a_gradient():
    # A float32 model fed int32 pixels: the gradient and the loss stay float32 as in JAX.
    pixels = jnp.arange(6, dtype=jnp.int32).reshape(2, 3)
    w = jnp.ones(3, jnp.float32)
    f = lambda np: lambda w: np.mean(np.tanh(pixels / 255 * w) + np.sqrt(pixels))
    loss, g = ft.value_and_grad(f(fnp))(w)
    assert loss.dtype == g.dtype == jnp.float32
    want_loss, want_g = jax.value_and_grad(f(jnp))(w)
    onp.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    onp.testing.assert_allclose(g, want_g, rtol=1e-6)


def test_rounding_integers_is_the_identity_with_no_derivative_to_take():
    x = jnp.asarray([14, -25], jnp.int32)
    for name in ("floor", "ceil", "trunc", "round"):
        out = getattr(fnp, name)(x)
        assert out.dtype == jnp.int32
        onp.testing.assert_array_equal(out, x)
    with pytest.raises(NotImplementedError, match="decimals < 0"):
        fnp.round(x, -1)


def test_trunc_rounds_toward_zero_with_zero_derivative():
    x = jnp.asarray([-1.5, -0.5, 0.5, 2.7])
    onp.testing.assert_array_equal(fnp.trunc(x), jnp.trunc(x))
    onp.testing.assert_array_equal(ft.grad(lambda x: fnp.sum(fnp.trunc(x) * x))(x), jnp.trunc(x))


# Functions whose positional arguments must mean what they mean in `jax.numpy`: a call
# `fnp.sum(x, 0, jnp.float32)` passes a dtype, not `keepdims`.
SIGNATURES = ["sum", "prod", "mean", "var", "std", "max", "min", "amax", "amin", "all", "any",
              "argmax", "argmin", "cumsum", "cumprod", "ptp", "nansum", "nanmean", "nanmax",
              "median", "quantile", "sort", "argsort", "round", "take", "take_along_axis",
              "diagonal", "trace", "concatenate", "stack", "matmul", "dot", "tensordot",
              "einsum", "transpose", "squeeze", "expand_dims", "swapaxes", "moveaxis", "repeat",
              "searchsorted", "zeros_like", "full_like", "reshape", "clip"]  # fmt: skip


@pytest.mark.parametrize("name", SIGNATURES)
def test_positional_arguments_in_jax_order(name):
    import inspect

    def positional(f):
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return [p.name for p in inspect.signature(f).parameters.values() if p.kind in kinds]

    ours, theirs = positional(getattr(fnp, name)), positional(getattr(jnp, name))
    # The first argument's name differs in places (`a`/`arr`), and `reshape`'s `newshape`
    # (NumPy's name) stands where JAX's `shape` is; both are accepted by keyword.
    rename = {"arr": "a", "array": "a", "ary": "a", "A": "a", "shape": "newshape",
              "a_min": "min", "a_max": "max"}  # fmt: skip
    ours = [rename.get(p, p) if i else "a" for i, p in enumerate(ours)]
    theirs = [rename.get(p, p) if i else "a" for i, p in enumerate(theirs)]
    assert len(ours) <= len(theirs) and ours == theirs[: len(ours)], (ours, theirs)


def test_positional_dtype_and_unsigned_sums_as_in_jax():
    x = jnp.asarray([[1, 2], [3, 4]], jnp.uint8)
    for name in ("sum", "prod"):
        got, want = getattr(fnp, name)(x), getattr(jnp, name)(x)
        assert got.dtype == want.dtype and int(got) == int(want)
        got, want = getattr(fnp, name)(x, 0, jnp.float32), getattr(jnp, name)(x, 0, jnp.float32)
        assert got.dtype == want.dtype == jnp.float32 and got.shape == want.shape == (2,)
    assert fnp.mean(x, 1, jnp.float32).dtype == jnp.float32
    onp.testing.assert_array_equal(fnp.argmax(x, 1, None, True), jnp.argmax(x, 1, None, True))
