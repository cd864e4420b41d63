"""`ft.lax.cond/switch/scan/fori_loop/while_loop` against the same programs in `jax.lax`.

Each program is written once against a namespace pair `(np, lax)`, run with
`(functrans.numpy, ft.lax)` and with `(jax.numpy, jax.lax)`, and every transformation of it is
compared in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp

FT = (fnp, ft.lax)
JX = (jnp, jax.lax)


# ---------------------------------------------------------------------------------------------
# Programs: vector in, scalar out, differentiable in reverse mode
# ---------------------------------------------------------------------------------------------


def p_cond(np_, lax, x):
    y = lax.cond(np_.sum(x) > 0, lambda v: np_.sin(v) * v, lambda v: v**3, x)
    return np_.sum(y)


def p_cond_false_branch(np_, lax, x):
    return p_cond(np_, lax, -x)


def p_cond_pytree_closure(np_, lax, x):
    w = x * 2.0

    def yes(a, b):
        return {"p": a * w, "q": np_.exp(b[0])}

    def no(a, b):
        return {"p": a + b, "q": np_.cos(w[1]) * b[1]}

    out = lax.cond(x[0] > 0, yes, no, x, np_.tanh(x))
    return np_.sum(out["p"] ** 2) + out["q"]


def p_switch(np_, lax, x):
    i = (np_.sum(x) > 1.0).astype(np.int32) + (x[0] > 0).astype(np.int32)
    branches = [lambda v: np_.sum(v**2), lambda v: np_.sum(np_.sin(v)) * v[1], np_.prod]
    return lax.switch(i, branches, x)


def p_switch_clamped(np_, lax, x):
    return lax.switch(7, [lambda v: np_.sum(v), lambda v: np_.sum(np_.exp(v) * v)], x)


def p_scan(np_, lax, x):
    def step(c, xi):
        c = np_.tanh(c * xi + np_.sin(c))
        return c, c * xi

    c, ys = lax.scan(step, 0.3, x)
    return c + np_.sum(ys**2)


def p_scan_consts_pytree_reverse(np_, lax, x):
    a = x[0]

    def step(carry, inp):
        h, s = carry
        h = np_.sin(h * a) + inp["u"] * s
        s = s * np_.cos(inp["v"])
        return (h, s), {"h": h, "hs": h * s}

    (h, s), ys = lax.scan(step, (x[1], 1.0), {"u": x, "v": x[::-1] * 0.5}, reverse=True)
    return h + s + np_.sum(ys["h"] * ys["hs"])


def p_scan_length(np_, lax, x):
    def step(c, _):
        return c * np_.cos(c) + x, None

    c, _ = lax.scan(step, x * 0.5, None, length=4)
    return np_.sum(c**2)


def p_fori(np_, lax, x):
    return lax.fori_loop(0, 4, lambda i, v: v * np_.cos(v) + i * x[1], x[0]) * x[2]


def p_nested(np_, lax, x):
    def step(c, xi):
        c = lax.cond(xi > 0, lambda c: np_.sin(c) * xi, lambda c: c * c, c)
        return c, c

    def inner(v):
        return lax.scan(step, v[0], v)[1]

    ys = lax.cond(x[1] > 0, inner, lambda v: v * 2.0, x)
    return np_.sum(ys * x)


REV_PROGRAMS = [
    p_cond,
    p_cond_false_branch,
    p_cond_pytree_closure,
    p_switch,
    p_switch_clamped,
    p_scan,
    p_scan_consts_pytree_reverse,
    p_scan_length,
    p_fori,
    p_nested,
]
IDS = [p.__name__ for p in REV_PROGRAMS]
X = np.array([0.7, -0.4, 1.1])


def _pair(prog):
    return (lambda x: prog(*FT, x)), (lambda x: prog(*JX, x))


def _close(a, b, tol=1e-9):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=tol, atol=tol), a, b)


@pytest.mark.parametrize("prog", REV_PROGRAMS, ids=IDS)
def test_value_grad_jvp(prog):
    f, g = _pair(prog)
    _close(f(X), g(X))
    _close(ft.grad(f)(X), jax.grad(g)(X))
    t = np.array([0.3, -1.0, 0.5])
    _close(ft.jvp(f, (X,), (t,)), jax.jvp(g, (X,), (t,)))


@pytest.mark.parametrize("prog", REV_PROGRAMS, ids=IDS)
@pytest.mark.parametrize(
    "mode",
    ["fwd_over_rev", "rev_over_rev", "fwd_over_fwd", "rev_over_fwd"],
)
def test_second_order(prog, mode):
    f, g = _pair(prog)
    outer = {"fwd": (ft.jacfwd, jax.jacfwd), "rev": (ft.jacrev, jax.jacrev)}
    inner = {"fwd": (ft.jacfwd, jax.jacfwd), "rev": (ft.grad, jax.grad)}
    o, i = mode.split("_over_")
    _close(outer[o][0](inner[i][0](f))(X), outer[o][1](inner[i][1](g))(X))


@pytest.mark.parametrize("prog", [p_scan, p_cond_pytree_closure, p_fori], ids=lambda p: p.__name__)
def test_third_order_and_hvp(prog):
    f, g = _pair(prog)
    v = np.array([1.0, 0.5, -0.25])
    third = ft.grad(lambda x: ft.hvp(f, (x,), (v,)) @ v)(X)
    ref = jax.grad(lambda x: jax.jvp(jax.grad(g), (x,), (v,))[1] @ v)(X)
    _close(third, ref)


@pytest.mark.parametrize("prog", REV_PROGRAMS, ids=IDS)
def test_vmap_of_grad_and_jit(prog):
    f, g = _pair(prog)
    xs = np.stack([X, -X, X * 0.5 + 0.3])
    _close(ft.vmap(ft.grad(f))(xs), jax.vmap(jax.grad(g))(xs))
    _close(jax.jit(ft.grad(f))(X), jax.grad(g)(X))


def test_ft_jit_and_graph_is_not_unrolled():
    def f(x, n):
        return ft.lax.scan(lambda c, _: (fnp.sin(c) * x, None), x, None, length=n)[0]

    small = ft.make_graph(ft.grad(lambda x: f(x, 3)))(0.5)
    large = ft.make_graph(ft.grad(lambda x: f(x, 300)))(0.5)
    assert small.num_equations == large.num_equations
    assert small.primitive_counts()["scan"] >= 2  # the forward and the backward scan
    text = str(large)
    assert "body=graph(" in text and "length=300" in text
    jf = ft.jit(ft.grad(lambda x: f(x, 5)))
    ref = jax.grad(
        lambda x: jax.lax.scan(lambda c, _: (jnp.sin(c) * x, None), x, None, length=5)[0]
    )
    _close(jf(0.5), ref(0.5))
    _close(jf(0.7), ref(0.7))
    assert jf.trace_count == 1


def test_cond_graph_prints_branches():
    g = ft.make_graph(lambda x: ft.lax.cond(x > 0, fnp.sin, fnp.cos, x))(1.0)
    text = str(g)
    assert "branch0=graph(" in text and "branch1=graph(" in text
    assert g.primitive_counts()["cond"] == 1


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


def _vm(f_ft, f_jx, *args, in_axes=0):
    _close(ft.vmap(f_ft, in_axes=in_axes)(*args), jax.vmap(f_jx, in_axes=in_axes)(*args))


def test_vmap_cond_batched_predicate_and_operands():
    def prog(np_, lax, p, x):
        return lax.cond(p > 0, lambda v: np_.sin(v) * p, lambda v: v * v, x)

    ps, xs = np.array([1.0, -1.0, 2.0]), np.arange(6.0).reshape(3, 2)
    _vm(lambda p, x: prog(*FT, p, x), lambda p, x: prog(*JX, p, x), ps, xs)
    _vm(lambda p, x: prog(*FT, p, x), lambda p, x: prog(*JX, p, x), ps, xs[0], in_axes=(0, None))
    _vm(lambda p, x: prog(*FT, p, x), lambda p, x: prog(*JX, p, x), 1.0, xs, in_axes=(None, 0))
    _vm(lambda p, x: prog(*FT, p, x), lambda p, x: prog(*JX, p, x), 2.0, xs, in_axes=(None, 1))


def test_vmap_switch_batched_index():
    def prog(np_, lax, i, x):
        return lax.switch(i, [np_.sin, np_.cos, lambda v: v * 3.0], x)

    _vm(lambda i, x: prog(*FT, i, x), lambda i, x: prog(*JX, i, x), np.array([0, 2, 1, 5]),
        np.linspace(0.1, 0.9, 4))  # fmt: skip


def test_vmap_scan_every_operand():
    def prog(np_, lax, w, h0, xs):
        def step(h, x):
            h = np_.tanh(h * w + x)
            return h, h * 2.0

        return lax.scan(step, h0, xs)

    w, h0, xs = np.array([0.5, -0.3]), np.array([0.1, 0.2]), np.arange(8.0).reshape(2, 4) / 8
    f = lambda *a: prog(*FT, *a)
    g = lambda *a: prog(*JX, *a)
    _vm(f, g, w, h0, xs)
    _vm(f, g, w, 0.1, xs[0], in_axes=(0, None, None))  # only a constant is batched
    _vm(f, g, 0.5, h0, xs[0], in_axes=(None, 0, None))  # only the carry
    _vm(f, g, 0.5, 0.1, xs, in_axes=(None, None, 0))  # only the scanned input
    _vm(f, g, 0.5, 0.1, xs.T, in_axes=(None, None, 1))


def test_vmap_while_batched_predicate():
    def prog(np_, lax, x):
        return lax.while_loop(lambda v: v[0] < 10.0, lambda v: (v[0] * 1.7 + 0.1, v[1] + 1), (x, 0))

    _vm(lambda x: prog(*FT, x), lambda x: prog(*JX, x), np.array([0.5, 3.0, 12.0]))


def test_vmap_fori_with_traced_bounds_is_a_while():
    def prog(np_, lax, n, x):
        return lax.fori_loop(0, n, lambda i, v: v * 1.5 + i, x)

    _vm(lambda n, x: prog(*FT, n, x), lambda n, x: prog(*JX, n, x), np.array([1, 3, 0]),
        np.array([1.0, 2.0, 3.0]))  # fmt: skip


# ---------------------------------------------------------------------------------------------
# while_loop: forward mode only
# ---------------------------------------------------------------------------------------------


def p_while(np_, lax, x):
    def body(c):
        v, k = c
        return v * np_.cos(v) * 0.9 + x[1] * 0.1, k + 1

    v, _ = lax.while_loop(lambda c: c[1] < 5, body, (x[0], 0))
    return v * x[2]


def test_while_forward_modes():
    f, g = _pair(p_while)
    _close(f(X), g(X))
    t = np.array([0.3, -1.0, 0.5])
    _close(ft.jvp(f, (X,), (t,)), jax.jvp(g, (X,), (t,)))
    _close(ft.jacfwd(f)(X), jax.jacfwd(g)(X))
    _close(ft.jacfwd(ft.jacfwd(f))(X), jax.jacfwd(jax.jacfwd(g))(X))
    _close(jax.jit(ft.jacfwd(f))(X), jax.jacfwd(g)(X))


def test_while_reverse_mode_raises_naming_scan():
    f, _ = _pair(p_while)
    with pytest.raises(ValueError, match="ft.lax.scan.*fori_loop"):
        ft.grad(f)(X)
    dyn = lambda x, n: ft.lax.fori_loop(0, n, lambda i, v: v * x, 1.0)
    with pytest.raises(ValueError, match="Reverse-mode"):
        jax.jit(ft.grad(dyn), static_argnums=())(2.0, 3)


# ---------------------------------------------------------------------------------------------
# Closures, nesting, Taylor mode
# ---------------------------------------------------------------------------------------------


def test_no_perturbation_confusion_through_scan_closures():
    def ft_f(x):
        def inner(y):
            return ft.lax.scan(lambda c, _: (c * x * y + fnp.sin(c), None), 1.0, None, length=3)[0]

        return ft.grad(inner)(0.5) * x

    def jx_f(x):
        def inner(y):
            return jax.lax.scan(lambda c, _: (c * x * y + jnp.sin(c), None), 1.0, None, length=3)[0]

        return jax.grad(inner)(0.5) * x

    _close(ft.grad(ft_f)(1.3), jax.grad(jx_f)(1.3))
    _close(ft.grad(ft.grad(ft_f))(1.3), jax.grad(jax.grad(jx_f))(1.3))


@pytest.mark.parametrize(
    "prog",
    [
        lambda np_, lax, x: lax.cond(x > 0.2, np_.sin, lambda v: np_.exp(v) * v, x),
        lambda np_, lax, x: lax.scan(lambda c, _: (np_.sin(c) * x + c, None), x, None, length=3)[0],
        lambda np_, lax, x: lax.fori_loop(0, 3, lambda i, v: np_.tanh(v) * x, x),
        lambda np_, lax, x: lax.while_loop(lambda c: c[1] < 3, lambda c: (np_.sin(c[0]) * x, c[1] + 1),
                                           (x, 0))[0],
    ],
    ids=["cond", "scan", "fori", "while"],
)  # fmt: skip
def test_taylor_mode_through_control_flow(prog):
    f = lambda x: prog(*FT, x)
    g = lambda x: prog(*JX, x)
    ds = ft.derivatives(f, 4)(0.6)
    ref, d = [], g
    for _ in range(5):
        ref.append(d(0.6))
        d = jax.jacfwd(d)  # forward mode: JAX cannot reverse through while_loop
    _close(ds, ref, tol=1e-8)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_errors():
    with pytest.raises(TypeError, match="scalar predicate"):
        ft.lax.cond(fnp.ones(2) > 0, fnp.sin, fnp.cos, 1.0)
    with pytest.raises(TypeError, match="boolean or integer"):
        ft.lax.cond(1.5, fnp.sin, fnp.cos, 1.0)
    with pytest.raises(TypeError, match="same structure, shapes and dtypes"):
        ft.lax.cond(True, lambda x: x, lambda x: fnp.stack([x, x]), 1.0)
    with pytest.raises(TypeError, match="same tree structure"):
        ft.lax.cond(True, lambda x: (x, x), lambda x: [x, x], 1.0)
    with pytest.raises(TypeError, match="carry leaf 0"):
        ft.lax.scan(lambda c, x: (fnp.stack([c, c]), None), 1.0, fnp.ones(3))
    with pytest.raises(TypeError, match="structure of `init`"):
        ft.lax.scan(lambda c, x: ((c, c), None), 1.0, fnp.ones(3))
    with pytest.raises(ValueError, match="one scan length"):
        ft.lax.scan(lambda c, x: (c, None), 1.0, (fnp.ones(3), fnp.ones(4)))
    with pytest.raises(TypeError, match="scalar boolean"):
        ft.lax.while_loop(lambda v: v, lambda v: v, 1.0)
    with pytest.raises(TypeError, match="non-empty sequence of functions"):
        ft.lax.switch(0, [], 1.0)


def test_closure_work_of_an_outer_transformation_stays_outside_the_branch_graph():
    # `cos(w[1])` depends only on the outer `grad`'s value: its primal must be computed by
    # that transformation, not recorded into the branch graph (where it would leak).
    def f(x):
        w = x * 2.0
        return ft.lax.cond(x[0] > 0, lambda a: a * w, lambda a: a * fnp.cos(w[1]), x).sum()

    def g(x):
        w = x * 2.0
        return jax.lax.cond(x[0] > 0, lambda a: a * w, lambda a: a * jnp.cos(w[1]), x).sum()

    for x in (X, -X):
        _close(ft.grad(f)(x), jax.grad(g)(x))
        _close(ft.make_graph(ft.grad(f))(x)(x), jax.grad(g)(x))
