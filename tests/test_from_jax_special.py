"""`ft.from_jax` on special functions, sorting and bit-level `jax.numpy` code.

The oracle is JAX: the same function differentiated by `jax.grad` / `jax.hessian` /
`jax.vmap`, in float64.
"""

import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import pytest

import functrans as ft
from conftest import assert_close

R = np.random.RandomState(0)
X = jnp.asarray(R.uniform(0.3, 4.0, 3))  # in the domain of every function below
Z = jnp.asarray(R.randn(3, 5))  # distinct values, both signs (sorting, bits)
W5 = jnp.arange(5.0)

SPECIAL = {
    "gammaln": lambda x: jnp.sum(jss.gammaln(x) * x),
    "digamma_polygamma": lambda x: jnp.sum(jss.digamma(x) ** 2 + jss.polygamma(2, x)),
    "erfinv_ndtri": lambda x: jnp.sum(jss.erfinv(x / 5.0) ** 2 + jax.scipy.stats.norm.ppf(x / 5)),
    "gammainc_in_x": lambda x: jnp.sum(jss.gammainc(1.5, x) - jss.gammaincc(2.5, x) * x),
    "zeta": lambda x: jnp.sum(jss.zeta(3.0, x)),
    "bessel": lambda x: jnp.sum(jss.i0e(x - 2.0) * jss.i1e(x - 2.0) + jss.i0(x) + jss.i1(x)),
    "beta_gamma_factorial": lambda x: jnp.sum(
        jss.betaln(x, 2 * x) + jss.gamma(x) / jss.factorial(x)
    ),
    "multigammaln": lambda x: jnp.sum(jss.multigammaln(x + 2.0, 2)),
}
SORTING = {
    "sort": lambda z: jnp.sum(jnp.sort(z, axis=1) * W5) + jnp.sum(jnp.sort(z, axis=0)[0]),
    "argsort_lexsort": lambda z: (
        jnp.sum(z[0, jnp.argsort(z[1])] * W5) + jnp.sum(z[0, jnp.lexsort((z[1], z[2]))] * W5)
    ),
    "median_quantile": lambda z: (
        jnp.median(z, axis=1).sum()
        + jnp.sum(jnp.quantile(z, jnp.array([0.1, 0.9]), axis=0))
        + jnp.nanmedian(z)
    ),
    "top_k": lambda z: (
        jnp.sum(jax.lax.top_k(z, 2)[0] ** 2) + jnp.sum(z[0, jax.lax.top_k(z[1], 3)[1]])
    ),
    "searchsorted_digitize": lambda z: (
        jnp.sum(z * jnp.searchsorted(jnp.sort(z[0]), z[1]))
        + jnp.sum(z * jnp.digitize(z, jnp.array([-1.0, 0.0, 1.0])))
    ),
    "unstack": lambda z: sum(jnp.sum(r ** (i + 1)) for i, r in enumerate(jnp.unstack(z))),
    "copysign_signbit": lambda z: jnp.sum(
        jnp.copysign(z, z[::-1]) * z + jnp.where(jnp.signbit(z), z**2, z)
    ),
    "ldexp_frexp": lambda z: jnp.sum(jnp.ldexp(z, 3) + jnp.frexp(z)[0] * z),
    "shifts_bitcount": lambda z: jnp.sum(
        z * jnp.right_shift(jnp.left_shift(jnp.floor(z * 4).astype(int), 2), 1)
        + z * jnp.bitwise_count(jnp.floor(z * 4).astype(int))
        + z * jax.lax.clz(jnp.floor(z * 4).astype(jnp.int32))
        + z * (jnp.floor(z * 4).astype(int) & 6 | 1 ^ 3)
        + z * jax.lax.mulhi(jnp.floor(z * 4).astype(int), jnp.int64(1) << 62)
    ),
}
CASES = [(n, f, X) for n, f in SPECIAL.items()] + [(n, f, Z) for n, f in SORTING.items()]


