"""functrans against JAX on seven workloads: eager, first jitted call, steady jitted call, memory.

Run from the repository root:

    python -m benchmarks.run            # the full table (a few minutes), JSON in benchmarks/
    python -m benchmarks.run --quick    # fewer repetitions, no cold-start subprocesses

Every workload (`benchmarks/workloads.py`) is written once against a namespace of array
operations and transformations, and instantiated with `functrans` and with `jax`. For each:

- eager: steady-state time of a call without `jax.jit` (median over interleaved rounds);
- eager first: the first eager call in a fresh process (JAX compiles op by op);
- jit first: the first call of `jax.jit(transform(f))` in a fresh process: trace, lower,
  compile and run;
- jit: steady-state time of a compiled call;
- memory: the growth of the process's peak resident set over the first calls (eager and
  jitted, each in its own fresh process). `jax.devices()[0].memory_stats()` is `None` on CPU,
  and `tracemalloc` does not see XLA's buffers, so the peak RSS is the honest measure here.

Ratios are functrans / JAX from the same process. By default XLA uses one compute thread
(`XLA_FLAGS`, set before JAX is imported); pass `--threads 0` to leave XLA's default, or set
`XLA_FLAGS` yourself. PyTorch (eager, `create_graph=True`) and HIPS autograd columns are
added for the workloads `benchmarks/others.py` writes, when those packages are installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _configure_threads(argv):
    threads = 1
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = int(argv[i + 1])
    if threads == 1 and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = ONE_THREAD
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return threads


THREADS = _configure_threads(sys.argv)
# `--clock cpu` times with the CPU time of the whole process (all of XLA's threads): on a
# machine shared with other jobs, wall time mostly measures the scheduler.
_CPU_CLOCK = "--clock" in sys.argv and sys.argv[sys.argv.index("--clock") + 1 :][:1] == ["cpu"]
clock = time.process_time if _CPU_CLOCK else time.perf_counter

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import workloads as W  # noqa: E402

LIBS = {"functrans": W.functrans_lib, "jax": W.jax_lib}


def _block(out):
    return jax.block_until_ready(out)


def _device_args(args):
    return jax.tree_util.tree_map(jnp.asarray, args)


def _reset_peak_rss():
    """Reset the kernel's high-water mark of our RSS (Linux), so imports do not hide a peak."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# ---------------------------------------------------------------------------------------------
# Steady state: both libraries in this process, interleaved
# ---------------------------------------------------------------------------------------------


def per_call_pair(calls, budget, rounds):
    """Median seconds per call of each function in `calls`, measured in interleaved rounds."""
    estimates = []
    for call in calls:
        _block(call())
        start = clock()
        _block(call())
        estimates.append(max(clock() - start, 1e-7))
    reps = [max(1, min(1000, int(budget / rounds / e))) for e in estimates]
    samples = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            start = clock()
            for _ in range(reps[i]):
                out = call()
            _block(out)
            samples[i].append((clock() - start) / reps[i])
    return [float(np.median(s)) for s in samples]


def steady(name, budget, rounds):
    built = {}
    for lib_name, make in LIBS.items():
        fun, args = W.build(name, make())
        built[lib_name] = (fun, _device_args(args))
    row = {}
    eager = [lambda f=f, a=a: f(*a) for f, a in built.values()]
    row["eager_s"] = dict(zip(LIBS, per_call_pair(eager, budget, rounds)))
    jitted = [(jax.jit(f), a) for f, a in built.values()]
    jit_calls = [lambda f=f, a=a: f(*a) for f, a in jitted]
    row["jit_s"] = dict(zip(LIBS, per_call_pair(jit_calls, budget, rounds)))
    return row


# ---------------------------------------------------------------------------------------------
# Cold start: one fresh process per (workload, library, mode)
# ---------------------------------------------------------------------------------------------


