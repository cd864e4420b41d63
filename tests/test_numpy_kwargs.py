"""The keywords JAX users pass to reductions, `softmax`, `logsumexp`, `diagonal`, ... .

Each case is written once as a function of an array namespace `np_` and an `nn` namespace
`nn_`, and runs with (`functrans.numpy`, `functrans.nn`) and with (`jax.numpy`, `jax.nn`).
The values, the Jacobians in both modes (`jacrev`, `jacfwd`), Hessians of a few scalar
losses and `vmap` with batched masks are compared in float64 (`conftest.py` enables x64).
The masks leave out entries whose values change the result, so a keyword that were ignored
would fail. Then: values and dtypes for integer and boolean inputs, masked-out entries that
hold NaN or inf, graphs of calls without the new keywords, and the errors.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close

NAMESPACES = {"ft": (fnp, fnn), "jax": (jnp, jax.nn)}

# A (3, 4) mask with kept and dropped entries in every row and column, a (4,) mask that
# broadcasts against it, and one whose last row keeps nothing.
MASK = np.array([[1, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 0]], dtype=bool)
ROW = np.array([True, False, True, True])
EMPTY_ROW = np.array([[1, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], dtype=bool)
B = np.array([1.0, 2.0, 0.0, 0.5])  # logsumexp scale factors, one of them zero
B_SIGNED = np.array([1.0, -2.0, 0.0, 0.5])


def _x(*shape, seed=0):
    return jnp.asarray(np.random.RandomState(seed).standard_normal(shape))


X = _x(3, 4)
X3 = _x(2, 3, 4, seed=1)
X_MAX = float(np.max(X))  # an `initial` that ties with the maximum

# name -> (fun(np_, nn_, x), input). Every case is differentiable in x; a case that returns a
# tuple checks several related calls against one compiled JAX reference.
CASES = {
    # reductions: where=, initial=
    "sum_where": (
        lambda np_, nn_, x: (
            np_.sum(x * x, where=MASK),
            np_.sum(x, axis=1, keepdims=True, where=MASK),
            np_.sum(np_.sin(x), axis=0, where=ROW),  # a mask that broadcasts
            np_.mean(x**2, axis=1, where=x > 0.2),  # a mask computed from x
        ),
        X,
    ),
    "sum_initial": (
        lambda np_, nn_, x: (
            np_.sum(x**2, axis=1, initial=1.5),
            np_.sum(x, axis=0, where=MASK, initial=-2.0),
        ),
        X,
    ),
    "prod_where": (
        lambda np_, nn_, x: (np_.prod(x, axis=1, where=MASK), np_.prod(x, where=ROW, initial=3.0)),
        X,
    ),
    "max_where_initial": (
        lambda np_, nn_, x: (
            np_.max(x, axis=1, where=MASK, initial=-0.5),
            np_.max(x, axis=0, initial=0.8),  # the initial value wins in some columns
            np_.amax(x, axis=0, where=MASK, initial=-10.0),
        ),
        X,
    ),
    "max_initial_traced": (lambda np_, nn_, x: np_.max(x[:2], axis=1, initial=x[2, 0]), X),
    "max_initial_tie": (lambda np_, nn_, x: np_.max(x, initial=X_MAX), X),
    "min_where_initial": (
        lambda np_, nn_, x: (
            np_.min(x, axis=1, where=MASK, initial=0.3),
            np_.amin(x, axis=1, where=EMPTY_ROW, initial=5.0),
        ),
        X,
    ),
    "mean_where": (
        lambda np_, nn_, x: (
            np_.mean(np_.exp(x), axis=1, where=MASK),
            np_.mean(x, where=ROW, keepdims=True),
        ),
        X,
    ),
    # var / std: where=, correction=
    "var_where": (lambda np_, nn_, x: np_.var(x, axis=1, where=MASK), X),
    "var_ddof_correction": (
        lambda np_, nn_, x: (
            np_.var(x, axis=1, where=ROW, ddof=1),
            np_.var(x, axis=1, correction=1),
            np_.var(x, where=MASK, correction=2, keepdims=True),
        ),
        X,
    ),
    "std_where": (
        lambda np_, nn_, x: (
            np_.std(x, axis=1, where=MASK),
            np_.std(x, axis=1, where=ROW, correction=1),
        ),
        X,
    ),
    # nn: where=, b=, return_sign=, axis=
    "softmax_where": (lambda np_, nn_, x: nn_.softmax(x, where=MASK), X),
    "softmax_where_more": (
        lambda np_, nn_, x: (
            nn_.softmax(x, axis=0, where=MASK),
            nn_.softmax(x, where=ROW),
            nn_.softmax(x, where=EMPTY_ROW),
            nn_.log_softmax(x, axis=0, where=MASK),
        ),
        X,
    ),
    "log_softmax_where": (lambda np_, nn_, x: nn_.log_softmax(x, where=MASK), X),
    "logsumexp_b": (
        lambda np_, nn_, x: (
            nn_.logsumexp(x, axis=1, b=B),
            nn_.logsumexp(x, axis=1, b=B_SIGNED),  # NaN where the scaled sum is negative
            nn_.logsumexp(x[0], axis=0, b=np.stack([B, 2 * B])),  # b broadcasts a
        ),
        X,
    ),
    "logsumexp_b_traced": (lambda np_, nn_, x: nn_.logsumexp(x[:2], axis=0, b=x[2] ** 2), X),
    "logsumexp_return_sign": (
        lambda np_, nn_, x: (
            nn_.logsumexp(x, axis=1, b=B_SIGNED, return_sign=True),
            nn_.logsumexp(x, return_sign=True),
        ),
        X,
    ),
    "logsumexp_where": (
        lambda np_, nn_, x: (
            nn_.logsumexp(x, axis=1, where=MASK),
            nn_.logsumexp(x, axis=1, where=EMPTY_ROW),
        ),
        X,
    ),
    "logsumexp_b_where_keepdims": (
        lambda np_, nn_, x: nn_.logsumexp(x, axis=0, b=B, where=MASK, keepdims=True),
        X,
    ),
    "one_hot_axis": (
        lambda np_, nn_, x: (
            nn_.one_hot(np_.argmax(x[0], axis=1), 4, axis=0) * x[0].T,
            nn_.one_hot(np_.argmax(x, axis=2), 4, axis=1) * np_.swapaxes(x, 1, 2),
        ),
        X3,
    ),
    # diagonal / trace: offset=, axis1=, axis2=, dtype=
    "diagonal_offsets": (
        lambda np_, nn_, x: (
            np_.diagonal(x, 1) ** 2,
            np_.diagonal(x, -1) ** 2,
            np_.diagonal(x, 5) * 2.0,  # past the end: empty
        ),
        X,
    ),
    "diagonal_3d_axes": (
        lambda np_, nn_, x: (
            np_.diagonal(x) ** 2,  # JAX's default axes are 0 and 1, not the last two
            np_.diagonal(x, 1, 2, 0) ** 2,
            np_.diagonal(x, -1, -1, -2) ** 2,
        ),
        X3,
    ),
    "trace_offsets_axes": (
        lambda np_, nn_, x: (
            np_.trace(x[0] * x[0], 2),
            np_.trace(np_.sin(x), -1, 2, 1),
            np_.trace(x**3),
        ),
        X3,
    ),
    "trace_dtype": (lambda np_, nn_, x: np_.trace(x * x, dtype=np_.float32) * 1.0, X),
    # *_like: shape=; round: decimals=; concatenate / stack / cumsum: dtype=
    "like_shape": (
        lambda np_, nn_, x: (
            np_.full_like(x, x[0, 0] ** 2, shape=(2, 5)) * x[1, 1],  # a traced fill value
            x[0] * np_.ones_like(x, shape=4) + np_.zeros_like(x, shape=(4,)),
        ),
        X,
    ),
    "round_decimals": (
        lambda np_, nn_, x: (
            np_.round(x * 10, 1) * x,
            np_.round(x * 100, -1) + x,
            np_.around(x, 2) * x,
        ),
        X,
    ),
    "structural_dtype": (
        lambda np_, nn_, x: (
            np_.concatenate([x, x[:1] ** 2], axis=0, dtype=np_.float32),
            np_.stack([x, -x], axis=-1, dtype=np_.float32),
            np_.cumsum(x**2, axis=1, dtype=np_.float32),
        ),
        X,
    ),
    "reduction_dtype": (
        lambda np_, nn_, x: (
            np_.sum(x, axis=0, dtype=np_.float32, where=MASK),
            np_.mean(x, axis=1, dtype=np_.float32, where=MASK),
            np_.var(x, axis=0, dtype=np_.float32),
            np_.std(x, axis=1, dtype=np_.float32, where=MASK, correction=1),
        ),
        X,
    ),
}

# float32 results are compared at float32 precision; the rest at conftest's float64 default.
TOLERANCE = {"rtol": 2e-6, "atol": 2e-6}
FLOAT32_CASES = {"trace_dtype", "structural_dtype", "reduction_dtype"}


def _tol(name):
    return TOLERANCE if name in FLOAT32_CASES else {}


def _bind(name, kind):
    fun, _ = CASES[name]
    np_, nn_ = NAMESPACES[kind]
    return lambda x: fun(np_, nn_, x)


# functrans runs `value` eagerly and the Jacobians under `ft.jit`: one compiled graph instead
# of one XLA compilation per primitive and shape keeps the file fast. (The Hessian, vmap,
# masked-out-entry and array-method tests below differentiate eagerly.) JAX's answers all
# come from one `jax.jit` per case.
MODES = {
    "value": lambda T, f, x: f(x),
    "jacrev": lambda T, f, x: T.jit(T.jacrev(f))(x),
    "jacfwd": lambda T, f, x: T.jit(T.jacfwd(f))(x),
}


@functools.cache
def _expected(name):
    """JAX's answers for every mode of one case, from one `jax.jit` (one compilation is far
    cheaper than JAX's op-by-op dispatch of the same derivatives)."""
    f = _bind(name, "jax")
    return jax.jit(lambda x: {mode: run(jax, f, x) for mode, run in MODES.items()})(CASES[name][1])


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", list(CASES))
def test_keyword_matches_jax(name, mode):
    actual = MODES[mode](ft, _bind(name, "ft"), CASES[name][1])
    assert_close(actual, _expected(name)[mode], **_tol(name))


