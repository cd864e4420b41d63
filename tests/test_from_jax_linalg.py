"""`ft.from_jax` on `jnp.linalg` / `jax.scipy.linalg` code: LU factorization and linear solves.

JAX's solves factor a matrix under `stop_gradient` and differentiate through
`custom_linear_solve` implicitly; functrans must keep the derivative in the matrix at every
order. The oracle is JAX in float64.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

import functrans as ft
from conftest import assert_close
from functrans._src.prims import linalg as la

R = np.random.RandomState(1)
A = jnp.asarray(R.randn(3, 3) + 3 * np.eye(3))  # well conditioned
B = jnp.asarray(R.randn(3, 2))

CASES = {
    "solve": lambda a: (
        jnp.sum(jnp.linalg.solve(a, B) ** 2) + jnp.sum(jnp.sin(jnp.linalg.solve(a, B[:, 0])))
    ),
    "inv_matrix_power": lambda a: (
        jnp.sum(jnp.linalg.inv(a) * B[:, :1]) + jnp.sum(jnp.linalg.matrix_power(a, -2))
    ),
    "det_slogdet": lambda a: jnp.linalg.det(a) ** 2 + jnp.linalg.slogdet(a)[1],
    "scipy_lu": lambda a: jnp.sum(jsl.lu(a)[2] ** 2) + jnp.sum(jsl.lu_solve(jsl.lu_factor(a), B)),
    "cho_and_triangular": lambda a: (
        jnp.sum(jsl.cho_solve(jsl.cho_factor(a @ a.T), B))
        + jnp.sum(jsl.solve_triangular(jnp.triu(a), B))
    ),
    "tensorsolve": lambda a: jnp.sum(jnp.linalg.tensorsolve(a, B[:, 0])),
    "eigh": lambda a: (
        jnp.sum(jnp.linalg.eigvalsh(a) ** 3)
        + jnp.sum((lambda w, v: (v * jnp.sin(w)) @ v.T * B[:, :1])(*jnp.linalg.eigh(a)))
    ),
    "eigh_abs_vectors": lambda a: jnp.sum(jnp.abs(jnp.linalg.eigh(a @ a.T)[1]) * B[:, :1]),
    "svd_tall_and_wide": lambda a: (
        jnp.sum(jnp.linalg.svdvals(a[:, :2]) ** 3)
        + jnp.sum(
            (lambda u, s, vt: (u * jnp.sin(s)) @ vt)(*jnp.linalg.svd(a[:2], full_matrices=False))
        )
    ),
    "svd_abs_vectors_pinv": lambda a: (
        jnp.sum(jnp.abs(jnp.linalg.svd(a, full_matrices=False)[0]))
        + jnp.sum(jnp.linalg.pinv(a[:, :2]) ** 2)
        + jnp.linalg.norm(a, 2)
    ),
    "qr_lstsq": lambda a: (
        jnp.sum(jnp.abs(jnp.linalg.qr(a[:, :2])[0]) * 1.3)
        + jnp.sum(jnp.abs(jnp.linalg.qr(a)[1]) ** 2)
        + jnp.sum(jnp.linalg.lstsq(a[:, :2], B[:, 0])[0] ** 2)
    ),
    "cg_matrix_free": lambda a: jnp.sum(jax.scipy.sparse.linalg.cg(a @ a.T, B[:, 0], tol=1e-12)[0]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_value_gradient_hessian_and_vmap_match_jax(name):
    f = CASES[name]
    g = ft.from_jax(f)
    As = jnp.stack([A, A.T + np.eye(3)])
    ours = jax.jit(lambda a, As: (g(a), ft.grad(g)(a), ft.hessian(g)(a), ft.vmap(ft.grad(g))(As)))
    theirs = jax.jit(
        lambda a, As: (f(a), jax.grad(f)(a), jax.hessian(f)(a), jax.vmap(jax.grad(f))(As))
    )
    assert_close(ours(A, As), theirs(A, As))


def test_expm_gradient():  # Pade approximant: solves inside; first order keeps compiling cheap
    f = lambda a: jnp.sum(jsl.expm(a / 4) * B[:, :1])
    assert_close(jax.jit(ft.grad(ft.from_jax(f)))(A), jax.jit(jax.grad(f))(A))


def test_eager_solve_gradient_penalty():
    # A gradient inside the loss: the inner gradient of a solve is differentiated again.
    f = lambda a, x: jnp.sum(jnp.linalg.solve(a, x) ** 3)
    fg = ft.from_jax(f)

    def ours(a):
        g = ft.grad(fg, argnums=1)(a, B[:, 0])
        return ft.numpy.sum(g**2)

    def theirs(a):
        g = jax.grad(f, argnums=1)(a, B[:, 0])
        return jnp.sum(g**2)

    assert_close(ft.grad(ours)(A), jax.grad(theirs)(A))


def test_lu_primitive_rules_match_jax():
    t = jnp.asarray(R.randn(3, 3))
    assert_close(list(la.lu(A)), list(jax.lax.linalg.lu(A)))
    lu_ft = lambda a: la.lu(a)[0]
    lu_jax = lambda a: jax.lax.linalg.lu(a)[0]
    assert_close(ft.jvp(lu_ft, (A,), (t,))[1], jax.jvp(lu_jax, (A,), (t,))[1])
    w = jnp.asarray(R.randn(3, 3))
    assert_close(
        ft.grad(lambda a: ft.numpy.sum(ft.numpy.sin(lu_ft(a)) * w))(A),
        jax.grad(lambda a: jnp.sum(jnp.sin(lu_jax(a)) * w))(A),
    )
    ft.testing.check_grads(lambda a: ft.numpy.sum(lu_ft(a) * w), (A,), order=2)


def test_functrans_numpy_eigh_matches_jax():
    f = lambda np_: (
        lambda a: (
            np_.sum(np_.linalg.eigvalsh(a) ** 3)
            + np_.sum(np_.abs(np_.linalg.eigh(a)[1]) * B[:, :1])
        )
    )
    assert_close(ft.grad(f(ft.numpy))(A), jax.grad(f(jnp))(A))
    assert_close(jax.jit(ft.hessian(f(ft.numpy)))(A), jax.jit(jax.hessian(f(jnp)))(A))


def test_functrans_numpy_svd_qr_match_jax():
    a = jnp.asarray(R.randn(4, 3))

    def f(np_):
        def fun(a):
            u, s, vt = np_.linalg.svd(a, full_matrices=False)
            q, r = np_.linalg.qr(a)
            return np_.sum(np_.abs(u) * s) + np_.sum(np_.linalg.svdvals(a) ** 2) + np_.sum(r**2)

        return fun

    assert_close(ft.grad(f(ft.numpy))(a), jax.grad(f(jnp))(a))
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        ft.numpy.linalg.svd(a)


def test_eig_eigenvalues_differentiate_eigenvectors_raise():
    a = jnp.array([[2.0, 1, 0], [0.5, 3, 1], [0, 1, 4.0]])
    b = jnp.array([[0.0, -1, 0.3], [1, 0, 0], [0.2, 0, 1.0]])  # complex eigenvalues of a + 2b
    f = lambda a: (
        jnp.sum(jnp.real(jnp.linalg.eigvals(a)) ** 2)
        + jnp.sum(jnp.abs(jnp.linalg.eigvals(a + 2 * b)) ** 3)
    )
    g = ft.from_jax(f)
    assert_close(ft.grad(g)(a), jax.grad(f)(a))
    assert_close(
        ft.vmap(ft.grad(g))(jnp.stack([a, a.T])), jax.vmap(jax.grad(f))(jnp.stack([a, a.T]))
    )
    with pytest.raises(NotImplementedError, match="eigenvectors of a non-symmetric"):
        ft.grad(ft.from_jax(lambda a: jnp.sum(jnp.abs(jnp.linalg.eig(a)[1]))))(a)


def test_scaled_dot_is_dequantize_then_dot():  # JAX cannot differentiate it; functrans can
    r = np.random.RandomState(4)
    lhs, rhs = (
        jnp.asarray(r.randn(2, 8, 64), jnp.float32),
        jnp.asarray(r.randn(2, 64, 4), jnp.float32),
    )
    ls, rs = (
        jnp.asarray(r.rand(2, 8, 2) + 0.5, jnp.float32),
        jnp.asarray(r.rand(2, 2, 4) + 0.5, jnp.float32),
    )
    f = lambda lhs: jax.lax.scaled_dot(lhs, rhs, lhs_scale=ls, rhs_scale=rs)
    ref = lambda lhs: jnp.einsum(
        "bmk,bkn->bmn", lhs * jnp.repeat(ls, 32, axis=2), rhs * jnp.repeat(rs, 32, axis=1)
    )
    ours = ft.from_jax(f)(lhs)
    assert ours.dtype == f(lhs).dtype  # bfloat16, JAX's default result type
    np.testing.assert_allclose(np.float32(ours), np.float32(f(lhs)), rtol=2e-2, atol=0.13)
    grad = ft.grad(lambda x: ft.numpy.sum(ft.from_jax(f)(x).astype(jnp.float32)))(lhs)
    np.testing.assert_allclose(grad, jax.grad(lambda x: jnp.sum(ref(x)))(lhs), rtol=1e-5)
