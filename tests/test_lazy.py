"""Top-level (eager) transformations run as one cached compiled program.

Each test compares against JAX and checks the mechanism: values for Python control flow and
printing, a cache that reuses a program only for an identical recording, and a fallback for
recordings that cannot be keyed exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.nn as fnn
import functrans.numpy as fnp
from conftest import assert_close
from functrans._src import lazy


@pytest.fixture(autouse=True)
def lazy_mode(monkeypatch):
    monkeypatch.setattr(lazy, "enabled", True)


@pytest.fixture
def stats():
    lazy.clear_cache()
    lazy.stats.clear()
    return lazy.stats


def test_grad_is_compiled_once_and_reused(stats, rng):
    x = jnp.asarray(rng.randn(3))
    g = ft.grad(lambda x: fnp.sum(fnp.tanh(x) ** 2))
    expected = jax.grad(lambda x: jnp.sum(jnp.tanh(x) ** 2))(x)
    assert_close(g(x), expected)
    assert_close(g(x + 1.0), jax.grad(lambda x: jnp.sum(jnp.tanh(x) ** 2))(x + 1.0))
    assert type(g(x)) is type(expected)
    assert stats["compiles"] == 1 and stats["hits"] == 2


def test_python_control_flow_sees_values(stats):
    def f(x):
        s = fnp.sum(x)
        if s > 0:  # a non-differentiated value: concrete, as in eager mode
            return fnp.sum(fnp.sin(x))
        return fnp.sum(fnp.cos(x))

    def f_jax(x):
        return jnp.sum(jnp.sin(x)) if jnp.sum(x) > 0 else jnp.sum(jnp.cos(x))

    for x in (jnp.array([1.0, 2.0]), jnp.array([-1.0, -2.0])):
        assert_close(ft.grad(lambda x: f(ft.stop_gradient(x)) + fnp.sum(x * f(x)))(x),
                     jax.grad(lambda x: f_jax(jax.lax.stop_gradient(x)) + jnp.sum(x * f_jax(x)))(x))  # fmt: skip


def test_printing_and_numpy_see_values(capsys):
    def f(x, data):
        print(fnp.sum(data * 2.0))
        np.testing.assert_allclose(np.asarray(data + 1.0), [2.0, 3.0])
        return fnp.sum(x * data)

    ft.grad(f)(jnp.array([1.0, 1.0]), jnp.array([1.0, 2.0]))
    assert "6." in capsys.readouterr().out


@pytest.mark.parametrize(
    "a, b",
    [(2.0, 3.0), (0.0, -0.0), (0.1, 0.1 + 1e-17 + 2e-17)],
    ids=["values", "signed-zero", "last-bit"],
)
def test_literals_never_share_a_program(a, b, stats):
    x = jnp.array([0.5, -0.25])

    def make(c):
        return ft.grad(lambda x: fnp.sum(fnp.power(x, 3) * c + fnp.sin(x) / (1.0 + c * c)))

    for c in (a, b, a):
        expected = jax.grad(lambda x: jnp.sum(jnp.power(x, 3) * c + jnp.sin(x) / (1.0 + c * c)))(x)
        assert_close(make(c)(x), expected)
    assert stats["compiles"] == 2 and stats["hits"] == 1


def test_parameter_keys_are_exact():
    keys = [lazy._static_key(v) for v in (1, 1.0, True, 0.0, -0.0, (1,), [1], np.float32(1))]
    assert len(set(keys)) == len(keys)  # equal in Python, different programs
    with pytest.raises(lazy._Uncacheable):
        lazy._static_key(lambda x: x)


def test_integer_power_parameter_is_part_of_the_key():
    x = jnp.array([0.5, 2.0])
    for n in (2, 3, 2):
        assert_close(ft.grad(lambda x: fnp.sum(x**n))(x), jax.grad(lambda x: jnp.sum(x**n))(x))


def test_escaped_value_is_computed_on_use():
    kept = []

    def f(x):
        y = fnp.exp(ft.stop_gradient(x))
        kept.append(y)
        return fnp.sum(x * y)

    ft.grad(f)(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(np.asarray(kept[0]), np.exp([0.0, 1.0]))
    assert_close(kept[0] + 1.0, jnp.exp(jnp.array([0.0, 1.0])) + 1.0)


def test_custom_rules_are_recorded_through_their_primal_body(stats):
    @ft.custom_jvp
    def f(x):
        return fnp.sin(x)

    f.defjvp(lambda primals, tangents: (fnp.sin(primals[0]), 2.0 * tangents[0]))
    g = ft.value_and_grad(lambda x: fnp.sum(f(x)))
    for x in (jnp.ones(2), jnp.zeros(2)):
        value, grad = g(x)
        assert_close(value, jnp.sum(jnp.sin(x)))
        assert_close(grad, 2.0 * jnp.ones(2))  # the custom rule, not cos
    assert stats["compiles"] == 1 and stats["hits"] == 1 and not stats["uncacheable"]


def test_uncacheable_recording_is_evaluated_eagerly(stats, monkeypatch):
    def no_key(params):  # as for a parameter that cannot be keyed exactly (a function)
        raise lazy._Uncacheable

    monkeypatch.setattr(lazy, "_param_key", no_key)
    x = jnp.array([0.3, 0.5, 0.7])
    assert_close(ft.grad(lambda x: fnp.sum(fnp.sin(x) ** 2))(x), jnp.sin(2 * x))
    assert stats["uncacheable"] >= 1 and not stats["compiles"]


def test_held_graphs_are_keyed_by_structure_and_never_stale(stats):
    def loss(x, scale):
        y = ft.lax.cond(fnp.sum(x) > 0, lambda v: v * scale, lambda v: v - scale, x)
        return fnp.sum(ft.lax.scan(lambda c, v: (c + fnp.sin(v * c), c), 0.5, y)[0])

    def loss_jax(x, scale):
        y = jax.lax.cond(jnp.sum(x) > 0, lambda v: v * scale, lambda v: v - scale, x)
        return jnp.sum(jax.lax.scan(lambda c, v: (c + jnp.sin(v * c), c), 0.5, y)[0])

    x = jnp.array([0.3, 0.5, 0.7])
    for scale in (np.float64(2.0), np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 4.0])):
        g = ft.grad(lambda x: loss(x, scale))  # `scale` is a new closed-over value each time
        assert_close(g(x), jax.grad(lambda x: loss_jax(x, scale))(x))
    assert stats["hits"] >= 1 and not stats["uncacheable"]


def test_not_lazy_under_jax_jit_or_when_disabled(stats, monkeypatch):
    g = ft.grad(lambda x: fnp.sum(fnp.sin(x)))
    assert_close(jax.jit(g)(jnp.ones(2)), jnp.cos(jnp.ones(2)))
    assert stats["compiles"] == 0
    monkeypatch.setattr(lazy, "enabled", False)
    assert_close(g(jnp.ones(2)), jnp.cos(jnp.ones(2)))
    assert stats["compiles"] == 0


@pytest.mark.parametrize("transform", ["vmap", "jacrev", "jacfwd", "hessian", "jvp"])
def test_every_entry_point_returns_jax_arrays(transform, rng):
    x = jnp.asarray(rng.randn(3))
    f_ft, f_jax = (lambda x: fnp.sin(x) * x), (lambda x: jnp.sin(x) * x)
    if transform == "jvp":
        out = ft.jvp(f_ft, (x,), (x,))
        expected = jax.jvp(f_jax, (x,), (x,))
    elif transform == "hessian":
        out = ft.hessian(lambda x: fnp.sum(f_ft(x)))(x)
        expected = jax.hessian(lambda x: jnp.sum(f_jax(x)))(x)
    else:
        out = getattr(ft, transform)(f_ft)(x)
        expected = getattr(jax, transform)(f_jax)(x)
    assert_close(out, expected)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(out))


# The rest of the suite runs op by op (`tests/conftest.py`); these programs check the default
# compiled eager mode against JAX at first and second order, with control flow inside.
import test_control_flow as _cf  # noqa: E402


def _mlp(np_, nn_, x):
    w = np_.reshape(np_.arange(12.0), (3, 4)) / 10.0
    h = np_.tanh(x @ w)
    return -np_.sum(nn_.log_softmax(h) * nn_.one_hot(2, 4)) + np_.linalg.norm(h)


@pytest.mark.parametrize(
    "f,g",
    [_cf._pair(p) for p in _cf.REV_PROGRAMS]
    + [(lambda x: _mlp(fnp, fnn, x), lambda x: _mlp(jnp, jax.nn, x))],
    ids=[p.__name__ for p in _cf.REV_PROGRAMS] + ["mlp"],
)
def test_compiled_eager_matches_jax(f, g, stats):
    x = _cf.X
    assert_close(ft.grad(f)(x), jax.grad(g)(x))
    assert_close(ft.hessian(f)(x), jax.hessian(g)(x))
    xs = np.stack([x, -x])
    assert_close(ft.vmap(ft.grad(f))(xs), jax.vmap(jax.grad(g))(xs))
    assert stats["compiles"] >= 1 and not stats["uncacheable"]