# Second order: a scalar loss of each, with fixed weights so no entry is trivially summed away.
HESSIANS = [
    "var_where",
    "softmax_where",
    "log_softmax_where",
    "max_where_initial",
    "logsumexp_b_where_keepdims",
]


def _weighted_sum(np_, ys):
    # Fixed, distinct weights; the -inf / NaN that masks leave in an output count as 0.
    total = 0.0
    for y in jax.tree_util.tree_leaves(ys):
        w = np.cos(np.arange(np.size(y))).reshape(np.shape(y)) + 1.5
        total = total + np_.sum(np_.where(np_.isfinite(y), y, 0.0) * w)
    return total


@pytest.mark.parametrize("name", HESSIANS)
def test_hessian_matches_jax(name):
    def loss(kind):
        f = _bind(name, kind)
        return lambda x: _weighted_sum(NAMESPACES[kind][0], f(x))

    x = CASES[name][1]
    assert_close(ft.hessian(loss("ft"))(x), jax.jit(jax.hessian(loss("jax")))(x))


# vmap: the mask is batched along with the input, so inside it is a traced value.
VMAPS = {
    "mean_where": lambda np_, nn_, x, m: np_.mean(x**2, where=m),
    "var_where_correction": lambda np_, nn_, x, m: np_.var(x, where=m, correction=1),
    "max_where_initial": lambda np_, nn_, x, m: np_.max(x, where=m, initial=-1.0),
    "softmax_where": lambda np_, nn_, x, m: nn_.softmax(x, where=m),
    "logsumexp_where_b": lambda np_, nn_, x, m: nn_.logsumexp(x, b=B, where=m),
    "diagonal_offset": lambda np_, nn_, x, m: np_.diagonal(x.reshape(2, 2), 1) * m[0],
}


