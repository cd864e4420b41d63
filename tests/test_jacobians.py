"""`jacfwd`, `jacrev`, `hessian` and `hvp` against JAX: structures, shapes and values."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close, assert_jax_arrays

X = jnp.array([1.0, 2.0, 3.0])
U = jnp.array([0.5, -1.0])


def _xu(np_):
    return lambda x, u: np_.dot(x, x) + np_.dot(u, u)


JACS = ("jacfwd", "jacrev")
COMPOSITIONS = [(a,) for a in JACS] + list(itertools.product(JACS, JACS))


@pytest.mark.parametrize("argnums", [0, 1, (0,), (0, 1), (1, 0)], ids=str)
@pytest.mark.parametrize("comp", COMPOSITIONS, ids="_of_".join)
def test_jax_api_cases(comp, argnums):
    """JAX's own `f(x, u) = x.x + u.u` over every composition and argnums."""
    f_ft, f_jax = _xu(fnp), _xu(jnp)
    for name in reversed(comp):
        f_ft = getattr(ft, name)(f_ft, argnums)
        f_jax = getattr(jax, name)(f_jax, argnums)
    actual = jax.jit(f_ft)(X, U)
    assert_jax_arrays(actual)
    assert_close(actual, jax.jit(f_jax)(X, U))


def _tree_fun(np_):
    return lambda p, s: {
        "a": np_.sin(p["w"]) * p["b"][0] * s,
        "b": ((p["w"] ** 2).sum(), np_.tanh(p["b"])),
    }


P = {"w": jnp.arange(1.0, 4.0).reshape(3, 1), "b": jnp.array([2.0, 3.0])}


@pytest.mark.parametrize("argnums", [0, (0, 1)], ids=str)
@pytest.mark.parametrize("name", JACS)
def test_pytree_inputs_and_outputs(name, argnums):
    actual = getattr(ft, name)(_tree_fun(fnp), argnums)(P, 0.5)
    assert_jax_arrays(actual)
    assert_close(actual, jax.jit(getattr(jax, name)(_tree_fun(jnp), argnums))(P, 0.5))


@pytest.mark.parametrize("name", JACS)
def test_has_aux(name):
    def f(np_):
        return lambda x: (np_.sin(x) * x[0], {"norm": np_.sum(x * x)})

    actual = getattr(ft, name)(f(fnp), has_aux=True)(X)
    assert_close(actual, getattr(jax, name)(f(jnp), has_aux=True)(X))


def test_hessian_of_pytree_and_scalar_output():
    def f(np_):
        return lambda p: np_.sum(np_.sin(p["w"])) * p["b"][0] ** 2 + np_.prod(p["b"])

    both = lambda T, np_: (T.hessian(f(np_))(P), T.hessian(f(np_), argnums=(0,))(P))
    assert_close(jax.jit(lambda: both(ft, fnp))(), jax.jit(lambda: both(jax, jnp))())


def test_hvp_matches_jvp_of_grad_and_forms_no_hessian():
    def f(np_):
        return lambda x: np_.sum(np_.tanh(x) ** 3) * np_.sum(x)

    v = jnp.array([0.3, -1.0, 2.0])
    expected = jax.jvp(jax.grad(f(jnp)), (X,), (v,))[1]
    assert_close(ft.hvp(f(fnp), (X,), (v,)), expected)
    # Forward-over-reverse: the graph of hvp has no (n, n) array anywhere.
    graph = ft.make_graph(lambda x, v: ft.hvp(f(fnp), (x,), (v,)))(X, v)
    assert all(v.aval.shape != (3, 3) for e in graph.eqns for v in e.outputs)


def test_hvp_of_several_arguments():
    def f(np_):
        return lambda x, u: np_.sum(np_.sin(x)) * np_.sum(u**2)

    def ref(x, u, tx, tu):
        return jax.jvp(jax.grad(f(jnp), argnums=(0, 1)), (x, u), (tx, tu))[1]

    actual = ft.hvp(f(fnp), (X, U), (X * 2, U))
    assert_close(actual, ref(X, U, X * 2, U))


def test_jacobian_of_integer_input_raises():
    with pytest.raises(TypeError, match="jacfwd"):
        ft.jacfwd(lambda x: x * 2.0)(jnp.arange(3))


def test_wrong_argnums_raises():
    with pytest.raises(ValueError, match="argnums"):
        ft.jacrev(_xu(fnp), argnums=2)(X, U)


def test_contractive_autoencoder_loss(rng):
    """`grad` over the encoder parameters of the Frobenius norm of its Jacobian."""
    params = {
        "w": jnp.asarray(rng.standard_normal((4, 3)) * 0.5),
        "b": jnp.asarray(rng.standard_normal(3)),
    }
    xs = jnp.asarray(rng.standard_normal((2, 4)))

    def loss(T, np_, nn_):
        def encoder(p, x):
            return nn_.sigmoid(x @ p["w"] + p["b"])

        def one(p, x):
            jac = T.jacrev(encoder, argnums=1)(p, x)
            recon = np_.sum((encoder(p, x) @ p["w"].T - x) ** 2)
            return recon + 0.1 * np_.sum(jac**2)

        return lambda p: np_.mean(T.vmap(one, (None, 0))(p, xs))

    actual = jax.jit(ft.grad(loss(ft, fnp, fnn)))(params)
    expected = jax.jit(jax.grad(loss(jax, jnp, jax.nn)))(params)
    assert_close(actual, expected)
    # and eagerly, without `jax.jit`, for one example
    eager = ft.grad(lambda p: fnp.sum(ft.jacrev(lambda x: fnn.sigmoid(x @ p["w"]))(xs[0]) ** 2))
    ref = jax.grad(lambda p: jnp.sum(jax.jacrev(lambda x: jax.nn.sigmoid(x @ p["w"]))(xs[0]) ** 2))
    assert_close(eager(params), ref(params))


def test_jacobian_shapes_match_jax(rng):
    x = jnp.asarray(rng.standard_normal((2, 3)))

    def f(np_):
        return lambda x: np_.tanh(x.T @ x)[None]

    for name in JACS:
        out = getattr(ft, name)(f(fnp))(x)
        assert out.shape == (1, 3, 3, 2, 3)
        assert_close(out, getattr(jax, name)(f(jnp))(x))
    assert np.shape(ft.hessian(lambda x: fnp.sum(x**3))(x)) == (2, 3, 2, 3)
