"""Top-level eager transformations reuse the derivative program of a structure seen before.

The outermost transformation of a top-level call records the function once per call and
derives the transformed program once per structure (`functrans/_src/staged.py`). These tests
check the results against JAX in float64 on first and later calls, that nothing of one call
is baked into the program reused by the next (closed-over arrays, literals), and the paths
that run the function with values instead (Python control flow on traced values, printing,
custom rules, errors).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close
from functrans._src import lazy, staged


@pytest.fixture(autouse=True)
def lazy_mode(monkeypatch):
    monkeypatch.setattr(lazy, "enabled", True)
    monkeypatch.setattr(staged, "enabled", True)


@pytest.fixture
def stats():
    staged._unstaged.clear()
    staged.stats.clear()
    return staged.stats


def _mlp(np_, params, x):
    (w1, b1), (w2, b2) = params
    return np_.tanh(x @ w1 + b1) @ w2 + b2


def _params(rng):
    return [(rng.randn(3, 4), rng.randn(4)), (rng.randn(4, 1), rng.randn(1))]


def test_gradient_penalty_derived_once_then_reused(stats, rng):
    # A gradient inside the loss: both levels are recorded and their derivatives reused.
    def loss(np_, grad, params, x):
        g = grad(lambda x: np_.sum(_mlp(np_, params, x)))(x)
        return np_.mean((np_.sqrt(np_.sum(g * g, axis=1)) - 1.0) ** 2)

    f = ft.grad(lambda p, x: loss(fnp, ft.grad, p, x))
    f_jax = jax.grad(lambda p, x: loss(jnp, jax.grad, p, x))
    for step in range(3):
        params, x = _params(rng), rng.randn(5, 3)
        assert_close(f(params, x), f_jax(params, x))
        if step == 0:
            derived = stats["derived"]
            assert derived >= 2  # the outer and the inner gradient
    # Later calls look both levels up and derive nothing.
    assert stats["derived"] == derived and stats["reused"] == 4
    assert stats["unstaged"] == 0 and stats["replayed"] == 0


def test_closed_over_arrays_and_literals_are_never_baked_in(rng):
    w = rng.randn(3, 3)
    for scale in (1.0, 2.5):
        for w_now in (w, w + 1.0):
            f = ft.grad(lambda x: fnp.sum(fnp.sin(w_now @ x) * scale))
            f_jax = jax.grad(lambda x: jnp.sum(jnp.sin(w_now @ x) * scale))
            x = rng.randn(3)
            assert_close(f(x), f_jax(x))


def test_hvp_third_order_and_value_and_grad_with_aux(rng):
    def f(np_, x, w):
        return np_.sum(np_.tanh(w @ x) ** 3)

    w, x, v = rng.randn(4, 4), rng.randn(4), rng.randn(4)
    for _ in range(2):
        hvp = ft.jvp(lambda x: ft.grad(lambda x: f(fnp, x, w))(x), (x,), (v,))[1]
        hvp_jax = jax.jvp(lambda x: jax.grad(lambda x: f(jnp, x, w))(x), (x,), (v,))[1]
        assert_close(hvp, hvp_jax)
        d3 = ft.grad(ft.grad(ft.grad(lambda s: f(fnp, x * s, w))))(0.7)
        assert_close(d3, jax.grad(jax.grad(jax.grad(lambda s: f(jnp, x * s, w))))(0.7))

        def with_aux(np_, x):
            y = np_.sin(x)
            return np_.sum(y**2), {"y": y, "tag": "kept"}

        (val, aux), g = ft.value_and_grad(lambda x: with_aux(fnp, x), has_aux=True)(x)
        (val_j, aux_j), g_j = jax.value_and_grad(lambda x: with_aux(jnp, x), has_aux=True)(x)
        assert_close(val, val_j)
        assert_close(g, g_j)
        assert_close(aux["y"], aux_j["y"])
        assert aux["tag"] == "kept"


def test_vjp_function_called_later_with_several_cotangents(rng):
    x = rng.randn(3)
    out, f_vjp = ft.vjp(lambda x: fnp.sin(x) * fnp.exp(x), x)
    out_j, f_vjp_j = jax.vjp(lambda x: jnp.sin(x) * jnp.exp(x), x)
    assert_close(out, out_j)
    for ct in (np.ones(3), rng.randn(3)):
        assert_close(f_vjp(ct)[0], f_vjp_j(ct)[0])


def test_values_needed_inside_run_the_function_with_values(stats, capsys):
    calls = []

    def f(x):
        calls.append(1)
        if fnp.sum(x) > 0:  # a differentiated value asked for a Python bool
            return fnp.sum(fnp.sin(x))
        return fnp.sum(fnp.cos(x))

    for x in (jnp.array([1.0, 2.0]), jnp.array([-1.0, -2.0])):
        f_jax = jnp.sin if x.sum() > 0 else jnp.cos
        assert_close(ft.grad(f)(x), jax.grad(lambda x: jnp.sum(f_jax(x)))(x))
    assert stats["unstaged"] == 1  # once: the function is then run with values directly
    assert len(calls) == 3  # the aborted recording, then one run per call

    def printing(x):
        print("value", x)
        return fnp.sum(x**2)

    ft.grad(printing)(jnp.array([1.5, 2.0]))
    assert "1.5" in capsys.readouterr().out  # printed with its value, as in eager mode


def test_side_effects_run_once_per_call_when_staged(stats):
    calls = []

    def f(x):
        calls.append(1)
        return fnp.sum(fnp.tanh(x))

    g = ft.grad(f)
    for _ in range(3):
        g(jnp.ones(2))
    assert len(calls) == 3 and stats["unstaged"] == 0


def test_custom_rules_are_replayed_through_the_transformation(stats, rng):
    @ft.custom_jvp
    def softclip(x):
        return fnp.tanh(x)

    @softclip.defjvp
    def softclip_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softclip(x), 2.0 * t  # a deliberately different derivative

    x = rng.randn(3)
    assert_close(ft.grad(lambda x: fnp.sum(softclip(x)))(x), 2.0 * np.ones(3))
    assert stats["replayed"] == 1


def test_errors_match_the_unstaged_run(rng, monkeypatch):
    def bad(x):
        return fnp.sum(x @ fnp.ones((4, 2)))

    with pytest.raises(ValueError) as staged_error:
        ft.grad(bad)(rng.randn(3))
    monkeypatch.setattr(staged, "enabled", False)
    with pytest.raises(ValueError) as plain_error:
        ft.grad(bad)(rng.randn(3))
    assert str(staged_error.value) == str(plain_error.value)


def test_constant_output_integer_arguments_and_jit_are_unaffected(rng):
    labels = np.array([0, 2, 1])
    x = rng.randn(3, 3)

    def nll(np_, x, labels):
        logp = x - np_.log(np_.sum(np_.exp(x), axis=1, keepdims=True))
        return -np_.mean(logp[np.arange(3), labels])

    assert_close(ft.grad(lambda x, y: nll(fnp, x, y))(x, labels),
                 jax.grad(lambda x, y: nll(jnp, x, y))(x, labels))  # fmt: skip
    assert_close(ft.grad(lambda x: 3.0)(x), np.zeros_like(x))
    jitted = jax.jit(ft.grad(lambda x: fnp.sum(fnp.sin(x))))
    assert_close(jitted(x), jnp.cos(x))


def test_vmap_and_jacobians_at_top_level(stats, rng):
    w = rng.randn(3, 3)

    def f(np_, x):
        return np_.sin(w @ x) * np_.sum(x**2)

    xs = rng.randn(4, 3)
    for _ in range(2):
        assert_close(ft.vmap(lambda x: f(fnp, x))(xs), jax.vmap(lambda x: f(jnp, x))(xs))
        assert_close(ft.jacrev(lambda x: f(fnp, x))(xs[0]), jax.jacrev(lambda x: f(jnp, x))(xs[0]))
        assert_close(ft.vmap(ft.grad(lambda x: fnp.sum(f(fnp, x))))(xs),
                     jax.vmap(jax.grad(lambda x: jnp.sum(f(jnp, x))))(xs))  # fmt: skip
        per_example = ft.vmap(lambda x: f(fnp, x), in_axes=1, out_axes=1)(xs.T)
        assert_close(per_example, jax.vmap(lambda x: f(jnp, x), in_axes=1, out_axes=1)(xs.T))
    assert stats["derived"] and stats["reused"]


def test_a_rule_replaced_after_use_is_the_one_applied(monkeypatch, rng):
    # Derived programs applied the rules of their time: replacing a rule (`functrans.extend`,
    # a notebook redefining it) must never leave the old derivative in use.
    from functrans._src.prims import elementwise

    x = rng.randn(3)
    g = ft.grad(lambda x: fnp.sum(fnp.sin(x)))
    assert_close(g(x), np.cos(x))
    rule = elementwise.sin_p.vjp
    monkeypatch.setattr(elementwise.sin_p, "vjp", lambda needs, ct, *a, **k: tuple(
        None if c is None else 2.0 * c for c in rule(needs, ct, *a, **k)))  # fmt: skip
    assert_close(g(x), 2.0 * np.cos(x))


def test_jax_array_on_the_left_of_an_operator_is_recorded(stats, rng):
    # `w @ x` with `w` a JAX array asks `x` for `__jax_array__` first; a recorded value must
    # defer to its own `__rmatmul__` (as every transformation's tracer does), not fall back
    # to running the function with values.
    w = jnp.asarray(rng.randn(4, 4))

    def f(np_, x):
        return np_.sum(np_.tanh(w @ x) * (w - x) + w**x.size / (1.0 + w * x))

    x, v = rng.randn(4), rng.randn(4)
    for _ in range(2):
        hvp = ft.jvp(ft.grad(lambda x: f(fnp, x)), (x,), (v,))[1]
        assert_close(hvp, jax.jvp(jax.grad(lambda x: f(jnp, x)), (x,), (v,))[1])
    assert stats["unstaged"] == 0 and stats["reused"] >= 2


def test_derived_programs_made_inside_jax_jit_never_keep_its_tracers(rng):
    # Inside `jax.jit`, a transformation of closed-over *concrete* arrays still runs at top
    # level, and constants its rules make with `jax.numpy` (the zeros a gather's VJP
    # scatters into) are tracers of that jit. A derived program keeping one would hand a
    # dead tracer to every later call with the same structure.
    x = jnp.asarray(rng.randn(4))
    idx = np.array([0, 2, 2])

    def f(np_, x):
        return np_.sum(np_.sin(x[idx]) ** 2)

    want = jax.grad(lambda x: f(jnp, x))(x)
    hvp_want = jax.jvp(jax.grad(lambda x: f(jnp, x)), (x,), (x,))[1]
    assert_close(jax.jit(lambda: ft.grad(lambda x: f(fnp, x))(x))(), want)
    assert_close(jax.jit(lambda: ft.jvp(ft.grad(lambda x: f(fnp, x)), (x,), (x,))[1])(), hvp_want)
    for _ in range(2):
        assert_close(ft.grad(lambda x: f(fnp, x))(x), want)
        assert_close(ft.jvp(ft.grad(lambda x: f(fnp, x)), (x,), (x,))[1], hvp_want)


def test_max_derivative_survives_an_operand_rounded_differently_by_xla():
    # The eager fuzzing campaign (seed 100021): in the compiled eager program XLA computed
    # `stop_gradient(t) * t + 0.125` again inside another fusion, rounded differently, so
    # neither operand of `maximum` equalled its output and the derivative was silently 0.
    # The rule now compares the operands with each other.
    import fuzz
    import fuzz_programs

    program = fuzz_programs.Program(
        """def prog(np, nn, lax, x0):
    v0 = np.tanh(x0)
    v1 = lax.stop_gradient(v0) * v0
    v4 = np.maximum(0.0 * x0 + 0.3, v1 + 0.125)
    return [np.power(1.0 + v4 * v4, 0.7)]