@pytest.mark.parametrize("name", list(VMAPS))
def test_vmap_matches_jax(name):
    def batched(kind, T):
        np_, nn_ = NAMESPACES[kind]
        return T.vmap(lambda x, m: VMAPS[name](np_, nn_, x, m))

    def grad_of_batched(kind, T):
        return T.grad(lambda x: _weighted_sum(NAMESPACES[kind][0], batched(kind, T)(x, MASK)))

    assert_close(batched("ft", ft)(X, MASK), jax.jit(batched("jax", jax))(X, MASK))
    assert_close(grad_of_batched("ft", ft)(X), jax.jit(grad_of_batched("jax", jax))(X))


def test_array_methods_pass_the_new_keywords_on():
    def f(x):
        return (
            x.sum(where=MASK)
            + x.prod(axis=0, where=ROW, initial=2.0).sum()
            + x.max(where=MASK, initial=0.0)
            + x.mean(where=MASK)
            + x.var(where=MASK, correction=1)
            + x.std(axis=1, where=MASK).sum()
        )

    assert_close(ft.value_and_grad(f)(X), jax.jit(jax.value_and_grad(f))(X))


# ---------------------------------------------------------------------------------------------
# Values and dtypes only: integer and boolean inputs, NaN results, casts.

I64 = np.array([[3, -1, 4], [1, -5, 9]])
I32 = I64.astype(np.int32)
BOOLS = np.array([[True, False, True], [False, False, True]])
M23 = np.array([[True, False, True], [True, True, False]])
NO_COLUMN_0 = np.array([False, True, True])

