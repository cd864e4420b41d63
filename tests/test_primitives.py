"""Every function of `functrans.numpy` and `functrans.nn`, checked against JAX to second order.

Each case is written once, as a function of an array namespace `np_` (and `nn_` for the
`functrans.nn` cases), so the same body runs with `functrans.numpy` and with `jax.numpy`.
For each case and each mode the same composition of transformations is applied with
functrans (`ft.jvp`, `ft.vjp`) and with JAX (`jax.jvp`, `jax.vjp`) and the results compared
in float64:

- `value`: the function itself;
- `jvp`, `vjp`: first derivatives in forward and reverse mode;
- `jvp_of_jvp`, `jvp_of_vjp`, `vjp_of_jvp`, `vjp_of_vjp`: second derivatives in all four
  pairs of modes.

Inputs are random but kept away from singularities and kinks (positive for `log`/`sqrt`,
`|x| < 0.9` for `arcsin`, well-conditioned matrices for `solve`/`inv`/`det`, SPD matrices
built inside the function for `cholesky`, ...). Linear operations are composed with a
nonlinear one so that their second derivatives are not trivially zero.
"""

import functools
import zlib
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close, assert_jax_arrays

# ---------------------------------------------------------------------------------------------
# Input makers: functions of a `numpy.random.RandomState` returning a float64 array.


def normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def uniform(lo, hi, *shape):
    return lambda rng: rng.uniform(lo, hi, shape)


def positive(*shape):
    return uniform(0.5, 2.0, *shape)


def nonzero(*shape):
    """Random signs, magnitudes in [0.3, 2]: away from the kink of `abs`, `relu`, ..."""
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 2.0, shape)


class Case(NamedTuple):
    name: str
    fun: Callable  # fun(np_, *xs), or fun(np_, nn_, *xs) when `nn` is set
    makers: tuple
    nn: bool = False

    def bind(self, np_, nn_):
        if self.nn:
            return lambda *xs: self.fun(np_, nn_, *xs)
        return lambda *xs: self.fun(np_, *xs)


def C(name, fun, *makers):
    return Case(name, fun, makers)


def NN(name, fun, *makers):
    return Case(name, fun, makers, nn=True)


# Static indices used by the indexing cases (constants, never differentiated).
IDX = np.array([0, 2, 2, 3])
IDX2D = np.array([[0, 1], [4, 0]])
MASK = np.arange(20).reshape(4, 5) % 3 == 0
ROWS = np.array([True, False, True, True])
PERM = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# Constants on the left of an operator: the traced value is the right operand.
JAX_CONST = jnp.linspace(-1.0, 1.0, 4)
NP_CONST = np.linspace(0.5, 2.0, 4)


def _spd(np_, a):
    return a @ a.T + 3.0 * np_.eye(a.shape[0])


def _well_conditioned(np_, a):
    return 3.0 * np_.eye(a.shape[-1]) + a


# ---------------------------------------------------------------------------------------------
# The table.

UNARY = [
    C("negative", lambda np_, x: np_.negative(x) * x, normal(3, 4)),
    C("square", lambda np_, x: np_.square(x), normal(3, 4)),
    C("sqrt", lambda np_, x: np_.sqrt(x), positive(3, 4)),
    C("reciprocal", lambda np_, x: np_.reciprocal(x), positive(3, 4)),
    C("abs", lambda np_, x: np_.abs(x) * x, nonzero(3, 4)),
    C("sign", lambda np_, x: np_.sign(x) * x**3, nonzero(3, 4)),
    C("exp", lambda np_, x: np_.exp(x), normal(3, 4)),
    C("expm1", lambda np_, x: np_.expm1(x), normal(3, 4)),
    C("log", lambda np_, x: np_.log(x), positive(3, 4)),
    C("log1p", lambda np_, x: np_.log1p(x), positive(3, 4)),
    C("log2", lambda np_, x: np_.log2(x), positive(3, 4)),
    C("sin", lambda np_, x: np_.sin(x), normal(3, 4)),
    C("cos", lambda np_, x: np_.cos(x), normal(3, 4)),
    C("tan", lambda np_, x: np_.tan(x), uniform(-1.2, 1.2, 3, 4)),
    C("arcsin", lambda np_, x: np_.arcsin(x), uniform(-0.9, 0.9, 3, 4)),
    C("arccos", lambda np_, x: np_.arccos(x), uniform(-0.9, 0.9, 3, 4)),
    C("arctan", lambda np_, x: np_.arctan(x), normal(3, 4)),
    C("sinh", lambda np_, x: np_.sinh(x), normal(3, 4)),
    C("cosh", lambda np_, x: np_.cosh(x), normal(3, 4)),
    C("tanh", lambda np_, x: np_.tanh(x), normal(3, 4)),
    C("scalar_input", lambda np_, x: np_.sin(x) * np_.exp(x), normal()),
]

