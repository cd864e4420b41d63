"""`ft.lax.conv_general_dilated` and `ft.lax.conv` against `jax.lax`, to second order.

Every configuration is written once as keyword arguments shared by `jax.lax` and `ft.lax`.
For each one, a single jitted function computes all the functrans quantities (value, both
first derivatives, second derivatives in two orders of modes, `vmap` over either operand or
both, per-example gradients) and another computes the same with JAX; the tests compare them
entry by entry in float64. Jitting the whole set keeps the cost at two compilations per
configuration instead of one per small operation, and those compilations skip XLA's backend
optimisations (`_fast_jit`), which cost most of the time of these tests and none of their
meaning.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.jet import jet as jax_jet

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close

# XLA's CPU backend spends seconds optimising float64 convolutions that run once.
_FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _fast_jit(fun):
    """`jax.jit(fun)` compiled without backend optimisations (called once per test)."""

    def run(*args):
        return jax.jit(fun).lower(*args).compile(compiler_options=_FAST)(*args)

    return run


# name -> (lhs shape, rhs shape, keyword arguments of `conv_general_dilated`)
CONFIGS = {
    "nchw_valid": ((2, 2, 5, 5), (3, 2, 3, 3), dict(window_strides=(1, 1), padding="VALID")),
    "nhwc_same_stride2": (
        (2, 5, 6, 2),
        (3, 3, 2, 3),
        dict(window_strides=(2, 2), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
    ),
    "explicit_padding": (
        (2, 2, 5, 4),
        (3, 2, 2, 3),
        dict(window_strides=(2, 1), padding=((1, 2), (0, 1))),
    ),
    "rhs_dilation2": (
        (1, 2, 6, 6),
        (2, 2, 2, 2),
        dict(window_strides=(1, 1), padding="SAME_LOWER", rhs_dilation=(2, 2)),
    ),
    "lhs_dilation2": (
        (1, 2, 4, 4),
        (2, 2, 3, 3),
        dict(window_strides=(1, 1), padding=((1, 1), (2, 0)), lhs_dilation=(2, 2)),
    ),
    "feature_groups2": (
        (2, 4, 5, 5),
        (6, 2, 3, 3),
        dict(window_strides=(1, 2), padding="VALID", feature_group_count=2),
    ),
    "batch_groups2": (
        (4, 2, 5, 5),
        (6, 2, 3, 3),
        dict(window_strides=(1, 1), padding="SAME", batch_group_count=2),
    ),
    "1d_negative_padding_mixed_layout": (
        (2, 9, 3),
        (3, 3, 2),
        dict(window_strides=(3,), padding=((-1, 2),), dimension_numbers=("NWC", "WIO", "NCW")),
    ),
}

QUANTITIES = [
    "value",
    "vjp",
    "jvp",
    "rev_over_rev",
    "fwd_over_rev",
    "vmap_lhs",
    "vmap_rhs",
    "vmap_both",
    "vmap_axes_2_and_last",
    "per_example_grad",
]


def _inputs(name):
    lhs_shape, rhs_shape, _ = CONFIGS[name]
    r = np.random.RandomState(len(name))
    x, w = r.standard_normal(lhs_shape), r.standard_normal(rhs_shape)
    tx, tw = r.standard_normal(lhs_shape), r.standard_normal(rhs_shape)
    xb, wb = r.standard_normal((3, *lhs_shape)), r.standard_normal((3, *rhs_shape))
    return x, w, tx, tw, xb, wb


def _all_quantities(T, np_, conv, x, w, tx, tw, xb, wb):
    """Every quantity of `QUANTITIES`, with the transformations `T` (`ft` or `jax`)."""

    def loss(x, w):  # nonlinear, so that second derivatives do not vanish
        return np_.sum(np_.sin(conv(x, w)))

    def grad_norm(x, w):
        gx, gw = T.grad(loss, argnums=(0, 1))(x, w)
        return np_.sum(gx**2) + np_.sum(gw * gw * gw)

    y, pullback = T.vjp(conv, x, w)
    ct = np_.cos(y)
    xb2, wb2 = jnp.moveaxis(xb, 0, 2), jnp.moveaxis(wb, 0, -1)
    return {
        "value": y,
        "vjp": pullback(ct),
        "jvp": T.jvp(conv, (x, w), (tx, tw)),
        "rev_over_rev": T.grad(grad_norm, argnums=(0, 1))(x, w),
        "fwd_over_rev": T.jvp(T.grad(loss, argnums=(0, 1)), (x, w), (tx, tw)),
        "vmap_lhs": T.vmap(conv, (0, None))(xb, w),
        "vmap_rhs": T.vmap(conv, (None, 0))(x, wb),
        "vmap_both": T.vmap(conv, (0, 0))(xb, wb),
        "vmap_axes_2_and_last": T.vmap(conv, (2, -1))(xb2, wb2),
        "per_example_grad": T.vmap(T.grad(loss, argnums=(0, 1)), (0, None))(xb, w),
    }


@functools.cache
def _results(name):
    """(functrans results, JAX results) for one configuration, each from one jitted call."""
    kw = CONFIGS[name][2]
    ours = _fast_jit(
        functools.partial(
            _all_quantities, ft, fnp, lambda x, w: ft.lax.conv_general_dilated(x, w, **kw)
        )
    )
    theirs = _fast_jit(
        functools.partial(
            _all_quantities, jax, jnp, lambda x, w: jax.lax.conv_general_dilated(x, w, **kw)
        )
    )
    args = _inputs(name)
    return ours(*args), theirs(*args)


@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_conv_matches_jax(name, quantity):
    ours, theirs = _results(name)
    assert_close(ours[quantity], theirs[quantity], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_abstract_eval_matches_lowering(name):
    x, w, *_ = _inputs(name)
    kw = CONFIGS[name][2]
    graph = ft.make_graph(lambda x, w: ft.lax.conv_general_dilated(x, w, **kw))(x, w)
    (out_var,) = graph.outs
    expected = jax.eval_shape(lambda x, w: jax.lax.conv_general_dilated(x, w, **kw), x, w)
    assert out_var.aval.shape == expected.shape
    assert out_var.aval.dtype == expected.dtype


def test_eager_value_and_gradient():
    x, w, *_ = _inputs("nhwc_same_stride2")
    kw = CONFIGS["nhwc_same_stride2"][2]
    ours = ft.grad(lambda w: fnp.sum(ft.lax.conv_general_dilated(x, w, **kw) ** 2))(w)
    theirs = jax.grad(lambda w: jnp.sum(jax.lax.conv_general_dilated(x, w, **kw) ** 2))(w)
    assert_close(ours, theirs)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((1, 0), (0, 2))])
def test_conv_matches_jax_lax_conv(padding):
    r = np.random.RandomState(1)
    x, w = r.standard_normal((1, 2, 4, 5)), r.standard_normal((3, 2, 2, 3))
    assert_close(
        ft.lax.conv(x, w, (1, 2), padding),
        jax.lax.conv(x, w, (1, 2), padding),
    )


def test_preferred_element_type_and_precision_reach_every_convolution():
    # float32 operands accumulated in float64: the cotangents come back in float32.
    r = np.random.RandomState(5)
    x, w = r.standard_normal((2, 2, 5, 5)), r.standard_normal((3, 2, 3, 3))
    x, w = x.astype(np.float32), w.astype(np.float32)
    kw = dict(window_strides=(2, 1), padding="SAME", precision=jax.lax.Precision.HIGHEST,
              preferred_element_type=jnp.float64)  # fmt: skip

    def f(T, np_, conv, x, w):
        return T.grad(lambda x, w: np_.sum(np_.sin(conv(x, w, **kw))), argnums=(0, 1))(x, w)

    ours = _fast_jit(functools.partial(f, ft, fnp, ft.lax.conv_general_dilated))(x, w)
    theirs = _fast_jit(functools.partial(f, jax, jnp, jax.lax.conv_general_dilated))(x, w)
    assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_hessian_in_the_kernel():
    r = np.random.RandomState(2)
    x, w = r.standard_normal((2, 4, 4, 1)), r.standard_normal((2, 2, 1, 2))
    dn = ("NHWC", "HWIO", "NHWC")

    def f(np_, conv, w):
        return np_.sum(np_.tanh(conv(x, w, (1, 1), "SAME", dimension_numbers=dn)))

    ours = _fast_jit(ft.hessian(functools.partial(f, fnp, ft.lax.conv_general_dilated)))(w)
    theirs = _fast_jit(jax.hessian(functools.partial(f, jnp, jax.lax.conv_general_dilated)))(w)
    assert_close(ours, theirs)


def test_third_order_through_grouped_convolutions():
    # grad of grad of grad: each level transposes the grouped convolution of the level
    # below, alternating feature groups and batch groups.
    x, w, *_ = _inputs("feature_groups2")
    kw = CONFIGS["feature_groups2"][2]

    def f(T, np_, conv, x, w):
        def loss(x, w):
            return np_.sum(np_.sin(conv(x, w, **kw)))

        def g2(x, w):
            gx, gw = T.grad(loss, argnums=(0, 1))(x, w)
            return np_.sum(np_.sin(gx)) + np_.sum(gw**2)

        def g3(x, w):
            gx, gw = T.grad(g2, argnums=(0, 1))(x, w)
            return np_.sum(gx * gx) + np_.sum(np_.cos(gw))

        return T.grad(g3, argnums=(0, 1))(x, w)

    ours = _fast_jit(functools.partial(f, ft, fnp, ft.lax.conv_general_dilated))(x, w)
    theirs = _fast_jit(functools.partial(f, jax, jnp, jax.lax.conv_general_dilated))(x, w)
    assert_close(ours, theirs, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize(
    "lhs_shape,rhs_shape,kw",
    [
        ((1, 2, 4, 3), (2, 2, 2, 2), dict(window_strides=(2, 1), padding=((1, 0), (0, 1)))),
        ((2, 2, 3, 3), (2, 2, 2, 2), dict(window_strides=(1, 1), padding="SAME",
                                          batch_group_count=2)),
    ],
)  # fmt: skip
def test_check_grads_order_2(lhs_shape, rhs_shape, kw):
    # Finite differences: an oracle independent of JAX's own convolution rules.
    r = np.random.RandomState(4)
    x, w = r.standard_normal(lhs_shape), r.standard_normal(rhs_shape)
    ft.testing.check_grads(
        lambda x, w: fnp.tanh(ft.lax.conv_general_dilated(x, w, **kw)), (x, w), order=2
    )


def test_jet_matches_jax_experimental_jet():
    x, w, tx, tw, xb, wb = _inputs("nhwc_same_stride2")
    kw = CONFIGS["nhwc_same_stride2"][2]
    series = ([tx, xb[0], xb[1]], [tw, wb[0], wb[1]])

    def f(np_, conv, x, w):
        return np_.sin(conv(x, w, **kw))

    ours = _fast_jit(
        lambda x, w: ft.jet(functools.partial(f, fnp, ft.lax.conv_general_dilated), (x, w), series)
    )(x, w)
    theirs = _fast_jit(
        lambda x, w: jax_jet(
            functools.partial(f, jnp, jax.lax.conv_general_dilated), (x, w), series
        )  # fmt: skip
    )(x, w)
    assert_close(ours, theirs)


# ---------------------------------------------------------------------------------------------
# The R1 penalty of a small convolutional discriminator
# ---------------------------------------------------------------------------------------------


def _discriminator(np_, nn_, conv, params, x):
    w1, w2, v = params
    h = nn_.leaky_relu(conv(x, w1, (2, 2), "SAME"), 0.2)
    h = nn_.leaky_relu(conv(h, w2, (1, 1), ((1, 0), (0, 1))), 0.2)
    return np_.sum(h * v, axis=(1, 2, 3))  # one score per image


def _r1(T, np_, nn_, conv, params, x):
    """R1 = mean over images of |d D / d x|^2 (Mescheder et al., 2018)."""
    grad_x = T.grad(lambda x: np_.sum(_discriminator(np_, nn_, conv, params, x)))(x)
    return np_.mean(np_.sum(grad_x**2, axis=(1, 2, 3)))


def _r1_setup():
    r = np.random.RandomState(3)
    params = (
        r.standard_normal((4, 1, 3, 3)),
        r.standard_normal((3, 4, 2, 2)) * 0.5,
        r.standard_normal((1, 3, 4, 4)),
    )
    return params, r.standard_normal((2, 1, 8, 8))


def test_r1_penalty_gradient_matches_jax():
    params, x = _r1_setup()
    ours_fn = ft.grad(lambda p, x: _r1(ft, fnp, fnn, ft.lax.conv, p, x))
    theirs_fn = jax.grad(lambda p, x: _r1(jax, jnp, jax.nn, jax.lax.conv, p, x))
    assert_close(jax.jit(ours_fn)(params, x), jax.jit(theirs_fn)(params, x))


def test_r1_gradient_graph_holds_only_convolutions_and_ordinary_primitives():
    params, x = _r1_setup()
    graph = ft.make_graph(ft.grad(lambda p, x: _r1(ft, fnp, fnn, ft.lax.conv, p, x)))(params, x)
    counts = graph.primitive_counts()
    # Two forward convolutions, their input transposes for grad_x, and the transposes of
    # all four in the outer gradient.
    assert counts["conv_general_dilated"] >= 6
    ordinary = {"add", "sub", "mul", "neg", "select", "ge", "gt", "reduce_sum",
                "broadcast_to", "reshape", "transpose", "gather", "integer_pow", "div",
                "convert_element_type", "pad", "scatter_add", "max", "min"}  # fmt: skip
    assert set(counts) - ordinary == {"conv_general_dilated"}
    theirs = jax.jit(jax.grad(lambda p: _r1(jax, jnp, jax.nn, jax.lax.conv, p, x)))(params)
    assert_close(jax.jit(graph.to_jax())(params, x), theirs)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lhs_shape,rhs_shape,kw,match",
    [
        ((1, 2, 4, 4), (3, 5, 2, 2), dict(window_strides=(1, 1), padding="VALID"),
         "cannot convolve an input of type"),
        ((1, 2, 4, 4), (3, 2, 2, 2), dict(window_strides=(1,), padding="VALID"),
         "`window_strides` to be a sequence of 2 integers"),
        ((1, 2, 4, 4), (3, 2, 2, 2), dict(window_strides=(1, 1), padding="FULL"),
         "got padding='FULL'"),
        ((1, 2, 4, 4), (3, 2, 2, 2), dict(window_strides=(1, 1), padding=((1, 1),)),
         "2 \\(low, high\\) integer pairs"),
        ((1, 2, 4, 4), (3, 2, 2, 2),
         dict(window_strides=(1, 1), padding="SAME", lhs_dilation=(2, 2)),
         "string padding is not defined for transposed"),
        ((1, 2, 4, 4), (3, 2, 2, 2),
         dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NCHW", "OIHW")),
         "could not read dimension_numbers"),
        ((1, 2, 4), (3, 2, 2, 2), dict(window_strides=(1, 1), padding="SAME"),
         "equal rank"),
        ((1, 4, 4, 4), (3, 2, 2, 2), dict(window_strides=(1, 1), padding="SAME",
                                          feature_group_count=3),
         "feature_group_count=3"),
    ],
)  # fmt: skip
def test_errors(lhs_shape, rhs_shape, kw, match):
    with pytest.raises((TypeError, ValueError), match=match) as info:
        ft.lax.conv_general_dilated(np.ones(lhs_shape), np.ones(rhs_shape), **kw)
    assert "`ft.lax.conv_general_dilated`" in str(info.value)
