"""The GAN examples and their notebooks: each claim of issue 6 (items 1, 2, 3, 8) checked.

Every example's `main` runs with a small step count (float32, as users run it) and the
result is held to what the example claims. The gradients inside each example, which
differentiate a gradient penalty, are compared in float64 against the same loss written with
`jax.numpy` and differentiated by `jax.grad`. The notebooks are executed with tiny step
counts (`FUNCTRANS_NOTEBOOK_FAST=1`) and not written back.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import functrans as ft
from conftest import assert_close

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(EXAMPLES))

import r1_gan  # noqa: E402
import wgan_gp  # noqa: E402

# --- the same models and losses, written with jax.numpy (the oracle) -----------------------


def jax_mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.leaky_relu(x @ layer["w"] + layer["b"], 0.2)
    return x @ params[-1]["w"] + params[-1]["b"]


def jax_wgan_critic_loss(critic_params, gen_params, real, z, eps, lam=10.0):
    critic = lambda p, x: jax_mlp(p, x)[:, 0]
    fake = jax_mlp(gen_params, z)
    x_hat = eps * real + (1.0 - eps) * fake
    g = jax.grad(lambda x: jnp.sum(critic(critic_params, x)))(x_hat)
    norms = jnp.sqrt(jnp.sum(g * g, axis=1) + 1e-12)
    penalty = jnp.mean((norms - 1.0) ** 2)
    return (
        jnp.mean(critic(critic_params, fake))
        - jnp.mean(critic(critic_params, real))
        + (lam * penalty)
    )


def jax_conv_discriminator(params, x):
    dims = ("NHWC", "HWIO", "NHWC")
    for layer, stride in zip(params["conv"], (1, 2)):
        x = jax.lax.conv_general_dilated(
            x, layer["w"], (stride, stride), "SAME", dimension_numbers=dims
        )
        x = jax.nn.leaky_relu(x + layer["b"], 0.2)
    x = x.reshape(x.shape[0], -1)
    return (x @ params["out"]["w"] + params["out"]["b"])[:, 0]


JAX_DISCRIMINATORS = {"mlp": lambda p, x: jax_mlp(p, x)[:, 0], "conv": jax_conv_discriminator}
JAX_GENERATORS = {
    "mlp": jax_mlp,
    "conv": lambda p, z: jnp.tanh(jax_mlp(p, z)).reshape(z.shape[0], 8, 8, 1),
}


def jax_r1_loss(model, disc_params, gen_params, real, z, gamma):
    disc, gen = JAX_DISCRIMINATORS[model], JAX_GENERATORS[model]
    g = jax.grad(lambda x: jnp.sum(disc(disc_params, x)))(real)
    penalty = jnp.mean(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))
    fake = gen(gen_params, z)
    gan = jnp.mean(jax.nn.softplus(disc(disc_params, fake))) + jnp.mean(
        jax.nn.softplus(-disc(disc_params, real))
    )
    return gan + 0.5 * gamma * penalty


@pytest.mark.parametrize("module", [wgan_gp, r1_gan], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    import doctest

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result


# --- WGAN-GP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wgan_run():
    return wgan_gp.main(steps=1200, seed=0, progress=False)


def test_wgan_gp_pulls_critic_gradient_norm_to_one(wgan_run):
    start, end = wgan_run["grad_norm_start"], wgan_run["grad_norm_end"]
    assert abs(start - 1.0) > 0.5, f"the critic should start far from 1-Lipschitz, got {start}"
    assert abs(end - 1.0) < 0.15, f"gradient norm {start:.3f} -> {end:.3f}, expected near 1"
    assert np.all(np.isfinite(wgan_run["history"]["critic_loss"]))


def test_wgan_gp_generator_covers_most_modes(wgan_run):
    assert wgan_run["samples"].dtype == np.float32
    assert wgan_run["modes_covered"] >= 6, wgan_run["modes_covered"]
    assert wgan_run["quality"] > 0.2, wgan_run["quality"]


def test_mode_coverage_counts_collapsed_samples():
    centres = np.asarray(wgan_gp.mode_centres())
    collapsed = np.repeat(centres[:2], 50, axis=0)  # every sample on two of the modes
    assert wgan_gp.mode_coverage(collapsed) == (2, 1.0)
    assert wgan_gp.mode_coverage(collapsed + 1.0)[0] < 2  # off the circle


@pytest.mark.parametrize("argnums", [0, 1], ids=["critic", "generator"])
def test_wgan_gp_loss_gradient_matches_jax(argnums):
    """The critic's parameter gradient goes through the input gradient of the penalty."""
    state, _ = wgan_gp.init_state(seed=3, hidden=16, dtype=jnp.float64)
    real, z, eps = wgan_gp.draw_batch(np.random.default_rng(4), 32, 2, np.float64)
    args = (state["critic"], state["gen"], real, z, eps)
    ours = jax.jit(ft.grad(lambda *a: wgan_gp.critic_loss(*a)[0], argnums))(*args)
    ref = jax.jit(jax.grad(jax_wgan_critic_loss, argnums))(*args)
    assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    value = jax.jit(wgan_gp.critic_loss)(*args)[0]
    np.testing.assert_allclose(value, jax_wgan_critic_loss(*args), rtol=1e-12)