def cold_child(name, lib_name, mode):
    """In a fresh process: time the first call and the growth of the peak RSS."""
    _block(jax.jit(lambda x: x + 1)(jnp.ones(2)))  # start the backend outside the timing
    _block(jnp.ones(2) * 2)
    fun, args = W.build(name, LIBS[lib_name]())
    args = _device_args(args)
    call = jax.jit(fun) if mode == "jit" else fun
    _reset_peak_rss()
    rss0 = _peak_rss_mb()
    start = clock()
    _block(call(*args))
    first = clock() - start
    for _ in range(2):
        _block(call(*args))
    return {"first_s": first, "rss_mb": _peak_rss_mb() - rss0}


def cold(name, lib_name, mode):
    cmd = [sys.executable, "-m", "benchmarks.run", "--cold", name, lib_name, mode,
           "--threads", str(THREADS), "--clock", "cpu" if _CPU_CLOCK else "wall"]  # fmt: skip
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"cold run of {name} / {lib_name} / {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# W6: trace time of the n-th derivative
# ---------------------------------------------------------------------------------------------


def trace_sweep(max_order, repeats=3):
    """Seconds for `jax.make_jaxpr` of the n-th derivative (what `jax.jit` traces), n = 1..N.

    Each trace is repeated with freshly built functions (`make_jaxpr` traces afresh; only
    per-primitive caches are warm, on both sides) and the median kept: a single sample can
    catch a garbage-collector pass over JAX's heap.
    """
    rows = []
    x = jnp.float32(0.3)
    for fname, builder in (("tanh", W.w6_tanh), ("sin*exp", W.w6_sin_exp)):
        for n in range(1, max_order + 1):
            row = {"function": fname, "order": n}
            for lib_name, make in LIBS.items():
                times = []
                for _ in range(repeats):
                    fun, _ = builder(make(), None, None, np.float32, order=n)
                    start = clock()
                    jaxpr = jax.make_jaxpr(fun)(x)
                    times.append(clock() - start)
                row[f"{lib_name}_trace_s"] = float(np.median(times))
                row[f"{lib_name}_eqns"] = len(jaxpr.jaxpr.eqns)
            rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _fmt_time(s):
    if s is None:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def _ratio(row, key):
    v = row.get(key)
    if not v or v.get("jax") in (None, 0) or v.get("functrans") is None:
        return None
    return v["functrans"] / v["jax"]


COLUMNS = [("eager_s", "eager"), ("eager_first_s", "eager first"), ("jit_first_s", "jit first"),
           ("jit_s", "jit")]  # fmt: skip


def table(results):
    rows, others = results["rows"], results.get("others", [])
    head = ["workload"]
    for _, label in COLUMNS:
        head += [f"{label} ft", f"{label} JAX", "ratio"]
    head += ["RSS ft / JAX (eager; jit)"]
    extra = sorted({k for o in others for k in o if k != "workload"})
    head += extra
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_name = {o["workload"]: o for o in others}
    for row in rows:
        cells = [row["workload"]]
        for key, _ in COLUMNS:
            v = row.get(key) or {}
            r = _ratio(row, key)
            cells += [_fmt_time(v.get("functrans")), _fmt_time(v.get("jax")),
                      "n/a" if r is None else f"{r:.2f}"]  # fmt: skip
        mem = row.get("rss_mb")
        if mem:
            cells.append(
                f"{mem['eager']['functrans']:.0f} / {mem['eager']['jax']:.0f} MB; "
                f"{mem['jit']['functrans']:.0f} / {mem['jit']['jax']:.0f} MB"
            )
        else:
            cells.append("n/a (--quick)")
        o = by_name.get(row["workload"], {})
        cells += [_fmt_time(o.get(k)) for k in extra]
        lines.append("| " + " | ".join(cells) + " |")
    geo = ["**geometric mean**"]
    for key, _ in COLUMNS:
        rs = [r for r in (_ratio(row, key) for row in rows) if r]
        g = math.exp(sum(map(math.log, rs)) / len(rs)) if rs else None
        geo += ["", "", "n/a" if g is None else f"**{g:.2f}**"]
    geo += [""] * (len(head) - len(geo))
    lines.append("| " + " | ".join(geo) + " |")
    return "\n".join(lines)


