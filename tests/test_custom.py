"""`ft.custom_jvp` and `ft.custom_vjp` against `jax.custom_jvp` / `jax.custom_vjp` (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close


def _sin_times(np_, custom):
    @custom
    def f(x, y):
        return np_.sin(x) * y

    @f.defjvp
    def f_jvp(primals, tangents):
        x, y = primals
        x_dot, y_dot = tangents
        primal_out = f(x, y)
        tangent_out = np_.cos(x) * x_dot * y + np_.sin(x) * y_dot
        return primal_out, tangent_out

    return f


F_FT = _sin_times(fnp, ft.custom_jvp)
F_JAX = _sin_times(jnp, jax.custom_jvp)


def _log1pexp(np_, custom):
    @custom
    def log1pexp(x):
        return np_.log(1.0 + np_.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        ans = log1pexp(x)
        return ans, x_dot * (1 - 1 / (1 + np_.exp(x)))

    return log1pexp


L_FT = _log1pexp(fnp, ft.custom_jvp)
L_JAX = _log1pexp(jnp, jax.custom_jvp)


def _clip_gradient(np_, custom):
    @custom
    def clip_gradient(lo, hi, x):
        return x

    def fwd(lo, hi, x):
        return x, (lo, hi)

    def bwd(res, g):
        lo, hi = res
        return (None, None, np_.clip(g, lo, hi))

    clip_gradient.defvjp(fwd, bwd)
    return clip_gradient


C_FT = _clip_gradient(fnp, ft.custom_vjp)
C_JAX = _clip_gradient(jnp, jax.custom_vjp)


def test_custom_jvp_values_jvp_grad():
    x, y = 0.7, 1.9
    assert_close(F_FT(x, y), F_JAX(x, y))
    assert_close(ft.jvp(F_FT, (x, y), (1.0, 0.5)), jax.jvp(F_JAX, (x, y), (1.0, 0.5)))
    assert_close(ft.grad(F_FT, argnums=(0, 1))(x, y), jax.grad(F_JAX, argnums=(0, 1))(x, y))


def test_log1pexp_stable_rule():
    g = ft.grad(L_FT)(100.0)
    assert_close(g, jax.grad(L_JAX)(100.0))
    assert float(g) == 1.0
    assert float(ft.jvp(L_FT, (100.0,), (1.0,))[1]) == 1.0
    assert float(ft.jit(ft.grad(L_FT))(100.0)) == 1.0


@pytest.mark.parametrize("x", [-1.3, 0.4, 3.0])
def test_second_order_through_custom_jvp_rule(x):
    assert_close(ft.grad(ft.grad(L_FT))(x), jax.grad(jax.grad(L_JAX))(x))
    assert_close(ft.grad(ft.grad(ft.grad(L_FT)))(x), jax.grad(jax.grad(jax.grad(L_JAX)))(x))
    assert_close(ft.jvp(ft.grad(L_FT), (x,), (1.0,)), jax.jvp(jax.grad(L_JAX), (x,), (1.0,)))
    assert_close(ft.hessian(F_FT)(x, 2.0), jax.hessian(F_JAX)(x, 2.0))
    assert_close(
        ft.hessian(F_FT, argnums=(0, 1))(x, 2.0), jax.hessian(F_JAX, argnums=(0, 1))(x, 2.0)
    )


def test_rule_is_what_gets_differentiated():
    # A deliberately "wrong" rule shows that the rule, not the function, is differentiated.
    def make(np_, custom):
        @custom
        def f(x):
            return np_.sin(x)

        @f.defjvp
        def f_jvp(p, t):
            return f(p[0]), 3.0 * p[0] ** 2 * t[0]

        return f

    f_ft, f_jax = make(fnp, ft.custom_jvp), make(jnp, jax.custom_jvp)
    for fun_ft, fun_jax in [(ft.grad, jax.grad), (ft.jacfwd, jax.jacfwd)]:
        assert_close(fun_ft(f_ft)(1.5), fun_jax(f_jax)(1.5))
    assert_close(ft.grad(ft.grad(f_ft))(1.5), jax.grad(jax.grad(f_jax))(1.5))


def test_vmap_of_custom_jvp(rng):
    x = rng.randn(5)
    y = rng.randn(5)
    assert_close(ft.vmap(F_FT)(x, y), jax.vmap(F_JAX)(x, y))
    assert_close(
        ft.vmap(F_FT, in_axes=(0, None))(x, 2.0), jax.vmap(F_JAX, in_axes=(0, None))(x, 2.0)
    )
    xs = np.array([1.0, 50.0, 100.0])
    assert_close(ft.vmap(ft.grad(L_FT))(xs), jax.vmap(jax.grad(L_JAX))(xs))
    g_ft = ft.grad(lambda v: ft.vmap(L_FT)(v).sum())(xs)
    assert_close(g_ft, jax.grad(lambda v: jax.vmap(L_JAX)(v).sum())(xs))
    assert_close(
        ft.grad(lambda a, b: ft.vmap(F_FT, in_axes=(0, None))(a, b).sum(), argnums=(0, 1))(x, 0.3),
        jax.grad(lambda a, b: jax.vmap(F_JAX, in_axes=(0, None))(a, b).sum(), argnums=(0, 1))(
            x, 0.3
        ),
    )
    assert_close(
        ft.vmap(ft.vmap(F_FT))(x[None], y[None]), jax.vmap(jax.vmap(F_JAX))(x[None], y[None])
    )


def test_custom_jvp_pytrees_and_nondiff_argnums():
    def make(np_, custom):
        @functools_partial(custom, nondiff_argnums=(0,))
        def app(f, x):
            return f(x["a"]) * x["b"]

        @app.defjvp
        def app_jvp(f, primals, tangents):
            (x,), (t,) = primals, tangents
            out = app(f, x)
            return out, 2.0 * (t["a"] * x["b"] + f(x["a"]) * t["b"])

        return app

    a_ft, a_jax = make(fnp, ft.custom_jvp), make(jnp, jax.custom_jvp)
    x = {"a": 0.3, "b": 1.7}
    assert_close(a_ft(fnp.sin, x), a_jax(jnp.sin, x))
    assert_close(ft.grad(a_ft, argnums=1)(fnp.sin, x), jax.grad(a_jax, argnums=1)(jnp.sin, x))
    assert_close(
        ft.jvp(lambda v: a_ft(fnp.sin, v), (x,), (x,)),
        jax.jvp(lambda v: a_jax(jnp.sin, v), (x,), (x,)),
    )


def functools_partial(custom, **kw):
    return lambda fun: custom(fun, **kw)


def test_defjvps():
    def make(np_, custom):
        @custom
        def f(x, y):
            return np_.sin(x) * y

        f.defjvps(
            lambda x_dot, primal_out, x, y: np_.cos(x) * x_dot * y,
            lambda y_dot, primal_out, x, y: np_.sin(x) * y_dot,
        )
        return f

    f_ft, f_jax = make(fnp, ft.custom_jvp), make(jnp, jax.custom_jvp)
    x, y = 0.8, -1.1
    assert_close(ft.jvp(f_ft, (x, y), (0.3, 2.0)), jax.jvp(f_jax, (x, y), (0.3, 2.0)))
    assert_close(ft.grad(f_ft, argnums=(0, 1))(x, y), jax.grad(f_jax, argnums=(0, 1))(x, y))
    assert_close(ft.grad(ft.grad(f_ft))(x, y), jax.grad(jax.grad(f_jax))(x, y))


def test_custom_vjp_clip_gradient_and_none_cotangents():
    def loss(c):
        return lambda x: 5.0 * c(-1.0, 1.0, x) ** 2

    for x in [-2.0, 0.05, 3.0]:
        assert_close(ft.grad(loss(C_FT))(x), jax.grad(loss(C_JAX))(x))
    assert_close(C_FT(-1.0, 1.0, 2.0), C_JAX(-1.0, 1.0, 2.0))
    g_ft = ft.grad(lambda lo, x: C_FT(lo, 1.0, x), argnums=(0, 1))(-1.0, 2.0)
    g_jax = jax.grad(lambda lo, x: C_JAX(lo, 1.0, x), argnums=(0, 1))(-1.0, 2.0)
    assert_close(g_ft, g_jax)


def test_custom_vjp_jax_docs_f_and_nondiff_argnums():
    def make(np_, custom):
        @custom
        def f(x, y):
            return np_.sin(x) * y

        def f_fwd(x, y):
            return f(x, y), (np_.cos(x), np_.sin(x), y)

        def f_bwd(res, g):
            cos_x, sin_x, y = res
            return (cos_x * g * y, sin_x * g)

        f.defvjp(f_fwd, f_bwd)

        @functools_partial(custom, nondiff_argnums=(0,))
        def app(f, x):
            return f(x)

        app.defvjp(lambda f, x: (f(x), x), lambda f, x, g: (g * f(x),))
        return f, app

    (f_ft, app_ft), (f_jax, app_jax) = make(fnp, ft.custom_vjp), make(jnp, jax.custom_vjp)
    x, y = 0.6, 1.4
    assert_close(ft.grad(f_ft, argnums=(0, 1))(x, y), jax.grad(f_jax, argnums=(0, 1))(x, y))
    assert_close(ft.grad(ft.grad(f_ft))(x, y), jax.grad(jax.grad(f_jax))(x, y))
    assert_close(
        ft.grad(lambda v: app_ft(fnp.sin, v))(x), jax.grad(lambda v: app_jax(jnp.sin, v))(x)
    )
    xs = np.array([0.1, 0.5, 2.0])
    assert_close(ft.vmap(ft.grad(f_ft))(xs, xs), jax.vmap(jax.grad(f_jax))(xs, xs))
    assert_close(
        ft.grad(lambda v: ft.vmap(f_ft, in_axes=(0, None))(v, y).sum(), argnums=0)(xs),
        jax.grad(lambda v: jax.vmap(f_jax, in_axes=(0, None))(v, y).sum(), argnums=0)(xs),
    )
    assert_close(
        ft.grad(lambda b: ft.vmap(f_ft, in_axes=(0, None))(xs, b).sum())(y),
        jax.grad(lambda b: jax.vmap(f_jax, in_axes=(0, None))(xs, b).sum())(y),
    )
    assert_close(ft.jit(ft.grad(f_ft))(x, y), jax.grad(f_jax)(x, y))


def test_custom_vjp_bwd_none_for_pytree_arg_and_unused_output():
    def make(np_, custom):
        @custom
        def f(p, x):
            return x * p["w"], np_.sum(x)

        def fwd(p, x):
            return f(p, x), (p["w"], x)

        def bwd(res, g):
            w, x = res
            g0, _ = g
            return {"w": np_.sum(g0 * x), "b": None}, g0 * w

        f.defvjp(fwd, bwd)
        return f

    f_ft, f_jax = make(fnp, ft.custom_vjp), make(jnp, jax.custom_vjp)
    p = {"w": 1.5, "b": 0.2}
    x = np.array([1.0, 2.0])
    assert_close(
        ft.grad(lambda p, x: f_ft(p, x)[0].sum(), argnums=(0, 1))(p, x),
        jax.grad(lambda p, x: f_jax(p, x)[0].sum(), argnums=(0, 1))(p, x),
    )


def test_forward_mode_through_custom_vjp_raises():
    msg = r"can't apply forward-mode autodiff \(jvp\) to a custom_vjp function."
    with pytest.raises(TypeError, match=msg):
        jax.jvp(lambda x: C_JAX(-1.0, 1.0, x), (1.0,), (1.0,))
    with pytest.raises(TypeError, match=msg):
        ft.jvp(lambda x: C_FT(-1.0, 1.0, x), (1.0,), (1.0,))
    with pytest.raises(TypeError, match=msg):
        ft.jacfwd(lambda x: C_FT(-1.0, 1.0, x))(1.0)


def test_make_graph_and_jet_through_custom_jvp():
    g = ft.make_graph(ft.grad(L_FT))(1.0)
    assert "custom_jvp_call" in str(g)
    assert_close(g(100.0), jax.grad(L_JAX)(100.0))
    y, (d1, d2) = ft.jet(L_FT, (0.5,), ((1.0, 0.0),))
    assert_close(d1, jax.grad(L_JAX)(0.5), check_dtype=False)
    assert_close(d2, jax.grad(jax.grad(L_JAX))(0.5), check_dtype=False)


def test_missing_rule_errors():
    f = ft.custom_jvp(lambda x: x)
    with pytest.raises(AttributeError, match="No JVP defined"):
        f(1.0)
    g = ft.custom_vjp(lambda x: x)
    with pytest.raises(AttributeError, match="No VJP defined"):
        g(1.0)


@pytest.mark.parametrize("kind", ["custom_jvp", "custom_vjp"])
def test_closure_over_outer_value_in_a_rule_raises_clearly(kind):
    # Not supported yet: the rule runs after the outer `grad` has ended. It must raise, with
    # a message that says why and what to do, never give a wrong number.
    def outer(a):
        if kind == "custom_jvp":

            @ft.custom_jvp
            def f(x):
                return fnp.sin(a * x)

            @f.defjvp
            def f_jvp(primals, tangents):
                (x,), (t,) = primals, tangents
                return f(x), a * fnp.cos(a * x) * t

        else:

            @ft.custom_vjp
            def f(x):
                return fnp.sin(a * x)

            f.defvjp(lambda x: (f(x), x), lambda x, g: (a * fnp.cos(a * x) * g,))
        return f(2.0 * a)

    with pytest.raises(RuntimeError, match="explicit argument"):
        ft.grad(outer)(0.5)