# --- R1 ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def r1_run():
    return r1_gan.main(steps=800, seed=0, gamma=1.0, progress=False)


def test_r1_gan_covers_most_modes_and_shrinks_the_penalty(r1_run):
    assert r1_run["modes_covered"] >= 6, r1_run["modes_covered"]
    assert r1_run["penalty_end"] < 0.6 * r1_run["penalty_start"], (
        r1_run["penalty_start"],
        r1_run["penalty_end"],
    )


@pytest.mark.parametrize("model", r1_gan.MODELS)
def test_r1_loss_gradient_matches_jax(model):
    s = r1_gan.setup(model, seed=5, hidden=16, latent=4, dtype=jnp.float64)
    disc_params, gen_params = s["state"]["disc"], s["state"]["gen"]
    rng = np.random.default_rng(6)
    real, z = s["sample_real"](rng, 8), rng.standard_normal((8, 4))
    loss = lambda d, g: r1_gan.discriminator_loss(d, g, real, z, s["disc"], s["gen"], 2.0)[0]
    ours = jax.jit(ft.grad(loss, argnums=(0, 1)))(disc_params, gen_params)
    ref = jax.jit(jax.grad(jax_r1_loss, argnums=(1, 2)), static_argnums=0)(
        model, disc_params, gen_params, real, z, 2.0
    )
    assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def test_r1_conv_variant_trains_on_digits():
    out = r1_gan.main(steps=10, model="conv", batch=16, hidden=16, n_samples=64, progress=False)
    assert out["samples"].shape == (64, 8, 8, 1)
    assert out["real"].shape == (64, 8, 8, 1)
    for name, values in out["history"].items():
        assert values.shape == (10,) and np.all(np.isfinite(values)), name
    assert np.all(np.abs(out["samples"]) <= 1.0)


def test_r1_setup_rejects_an_unknown_model():
    with pytest.raises(ValueError, match="`r1_gan.setup` expected `model`"):
        r1_gan.setup("resnet")


# --- the scripts, and data parallel (a fresh process: eight CPU devices need XLA_FLAGS before
# JAX starts) ----------------------------------------------------------------------------------

_SCRIPTS = """
import runpy, sys
sys.path.insert(0, ".")
for argv in [["wgan_gp.py", "--steps", "2"], ["r1_gan.py", "--steps", "2"],
             ["data_parallel.py", "--steps", "3", "--x64"]]:
    sys.argv = argv
    print("==", " ".join(argv))
    runpy.run_path(argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module")
def scripts_output():
    """The scripts as a user runs them, with tiny step counts, in one new interpreter in
    examples/ with eight CPU devices; `data_parallel.py` runs in float64 (`--x64`)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPTS],
        capture_output=True,
        text=True,
        env=env,
        cwd=EXAMPLES,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_scripts_run_from_the_command_line(scripts_output):
    out = scripts_output
    assert "modes covered" in out and "R1 penalty" in out, out


def test_data_parallel_step_equals_single_device_step(scripts_output):
    """Sharded over eight devices and on one, the parameters agree to float64 rounding."""
    out = scripts_output
    assert "batch split into 8 shards over 8 devices" in out, out
    assert "all-reduce in the compiled step: True" in out, out
    diff = re.search(r"after 3 steps: (\S+) in float64", out)
    assert diff is not None, out
    assert float(diff.group(1)) < 1e-9, out


# --- the notebooks ---------------------------------------------------------------------------

NOTEBOOK_NAMES = ["double_backward", "wgan_gp", "r1_gan"]


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_runs(name, monkeypatch):
    """Execute the notebook with tiny step counts in a fresh kernel; never written back."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("FUNCTRANS_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    text = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "Traceback" not in text and "MISMATCH" not in text, text[-2000:]
    assert re.search(r"\d", text), "the notebook should print its numbers"
