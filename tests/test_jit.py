"""`ft.jit`: one trace per signature, simplified graphs, composition with transformations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp

X = np.linspace(-1.0, 1.0, 5)


def loss(x):
    return fnp.sum(fnp.tanh(x) ** 2 * fnp.sin(x))


def jloss(x):
    return jnp.sum(jnp.tanh(x) ** 2 * jnp.sin(x))


def test_second_call_does_not_retrace():
    calls = []

    def f(x, n):
        calls.append(1)
        return fnp.sum(x**n)

    g = ft.jit(f, static_argnums=1)
    np.testing.assert_allclose(g(X, 2), np.sum(X**2))
    np.testing.assert_allclose(g(X + 1.0, 2), np.sum((X + 1.0) ** 2))
    assert len(calls) == 1 and g.trace_count == 1
    g(X, 3)  # a new static value
    g(np.ones(4), 2)  # a new shape
    g(X.astype(np.float32), 2)  # a new dtype
    assert len(calls) == 4 and g.trace_count == 4


@pytest.mark.parametrize(
    "name,ours,theirs",
    [
        ("jit_of_grad", ft.jit(ft.grad(loss)), jax.grad(jloss)),
        ("grad_of_jit", ft.grad(ft.jit(loss)), jax.grad(jloss)),
        ("jit_of_grad_of_grad_sum",
         ft.jit(ft.grad(lambda x: fnp.sum(ft.grad(loss)(x) ** 2))),
         jax.grad(lambda x: jnp.sum(jax.grad(jloss)(x) ** 2))),
        ("grad_of_jit_of_grad",
         ft.grad(lambda x: fnp.sum(ft.jit(ft.grad(loss))(x))),
         jax.grad(lambda x: jnp.sum(jax.grad(jloss)(x)))),
        ("jvp_of_jit", lambda x: ft.jvp(ft.jit(loss), (x,), (fnp.ones_like(x),))[1],
         lambda x: jax.jvp(jloss, (x,), (jnp.ones_like(x),))[1]),
        ("jax_jit_of_ft_jit", jax.jit(ft.jit(ft.grad(loss))), jax.grad(jloss)),
    ],
)  # fmt: skip
def test_jit_composes_with_transformations(name, ours, theirs):
    np.testing.assert_allclose(ours(X), theirs(X), rtol=1e-10, atol=1e-12)


def test_jit_with_pytrees_and_kwargs():
    def f(params, x, *, scale):
        return {"out": fnp.tanh(params["w"] * x + params["b"]) * scale}

    g = ft.jit(f)
    params = {"w": np.float64(2.0), "b": np.float64(0.5)}
    out = g(params, X, scale=3.0)
    np.testing.assert_allclose(out["out"], np.tanh(2.0 * X + 0.5) * 3.0, rtol=1e-12)
    assert isinstance(out["out"], jax.Array)


def test_jit_closure_over_outer_value_is_right_each_time():
    # the inner jit closes over the outer `grad` variable: its graph must not be reused stale
    def outer(a):
        return ft.jit(lambda x: fnp.sin(a * x))(2.0)

    for a in (0.3, 0.7):
        np.testing.assert_allclose(ft.grad(outer)(a), 2.0 * np.cos(2.0 * a), rtol=1e-12)


def test_jit_graph_is_simplified():
    f = ft.jit(ft.grad(ft.grad(ft.grad(ft.grad(fnp.tanh)))))
    np.testing.assert_allclose(
        f(0.3), jax.grad(jax.grad(jax.grad(jax.grad(jnp.tanh))))(0.3), rtol=1e-10
    )


def test_jit_on_constants_inside_make_graph():
    # a compiled call on concrete values inside a graph being built stays a constant
    g = ft.make_graph(lambda x: x * ft.jit(fnp.sin)(np.float64(0.5)))(1.0)
    np.testing.assert_allclose(g(2.0), 2.0 * np.sin(0.5), rtol=1e-12)


def test_vmap_of_jit_and_jit_of_vmap():
    xs = np.stack([X, 2.0 * X])
    expected = jax.vmap(jax.grad(jloss))(xs)
    np.testing.assert_allclose(ft.vmap(ft.jit(ft.grad(loss)))(xs), expected, rtol=1e-10)
    np.testing.assert_allclose(ft.jit(ft.vmap(ft.grad(loss)))(xs), expected, rtol=1e-10)
