"""`ft.check_grads`: passes on right derivatives, names the mode and order of wrong ones."""

import jax.numpy as jnp
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans._src.prims import elementwise as ew

X = jnp.array([0.5, -1.2, 2.0])


def test_passes_on_pytrees_to_third_order():
    def f(p, s):
        return {"a": fnp.sin(p["x"]) * s, "b": (fnp.tanh(p["x"] @ p["x"]),)}

    ft.check_grads(f, ({"x": X}, 2.0), order=3)


@pytest.mark.parametrize("modes", [("fwd",), ("rev",), "rev"])
def test_single_mode(modes):
    ft.check_grads(lambda x: fnp.exp(x) * fnp.cos(x), (X,), order=2, modes=modes)


def test_float32_uses_float32_tolerances():
    ft.check_grads(fnp.tanh, (X.astype(jnp.float32),), order=2, eps=1e-2)


@pytest.fixture
def sin_with_frozen_derivative():
    """`sin` whose derivative `cos(x)` is treated as a constant: right at first order only."""
    saved = ew.sin_p.jvp, ew.sin_p.vjp

    def deriv(x):
        return ew.cos(ew.stop_gradient(x))

    ew.sin_p.jvp = lambda primals, tangents: (
        ew.sin(primals[0]),
        ew.mul(tangents[0], deriv(primals[0])),
    )
    ew.sin_p.vjp = lambda needs, ct, out, x: (ew.mul(ct, deriv(x)),)
    yield
    ew.sin_p.jvp, ew.sin_p.vjp = saved


def test_broken_rule_is_caught_at_the_right_order(sin_with_frozen_derivative):
    ft.check_grads(fnp.sin, (X,), order=1)
    with pytest.raises(AssertionError, match=r"mode 'fwd of fwd', order 2.*[Ww]orst absolute"):
        ft.check_grads(fnp.sin, (X,), order=2, modes=("fwd",))
    with pytest.raises(AssertionError, match=r"mode 'rev of rev', order 2"):
        ft.check_grads(fnp.sin, (X,), order=2, modes=("rev",))


def test_wrong_first_derivative_is_caught(monkeypatch):
    # tanh' = 1 - tanh^2, written here as 1 + tanh^2
    wrong = lambda y: ew.add(1, ew.mul(y, y))
    monkeypatch.setattr(
        ew.tanh_p, "jvp", lambda p, t: (ew.tanh(p[0]), ew.mul(t[0], wrong(ew.tanh(p[0]))))
    )
    monkeypatch.setattr(ew.tanh_p, "vjp", lambda needs, ct, out, x: (ew.mul(ct, wrong(out)),))
    with pytest.raises(AssertionError, match=r"mode 'fwd', order 1"):
        ft.check_grads(fnp.tanh, (X,), order=1, modes="fwd")
    with pytest.raises(AssertionError, match=r"mode 'rev', order 1"):
        ft.check_grads(fnp.tanh, (X,), order=1, modes="rev")


@pytest.mark.parametrize(
    "kwargs,error",
    [({"modes": ("sideways",)}, ValueError), ({"order": 0}, ValueError)],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match="check_grads"):
        ft.check_grads(fnp.sin, (X,), **kwargs)


def test_integer_arguments_raise():
    with pytest.raises(TypeError, match="check_grads"):
        ft.check_grads(lambda x: x * 2.0, (jnp.arange(3),))