VALUES = {
    "sum_int32_initial_is_cast": lambda np_, nn_: np_.sum(I32, initial=2.7),
    "sum_int_where": lambda np_, nn_: np_.sum(I32, axis=1, where=M23),
    "sum_where_dtype_int32": lambda np_, nn_: np_.sum(X * 3, where=MASK, dtype=np_.int32),
    "prod_int_where_initial": lambda np_, nn_: np_.prod(I64, axis=0, where=M23, initial=2),
    "max_int_where_initial": lambda np_, nn_: np_.max(I32, axis=1, where=M23, initial=-100),
    "min_int_all_masked": lambda np_, nn_: np_.min(I32, axis=0, where=NO_COLUMN_0, initial=7),
    "max_bool_where": lambda np_, nn_: np_.max(BOOLS, axis=1, where=M23, initial=False),
    "min_bool_where": lambda np_, nn_: np_.min(BOOLS, axis=0, where=M23, initial=True),
    "mean_int64_where": lambda np_, nn_: np_.mean(I64, axis=1, where=M23),
    "mean_where_empty_row_is_nan": lambda np_, nn_: np_.mean(X, axis=1, where=EMPTY_ROW),
    "var_where_empty_row_is_nan": lambda np_, nn_: np_.var(X, axis=1, where=EMPTY_ROW),
    "var_correction_too_large_is_nan": lambda np_, nn_: np_.var(X, axis=1, correction=4),
    "var_where_correction_too_large": lambda np_, nn_: np_.var(X, 1, where=MASK, correction=2),
    "std_int_dtype": lambda np_, nn_: np_.std(I64, axis=0, dtype=np_.float32, correction=1),
    "var_float32_where": lambda np_, nn_: np_.var(X, axis=1, dtype=np_.float32, where=MASK),
    "cumsum_bool_counts": lambda np_, nn_: np_.cumsum(BOOLS, axis=1),
    "cumsum_dtype_bool": lambda np_, nn_: np_.cumsum(np.array([0, 2, -2, 0, 1]), dtype=bool),
    "cumsum_int32_stays": lambda np_, nn_: np_.cumsum(I32),
    "cumsum_dtype_float32": lambda np_, nn_: np_.cumsum(I64, axis=0, dtype=np_.float32),
    "concatenate_dtype_truncates": lambda np_, nn_: np_.concatenate(
        [I32, X[:2, :3] * 3], axis=0, dtype=np_.int32
    ),
    "stack_dtype": lambda np_, nn_: np_.stack([I64[0], X[0, :3]], axis=1, dtype=np_.float32),
    "zeros_like_shape_dtype": lambda np_, nn_: np_.zeros_like(I32, np_.float32, shape=(2, 5)),
    "ones_like_int_shape": lambda np_, nn_: np_.ones_like(I32, shape=3),
    "full_like_shape_cast": lambda np_, nn_: np_.full_like(I32, 7.9, shape=(4, 1)),
    "one_hot_axis0_out_of_range": lambda np_, nn_: nn_.one_hot(np.array([0, 2, 5, -1]), 3, axis=0),
    "one_hot_axis_minus2": lambda np_, nn_: nn_.one_hot(np.array([[0, 2], [1, 1]]), 3, axis=-2),
    "one_hot_dtype_axis": lambda np_, nn_: nn_.one_hot(
        np.array([1, 0]), 2, dtype=np_.int32, axis=0
    ),
    "round_halves_to_even": lambda np_, nn_: np_.round(np.array([0.125, -2.5, 0.375, 7.0]), 2),
    "round_negative_decimals": lambda np_, nn_: np_.round(np.array([250.0, 350.0, -49.0]), -2),
    "round_python_scalar": lambda np_, nn_: np_.round(2.675, 2),
    "trace_int": lambda np_, nn_: np_.trace(I32),
    "trace_int_offset_dtype": lambda np_, nn_: np_.trace(I32, 1, dtype=np_.float32),
    "diagonal_int_offset": lambda np_, nn_: np_.diagonal(I32, -1),
    "log_softmax_empty_row": lambda np_, nn_: nn_.log_softmax(X, where=EMPTY_ROW),
    "logsumexp_b_zero_hides_inf": lambda np_, nn_: nn_.logsumexp(
        np.array([1.0, np.inf, 0.5]), b=np.array([1.0, 0.0, 2.0])
    ),
    "logsumexp_all_masked": lambda np_, nn_: nn_.logsumexp(X, axis=0, where=EMPTY_ROW[2]),
}


