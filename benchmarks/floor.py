"""The lowest eager ratio the arithmetic allows: FLOPs of each workload against the core's peak.

Run from the repository root:

    python -m benchmarks.floor --clock cpu            # every workload (JAX eager W6 is slow)
    python -m benchmarks.floor --clock cpu --only W2

An eager call of any library that does a workload's float32 arithmetic takes at least
`flops / peak` of CPU time, where `flops` is XLA's cost analysis of the compiled JAX program
and `peak` is what XLA reaches on one large matrix product on this machine (per second of the
chosen clock). Dividing that by JAX's steady eager time gives the smallest functrans / JAX
eager ratio any implementation could show in `benchmarks.run`; the compiled program's own
time (the `jit` column) is a second, measured, floor. Same XLA settings as `benchmarks.run`
(one XLA thread unless `--threads 0`).
"""

from __future__ import annotations

import argparse

from benchmarks.run import LIBS, W, _block, _device_args, clock, jax, jnp, np, per_call_pair


def peak_flops(n=1024, repeats=20):
    """FLOP/s of XLA's float32 `n x n` matrix product, per second of `clock`."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    dot = jax.jit(lambda a: a @ a)
    _block(dot(a))
    times = []
    for _ in range(repeats):
        start = clock()
        _block(dot(a))
        times.append(clock() - start)
    return 2 * n**3 / float(np.median(times))


def floor_row(name, peak, budget, rounds, size="full"):
    fun, args = W.build(name, LIBS["jax"](), size=size)
    args = _device_args(args)
    flops = jax.jit(fun).lower(*args).compile().cost_analysis()["flops"]
    jitted = jax.jit(fun)
    eager_s, jit_s = per_call_pair([lambda: fun(*args), lambda: jitted(*args)], budget, rounds)
    arithmetic_s = flops / peak
    return {
        "flops": flops,
        "arithmetic_s": arithmetic_s,
        "jax_eager_s": eager_s,
        "jax_jit_s": jit_s,
        "floor_arithmetic": arithmetic_s / eager_s,
        "floor_jit": jit_s / eager_s,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated workload prefixes")
    parser.add_argument("--threads", type=int, default=1, help="read by benchmarks.run")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per workload")
    opts = parser.parse_args(argv)
    names = [n for n in W.WORKLOADS if not opts.only or n.startswith(tuple(opts.only.split(",")))]
    peak = peak_flops()
    print(f"peak: {peak / 1e9:.1f} GFLOP/s float32 per {opts.clock} second (1024^3 product)")
    cols = ["workload", "MFLOP", "arithmetic", "JAX eager", "JAX jit", "floor (arithmetic)",
            "floor (jit)"]  # fmt: skip
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name in names:
        r = floor_row(name, peak, opts.budget, rounds=5)
        print(
            f"| {name} | {r['flops'] / 1e6:.1f} | {r['arithmetic_s'] * 1e3:.3f} ms "
            f"| {r['jax_eager_s'] * 1e3:.2f} ms | {r['jax_jit_s'] * 1e3:.3f} ms "
            f"| {r['floor_arithmetic']:.3f} | {r['floor_jit']:.3f} |"
        )


if __name__ == "__main__":
    main()
