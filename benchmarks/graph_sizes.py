"""Graph size, build time and compiled runtime of the n-th derivative, functrans vs JAX.

For `tanh` and `sin(x)*exp(x)` and n = 1..N, in one process:
  - functrans, nested `ft.grad`: equations of `make_graph` (raw and after `simplify()`),
    time to build and simplify the graph, and the steady-state time per call of `ft.jit`;
  - functrans, `ft.derivatives` (Taylor mode): the same;
  - JAX, nested `jax.grad`: equations of `jax.make_jaxpr` (sub-jaxprs counted), time to
    trace, and time per call of `jax.jit`;
  - JAX, `jax.experimental.jet`: equations and trace time.

Run: `python benchmarks/graph_sizes.py [--max-order 10] [--json benchmarks/results_graph.json]`
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
from jax.experimental.jet import jet as jax_jet

import functrans as ft
import functrans.numpy as fnp

FUNS = {
    "tanh": (fnp.tanh, jnp.tanh),
    "sin*exp": (lambda x: fnp.sin(x) * fnp.exp(x), lambda x: jnp.sin(x) * jnp.exp(x)),
}


def nested(grad, f, n):
    for _ in range(n):
        f = grad(f)
    return f


def count_eqns(jaxpr):
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for p in eqn.params.values():
            sub = getattr(p, "jaxpr", None)
            if sub is not None:
                total += count_eqns(getattr(sub, "jaxpr", sub))
    return total


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def per_call(fn, x, reps=200):
    jax.block_until_ready(fn(x))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            out = fn(x)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / reps)
    times.sort()
    return times[len(times) // 2]


def jax_jet_nth(jf, n):
    def f(x):
        terms = [jnp.ones_like(x)] + [jnp.zeros_like(x)] * (n - 1)
        _, series = jax_jet(jf, (x,), (terms,))
        return series[-1]

    return f


def run(max_order):
    x = jnp.float32(0.3)
    rows = []
    for name, (f, jf) in FUNS.items():
        for n in range(1, max_order + 1):
            row = {"function": name, "order": n}
            g_ft = nested(ft.grad, f, n)
            graph, t_build = timed(lambda: ft.make_graph(g_ft)(x).simplify(), repeat=3)
            row["ft_grad_raw_eqns"] = ft.make_graph(g_ft)(x).num_equations
            row["ft_grad_eqns"] = graph.num_equations
            row["ft_grad_build_s"] = t_build
            row["ft_grad_jit_s"] = per_call(ft.jit(g_ft), x)

            def taylor(x, n=n):
                return ft.derivatives(f, n)(x)[n]

            tgraph, t_taylor = timed(lambda: ft.make_graph(taylor)(x).simplify(), repeat=3)
            row["ft_jet_eqns"] = tgraph.num_equations
            row["ft_jet_build_s"] = t_taylor
            row["ft_jet_jit_s"] = per_call(ft.jit(taylor), x)

            g_jax = nested(jax.grad, jf, n)
            jaxpr, t_trace = timed(lambda: jax.make_jaxpr(g_jax)(x), repeat=1)
            row["jax_grad_eqns"] = count_eqns(jaxpr.jaxpr)
            row["jax_grad_trace_s"] = t_trace
            row["jax_grad_jit_s"] = per_call(jax.jit(g_jax), x)
            jjaxpr, t_jet = timed(lambda: jax.make_jaxpr(jax_jet_nth(jf, n))(x), repeat=1)
            row["jax_jet_eqns"] = count_eqns(jjaxpr.jaxpr)
            row["jax_jet_trace_s"] = t_jet
            row["jax_jet_jit_s"] = per_call(jax.jit(jax_jet_nth(jf, n)), x)
            rows.append(row)
            print(
                f"{name:8s} n={n:2d} | ft.grad {row['ft_grad_eqns']:5d} eqns "
                f"(raw {row['ft_grad_raw_eqns']:5d}) {t_build * 1e3:8.1f} ms "
                f"{row['ft_grad_jit_s'] * 1e6:6.1f} us/call | ft.jet {row['ft_jet_eqns']:4d} eqns "
                f"{t_taylor * 1e3:7.1f} ms {row['ft_jet_jit_s'] * 1e6:6.1f} us/call | "
                f"jax.grad {row['jax_grad_eqns']:5d} eqns "
                f"{t_trace * 1e3:8.1f} ms {row['jax_grad_jit_s'] * 1e6:6.1f} us/call | "
                f"jax jet {row['jax_jet_eqns']:4d} eqns {row['jax_jet_jit_s'] * 1e6:6.1f} us/call",
                flush=True,
            )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-order", type=int, default=10)
    parser.add_argument("--json", default="benchmarks/results_graph.json")
    args = parser.parse_args()
    rows = run(args.max_order)
    meta = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
    }
    with open(args.json, "w") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
