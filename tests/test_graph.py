"""`make_graph`: printing, counting, evaluation, lowering, and graph size of derivatives."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close


def nested_grad(f, n):
    for _ in range(n):
        f = ft.grad(f)
    return f


def jax_nested_grad(f, n):
    for _ in range(n):
        f = jax.grad(f)
    return f


def test_print_gradient_graph():
    g = ft.make_graph(ft.grad(lambda x: fnp.sin(x) * fnp.exp(x)))(0.5)
    text = str(g)
    assert text.splitlines()[0] == "graph(a:f64[]) {"
    assert "= cos a" in text and "= exp a" in text
    assert text.splitlines()[-2].startswith("  return (")
    assert g.num_equations == 6
    assert g.primitive_counts() == {"sin": 1, "exp": 1, "cos": 1, "mul": 2, "add": 1}


def test_graph_line_format_with_params():
    g = ft.make_graph(lambda x: fnp.sum(x, axis=1))(np.ones((2, 3)))
    assert "b:f64[2] = reduce_sum[axes=(1,)] a" in str(g)


def test_graph_evaluates_and_differentiates():
    f = lambda x, y: fnp.sum(fnp.tanh(x * y) ** 2)
    x, y = np.linspace(-1, 1, 4), np.linspace(0.5, 2, 4)
    g = ft.make_graph(f)(x, y)
    np.testing.assert_allclose(g(x, y), f(x, y), rtol=1e-12)
    # a graph is a function like any other: it can be differentiated
    np.testing.assert_allclose(ft.grad(g)(x, y), ft.grad(f)(x, y), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(g.to_jax())(x, y), f(x, y), rtol=1e-12)


def test_graph_of_second_derivative_matches_jax():
    f = lambda x: fnp.sin(x) * fnp.exp(x)
    g = ft.make_graph(nested_grad(f, 2))(0.3)
    jf = jax_nested_grad(lambda x: jnp.sin(x) * jnp.exp(x), 2)
    np.testing.assert_allclose(g(0.7), jf(0.7), rtol=1e-12)


def test_simplify_removes_dead_code_and_keeps_value():
    def f(x):
        _unused = fnp.cos(x) * 3.0
        return fnp.sin(x)

    g = ft.make_graph(f)(1.0)
    s = g.simplify()
    assert g.num_equations == 3 and s.num_equations == 1
    for x in np.random.RandomState(0).randn(5):
        np.testing.assert_allclose(s(x), g(x), rtol=1e-15)


def test_identical_work_is_shared():
    # the same primitive on the same operands is recorded once
    g = ft.make_graph(lambda x: fnp.sin(x) + fnp.sin(x))(1.0)
    assert g.primitive_counts()["sin"] == 1


def test_seed_cotangent_spread_by_a_reduction_multiplies_nothing():
    # grad(sum(tanh(w @ x))) seeds 1.0, spread to f64[n] by the sum's rule; products with
    # that array of ones (the backward pass and, forward over reverse, its tangent) are
    # the other operand itself.
    rng = np.random.RandomState(0)
    w, x, v = rng.randn(5, 5), rng.randn(5), rng.randn(5)

    def hvp(x, v, w):
        f = lambda x: fnp.sum(fnp.tanh(w @ x))
        return ft.jvp(ft.grad(f), (x,), (v,))[1]

    g = ft.make_graph(hvp)(x, v, w)
    ones = [e.outputs[0] for e in g.eqns if e.prim.name == "broadcast_to"]
    used = [a for e in g.eqns for a in e.inputs]
    assert ones and not any(any(a is o for a in used) for o in ones)
    s = g.simplify()
    assert s.primitive_counts().get("broadcast_to", 0) == 0
    jf = lambda x: jnp.sum(jnp.tanh(w @ x))
    expected = jax.jvp(jax.grad(jf), (x,), (v,))[1]
    np.testing.assert_allclose(g(x, v, w), expected, rtol=1e-12)
    np.testing.assert_allclose(s(x, v, w), expected, rtol=1e-12)
    np.testing.assert_allclose(hvp(x, v, w), expected, rtol=1e-12)


def test_filled_arrays_fold_only_where_shapes_match():
    # x * ones(3) with x of shape () broadcasts: it must stay a product of shape (3,)
    def f(x, y):
        ones = fnp.broadcast_to(1.0, (3,))
        return fnp.sum(x * ones) + fnp.sum(y * ones) + fnp.sum(y + fnp.broadcast_to(0.0, (3,)))

    x, y = 0.7, np.array([1.0, -2.0, 3.0])
    g = ft.make_graph(ft.grad(f, argnums=(0, 1)))(x, y)
    gx, gy = g(x, y)
    assert np.shape(gx) == () and np.shape(gy) == (3,)
    jf = lambda x, y: jnp.sum(x * jnp.ones(3)) + 2 * jnp.sum(y)
    jx, jy = jax.grad(jf, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, jx, rtol=1e-12)
    np.testing.assert_allclose(gy, jy, rtol=1e-12)
    assert float(f(x, y)) == pytest.approx(3 * 0.7 + 2 * 2.0)


def test_literal_one_folds_away():
    g = ft.make_graph(lambda x: (x * 1.0 + 0.0) / 1.0)(1.0)
    assert g.num_equations == 0


@pytest.mark.parametrize(
    "name,f,jf,limit",
    [
        ("tanh", fnp.tanh, jnp.tanh, 300),
        ("sin*exp", lambda x: fnp.sin(x) * fnp.exp(x), lambda x: jnp.sin(x) * jnp.exp(x), 520),
    ],
)
def test_order8_graph_is_small_fast_and_right(name, f, jf, limit):
    start = time.perf_counter()
    g = ft.make_graph(nested_grad(f, 8))(0.4)
    elapsed = time.perf_counter() - start
    s = g.simplify()
    assert s.num_equations <= limit, (name, s.num_equations)
    assert elapsed < 5.0  # a sanity bound, not a benchmark
    np.testing.assert_allclose(s(0.4), jax_nested_grad(jf, 8)(0.4), rtol=1e-9)


def test_bool_on_abstract_value_raises():
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(TypeError, match="abstract"):
        ft.make_graph(f)(1.0)


FUNS = {
    "tanh": (fnp.tanh, jnp.tanh),
    "sin*exp": (lambda x: fnp.sin(x) * fnp.exp(x), lambda x: jnp.sin(x) * jnp.exp(x)),
    "rational": (lambda x: (x * x + 1.0) / (x - 3.0), lambda x: (x * x + 1.0) / (x - 3.0)),
}


@pytest.mark.parametrize("name", list(FUNS))
def test_simplified_size_grows_polynomially(name):
    f, _ = FUNS[name]
    sizes = [ft.make_graph(nested_grad(f, n))(0.4).simplify().num_equations for n in (4, 8)]
    # Exponential growth doubles the size per order (x16 from order 4 to 8); a polynomial of
    # degree 2 grows at most x4.
    assert sizes[1] <= 4 * sizes[0], sizes


@pytest.mark.parametrize("name", list(FUNS))
@pytest.mark.parametrize("order", [3, 6])
def test_simplify_keeps_values_of_nested_derivatives(name, order):
    f, jf = FUNS[name]
    g = ft.make_graph(nested_grad(f, order))(0.4)
    s = g.simplify()
    for x in np.random.RandomState(order).uniform(-1, 1, 4):
        expected = jax_nested_grad(jf, order)(x)
        np.testing.assert_allclose(g(x), expected, rtol=1e-9)
        np.testing.assert_allclose(s(x), expected, rtol=1e-9)


REWRITES = {
    # name: (function, primitive that must be gone after simplify)
    "neg_neg": (lambda x: fnp.negative(fnp.negative(x)) * 3.0, "neg"),
    "add_neg": (lambda x: fnp.sin(x) + (-fnp.cos(x)), "neg"),
    "sub_neg": (lambda x: fnp.sin(x) - (-fnp.cos(x)), "neg"),
    "transpose_twice": (lambda x: fnp.sin(x.T.T), "transpose"),
    "reshape_twice": (lambda x: fnp.sin(x.reshape(6).reshape(3, 2)), "reshape"),
    "x_plus_x": (lambda x: fnp.exp(x) + fnp.exp(x), "add"),
}


@pytest.mark.parametrize("name", list(REWRITES))
def test_each_rewrite_applies_and_keeps_values(name):
    f, gone = REWRITES[name]
    x0 = np.random.RandomState(1).randn(3, 2)
    g = ft.make_graph(f)(x0)
    s = g.simplify()
    assert s.primitive_counts()[gone] < max(g.primitive_counts()[gone], 1)
    for seed in range(3):
        x = np.random.RandomState(seed).randn(3, 2)
        np.testing.assert_allclose(s(x), g(x), rtol=1e-14)
        np.testing.assert_allclose(s(x), f(x), rtol=1e-14)
        # derivatives of the simplified graph are those of the function
        np.testing.assert_allclose(
            ft.grad(lambda x: fnp.sum(s(x)))(x), ft.grad(lambda x: fnp.sum(f(x)))(x), rtol=1e-12
        )


@pytest.fixture
def scratch_primitive():
    """A user primitive for one test, removed from the registry afterwards."""
    from functrans._src import core
    from functrans.extend import Primitive

    prim = Primitive("call_graph_for_test")
    yield prim
    core._ALL_PRIMITIVES.pop(prim.name, None)


def test_graphs_held_by_a_primitive_print_nested(scratch_primitive):
    call_p = scratch_primitive
    inner = ft.make_graph(lambda x: fnp.sin(x) * 2.0)(1.0)
    call_p.impl = lambda x, body: body.to_jax()(x)
    call_p.jvp = lambda primals, tangents, body: ft.jvp(body, primals, tangents)
    call_p.vjp = lambda needs, ct, out, x, body: ft.vjp(body, x)[1](ct)
    outer = ft.make_graph(lambda x: call_p.bind(fnp.exp(x), body=inner) + 1.0)(1.0)
    text = str(outer)
    assert "call_graph_for_test" in text
    assert "    body=graph(a:f64[]) {" in text  # the body, indented under its equation
    assert "      b:f64[] = sin a" in text
    np.testing.assert_allclose(outer(0.3), np.sin(np.exp(0.3)) * 2.0 + 1.0, rtol=1e-12)
    # differentiable through the rules that call the nested graph
    np.testing.assert_allclose(
        ft.grad(outer)(0.3), np.cos(np.exp(0.3)) * 2.0 * np.exp(0.3), rtol=1e-12
    )


def test_dot_and_html_display():
    g = ft.make_graph(ft.grad(lambda x: fnp.sum(fnp.sin(x) * 2.0)))(np.ones(3)).simplify()
    dot = g.to_dot()
    assert dot.startswith("digraph functrans {") and dot.rstrip().endswith("}")
    assert dot.count("shape=box") == g.num_equations
    assert "cos" in dot and "out0" in dot
    html = g._repr_html_()
    assert html.startswith("<pre>") and "cos" in html
    svg = g._repr_svg_()
    assert svg is None or "<svg" in svg  # None when Graphviz is not installed


def test_custom_rules_print_nested():
    import functrans.nn as fnn

    @ft.custom_jvp
    def log1pexp(x):
        return fnp.log(1.0 + fnp.exp(x))

    log1pexp.defjvps(lambda t, ans, x: t * fnn.sigmoid(x))
    text = str(ft.make_graph(lambda x: log1pexp(x) * 2.0)(1.0))
    assert "    fun=graph(a:f64[]) {" in text and "      d:f64[] = log c" in text
    assert "    jvp=graph(a:f64[], b:f64[]) {" in text and "= logistic a" in text
    assert text.count("fun=graph(") == 1  # the rule's own call of the function is not expanded

    @ft.custom_vjp
    def clip(x):
        return x

    clip.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -1, 1),))
    text = str(ft.make_graph(lambda x: fnp.sin(clip(x)))(1.0))
    assert "    fwd=graph(a:f64[]) {" in text


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_the_constant_shift_of_softmax_is_not_differentiated(name):
    # The shift by the maximum is a constant: forward mode must not derive the maximum's
    # derivative (an argmax and a dozen equations) only to drop it.
    import functrans.nn as fnn

    x = np.random.RandomState(0).normal(size=(3, 4)).astype(np.float32)
    f = lambda x: fnp.sum(getattr(fnn, name)(x, axis=1) ** 2)  # noqa: E731
    graph = ft.make_graph(ft.jacfwd(f))(x)
    assert "argmax" not in graph.primitive_counts()
    want = jax.jacfwd(lambda x: jnp.sum(getattr(jax.nn, name)(x, axis=1) ** 2))(x)
    assert_close(graph(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "f",
    [
        lambda x: x - x,
        lambda x: x - x + 3.0,
        lambda x: (x + 1) * 2 - 2 * x,
        lambda x: x * x - (x - 1) * (x + 1),
        ft.grad(lambda x: fnp.sum(fnp.sin(x - x))),
    ],
    ids=["zero", "constant", "linear_cancels", "quadratic_cancels", "grad_of_constant"],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_that_simplify_to_constants_keep_shape_and_dtype(f, dtype):
    # `simplify` rewrote such outputs as a bare Python number (scalar, int64) or as no value
    # at all (`ft.jit` raised KeyError: None) before.
    x = jnp.asarray([[0.5, -1.0, 2.0]], dtype)
    got, want = ft.jit(f)(x), f(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want)
    graph = ft.make_graph(f)(x).simplify()
    (out,) = graph.eval_flat(x)
    assert out.shape == want.shape and out.dtype == want.dtype