@pytest.mark.parametrize("name", list(VALUES))
def test_value_and_dtype_match_jax(name):
    actual = VALUES[name](fnp, fnn)
    expected = VALUES[name](jnp, jax.nn)
    assert_close(actual, expected, **(TOLERANCE if "float32" in name else {}))


# ---------------------------------------------------------------------------------------------
# Masked-out entries: whatever they hold (NaN, inf) changes neither the value nor the
# derivative, which is exactly zero there.

GARBAGE = jnp.where(MASK, X, jnp.nan).at[0, 1].set(jnp.inf)

MASKED = {
    "sum": lambda x: fnp.sum(x, axis=1, where=MASK),
    "prod": lambda x: fnp.prod(x, axis=0, where=MASK),
    "max": lambda x: fnp.max(x, axis=1, where=MASK, initial=-3.0),
    "min": lambda x: fnp.min(x, where=MASK, initial=3.0),
    "mean": lambda x: fnp.mean(x, axis=1, where=MASK),
    "var": lambda x: fnp.var(x, axis=1, where=MASK),
    "std": lambda x: fnp.std(x, where=MASK, correction=1),
    "softmax": lambda x: fnn.softmax(x, where=MASK),
    "log_softmax": lambda x: fnn.log_softmax(x, axis=0, where=MASK),
    "logsumexp": lambda x: fnn.logsumexp(x, axis=1, where=MASK),
}


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_out_entries_have_no_effect_and_zero_derivative(name):
    f = MASKED[name]
    loss = lambda x: _weighted_sum(fnp, f(x))
    assert_close(f(GARBAGE), f(X))
    grad = ft.grad(loss)(GARBAGE)
    assert_close(grad, ft.grad(loss)(X))
    assert np.all(np.asarray(grad)[~MASK] == 0.0)
    # forward mode agrees
    assert_close(ft.jvp(loss, (GARBAGE,), (jnp.ones_like(X),))[1], jnp.sum(grad))