BINARY = [
    C("add", lambda np_, x, y: np_.add(x, y) ** 2, normal(3, 1), normal(4)),
    C("subtract", lambda np_, x, y: np_.subtract(x, y) ** 2, normal(4), normal(3, 4)),
    C("multiply", lambda np_, x, y: np_.multiply(x, y), normal(3, 1), normal(4)),
    C("divide", lambda np_, x, y: np_.divide(x, y), normal(3, 4), positive(4)),
    C("true_divide", lambda np_, x, y: np_.true_divide(x, y), normal(3, 1), positive(3, 4)),
    C("power", lambda np_, x, y: np_.power(x, y), positive(3, 1), normal(4)),
    C("power_int_exponent", lambda np_, x: np_.power(x, 3), normal(3, 4)),
    C("power_negative_exponent", lambda np_, x: np_.power(x, -1.5), positive(3, 4)),
    C("power_constant_base", lambda np_, x: np_.power(2.0, x), normal(3, 4)),
    C("arctan2", lambda np_, x, y: np_.arctan2(x, y) * np_.sum(x), normal(3, 1), nonzero(4)),
    C("maximum", lambda np_, x, y: np_.maximum(x, y) * x, normal(3, 1), normal(4)),
    C("minimum", lambda np_, x, y: np_.minimum(x, y) * y, normal(3, 1), normal(4)),
    C("clip", lambda np_, x: np_.clip(x, -0.5, 0.5) * x, normal(3, 4)),
    C(
        "clip_array_bounds",
        lambda np_, x, lo, hi: np_.clip(x, lo, hi) ** 2,
        normal(3, 4),
        uniform(-1.0, -0.2, 4),
        uniform(0.2, 1.0, 3, 1),
    ),
    C("where", lambda np_, x, y: np_.where(x > 0, x**2, np_.sin(y)), normal(3, 1), normal(4)),
    C("where_scalar_branch", lambda np_, x: np_.where(x > 0.3, x**3, 0.0), normal(3, 4)),
    C("logaddexp", lambda np_, x, y: np_.logaddexp(x, y), normal(3, 1), normal(4)),
    *[
        C(
            f"compare_{op}",
            lambda np_, x, y, op=op: np_.where(getattr(np_, op)(x, y), x * y, np_.sin(x - y)),
            normal(3, 1),
            normal(4),
        )
        for op in ("less", "less_equal", "greater", "greater_equal")
    ],
    *[
        C(
            f"compare_{op}",
            lambda np_, x, op=op: np_.where(
                getattr(np_, op)(x, np_.max(x, axis=1, keepdims=True)), x**2, np_.sin(x)
            ),
            normal(3, 4),
        )
        for op in ("equal", "not_equal")
    ],
]

REDUCTIONS = [
    C("sum", lambda np_, x: np_.sum(x * x), normal(2, 3, 4)),
    C("sum_axis0", lambda np_, x: np_.sum(x * x, axis=0), normal(2, 3, 4)),
    C("sum_axis_neg", lambda np_, x: np_.sum(x * x, axis=-1), normal(2, 3, 4)),
    C(
        "sum_axes_keepdims",
        lambda np_, x: np_.sum(np_.sin(x), axis=(0, 2), keepdims=True),
        normal(2, 3, 4),
    ),
    C("mean", lambda np_, x: np_.mean(x * x), normal(2, 3, 4)),
    C(
        "mean_axis_keepdims",
        lambda np_, x: np_.mean(np_.sin(x), axis=1, keepdims=True),
        normal(2, 3, 4),
    ),
    C("max", lambda np_, x: np_.max(np_.sin(x)), normal(2, 3, 4)),
    C("max_axis", lambda np_, x: np_.max(x, axis=1) ** 2, normal(2, 3, 4)),
    C(
        "max_axes_keepdims",
        lambda np_, x: np_.max(x * x, axis=(0, 2), keepdims=True),
        normal(2, 3, 4),
    ),
    C("min", lambda np_, x: np_.min(np_.sin(x)), normal(2, 3, 4)),
    C("min_axis_keepdims", lambda np_, x: np_.min(x, axis=0, keepdims=True) ** 2, normal(2, 3, 4)),
    C("prod", lambda np_, x: np_.prod(x), normal(2, 3)),
    C("prod_axis", lambda np_, x: np_.prod(x, axis=1), normal(2, 3, 4)),
    C("prod_axis_keepdims", lambda np_, x: np_.prod(x, axis=-1, keepdims=True), normal(2, 3, 4)),
    C("var", lambda np_, x: np_.var(x), normal(2, 3, 4)),
    C("var_axis", lambda np_, x: np_.var(x, axis=0), normal(2, 3, 4)),
    C("var_axes_keepdims", lambda np_, x: np_.var(x, axis=(1, 2), keepdims=True), normal(2, 3, 4)),
    C("std", lambda np_, x: np_.std(x), normal(2, 3, 4)),
    C("std_axis_keepdims", lambda np_, x: np_.std(x, axis=1, keepdims=True), normal(2, 3, 4)),
    C(
        "argmax",
        lambda np_, x: np_.where(np_.arange(4) == np_.argmax(x, axis=1, keepdims=True), x**2, x),
        normal(3, 4),
    ),
    C(
        "argmin",
        lambda np_, x: np_.where(np_.arange(3)[:, None] == np_.argmin(x, axis=0), np_.sin(x), x),
        normal(3, 4),
    ),
]

