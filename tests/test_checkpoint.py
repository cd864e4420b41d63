"""`ft.checkpoint`: same values and derivatives as without it, fewer saved residuals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans._src.vjp import saved_values

X = np.linspace(0.1, 1.0, 6)


def body(np_, x):
    for _ in range(8):
        x = np_.sin(x) * 1.1 + 0.1 * x
    return x


def loss(np_, x):
    return np_.sum(body(np_, x) ** 2)


def ck_loss(x):
    return fnp.sum(ft.checkpoint(lambda x: body(fnp, x))(x) ** 2)


def jax_loss(x):
    return loss(jnp, x)


@pytest.mark.parametrize(
    "name,ours,theirs",
    [
        ("grad", ft.grad(ck_loss), jax.grad(jax_loss)),
        ("grad_grad", ft.grad(lambda x: fnp.sum(ft.grad(ck_loss)(x) ** 2)),
         jax.grad(lambda x: jnp.sum(jax.grad(jax_loss)(x) ** 2))),
        ("jvp_grad", lambda x: ft.jvp(ft.grad(ck_loss), (x,), (fnp.ones_like(x),))[1],
         lambda x: jax.jvp(jax.grad(jax_loss), (x,), (jnp.ones_like(x),))[1]),
        ("jit_grad", ft.jit(ft.grad(ck_loss)), jax.grad(jax_loss)),
        ("jax_jit_grad", jax.jit(ft.grad(ck_loss)), jax.grad(jax_loss)),
        ("vmap_grad", lambda x: ft.vmap(ft.grad(ck_loss))(fnp.stack([x, 2 * x])),
         lambda x: jax.vmap(jax.grad(jax_loss))(jnp.stack([x, 2 * x]))),
        ("taylor", lambda x: ft.derivatives(lambda s: ck_loss(x * s), 3)(1.0)[3],
         lambda x: jax.grad(jax.grad(jax.grad(lambda s: jax_loss(x * s))))(1.0)),
    ],
)  # fmt: skip
def test_checkpoint_derivatives_match_jax(name, ours, theirs):
    np.testing.assert_allclose(ours(X), theirs(X), rtol=1e-10, atol=1e-12)


def test_checkpoint_saves_only_inputs():
    plain = saved_values(lambda x: loss(fnp, x), X)
    checkpointed = saved_values(ck_loss, X)
    # the plain tape keeps every intermediate of the 8 steps; the checkpointed one keeps the
    # input and output of the checkpoint and what the final sum of squares needs
    assert len(plain) >= 20
    assert sum(1 for name, _ in checkpointed if name == "checkpoint") == 2
    assert len(checkpointed) <= 4, checkpointed


def test_checkpoint_shows_its_recomputation_in_the_graph():
    g = ft.make_graph(ft.grad(ck_loss))(X).simplify()
    text = str(g)
    assert g.primitive_counts()["checkpoint"] >= 1
    # the backward pass runs the forward body again inside the nested graph
    assert text.count("= sin") >= 8 and "    graph=graph(" in text
    np.testing.assert_allclose(g(X), jax.grad(jax_loss)(X), rtol=1e-10)


def test_checkpoint_pytrees_closures_and_remat_alias():
    scale = 3.0

    @ft.remat
    def f(params, x, *, shift):
        return {"y": fnp.tanh(params["w"] * x + shift) * scale}

    params = {"w": np.float64(0.7)}
    out = f(params, X, shift=0.2)
    np.testing.assert_allclose(out["y"], np.tanh(0.7 * X + 0.2) * 3.0, rtol=1e-12)
    g = ft.grad(lambda p: fnp.sum(f(p, X, shift=0.2)["y"]))(params)
    expected = jax.grad(lambda p: jnp.sum(jnp.tanh(p["w"] * X + 0.2) * 3.0))(params)
    np.testing.assert_allclose(g["w"], expected["w"], rtol=1e-12)
    # a closure over a value of an outer transformation stays differentiable
    outer = ft.grad(lambda a: fnp.sum(ft.checkpoint(lambda x: fnp.sin(a * x))(X)))(0.5)
    np.testing.assert_allclose(outer, np.sum(np.cos(0.5 * X) * X), rtol=1e-12)
