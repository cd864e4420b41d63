"""Products with JAX's keywords: `precision` and `preferred_element_type` kept by every
derivative, einsum's '...' and broadcasting, `vdot` of complex operands.

Values and derivatives of the same products are also checked in `test_primitives.py`
(`einsum_ellipsis`, `dot_precision`, ...); here: what reaches XLA, dtypes and errors.
"""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as onp
import pytest

import functrans as ft
import functrans.numpy as fnp

HIGHEST = (jax.lax.Precision.HIGHEST, jax.lax.Precision.HIGHEST)


def _dots(fun, *args):
    """The `precision` and `preferred_element_type` of every `dot_general` JAX would run."""
    jaxpr = jax.make_jaxpr(fun)(*args)
    found = []

    def walk(jp):
        for eqn in jp.eqns:
            if eqn.primitive.name == "dot_general":
                pet = eqn.params.get("preferred_element_type")
                found.append((eqn.params.get("precision"), None if pet is None else onp.dtype(pet)))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    return found


def _mlp(np, w1, w2, x):
    h = np.tanh(np.matmul(x, w1, precision="highest"))
    return np.sum(np.einsum("bi,ij->bj", h, w2, precision="highest") ** 2)


@pytest.mark.parametrize(
    "transform, batched",
    [
        (lambda f: ft.grad(f, argnums=(0, 1)), False),
        (lambda f: ft.hessian(f), False),
        (lambda f: ft.jacfwd(ft.grad(f)), False),
        (lambda f: ft.vmap(ft.grad(f), in_axes=(None, None, 0)), True),
    ],
    ids=["grad", "hessian", "jacfwd_grad", "vmap_grad"],
)
def test_every_derivative_keeps_the_precision(transform, batched):
    rng = onp.random.RandomState(0)
    w1, w2 = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    x = rng.normal(size=(2, 5, 3) if batched else (5, 3))
    dots = _dots(transform(lambda w1, w2, x: _mlp(fnp, w1, w2, x)), w1, w2, x)
    assert len(dots) >= 4
    assert all(p == HIGHEST for p, _ in dots), dots


def test_the_precision_reaches_xla_as_in_jax():
    rng = onp.random.RandomState(1)
    w1, w2, x = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(5, 3))
    ours = jax.jit(ft.grad(lambda w1: _mlp(fnp, w1, w2, x)))
    theirs = jax.jit(jax.grad(lambda w1: _mlp(jnp, w1, w2, x)))
    onp.testing.assert_allclose(ours(w1), theirs(w1), rtol=1e-12)
    assert {p for p, _ in _dots(ours, w1)} == {p for p, _ in _dots(theirs, w1)} == {HIGHEST}


def test_taylor_mode_keeps_the_precision():
    w = onp.random.RandomState(2).normal(size=(3, 3))
    f = lambda x: fnp.sum(fnp.sin(fnp.dot(w, x, precision="highest")))
    x, t = onp.ones(3), onp.arange(3.0)
    dots = _dots(lambda x, t: ft.jet(f, (x,), ((t, t),)), x, t)
    assert dots and all(p == HIGHEST for p, _ in dots)


def test_preferred_element_type_as_in_jax():
    rng = onp.random.RandomState(3)
    a = jnp.asarray(rng.normal(size=(4, 8)), jnp.bfloat16)
    b = jnp.asarray(rng.normal(size=(8, 3)), jnp.bfloat16)

    def f(np):
        return lambda a, b: np.sum(np.tanh(np.matmul(a, b, preferred_element_type=np.float32)))

    out = fnp.matmul(a, b, preferred_element_type=jnp.float32)
    want = jnp.matmul(a, b, preferred_element_type=jnp.float32)
    assert out.dtype == want.dtype == jnp.float32
    onp.testing.assert_allclose(out, want, rtol=1e-6)
    got = ft.grad(f(fnp), argnums=(0, 1))(a, b)
    ref = jax.grad(f(jnp), argnums=(0, 1))(a, b)
    for g, r in zip(got, ref):
        assert g.dtype == r.dtype == jnp.bfloat16
        onp.testing.assert_allclose(onp.float32(g), onp.float32(r), rtol=1e-2, atol=1e-2)
    # the products of the derivative accumulate in float32 too, as JAX's do
    dots = _dots(ft.grad(f(fnp), argnums=(0, 1)), a, b)
    assert {pet for _, pet in dots} == {onp.dtype(jnp.float32)}