CONTRACTIONS = [
    C("dot_vector_vector", lambda np_, x, y: np_.dot(x, y), normal(4), normal(4)),
    C("dot_matrix_vector", lambda np_, x, y: np_.dot(x, y), normal(3, 4), normal(4)),
    C("dot_matrix_matrix", lambda np_, x, y: np_.dot(x, y), normal(2, 3), normal(3, 4)),
    C("dot_nonlinear", lambda np_, x, y: np_.dot(np_.sin(x), y * y), normal(2, 3), normal(3)),
    C("matmul", lambda np_, x, y: np_.matmul(x, y), normal(3, 4), normal(4, 2)),
    C("matmul_batched", lambda np_, x, y: np_.matmul(x, y), normal(2, 3, 4), normal(4, 5)),
    C(
        "matmul_broadcast_batch",
        lambda np_, x, y: np_.matmul(x, y),
        normal(2, 1, 3, 4),
        normal(3, 4, 2),
    ),
    C("matmul_vector_left", lambda np_, x, y: np_.matmul(x, y), normal(4), normal(2, 4, 3)),
    C("matmul_operator", lambda np_, x, y: np_.tanh(x @ y), normal(3, 4), normal(4)),
    C("outer", lambda np_, x, y: np_.outer(np_.sin(x), y), normal(3), normal(4)),
    C("einsum_matmul", lambda np_, x, y: np_.einsum("ij,jk->ik", x, y), normal(2, 3), normal(3, 4)),
    C(
        "einsum_batched",
        lambda np_, x, y: np_.einsum("bij,bjk->bik", x, np_.sin(y)),
        normal(2, 2, 3),
        normal(2, 3, 4),
    ),
    C("einsum_trace", lambda np_, x: np_.einsum("ii->", x * x), normal(3, 3)),
    C("einsum_transpose_sum", lambda np_, x: np_.einsum("ijk->kj", np_.sin(x)), normal(2, 3, 4)),
    C("einsum_outer", lambda np_, x, y: np_.einsum("i,j->ij", x, y * y), normal(3), normal(4)),
    C(
        "einsum_ellipsis",
        lambda np_, x, y: np_.einsum("...ij,...jk->...ik", np_.sin(x), y),
        normal(2, 1, 2, 3),
        normal(3, 3, 2),
    ),
    C(
        "einsum_ellipsis_implicit",
        lambda np_, x, y: np_.einsum("i...j,jk", x, np_.cos(y)),
        normal(2, 3, 4),
        normal(4, 2),
    ),
    C(
        "einsum_broadcast_ones",
        lambda np_, x, y: np_.einsum("ij,ij,j->i", x, y, np_.tanh(y[0])),
        normal(1, 3),
        normal(2, 3),
    ),
    C("einsum_ellipsis_diagonal", lambda np_, x: np_.einsum("...ii->...i", x * x), normal(2, 3, 3)),
    C(
        "dot_precision",
        lambda np_, x, y: np_.dot(np_.sin(x), y, precision="highest"),
        normal(2, 3),
        normal(3, 2),
    ),
    C(
        "matmul_precision_batched",
        lambda np_, x, y: np_.matmul(x, y, precision=("high", "highest")),
        normal(2, 2, 3),
        normal(3, 4),
    ),
    C(
        "tensordot_preferred",
        lambda np_, x, y: np_.tensordot(x, y, 1, preferred_element_type=np_.float64),
        normal(2, 3),
        normal(3, 2),
    ),
    C("vdot", lambda np_, x, y: np_.vdot(x, np_.sin(y)), normal(2, 3), normal(3, 2)),
    C(
        "inner_precision",
        lambda np_, x, y: np_.inner(x, y, precision="highest"),
        normal(2, 3),
        normal(4, 3),
    ),
    C("tensordot_axes1", lambda np_, x, y: np_.tensordot(x, y, axes=1), normal(3, 4), normal(4, 5)),
    C(
        "tensordot_axes2",
        lambda np_, x, y: np_.tensordot(x, y, axes=2),
        normal(2, 3, 4),
        normal(3, 4, 5),
    ),
    C(
        "tensordot_axes_lists",
        lambda np_, x, y: np_.tensordot(np_.sin(x), y, axes=([1, 0], [0, 1])),
        normal(3, 4),
        normal(4, 3, 2),
    ),
    C("tensordot_axes0", lambda np_, x, y: np_.tensordot(x, y, axes=0), normal(2), normal(3)),
]

