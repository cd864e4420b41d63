"""The scientific examples (MAML, contractive autoencoder, PINN, Newton-CG) and their notebooks.

Each example runs once per module through its command line (`cli(["--steps", ...])`, which
calls `main` and prints the summary) with a tiny step count, and the claims of issue 6 are
asserted on its results. Each example's derivative of a derivative is also written a
second time with `jax.numpy` and differentiated by JAX, and the two must agree in float64.
Finally, each notebook is executed with `FUNCTRANS_NOTEBOOK_FAST=1` (not written back).
"""

import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
from conftest import assert_close

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import contractive_autoencoder as cae  # noqa: E402
import hessian_free as hf  # noqa: E402
import maml  # noqa: E402
import pinn  # noqa: E402


def f64(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


# ---------------------------------------------------------------- MAML


def maml_predict_jax(params, x):
    h = x
    for w, b in zip(params[:-2:2], params[1:-2:2]):
        h = jnp.maximum(h @ w + b, 0.0)
    return h @ params[-2] + params[-1]


def maml_meta_loss_jax(params, tasks, alpha, first_order):
    mse = lambda p, x, y: jnp.mean((maml_predict_jax(p, x) - y) ** 2)

    def one_task(xs, ys, xq, yq):
        g = jax.grad(mse)(params, xs, ys)
        if first_order:
            g = jax.lax.stop_gradient(g)
        return mse([p - alpha * gp for p, gp in zip(params, g)], xq, yq)

    return jnp.mean(jax.vmap(one_task)(*tasks))


@pytest.fixture(scope="module")
def maml_run():
    return maml.cli(["--steps", "300"], progress=False)


def test_maml_adaptation_helps(maml_run):
    for name in ("second", "first"):
        assert maml_run["post"][name] < 0.8 * maml_run["pre"][name], name
        # Meta-training made one step from the learned start better than from a random one.
        assert maml_run["post"][name] < 0.8 * maml_run["init_post"], name
        assert maml_run["params"][name][0].dtype == jnp.float32


@pytest.fixture(scope="module")
def maml_meta_grads():
    key_p, key_t = jax.random.split(jax.random.key(1))
    params = maml.init_mlp(key_p, (1, 8, 8, 1), jnp.float64)
    tasks, _ = maml.sample_tasks(key_t, 3, 5, 5, jnp.float64)
    ours = jax.jit(ft.grad(maml.meta_loss), static_argnums=3)
    theirs = jax.jit(jax.grad(maml_meta_loss_jax), static_argnums=3)
    return {
        first_order: (
            ours(params, tasks, 0.05, first_order),
            theirs(params, tasks, 0.05, first_order),
        )
        for first_order in (False, True)
    }


@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
def test_maml_meta_gradient_matches_jax(maml_meta_grads, first_order):
    ours, theirs = maml_meta_grads[first_order]
    assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_maml_second_order_term_is_there(maml_meta_grads):
    flat = lambda tree: jnp.concatenate([jnp.ravel(a) for a in tree])
    second, first = flat(maml_meta_grads[False][0]), flat(maml_meta_grads[True][0])
    assert jnp.linalg.norm(second - first) > 1e-2 * jnp.linalg.norm(second)


# ---------------------------------------------------------------- contractive autoencoder


def cae_loss_jax(params, x, lam):
    enc = lambda p, x: jax.nn.sigmoid(x @ p["W"] + p["b"])
    recon = jax.nn.sigmoid(enc(params, x) @ params["W"].T + params["c"])
    jac = jax.vmap(jax.jacrev(enc, argnums=1), in_axes=(None, 0))(params, x)
    return jnp.mean(jnp.sum((recon - x) ** 2, axis=1)) + lam * jnp.mean(jnp.sum(jac**2, (1, 2)))


@pytest.fixture(scope="module")
def cae_run():
    return cae.cli(["--steps", "300"], progress=False)


def test_cae_contracts_and_reconstructs(cae_run):
    assert cae_run["jac_norm"]["cae"] < 0.8 * cae_run["jac_norm"]["ae"]
    for name in ("cae", "ae"):
        assert cae_run["recon"][name] < 0.5 * cae_run["baseline"], name


def test_cae_gradient_matches_jax(rng):
    params = f64(cae.init_params(jax.random.key(3), 6, 4))
    params["b"] = jnp.asarray(rng.randn(4))
    x = jnp.asarray(rng.rand(5, 6))
    ours = jax.jit(ft.grad(cae.loss))(params, x, 0.3)
    assert_close(ours, jax.jit(jax.grad(cae_loss_jax))(params, x, 0.3))


def test_cae_jacobian_is_the_analytic_one(rng):
    params = f64(cae.init_params(jax.random.key(4), 6, 4))
    x = jnp.asarray(rng.rand(5, 6))
    h = jax.nn.sigmoid(x @ params["W"] + params["b"])
    analytic = (h * (1 - h))[:, :, None] * params["W"].T[None]
    assert_close(cae.encoder_jacobians(params, x), analytic)


# ---------------------------------------------------------------- PINN


def pinn_u_jax(params, x):
    h = jnp.reshape(x, (1,))
    for w, b in zip(params[:-2:2], params[1:-2:2]):
        h = jnp.tanh(h @ w + b)
    return jnp.sum(h @ params[-2] + params[-1])


def pinn_loss_jax(params, x, k):
    uxx = jax.vmap(jax.hessian(pinn_u_jax, argnums=1), in_axes=(None, 0))(params, x)
    residual = uxx + (k * jnp.pi) ** 2 * jnp.sin(k * jnp.pi * x)
    edges = pinn_u_jax(params, 0.0) ** 2 + pinn_u_jax(params, 1.0) ** 2
    return jnp.mean(residual**2) + 10.0 * edges


@pytest.fixture(scope="module")
def pinn_run():
    return pinn.cli(["--steps", "300"], progress=False)


def test_pinn_error_against_exact_solution(pinn_run):
    assert pinn_run["init_rel_l2"] > 0.5
    assert pinn_run["rel_l2"] < 0.1
    assert pinn_run["max_err"] < 0.15


@pytest.fixture(scope="module")
def pinn_small():
    params = f64(pinn.init_mlp(jax.random.key(5), (6, 6)))
    return params, jnp.linspace(0.05, 0.95, 7)


def test_pinn_second_derivative_matches_jax(pinn_small):
    params, x = pinn_small
    theirs = jax.jit(jax.vmap(jax.hessian(pinn_u_jax, argnums=1), in_axes=(None, 0)))
    assert_close(jax.jit(pinn.u_xx)(params, x), theirs(params, x))
    ours_hessian = jax.jit(ft.vmap(ft.hessian(pinn.u, argnums=1), in_axes=(None, 0)))
    assert_close(ours_hessian(params, x), theirs(params, x))


def test_pinn_loss_gradient_matches_jax(pinn_small):
    params, x = pinn_small
    ours = jax.jit(ft.grad(pinn.loss), static_argnums=2)(params, x, 2)
    assert_close(ours, jax.jit(jax.grad(pinn_loss_jax), static_argnums=2)(params, x, 2))


# ---------------------------------------------------------------- Newton-CG


def hf_loss_jax(w, x, y, l2=1e-3):
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z) + 0.5 * l2 * jnp.sum(w * w)