def sweep_table(rows):
    lines = ["| function | n | ft trace | JAX trace | ratio | ft eqns | JAX eqns |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        ratio = r["functrans_trace_s"] / r["jax_trace_s"]
        lines.append(
            f"| {r['function']} | {r['order']} | {_fmt_time(r['functrans_trace_s'])} | "
            f"{_fmt_time(r['jax_trace_s'])} | {ratio:.3f} | {r['functrans_eqns']} | "
            f"{r['jax_eqns']} |"
        )
    return "\n".join(lines)


def machine():
    import functrans

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "functrans": getattr(functrans, "__version__", "dev"),
        "device": str(jax.devices()[0]),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "clock": "cpu (process_time)" if _CPU_CLOCK else "wall (perf_counter)",
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short timings, no cold runs")
    parser.add_argument("--only", default="", help="comma-separated workload prefixes, e.g. W1,W6")
    parser.add_argument("--json", default=os.path.join("benchmarks", "results.json"))
    parser.add_argument("--threads", type=int, default=1, help="1: one XLA thread; 0: default")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: CPU time of the process (shared machines)",
    )
    parser.add_argument("--no-cold", action="store_true", help="skip the fresh-process runs")
    parser.add_argument("--cold-repeats", type=int, default=3,
                        help="fresh processes per first-call cell (median)")  # fmt: skip
    parser.add_argument("--no-others", action="store_true", help="skip PyTorch and autograd")
    parser.add_argument("--cold", nargs=3, help=argparse.SUPPRESS)  # WORKLOAD LIB MODE
    parser.add_argument("--print", metavar="JSON", help="only print the tables of a results file")
    args = parser.parse_args(argv)
    if args.print:
        with open(args.print) as fh:
            results = json.load(fh)
        print(table(results))
        if "trace_sweep" in results:
            print()
            print(sweep_table(results["trace_sweep"]))
        return
    if args.cold:
        print(json.dumps(cold_child(*args.cold)))
        return
    budget, rounds = (0.2, 3) if args.quick else (1.0, 7)
    prefixes = [p.strip() for p in args.only.split(",") if p.strip()]
    names = [n for n in W.WORKLOADS if not prefixes or any(n.startswith(p) for p in prefixes)]
    rows = []
    for name in names:
        row = {"workload": name, **steady(name, budget, rounds)}
        if not (args.quick or args.no_cold):
            row["eager_first_s"], row["jit_first_s"] = {}, {}
            row["rss_mb"] = {"eager": {}, "jit": {}}
            for lib_name in LIBS:
                for mode in ("eager", "jit"):
                    # A first call happens once per process: the median of a few fresh
                    # processes keeps one slow start (disk, a busy core) out of the table.
                    runs = [cold(name, lib_name, mode) for _ in range(args.cold_repeats)]
                    row[f"{mode}_first_s"][lib_name] = statistics.median(r["first_s"] for r in runs)
                    row["rss_mb"][mode][lib_name] = statistics.median(r["rss_mb"] for r in runs)
        rows.append(row)
        print(f"{name}: " + ", ".join(
            f"{k} {_ratio(row, k):.2f}" for k, _ in COLUMNS if _ratio(row, k) is not None
        ), flush=True)  # fmt: skip
    command = " ".join(["python -m benchmarks.run", *sys.argv[1:]])
    results = {"machine": machine(), "command": command, "rows": rows}
    if not args.no_others:
        from benchmarks import others

        results["others"] = others.run(names, budget, rounds)
    if not prefixes or "W6" in prefixes:
        results["trace_sweep"] = trace_sweep(W.ORDER)
    print()
    print(table(results))
    if "trace_sweep" in results:
        print()
        print(sweep_table(results["trace_sweep"]))
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
