"""Special functions: log-gamma and its derivatives, the inverse error function, the
regularized incomplete gamma functions, the Hurwitz zeta function and scaled Bessel
functions of order 0 and 1.

Each is an elementwise primitive lowered to its `jax.lax` function. Derivatives are written
with these same primitives, so every order works where the mathematics gives one
(`lgamma' = digamma`, `digamma' = polygamma(1, .)`, `polygamma(n, .)' = polygamma(n+1, .)`).
Where no closed form exists (the incomplete gamma function differentiated twice in `a`, the
zeta function in `s`, `polygamma` in its order), the rule raises instead of returning zero.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import get_aval
from .elementwise import (
    abs_p,
    add,
    binary,
    div,
    exp,
    gt_p,
    log,
    mul,
    neg,
    select,
    sign,
    sub,
    unary,
)


def _lax2(fun):
    """A `jax.lax` binary special function with NumPy promotion and broadcasting."""

    def impl(a, b):
        dtype = jnp.result_type(a, b)
        return fun(*jnp.broadcast_arrays(jnp.asarray(a, dtype), jnp.asarray(b, dtype)))

    return impl


def _no_derivative(what):
    def rule(*_):
        raise NotImplementedError(
            f"The derivative of {what} has no closed form and is not implemented (JAX does not "
            "provide it either). Differentiate with respect to the other argument only, or "
            "apply `ft.stop_gradient` to this one."
        )

    return rule


# =============================================================================================
# Log-gamma and the polygamma family
# =============================================================================================

lgamma_p = unary("lgamma", jax.lax.lgamma, lambda x, y: digamma(x))  # lgamma' = digamma
digamma_p = unary("digamma", jax.lax.digamma, lambda x, y: polygamma(1.0, x))
polygamma_p = binary(
    "polygamma",
    _lax2(jax.lax.polygamma),
    _no_derivative("`polygamma(n, x)` with respect to its order `n`"),
    lambda n, x, y: polygamma(add(n, 1), x),  # d/dx psi^(n)(x) = psi^(n+1)(x)
)


def lgamma(x):
    return lgamma_p.bind(x)


def digamma(x):
    return digamma_p.bind(x)


def polygamma(n, x):
    return polygamma_p.bind(n, x)


# =============================================================================================
# Inverse error function
# =============================================================================================

# erfinv'(x) = sqrt(pi)/2 * exp(erfinv(x)^2)
erf_inv_p = unary(
    "erf_inv", jax.lax.erf_inv, lambda x, y: mul(exp(mul(y, y)), math.sqrt(math.pi) / 2)
)


def erf_inv(x):
    return erf_inv_p.bind(x)


# =============================================================================================
# Regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P(a, x)
# =============================================================================================


def _gamma_density(a, x):
    """d/dx P(a, x) = x^(a-1) e^(-x) / Gamma(a), computed in logs."""
    return exp(sub(sub(mul(sub(a, 1), log(x)), x), lgamma(a)))


# d/da P(a, x) has no closed form; `igamma_grad_a` computes it. Its derivative in x is the
# derivative in a of the density above: density * (log x - digamma(a)).
igamma_grad_a_p = binary(
    "igamma_grad_a",
    _lax2(jax.lax.igamma_grad_a),
    _no_derivative("the regularized incomplete gamma function twice with respect to `a`"),
    lambda a, x, y: mul(_gamma_density(a, x), sub(log(x), digamma(a))),
)
igamma_p = binary(
    "igamma",
    _lax2(jax.lax.igamma),
    lambda a, x, y: igamma_grad_a(a, x),
    lambda a, x, y: _gamma_density(a, x),
)
igammac_p = binary(
    "igammac",
    _lax2(jax.lax.igammac),
    lambda a, x, y: neg(igamma_grad_a(a, x)),
    lambda a, x, y: neg(_gamma_density(a, x)),
)


def igamma(a, x):
    return igamma_p.bind(a, x)


def igammac(a, x):
    return igammac_p.bind(a, x)


def igamma_grad_a(a, x):
    return igamma_grad_a_p.bind(a, x)


# =============================================================================================
# Hurwitz zeta function zeta(s, q) = sum_k (k + q)^-s
# =============================================================================================

zeta_p = binary(
    "zeta",
    _lax2(jax.lax.zeta),
    _no_derivative("`zeta(s, q)` with respect to `s`"),
    lambda s, q, y: neg(mul(s, zeta(add(s, 1), q))),  # d/dq zeta(s, q) = -s zeta(s+1, q)
)


def zeta(s, q):
    return zeta_p.bind(s, q)


# =============================================================================================
# Exponentially scaled modified Bessel functions i0e(x) = e^-|x| I0(x), i1e(x) = e^-|x| I1(x)
# =============================================================================================


def _i1e_deriv(x, y):
    # i1e'(x) = i0e(x) - i1e(x) (sign(x) + 1/x); its limit at 0 is 1/2.
    aval = get_aval(x)
    tiny = np.finfo(aval.dtype).eps
    not_tiny = gt_p.bind(abs_p.bind(x), tiny)
    safe = select(not_tiny, x, jnp.full(aval.shape, tiny, aval.dtype))
    d = sub(bessel_i0e(safe), mul(bessel_i1e(safe), add(sign(safe), div(1.0, safe))))
    return select(not_tiny, d, jnp.full(aval.shape, 0.5, aval.dtype))


# i0e'(x) = i1e(x) - sign(x) i0e(x)
bessel_i0e_p = unary(
    "bessel_i0e", jax.lax.bessel_i0e, lambda x, y: sub(bessel_i1e(x), mul(sign(x), y))
)
bessel_i1e_p = unary("bessel_i1e", jax.lax.bessel_i1e, _i1e_deriv)


def bessel_i0e(x):
    return bessel_i0e_p.bind(x)


def bessel_i1e(x):
    return bessel_i1e_p.bind(x)


__all__ = [
    "bessel_i0e", "bessel_i1e", "digamma", "erf_inv", "igamma", "igamma_grad_a", "igammac",
    "lgamma", "polygamma", "zeta",
]  # fmt: skip