def test_int8_products_accumulate_in_the_preferred_type():
    a = jnp.full((2, 64), 100, jnp.int8)
    out = fnp.dot(a, a.T, preferred_element_type=jnp.int32)
    assert out.dtype == jnp.int32
    onp.testing.assert_array_equal(out, jnp.dot(a, a.T, preferred_element_type=jnp.int32))


def test_from_jax_keeps_precision_and_accumulation():
    rng = onp.random.RandomState(4)
    a = jnp.asarray(rng.normal(size=(4, 8)), jnp.bfloat16)
    w = rng.normal(size=(3, 3))

    def g(x):
        return jnp.sum(jnp.sin(jnp.dot(w, x, precision=jax.lax.Precision.HIGHEST)))

    dots = _dots(ft.grad(ft.from_jax(g)), onp.ones(3))
    assert dots and all(p == HIGHEST for p, _ in dots)
    prod = ft.from_jax(lambda a: jnp.matmul(a, a.T, preferred_element_type=jnp.float32))
    assert prod(a).dtype == jnp.float32
    onp.testing.assert_allclose(prod(a), jnp.matmul(a, a.T, preferred_element_type=jnp.float32))


def test_vdot_conjugates_its_first_operand():
    rng = onp.random.RandomState(5)
    a = rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))
    b = rng.normal(size=6) + 1j * rng.normal(size=6)
    onp.testing.assert_allclose(fnp.vdot(a, b), jnp.vdot(a, b), rtol=1e-12)
    ta = rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))
    got = ft.jvp(lambda a: fnp.vdot(a, b), (a,), (ta,))
    want = jax.jvp(lambda a: jnp.vdot(a, b), (a,), (ta,))
    onp.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    ct = 0.3 - 2.0j
    got = ft.vjp(lambda a: fnp.vdot(a, b), a)[1](ct)[0]
    want = jax.vjp(lambda a: jnp.vdot(a, b), a)[1](ct)[0]
    onp.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    "spec, shapes, match",
    [
        ("i.j", [(2, 3)], "invalid subscript"),
        ("......", [(2, 3)], "invalid subscript"),
        ("ij,ij->ij", [(2, 3), (3, 3)], "index 'i' has sizes 2 and 3"),
        ("ijk...", [(2, 3)], "more letters than its operand"),
        ("ij->k", [(2, 3)], "output index 'k'"),
        ("ij,jk", [(2, 3)], "2 subscripts for 1 operands"),
    ],
)
def test_einsum_errors_name_the_problem(spec, shapes, match):
    with pytest.raises(ValueError, match=match):
        fnp.einsum(spec, *[onp.ones(s) for s in shapes])


def test_einsum_accepts_jax_keywords():
    x = onp.arange(6.0).reshape(2, 3)
    out = fnp.einsum("ij,kj->ik", x, x, optimize="greedy", precision="highest")
    onp.testing.assert_allclose(out, jnp.einsum("ij,kj->ik", x, x))
    one = fnp.einsum("ij->j", x.astype(onp.float32), preferred_element_type=jnp.float64)
    assert (
        one.dtype
        == jnp.einsum("ij->j", x.astype(onp.float32), preferred_element_type=jnp.float64).dtype
    )


def test_unknown_precision_is_named():
    with pytest.raises(ValueError, match="Unknown precision 'hihgest'"):
        fnp.dot(onp.ones(2), onp.ones(2), precision="hihgest")
    with pytest.raises(ValueError, match="one value or a pair"):
        fnp.dot(onp.ones(2), onp.ones(2), precision=("high", "high", "high"))


def test_the_usual_product_has_no_new_parameters():
    g = ft.make_graph(lambda a, b: fnp.matmul(a, b))(onp.ones((2, 3)), onp.ones((3, 2)))
    (eqn,) = [e for e in g.eqns if e.prim.name == "dot_general"]
    assert set(eqn.params) == {"dimension_numbers"}


def test_products_with_a_precision_are_compiled_whole_in_eager_mode():
    # The eager recorders key a recording by its parameters; one they cannot key runs the
    # recording operation by operation (slow). Precisions and dtypes are keyed.
    from functrans._src.lazy import _param_key

    key = _param_key({"precision": HIGHEST, "preferred_element_type": onp.dtype("float32")})
    assert key == _param_key({"precision": HIGHEST, "preferred_element_type": onp.dtype("float32")})
    assert key != _param_key({"precision": (HIGHEST[0], jax.lax.Precision.DEFAULT)})