def test_var_of_an_empty_group_is_nan_with_zero_derivative():
    # JAX agrees on the values; its derivative there is NaN (0 * NaN in the square's rule).
    # Here the masked-out entries are zeroed first, so no NaN reaches the derivative.
    f = lambda np_, x: np_.var(x, axis=1, where=EMPTY_ROW)
    assert_close(f(fnp, X), f(jnp, X))
    grad = ft.grad(lambda x: fnp.sum(f(fnp, x)[:2]))(X)
    expected = jax.grad(lambda x: jnp.sum(f(jnp, x)[:2]))(X)
    assert_close(grad[:2], expected[:2])
    assert np.all(np.asarray(grad[2]) == 0.0)


# ---------------------------------------------------------------------------------------------
# Calls without the new keywords keep their graphs: no select, no cast, no sign.

PLAIN = {
    "sum": lambda x: fnp.sum(x, axis=1),
    "prod": lambda x: fnp.prod(x),
    "max": lambda x: fnp.max(x, axis=0),
    "amin": lambda x: fnp.amin(x),
    "mean": lambda x: fnp.mean(x, axis=1, keepdims=True),
    "var": lambda x: fnp.var(x, ddof=1),
    "std": lambda x: fnp.std(x, axis=0),
    "softmax": lambda x: fnn.softmax(x),
    "log_softmax": lambda x: fnn.log_softmax(x, axis=0),
    "trace": lambda x: fnp.trace(x),
    "diagonal": lambda x: fnp.diagonal(x),
    "round": lambda x: fnp.round(x),
    "cumsum": lambda x: fnp.cumsum(x, axis=1),
    "stack": lambda x: fnp.stack([x, x]),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_calls_without_new_keywords_build_no_masking(name):
    counts = ft.make_graph(PLAIN[name])(X).primitive_counts()
    assert counts["select"] == 0 and counts["convert_element_type"] == 0, counts


def test_plain_logsumexp_has_only_its_finite_shift_select():
    counts = ft.make_graph(lambda x: fnn.logsumexp(x, axis=1))(X).primitive_counts()
    assert counts["select"] == 1 and counts["sign"] == 0 and counts["abs"] == 0, counts


# ---------------------------------------------------------------------------------------------
# Errors name the problem and the fix.

ERRORS = [
    (lambda: fnp.max(X, where=MASK), ValueError, "needs an `initial`"),
    (lambda: fnp.amin(X, axis=0, where=MASK), ValueError, "needs an `initial`"),
    (lambda: fnp.sum(X, where=MASK.astype(int)), ValueError, "must be None or a boolean"),
    (lambda: fnp.mean(X, where=np.ones((2, 3, 4), bool)), ValueError, "does not broadcast"),
    (lambda: fnn.softmax(X, where=np.ones(3, bool)), ValueError, "does not broadcast"),
    (lambda: fnp.sum(X, initial=np.ones(2)), ValueError, "must be a scalar"),
    (lambda: fnp.var(X, ddof=1, correction=1), ValueError, "pass only one"),
    (lambda: fnp.std(X, ddof=1, correction=0), ValueError, "pass only one"),
    (lambda: fnp.var(X, dtype=np.int32), ValueError, "floating"),
    (lambda: fnp.diagonal(X, axis1=1, axis2=-1), ValueError, "two different axes"),
    (lambda: fnp.trace(np.ones(3)), ValueError, "at least two dimensions"),
    (lambda: fnp.diagonal(X3, axis1=3), ValueError, "out of bounds"),
    (lambda: fnn.one_hot(np.array([0, 1]), 3, axis=2), ValueError, "out of bounds"),
    (lambda: fnp.stack([X], out=X), NotImplementedError, "does not support `out`"),
]


@pytest.mark.parametrize("fun,error,match", ERRORS)
def test_errors_name_the_problem(fun, error, match):
    with pytest.raises(error, match=match):
        fun()
