"""`make_graph`: printing, counting, evaluation, lowering, and graph size of derivatives."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp


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


def test_literal_one_folds_away():
    g = ft.make_graph(lambda x: (x * 1.0 + 0.0) / 1.0)(1.0)
    assert g.num_equations == 0


@pytest.mark.parametrize(
    "name,f,jf,limit",
    [
        ("tanh", fnp.tanh, jnp.tanh, 450),
        ("sin*exp", lambda x: fnp.sin(x) * fnp.exp(x), lambda x: jnp.sin(x) * jnp.exp(x), 300),
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