SHAPES = [
    C("reshape", lambda np_, x: np_.reshape(x * x, (4, 3)), normal(3, 4)),
    C("reshape_minus_one", lambda np_, x: np_.reshape(np_.sin(x), (-1,)), normal(2, 3, 2)),
    C("reshape_method", lambda np_, x: (x * x).reshape(2, 6), normal(3, 4)),
    C("reshape_method_tuple", lambda np_, x: np_.sin(x).reshape((6, -1)), normal(3, 4)),
    C("transpose", lambda np_, x: np_.transpose(np_.sin(x)), normal(2, 3, 4)),
    C("transpose_axes", lambda np_, x: np_.transpose(x * x, (1, 2, 0)), normal(2, 3, 4)),
    C("transpose_attribute", lambda np_, x, y: x.T * np_.sin(y), normal(3, 4), normal(4, 3)),
    C("swapaxes", lambda np_, x: np_.swapaxes(x * x, 0, 2), normal(2, 3, 4)),
    C("moveaxis", lambda np_, x: np_.moveaxis(np_.sin(x), 0, -1), normal(2, 3, 4)),
    C("moveaxis_tuple", lambda np_, x: np_.moveaxis(x * x, (0, 1), (2, 0)), normal(2, 3, 4)),
    C("expand_dims", lambda np_, x: np_.expand_dims(x * x, 1), normal(3, 4)),
    C("expand_dims_tuple", lambda np_, x: np_.expand_dims(np_.sin(x), (0, 3)), normal(3, 4)),
    C("squeeze", lambda np_, x: np_.squeeze(x * x), normal(3, 1, 4, 1)),
    C("squeeze_axis", lambda np_, x: np_.squeeze(np_.sin(x), axis=1), normal(3, 1, 4, 1)),
    C("broadcast_to", lambda np_, x: np_.broadcast_to(x * x, (2, 3, 4)), normal(3, 1)),
    C(
        "concatenate",
        lambda np_, x, y: np_.concatenate([x * x, np_.sin(y)]),
        normal(2, 4),
        normal(3, 4),
    ),
    C(
        "concatenate_axis1",
        lambda np_, x, y: np_.concatenate((x, np_.sin(y), x * y[:, :2]), axis=1),
        normal(3, 2),
        normal(3, 4),
    ),
    C("stack", lambda np_, x, y: np_.stack([x * y, np_.sin(y)]), normal(3, 4), normal(3, 4)),
    C(
        "stack_axis",
        lambda np_, x, y: np_.stack((x, y * y, x * y), axis=-1),
        normal(3, 4),
        normal(3, 4),
    ),
    C("split", lambda np_, x: np_.split(x * x, 3), normal(6, 2)),
    C("split_indices", lambda np_, x: np_.split(np_.sin(x), [1, 3], axis=1), normal(2, 5)),
]

