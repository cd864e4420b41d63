"""Complex numbers and FFTs: `real imag conj complex abs`, `functrans.numpy.fft`, and the
same through `ft.from_jax`, against JAX in float64 (JAX's convention for complex cotangents)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from conftest import assert_close

R = np.random.RandomState(0)
X = jnp.asarray(R.randn(4, 6))
H = jnp.asarray(R.randn(4) + 1j * R.randn(4))

# written once against a namespace: functrans.numpy or jax.numpy
PROGRAMS = {
    "power_spectrum": lambda np_, x: np_.sum(np_.abs(np_.fft.fft(x)) ** 2 * np_.arange(6.0)),
    "filter_rfft_irfft": lambda np_, x: np_.sum(np_.fft.irfft(np_.fft.rfft(x) * H, n=6) ** 2),
    "odd_length": lambda np_, x: np_.sum(np_.fft.irfft(np_.fft.rfft(x[:, :5]) * H[:3], n=5) ** 3),
    "ifft_real_imag": lambda np_, x: np_.sum(np_.fft.ifft(x * x).real * x + np_.fft.fft(x).imag),
    "fft2_ortho": lambda np_, x: np_.sum(np_.abs(np_.fft.fft2(x, norm="ortho")) ** 1.5),
    "rfft2_irfft2": lambda np_, x: np_.sum(np_.fft.irfft2(np_.fft.rfft2(x) * 2.0, s=(4, 6)) * x),
    "fftn_shift_angle": lambda np_, x: np_.sum(np_.angle(np_.fft.fftshift(np_.fft.fftn(x))) * x),
    "padded_conj": lambda np_, x: np_.sum(np_.imag(np_.conj(np_.fft.fft(x, n=8, axis=0))) ** 2),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_functrans_numpy_fft_matches_jax(name):
    prog = PROGRAMS[name]
    ours = lambda x: prog(fnp, x)
    theirs = lambda x: prog(jnp, x)
    assert_close(ours(X), theirs(X))
    assert_close(ft.grad(ours)(X), jax.grad(theirs)(X))
    # second order and vmap, each side one compiled program
    xs = jnp.stack([X, 2 * X])
    assert_close(
        jax.jit(lambda x, xs: (ft.hessian(ours)(x), ft.vmap(ft.grad(ours))(xs)))(X, xs),
        jax.jit(lambda x, xs: (jax.hessian(theirs)(x), jax.vmap(jax.grad(theirs))(xs)))(X, xs),
    )


@pytest.mark.parametrize("name", ["power_spectrum", "odd_length", "rfft2_irfft2", "padded_conj"])
def test_from_jax_fft_matches_jax(name):
    f = lambda x: PROGRAMS[name](jnp, x)
    g = ft.from_jax(f)
    assert_close(
        jax.jit(lambda x: (g(x), ft.grad(g)(x), ft.hessian(g)(x)))(X),
        jax.jit(lambda x: (f(x), jax.grad(f)(x), jax.hessian(f)(x)))(X),
    )


def test_complex_primitives_vjp_and_jvp_follow_jax():
    z = jnp.asarray(R.randn(3) + 1j * R.randn(3))
    t = jnp.asarray(R.randn(3) + 1j * R.randn(3))
    f = lambda np_, cplx: lambda z: np_.sin(z) * np_.conj(z) + cplx(np_.real(z) ** 2, np_.imag(z))
    ours, theirs = f(fnp, ft.lax.complex), f(jnp, jax.lax.complex)
    ct = jnp.asarray(R.randn(3) - 2j * R.randn(3))
    assert_close(ft.vjp(ours, z)[1](ct), jax.vjp(theirs, z)[1](ct))
    assert_close(ft.jvp(ours, (z,), (t,)), jax.jvp(theirs, (z,), (t,)))
    real_loss = lambda np_: lambda z: np_.sum(np_.abs(z) ** 3 + np_.angle(z) * np_.real(z * z))
    assert_close(ft.vjp(real_loss(fnp), z)[1](1.0), jax.vjp(real_loss(jnp), z)[1](1.0))


def test_fft_errors_name_the_fix():
    with pytest.raises(ValueError, match="`norm` must be"):
        fnp.fft.fft(X, norm="unitary")
    with pytest.raises(ValueError, match="repeated axes"):
        fnp.fft.fftn(X, axes=(0, 0))