@pytest.fixture(scope="module")
def hf_run():
    return hf.cli(["--steps", "300"], progress=False)


def test_newton_cg_beats_adam(hf_run):
    assert hf_run["newton"]["grad_norm"] < 1e-4
    assert np.all(np.diff(hf_run["newton"]["losses"]) < 0)
    assert hf_run["adam_iters"] is not None, "Adam should reach the target in 300 steps"
    assert hf_run["newton_iters"] * 10 < hf_run["adam_iters"]
    assert hf_run["newton_passes"] < hf_run["adam_passes"]
    assert hf_run["accuracy"] > 0.85


@pytest.fixture(scope="module")
def hf_small():
    rng = np.random.RandomState(6)
    x, y = jnp.asarray(rng.randn(20, 5)), jnp.asarray((rng.rand(20) > 0.5) * 1.0)
    return jnp.asarray(rng.randn(5)), x, y


def test_hvp_matches_jax_hessian(hf_small):
    w, x, y = hf_small
    v = jnp.arange(1.0, 6.0)
    ours = jax.jit(lambda w, v: ft.hvp(lambda w: hf.loss(w, x, y), (w,), (v,)))(w, v)
    assert_close(ours, jax.jit(jax.hessian(hf_loss_jax))(w, x, y) @ v)


def test_newton_direction_solves_the_newton_system(hf_small):
    w, x, y = hf_small
    d, g, n_cg = jax.jit(hf.newton_direction)(w, x, y)
    hessian, grad = jax.jit(
        lambda w: (jax.hessian(hf_loss_jax)(w, x, y), jax.grad(hf_loss_jax)(w, x, y))
    )(w)
    assert_close(g, grad)
    # CG stops at the relative residual min(0.5, sqrt(||g||)) of the forcing sequence.
    tol = min(0.5, np.sqrt(np.linalg.norm(grad)))
    assert 0 < int(n_cg) <= 5
    assert np.linalg.norm(hessian @ d + grad) <= tol * np.linalg.norm(grad) * (1 + 1e-9)
    # Without the early stop, CG solves the 5x5 system exactly in (at most) 5 products.
    hvp = lambda v: ft.hvp(lambda w: hf.loss(w, x, y), (w,), (v,))
    d_full, _ = jax.jit(lambda b: hf.conjugate_gradient(hvp, b, 1e-12, 5))(-g)
    assert_close(d_full, -np.linalg.solve(hessian, grad), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- notebooks


@pytest.mark.parametrize("name", ["maml", "contractive_autoencoder", "pinn", "hessian_free"])
def test_notebook_executes(name, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("FUNCTRANS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    path = ROOT / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