INDEXING = [
    C("index_int", lambda np_, x: x[1] * x[2], normal(4, 5)),
    C("index_negative_int", lambda np_, x: x[-1, -2] * x, normal(4, 5)),
    C("index_slice", lambda np_, x: x[1:3] * x[:2], normal(4, 5)),
    C("index_step_slice", lambda np_, x: x[::2, 1:] ** 2, normal(4, 5)),
    C("index_reverse_slice", lambda np_, x: x[::-1] * x, normal(4, 5)),
    C("index_none", lambda np_, x: x[None, :, 1] * x[:, None, 2], normal(4, 5)),
    C("index_ellipsis", lambda np_, x: np_.sin(x[..., 0]) * x[0, ...].sum(), normal(2, 3, 4)),
    C("index_int_array", lambda np_, x: x[IDX] ** 2, normal(4, 5)),
    C("index_int_array_2d", lambda np_, x: x[:, IDX2D] * x[0, 0], normal(4, 5)),
    C(
        "index_int_arrays_pair",
        lambda np_, x: np_.sin(x[np.array([0, 3, 0]), np.array([1, 1, 4])]),
        normal(4, 5),
    ),
    C("index_negative_int_array", lambda np_, x: x[np.array([-1, 0, -1])] ** 3, normal(4, 5)),
    C("index_bool_mask", lambda np_, x: x[MASK] ** 2, normal(4, 5)),
    C("index_bool_rows", lambda np_, x: np_.sin(x[ROWS]) * x[0], normal(4, 5)),
    C("at_set", lambda np_, x, y: (x * x).at[1].set(np_.sin(y)), normal(4, 5), normal(5)),
    C(
        "at_set_slice",
        lambda np_, x, y: np_.sin(x).at[:, 1:3].set(y * y),
        normal(4, 5),
        normal(4, 2),
    ),
    C(
        "at_set_int_array",
        lambda np_, x, y: (x * x).at[np.array([3, 0])].set(y**3),
        normal(4, 5),
        normal(2, 5),
    ),
    C("at_add_repeated", lambda np_, x, y: (x * x).at[IDX].add(y**2), normal(4, 5), normal(4, 5)),
    C("at_add_scalar", lambda np_, x, y: (x * x).at[0, 1].add(y * x[0, 1]), normal(4, 5), normal()),
    C(
        "at_add_broadcast",
        lambda np_, x, y: np_.sin(x).at[np.array([0, 0, 2]), 1].add(y * y),
        normal(4, 5),
        normal(3),
    ),
]

LINALG = [
    C("norm_vector", lambda np_, x: np_.linalg.norm(x), normal(4)),
    C("norm_frobenius", lambda np_, x: np_.linalg.norm(x), normal(3, 4)),
    C("norm_axis", lambda np_, x: np_.linalg.norm(x, axis=1), normal(3, 4)),
    C("norm_ord1", lambda np_, x: np_.linalg.norm(x, ord=1), nonzero(4)),
    C(
        "solve_spd_vector",
        lambda np_, a, b: np_.linalg.solve(_spd(np_, a), b),
        normal(3, 3),
        normal(3),
    ),
    C(
        "solve_general_matrix",
        lambda np_, a, b: np_.linalg.solve(_well_conditioned(np_, a), b),
        normal(3, 3),
        normal(3, 2),
    ),
    C("inv", lambda np_, a: np_.linalg.inv(_well_conditioned(np_, a)), normal(3, 3)),
    C("det", lambda np_, a: np_.linalg.det(_well_conditioned(np_, a)), normal(3, 3)),
    C("det_batched", lambda np_, a: np_.linalg.det(_well_conditioned(np_, a)), normal(2, 3, 3)),
    C(
        "slogdet",
        lambda np_, a: (lambda s, l: s * l)(*np_.linalg.slogdet(_well_conditioned(np_, a))),
        normal(3, 3),
    ),
    C(
        "slogdet_negative_det",
        lambda np_, a: (lambda s, l: s * l + l**2)(*np_.linalg.slogdet(PERM @ _spd(np_, a))),
        normal(3, 3),
    ),
    C("cholesky", lambda np_, a: np_.linalg.cholesky(_spd(np_, a)), normal(3, 3)),
]