""",
        ((3, 2),),
    )
    n, found = fuzz.check_program(program, 100021, only=("grad", "order2_rr"), eager=True)
    assert n == 6 and not found, "\n".join(map(str, found))


@pytest.mark.parametrize("name, better", [("max", 1.0), ("min", -1.0)])
def test_max_min_rules_do_not_compare_with_the_output(name, better):
    # An output one ulp off the winning operand (what a recomputation can give) must not
    # change the derivative: 1 for the winner, 0 for the loser, 1/2 each at a tie.
    from functrans._src.prims import elementwise as ew

    prim = getattr(ew, f"{name}_p")
    x = jnp.array([better, 0.5, 0.25])
    y = jnp.array([0.0, 0.5, 2.0 * better])
    out = np.nextafter(np.asarray(prim.impl(x, y)), np.inf)
    dx, dy = prim.vjp((True, True), jnp.ones(3), out, x, y)
    assert_close(dx, np.array([1.0, 0.5, 0.0]))
    assert_close(dy, np.array([0.0, 0.5, 1.0]))


@pytest.mark.parametrize("name, sign", [("max", 1.0), ("min", -1.0)])
def test_reduce_max_min_rules_need_no_entry_equal_to_the_output(name, sign):
    # An output one ulp off every entry (an operand computed again, rounded differently, in
    # the fusion that compares) changes nothing: the rule never compares with the output.
    # The weight goes, whole, to the extremum of each row, and ties share it as in JAX.
    from functrans._src.prims import reductions as red

    prim = getattr(red, f"reduce_{name}_p")
    x = sign * jnp.array([[1.0, 3.0, 2.0], [0.5, -1.0, 0.25], [2.0, 2.0, 1.0]])
    want = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    exact = np.asarray(prim.impl(x, axes=(1,)))
    for out in (exact, np.nextafter(exact, np.inf), np.nextafter(exact, -np.inf)):
        (dx,) = prim.vjp((True,), jnp.ones(3), out, x, axes=(1,))
        assert_close(dx, want)


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize(
    "row", [[2.0, 1.0, 2.0], [np.nan, 1.0, 2.0], [np.inf, 1.0, -np.inf], [-np.inf, -np.inf, 1.0]]
)
def test_reduce_max_min_ties_nan_and_infinities_as_in_jax(name, row):
    x = jnp.array([row, [0.5, -1.0, 0.25]])
    for axes in (None, 1, (0, 1)):
        want = jax.grad(lambda x: jnp.sum(getattr(jnp, name)(x, axis=axes)))(x)
        got = ft.grad(lambda x: fnp.sum(getattr(fnp, name)(x, axis=axes)))(x)
        assert_close(got, want)
        assert_close(jax.jit(ft.grad(lambda x: fnp.sum(getattr(fnp, name)(x, axis=axes))))(x), want)


def test_reduce_max_derivative_survives_an_operand_rounded_differently_by_xla():
    # XLA computed `stop_gradient(t) * t + 0.125` with one rounding (a contracted multiply-add)
    # inside the fusion of `reduce_max` and with two inside the fusion comparing the entries
    # with its output, so no entry of a row equalled its maximum and the row's derivative was
    # silently 0 (found by hand after the `maximum` case above). The rule now takes the
    # position from an `argmax` reduction unless the comparison finds a tie.
    import fuzz
    import fuzz_programs

    program = fuzz_programs.Program(
        """def prog(np, nn, lax, x0):
    v0 = np.tanh(x0)
    v1 = lax.stop_gradient(v0) * v0
    v4 = np.max(v1 + 0.125, axis=1)
    return [np.power(1.0 + v4 * v4, 0.7)]
