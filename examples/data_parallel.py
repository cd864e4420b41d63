"""Data-parallel WGAN-GP: the functrans training step under `jax.jit`, batch sharded.

functrans' gradients are ordinary JAX computations, so `jax.sharding` works on them as on
any JAX program: the WGAN-GP iteration of `wgan_gp.py` (five critic steps with a gradient
penalty, a generator step) is compiled once with its batch split over a
`jax.sharding.Mesh` of eight CPU devices and its parameters replicated. XLA partitions the
whole derivative graph, including the gradient of the gradient penalty, and inserts the
all-reduces of the parameter gradients. The script checks that the sharded step gives the
same parameters as the single-device step: to rounding in float64 (about 1e-12); in float32
the GAN game and Adam amplify the different summation order over a few dozen steps.

Eight CPU devices need `XLA_FLAGS=--xla_force_host_platform_device_count=8` before JAX
starts; this script sets it when it is imported before JAX's first computation. In a process
where JAX already started with fewer devices, it uses the devices there are.

Run: `python examples/data_parallel.py --steps 50`
"""

from __future__ import annotations

import os

# The flag counts only if it is set before JAX initialises its CPU backend.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    _flag = "--xla_force_host_platform_device_count=8"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import argparse  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import wgan_gp  # noqa: E402  (examples/ is on sys.path: scripts, tests and notebooks)
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from tqdm import tqdm  # noqa: E402


def shardings(mesh):
    """Where each input of the training step lives: parameters replicated, batch split.

    Args:
      mesh: a one-axis `jax.sharding.Mesh` whose axis is named `"data"`.

    Returns:
      `(state_sharding, data_sharding)`: a replicated `NamedSharding` for the whole state,
      and a dict matching `wgan_gp.draw_iteration`'s output that splits the batch axis.
    """
    replicated = NamedSharding(mesh, P())
    critic_batch = NamedSharding(mesh, P(None, "data"))  # axis 0 is the critic step
    data = {
        "real": critic_batch,
        "z": critic_batch,
        "eps": critic_batch,
        "gen_z": NamedSharding(mesh, P("data")),
    }
    return replicated, data


def max_abs_difference(a, b):
    """The largest absolute difference between two pytrees of arrays of the same structure."""
    diffs = jax.tree_util.tree_map(
        lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0)), a, b
    )
    return max(jax.tree_util.tree_leaves(diffs))


def main(steps=20, seed=0, devices=8, batch=256, lam=10.0, dtype=jnp.float32, progress=True):
    """Train the same WGAN-GP on one device and sharded over a mesh; compare parameters.

    Args:
      steps: training iterations (each: five critic steps, one generator step).
      seed: random seed.
      devices: mesh size wanted; the mesh uses `min(devices, jax.device_count())`.
      batch: global batch size (a multiple of the number of devices).
      lam: gradient-penalty weight.
      dtype: floating dtype of parameters and data (`jnp.float64` needs JAX's x64 mode).
      progress: show a `tqdm` progress bar.

    Returns:
      A dict with `devices` (mesh size), `max_abs_diff` (largest parameter difference
      between the two runs), `state_sharded`, `state_single`, `gen_loss` (histories of
      both runs), `shards_per_batch` (pieces the batch was split into), `all_reduce`
      (whether the compiled sharded step contains an all-reduce) and the mean time per
      step of each run (`seconds_sharded`, `seconds_single`, after compilation).
    """
    n = min(devices, jax.device_count())
    if batch % n:
        raise ValueError(
            f"`data_parallel.main` splits the batch over {n} devices, so `batch` must be a "
            f"multiple of {n}; got batch={batch}. Pass e.g. batch={n * (batch // n + 1)}."
        )
    mesh = Mesh(np.array(jax.devices()[:n]), ("data",))
    state_sharding, data_sharding = shardings(mesh)

    state, opt = wgan_gp.init_state(seed, dtype=dtype)
    step = partial(wgan_gp.train_step, opt, lam=lam)
    single = jax.jit(step)
    sharded = jax.jit(
        step,
        in_shardings=(state_sharding, data_sharding),
        out_shardings=(state_sharding, state_sharding),
    )

    one_device = jax.devices()[0]
    state_single = jax.device_put(state, one_device)
    state_sharded = jax.device_put(state, state_sharding)
    rng = np.random.default_rng(seed + 1)
    first = wgan_gp.draw_iteration(rng, batch, dtype=dtype)
    # Compile ahead of time once: the executable runs the steps and its HLO shows the collectives.
    sharded = sharded.lower(state_sharded, jax.device_put(first, data_sharding)).compile()
    hlo = sharded.as_text()

    history = {"single": [], "sharded": []}
    seconds = {"single": 0.0, "sharded": 0.0}
    for i in tqdm(range(steps), desc=f"WGAN-GP on {n} devices", disable=not progress):
        data = first if i == 0 else wgan_gp.draw_iteration(rng, batch, dtype=dtype)
        for name in ("single", "sharded"):
            if name == "single":
                placed = jax.device_put(data, one_device)
                t0 = time.perf_counter()
                state_single, metrics = single(state_single, placed)
            else:
                placed = jax.device_put(data, data_sharding)
                t0 = time.perf_counter()
                state_sharded, metrics = sharded(state_sharded, placed)
            loss = float(metrics["gen_loss"])  # waits for the step to finish
            if i > 0:  # the first call compiles
                seconds[name] += time.perf_counter() - t0
            history[name].append(loss)

    return {
        "devices": n,
        "max_abs_diff": max_abs_difference(state_single, state_sharded),
        "state_single": state_single,
        "state_sharded": state_sharded,
        "gen_loss": {k: np.asarray(v) for k, v in history.items()},
        "shards_per_batch": len(placed["real"].addressable_shards),
        "all_reduce": "all-reduce" in hlo,
        "seconds_single": seconds["single"] / max(steps - 1, 1),
        "seconds_sharded": seconds["sharded"] / max(steps - 1, 1),
    }


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--devices", type=int, default=8, help="mesh size")
    parser.add_argument(
        "--x64", action="store_true", help="float64: the two runs then agree to rounding"
    )
    return parser.parse_args()


if __name__ == "__main__":
    args = _parse()
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if args.x64 else jnp.float32
    out = main(steps=args.steps, seed=args.seed, devices=args.devices, dtype=dtype)
    print(
        f"batch split into {out['shards_per_batch']} shards over {out['devices']} devices; "
        f"all-reduce in the compiled step: {out['all_reduce']}"
    )
    print(
        f"largest parameter difference, sharded vs single device, after {args.steps} steps: "
        f"{out['max_abs_diff']:.2e} in {jnp.dtype(dtype).name}"
    )
    if not args.x64:
        print("(sums over the batch run in another order; Adam and the GAN game amplify float32")
        print(" rounding over the steps: run with --x64 to see the difference fall to ~1e-12)")
    print(
        f"time per step: {1e3 * out['seconds_single']:.1f} ms on one device, "
        f"{1e3 * out['seconds_sharded']:.1f} ms sharded"
    )