OPERATORS = [
    C("op_add_sub", lambda np_, x, y: (x + y - 2.0 * x) * (2.0 - y), normal(3, 1), normal(4)),
    C("op_mul_neg", lambda np_, x, y: -x * y * x, normal(3, 4), normal(4)),
    C("op_truediv", lambda np_, x, y: x / y + 1.0 / y, normal(3, 4), positive(3, 4)),
    C("op_floordiv", lambda np_, x, y: (x // y) * x + x, normal(3, 4), positive(3, 4)),
    C("op_mod", lambda np_, x, y: (x % y) * x, normal(3, 4), positive(3, 4)),
    C("op_mod_constant", lambda np_, x: np_.sin(x % 1.5), normal(3, 4)),
    C("op_pow", lambda np_, x, y: x**y + x**2 + 2.0**y, positive(3, 4), normal(3, 4)),
    C("op_matmul", lambda np_, x, y: np_.sin(x) @ y, normal(3, 4), normal(4, 2)),
    C(
        "op_jax_array_left",
        lambda np_, x: (JAX_CONST * x - JAX_CONST) / (JAX_CONST + 2.0) + (JAX_CONST @ x.T)[:, None],
        normal(3, 4),
    ),
    C(
        "op_numpy_array_left",
        lambda np_, x: NP_CONST * x**2 + (NP_CONST @ x.T)[:, None],
        normal(3, 4),
    ),
    C(
        "op_python_scalar_left",
        lambda np_, x: 2.0 * x + 1.0 - x * (3.0 / (2.0 + x**2)),
        normal(3, 4),
    ),
    C(
        "op_lt_gt",
        lambda np_, x, y: np_.where(x < y, x, y * 2) + np_.where(x > y, y, x**2),
        normal(3, 1),
        normal(4),
    ),
    C(
        "op_le_ge",
        lambda np_, x, y: np_.where(x <= y, x * y, y) + np_.where(x >= 0.1, np_.sin(y), x),
        normal(3, 1),
        normal(4),
    ),
    C(
        "op_eq_ne",
        lambda np_, x: np_.where(x == x.max(), x**2, x) * np_.where(x != x.min(), x, 1.0),
        normal(3, 4),
    ),
    C("attr_shape_ndim_size", lambda np_, x: x * (x.shape[0] + x.ndim + x.size) * x, normal(3, 4)),
    C("method_sum", lambda np_, x: x.sum() * x + x.sum(axis=0), normal(3, 4)),
    C("method_mean", lambda np_, x: x.mean(axis=1, keepdims=True) * x + x.mean(), normal(3, 4)),
    C("method_max", lambda np_, x: x.max(axis=1) * x.max(), normal(3, 4)),
    C("method_astype", lambda np_, x: (x * 2).astype(x.dtype) * x.astype("float64"), normal(3, 4)),
]

CREATION = [
    C("arange", lambda np_, x: x * np_.arange(4.0) + np_.arange(4) * x**2, normal(3, 4)),
    C("linspace", lambda np_, x: np_.sin(x + np_.linspace(0.0, 1.0, 4)), normal(3, 4)),
    C("eye", lambda np_, x: np_.eye(3) * x + np_.eye(3, 3, 1) * x**2, normal(3, 1)),
    C("zeros_ones_like", lambda np_, x: np_.zeros_like(x) + np_.ones_like(x) * x**2, normal(3, 4)),
    C(
        "zeros_ones_full",
        lambda np_, x: np_.zeros((3, 4)) + np_.ones((3, 4)) * x + np_.full((3, 4), 2.5) * x**2,
        normal(3, 4),
    ),
    C("array_constant", lambda np_, x: np_.array([1.0, 2.0, 3.0, 4.0]) * np_.sin(x), normal(3, 4)),
    C("asarray_traced", lambda np_, x: np_.asarray(x) ** 2, normal(3, 4)),
]

NN_CASES = [
    NN("sigmoid", lambda np_, nn_, x: nn_.sigmoid(x), normal(3, 4)),
    NN("relu", lambda np_, nn_, x: nn_.relu(x) * x, nonzero(3, 4)),
    NN("leaky_relu", lambda np_, nn_, x: nn_.leaky_relu(x) * x, nonzero(3, 4)),
    NN(
        "leaky_relu_slope",
        lambda np_, nn_, x: nn_.leaky_relu(x, negative_slope=0.2) ** 2,
        nonzero(3, 4),
    ),
    NN("elu", lambda np_, nn_, x: nn_.elu(x), nonzero(3, 4)),
    NN("elu_alpha", lambda np_, nn_, x: nn_.elu(x, alpha=0.5), nonzero(3, 4)),
    NN("gelu", lambda np_, nn_, x: nn_.gelu(x), normal(3, 4)),
    NN("gelu_exact", lambda np_, nn_, x: nn_.gelu(x, approximate=False), normal(3, 4)),
    NN("silu", lambda np_, nn_, x: nn_.silu(x), normal(3, 4)),
    NN("softplus", lambda np_, nn_, x: nn_.softplus(x), normal(3, 4)),
    NN("log_sigmoid", lambda np_, nn_, x: nn_.log_sigmoid(x), normal(3, 4)),
    NN("softmax", lambda np_, nn_, x: nn_.softmax(x), normal(3, 4)),
    NN("softmax_axis0", lambda np_, nn_, x: nn_.softmax(x, axis=0), normal(3, 4)),
    NN("log_softmax", lambda np_, nn_, x: nn_.log_softmax(x), normal(3, 4)),
    NN("log_softmax_axis0", lambda np_, nn_, x: nn_.log_softmax(x, axis=0), normal(3, 4)),
    NN("logsumexp", lambda np_, nn_, x: nn_.logsumexp(x), normal(3, 4)),
    NN("logsumexp_axis", lambda np_, nn_, x: nn_.logsumexp(x, axis=1), normal(3, 4)),
    NN(
        "logsumexp_keepdims",
        lambda np_, nn_, x: nn_.logsumexp(x, axis=0, keepdims=True),
        normal(3, 4),
    ),
    NN("one_hot", lambda np_, nn_, x: nn_.one_hot(np_.argmax(x, axis=1), 4) * x**2, normal(3, 4)),
    NN(
        "mlp_layer",
        lambda np_, nn_, x, w: nn_.log_softmax(nn_.gelu(x @ w) + nn_.sigmoid(x).sum()),
        normal(2, 3),
        normal(3, 4),
    ),
]

CASES = (
    UNARY
    + BINARY
    + REDUCTIONS
    + CONTRACTIONS
    + SHAPES
    + INDEXING
    + LINALG
    + OPERATORS
    + CREATION
    + NN_CASES
)
CASES_BY_NAME = {c.name: c for c in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"

# ---------------------------------------------------------------------------------------------
# The modes: the same composition of transformations, written once against a transformation
# namespace `T` (`functrans` or `jax`). `d` holds random directions: tangents `t1`, `t2` (like
# the inputs), an output cotangent `ct` (like the output) and an input cotangent `w`.


class Directions(NamedTuple):
    t1: tuple
    t2: tuple
    ct: object
    w: tuple


def _vjp(T, f, xs, ct):
    out, f_vjp = T.vjp(f, *xs)
    return out, f_vjp(ct)


MODES = {
    "value": lambda T, f, xs, d: f(*xs),
    "jvp": lambda T, f, xs, d: T.jvp(f, xs, d.t1),
    "vjp": lambda T, f, xs, d: _vjp(T, f, xs, d.ct),
    "jvp_of_jvp": lambda T, f, xs, d: T.jvp(lambda *a: T.jvp(f, a, d.t1)[1], xs, d.t2),
    "jvp_of_vjp": lambda T, f, xs, d: T.jvp(lambda *a: T.vjp(f, *a)[1](d.ct), xs, d.t1),
    "vjp_of_jvp": lambda T, f, xs, d: _vjp(T, lambda *a: T.jvp(f, a, d.t1)[1], xs, d.ct),
    "vjp_of_vjp": lambda T, f, xs, d: _vjp(T, lambda *a: T.vjp(f, *a)[1](d.ct), xs, d.w),
}


def _random_like(rng, tree):
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.standard_normal(s.shape), dtype=s.dtype), tree
    )


@functools.cache
def _setup(name):
    """Inputs, directions and JAX's answers for every mode of one case, computed once.

    All seven reference computations of a case go through one `jax.jit`: compiling one
    program is several times cheaper than JAX's op-by-op dispatch of the same derivatives,
    which keeps the suite fast. functrans itself is always run eagerly.
    """
    case = CASES_BY_NAME[name]
    rng = np.random.RandomState(zlib.crc32(name.encode()))
    xs = tuple(jnp.asarray(make(rng), dtype=jnp.float64) for make in case.makers)
    f_jax = case.bind(jnp, jax.nn)
    d = Directions(
        t1=_random_like(rng, xs),
        t2=_random_like(rng, xs),
        ct=_random_like(rng, jax.eval_shape(f_jax, *xs)),
        w=_random_like(rng, xs),
    )
    every_mode = lambda xs, d: {mode: run(jax, f_jax, xs, d) for mode, run in MODES.items()}
    return xs, d, jax.jit(every_mode)(xs, d)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_primitive(case, mode):
    xs, d, expected = _setup(case.name)
    actual = MODES[mode](ft, case.bind(fnp, fnn), xs, d)
    assert_jax_arrays(actual)
    assert_close(actual, expected[mode])


@pytest.mark.parametrize(
    "name,f,x",
    [
        (
            "logaddexp_inf",
            lambda np_, nn_, x: np_.sum(np_.logaddexp(x, 0.0)),
            [np.inf, -np.inf, 0.0],
        ),
        ("logaddexp_both_neginf", lambda np_, nn_, x: np_.sum(np_.logaddexp(x, x)), [-np.inf, 1.0]),
        ("softplus_far", lambda np_, nn_, x: np_.sum(nn_.softplus(x)), [1e3, -1e3, 0.0]),
        ("log_sigmoid_far", lambda np_, nn_, x: np_.sum(nn_.log_sigmoid(x)), [-1e3, 1e3]),
        ("logsumexp_inf", lambda np_, nn_, x: nn_.logsumexp(x), [-np.inf, 0.5, -3.0]),
        ("norm_at_zero", lambda np_, nn_, x: np_.linalg.norm(x), [0.0, 0.0]),
        ("relu_at_zero", lambda np_, nn_, x: np_.sum(nn_.relu(x)), [0.0, 0.0]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_stable_derivatives_at_the_edges_match_jax(name, f, x):
    """Values, gradients and Hessians where naive formulas give NaN: as JAX defines them."""
    x = np.asarray(x)
    ff = lambda x: f(fnp, fnn, x)
    fj = lambda x: f(jnp, jax.nn, x)
    for ours, theirs in [(ff, fj), (ft.grad(ff), jax.grad(fj)), (ft.hessian(ff), jax.hessian(fj))]:
        np.testing.assert_allclose(ours(x), theirs(x), atol=1e-12, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# ft.lax.dynamic_slice / dynamic_update_slice against jax.lax (negative and clamped starts)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("starts", [(0, 1), (2, 3), (-1, 5)])
def test_dynamic_slice_and_update_match_jax(starts):
    x = jnp.arange(12.0).reshape(3, 4) / 7.0
    u = jnp.full((2, 2), 0.5)

    def f(lax, np_):
        def fun(x, u):
            window = lax.dynamic_slice(x, starts, (2, 2))
            updated = lax.dynamic_update_slice(x, u * window, starts)
            return np_.sum(np_.sin(updated) * x) + np_.sum(window**3)

        return fun

    ours, theirs = f(ft.lax, fnp), f(jax.lax, jnp)
    assert_close(ours(x, u), theirs(x, u))
    assert_close(ft.grad(ours, argnums=(0, 1))(x, u), jax.grad(theirs, argnums=(0, 1))(x, u))
    assert_close(ft.hessian(ours)(x, u), jax.hessian(theirs)(x, u))
    idx = jnp.array([-3, -1, 0, 2])  # traced starts under vmap
    assert_close(
        ft.vmap(lambda i: ft.lax.dynamic_slice(x, (i, 1), (2, 3)))(idx),
        jax.vmap(lambda i: jax.lax.dynamic_slice(x, (i, 1), (2, 3)))(idx),
    )


def test_dynamic_slice_errors_name_the_fix():
    x = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="one start index per axis"):
        ft.lax.dynamic_slice(x, (0,), (2, 2))
    with pytest.raises(TypeError, match="integer start indices"):
        ft.lax.dynamic_slice(x, (0.5, 0), (2, 2))


@pytest.mark.parametrize("mode", [None, "fill", "clip", "wrap"])
def test_take_modes_as_in_jax(mode):
    # out-of-range and negative indices, a 2-d index, and the flattened array (axis=None)
    m = np.arange(12.0).reshape(3, 4)
    for axis, idx in ((1, [1, -1, 9, -5]), (1, [[1, -2], [7, 0]]), (0, 3), (None, [3, -13, 12])):
        want = jnp.take(m, jnp.array(idx), axis=axis, mode=mode)
        assert_close(fnp.take(m, np.array(idx), axis=axis, mode=mode), want)
        traced = jax.jit(lambda m, i: fnp.take(m, i, axis=axis, mode=mode))
        assert_close(traced(m, jnp.array(idx)), want)

        def loss(np_, m):
            t = np_.take(m * m, np.array(idx), axis=axis, mode=mode)
            return np_.sum(np_.where(np_.isnan(t), 0.0, t) ** 2)

        assert_close(ft.grad(lambda m: loss(fnp, m))(m), jax.grad(lambda m: loss(jnp, m))(m))
    with pytest.raises(ValueError, match="mode="):
        fnp.take(m, np.array([0]), mode="raise")