""",
        ((3, 2),),
    )
    n, found = fuzz.check_program(program, 0, only=("grad", "order2_rr"), eager=True)
    assert n == 6 and not found, "\n".join(map(str, found))


def test_reduce_max_derivative_in_compiled_programs_on_many_inputs():
    # The case above on more inputs and shapes, with exact ties between computed values, eager
    # and under jax.jit, forward and reverse, against JAX's derivative computed op by op.
    def f(np_, lax, x):
        t = np_.tanh(x)
        return np_.sum(np_.max(lax.stop_gradient(t) * t + 0.125, axis=1) ** 2)

    def g(np_, lax, x):
        t = np_.tanh(x)
        return np_.sum(np_.min(lax.stop_gradient(t) * t - 0.5, axis=(0, 2)) ** 2)

    def h(np_, lax, x):
        # exact ties between computed values: each row of `u` repeated three times
        t = np_.tanh(x)
        u = np_.broadcast_to((lax.stop_gradient(t) * t + 0.125)[:, None, :], (7, 3, 5))
        return np_.sum(np_.max(u, axis=(1, 2)) ** 2)

    import functrans.lax as flax

    for fun, shape in ((f, (7, 5)), (g, (3, 4, 5)), (h, (7, 5))):
        ours = ft.grad(lambda x: fun(fnp, flax, x))
        ours_jit = jax.jit(ours)
        ours_fwd = jax.jit(ft.jacfwd(lambda x: fun(fnp, flax, x)))
        for seed in range(12):
            x = np.random.RandomState(seed).normal(size=shape)
            want = jax.grad(lambda x: fun(jnp, jax.lax, x))(x)
            assert_close(ours(x), want)
            assert_close(ours_jit(x), want)
            assert_close(ours_fwd(x), want)
        xs = np.random.RandomState(99).normal(size=(3, *shape))
        want = jax.vmap(jax.grad(lambda x: fun(jnp, jax.lax, x)))(xs)
        assert_close(ft.vmap(ours)(xs), want)
        assert_close(jax.jit(ft.vmap(ours))(xs), want)


def test_reduce_max_derivative_of_empty_arrays():
    # No entries to compare: an empty maximum still fails as in JAX, and reducing an axis of
    # an array with no rows gives an empty derivative.
    with pytest.raises(ValueError, match="zero-size array"):
        ft.grad(fnp.max)(jnp.zeros(0))
    x = jnp.zeros((0, 3))
    want = jax.grad(lambda x: jnp.sum(jnp.max(x, axis=1)))(x)
    assert_close(ft.grad(lambda x: fnp.sum(fnp.max(x, axis=1)))(x), want)