@pytest.mark.parametrize("name,f,x", CASES, ids=[c[0] for c in CASES])
def test_value_gradient_hessian_and_vmap_match_jax(name, f, x):
    # Each side is one compiled program: op-by-op evaluation of these long JAX
    # implementations (series, sorting networks) would cost a compilation per operation.
    xs = jnp.stack([x, 1.5 * x])
    g = ft.from_jax(f)
    ours = jax.jit(lambda x, xs: (g(x), ft.grad(g)(x), ft.hessian(g)(x), ft.vmap(ft.grad(g))(xs)))
    theirs = jax.jit(
        lambda x, xs: (f(x), jax.grad(f)(x), jax.hessian(f)(x), jax.vmap(jax.grad(f))(xs))
    )
    assert_close(ours(x, xs), theirs(x, xs))


@pytest.mark.parametrize("name", ["gammaln", "sort"])
def test_eager_gradient(name):
    f, x = (SPECIAL[name], X) if name in SPECIAL else (SORTING[name], Z)
    assert_close(ft.grad(ft.from_jax(f))(x), jax.grad(f)(x))


def test_functrans_lax_special_functions_at_third_order():
    f = lambda x: ft.lax.lgamma(x) + ft.lax.erf_inv(x / 5.0) + ft.lax.bessel_i1e(x - 2.0)
    g = lambda x: jax.lax.lgamma(x) + jax.lax.erf_inv(x / 5.0) + jax.lax.bessel_i1e(x - 2.0)
    d3 = lambda h: jax.grad(jax.grad(jax.grad(h)))
    assert_close(ft.grad(ft.grad(ft.grad(f)))(1.3), d3(g)(1.3))
    assert_close(ft.grad(ft.lax.bessel_i1e)(0.0), 0.5)  # the limit at 0


def test_missing_derivatives_raise_as_in_jax():
    f = lambda a: jss.gammainc(a, 2.0)
    with pytest.raises(NotImplementedError):
        jax.hessian(f)(1.5)
    with pytest.raises(NotImplementedError, match="twice with respect to `a`"):
        ft.hessian(ft.from_jax(f))(1.5)
    assert_close(ft.grad(ft.from_jax(f))(1.5), jax.grad(f)(1.5))  # first order is there
    with pytest.raises(NotImplementedError, match="with respect to `s`"):
        ft.grad(lambda s: ft.lax.zeta(s, 2.0))(3.0)


def test_flax_batchnorm_and_dropout_gradient_penalty():
    import flax.linen as nn

    class Critic(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(8, param_dtype=jnp.float64)(x)
            h = nn.BatchNorm(use_running_average=False, param_dtype=jnp.float64)(h)
            h = nn.Dropout(0.25, deterministic=False)(jnp.tanh(h))
            return nn.Dense(1, param_dtype=jnp.float64)(h)

    x = jnp.asarray(R.randn(6, 3))
    variables = Critic().init(jax.random.key(0), x)
    params, stats = variables["params"], variables["batch_stats"]
    rngs = {"dropout": jax.random.key(3)}

    def critic(params, x):  # train mode: batch statistics, a fixed dropout mask
        out, _ = Critic().apply({"params": params, "batch_stats": stats}, x, rngs=rngs,
                                mutable=["batch_stats"])  # fmt: skip
        return out

    def penalty(critic_fn, grad, np_):
        def fun(params, x):
            g = grad(lambda x: np_.sum(critic_fn(params, x)))(x)
            return np_.mean((np_.sqrt(np_.sum(g**2, axis=1)) - 1.0) ** 2)

        return fun

    ours = penalty(ft.from_jax(critic), ft.grad, ft.numpy)
    theirs = penalty(critic, jax.grad, jnp)
    assert_close(jax.jit(ft.grad(ours))(params, x), jax.jit(jax.grad(theirs))(params, x))
