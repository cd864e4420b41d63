"""Random-program differential testing: functrans against JAX on generated programs.

`fuzz_programs.generate(seed)` writes a random program as Python source over the namespaces
`np, nn, lax`; here the same source runs with functrans and with JAX, and `check_program`
compares, in float64: values; `grad`, `vjp`, `jvp`, `jacfwd`, `jacrev`; every second-order
mix of forward and reverse mode; one third-order mix; `vmap` of `grad`; `jax.jit` of
`ft.grad` and `ft.jit` of a Hessian-vector product.

Run a campaign from the repository root::

    python -m tests.fuzz --programs 10000 --seed 0

It prints `N programs, M checks, K mismatches`, and the source of every mismatching program.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import sys
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as onp

import functrans as ft
import functrans.lax as flax
import functrans.nn as fnn
import functrans.numpy as fnp

try:
    from .fuzz_programs import Program, generate  # python -m tests.fuzz
except ImportError:  # pytest puts tests/ itself on the path
    from fuzz_programs import Program, generate

RTOL = 1e-7
ATOL = 1e-9  # times max(1, largest magnitude of the reference leaf)

# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

FT = (ft, fnp, fnn, flax)
JAX = (jax, jnp, jax.nn, jax.lax)


def _scalar_and_vector(prog, modules):
    _, np, nn, lax = modules

    def scalar(xs):
        outs = prog(np, nn, lax, *xs)
        return sum(np.sum(np.sin(o)) for o in outs)

    def vector(xs):
        outs = prog(np, nn, lax, *xs)
        return np.concatenate([np.ravel(o) for o in outs])

    return scalar, vector


def _dot(np, a, b):
    return sum(np.sum(x * y) for x, y in zip(jax.tree_util.tree_leaves(a), b))


def _mixed(api, np, f, word, dirs):
    """The derivative of scalar `f` along the mode `word` ("r" reverse, "f" forward).

    All letters but the last contract the derivative with a direction, keeping a scalar
    function; the last gives a gradient ("r") or a `jvp` pair ("f").
    """
    g = f
    for letter, t in zip(word[:-1], dirs):
        if letter == "r":
            g = lambda xs, g=g, t=t: _dot(np, api.grad(g)(xs), t)
        else:
            g = lambda xs, g=g, t=t: api.jvp(g, (xs,), (t,))[1]
    if word[-1] == "r":
        return api.grad(g)
    return lambda xs: api.jvp(g, (xs,), (dirs[len(word) - 1],))


def checks(prog, modules, data, word3):
    """`{name: thunk}`: every check of one program, written once for either library."""
    api, np = modules[0], modules[1]
    xs, dirs, ct, batch = data["xs"], data["dirs"], data["ct"], data["batch"]
    scalar, vector = _scalar_and_vector(prog, modules)
    out = {
        "value": lambda: (scalar(xs), vector(xs)),
        "grad": lambda: api.grad(scalar)(xs),
        "vjp": lambda: api.vjp(vector, xs)[1](ct),
        "jvp": lambda: api.jvp(vector, (xs,), (dirs[0],)),
        "jacfwd": lambda: api.jacfwd(vector)(xs),
        "jacrev": lambda: api.jacrev(vector)(xs),
        "vmap_grad": lambda: api.vmap(api.grad(scalar))(batch),
    }
    for word in ["ff", "fr", "rf", "rr", word3]:
        out[f"order{len(word)}_{word}"] = lambda word=word: _mixed(api, np, scalar, word, dirs)(xs)
    if api is ft:
        hvp = lambda xs: ft.jvp(ft.grad(scalar), (xs,), (dirs[0],))[1]
        out["jax.jit(grad)"] = lambda: jax.jit(ft.grad(scalar))(xs)
        out["ft.jit(hvp)"] = lambda: ft.jit(hvp)(xs)
    return out


REFERENCE_OF = {"jax.jit(grad)": "grad", "ft.jit(hvp)": "order2_fr"}


def make_data(shapes, seed):
    rng = onp.random.RandomState(seed)
    draw = lambda: tuple(jnp.asarray(rng.normal(size=s)) for s in shapes)
    xs = draw()
    dirs = [draw() for _ in range(3)]
    batch = tuple(jnp.stack([x, x + 0.1 * d]) for x, d in zip(xs, draw()))
    return {"xs": xs, "dirs": dirs, "batch": batch, "ct": None}


@dataclasses.dataclass
class Mismatch:
    check: str
    detail: str

    def __str__(self):
        return f"{self.check}: {self.detail}"


def _compare(got, want, same_nonfinite=False):
    """None when the trees agree, else a description of the first difference.

    Entries where the reference is finite are compared with a tolerance (a NaN or an infinity
    of ours there is a difference). Where the reference is NaN or infinite, `same_nonfinite`
    asks for the very same value (the primal values of one function must agree there);
    otherwise those entries are not compared (derivatives at a singularity may differ by rule).
    """
    g_leaves, g_tree = jax.tree_util.tree_flatten(got)
    w_leaves, w_tree = jax.tree_util.tree_flatten(want)
    if g_tree != w_tree:
        return f"tree structure {g_tree} != {w_tree}"
    for i, (g, w) in enumerate(zip(g_leaves, w_leaves)):
        g, w = onp.asarray(g), onp.asarray(w)
        if g.shape != w.shape:
            return f"leaf {i}: shape {g.shape} != {w.shape}"
        if g.dtype != w.dtype:
            return f"leaf {i}: dtype {g.dtype} != {w.dtype}"
        finite = (
            onp.isfinite(w) if onp.issubdtype(w.dtype, onp.inexact) else onp.ones(w.shape, bool)
        )
        if same_nonfinite and not onp.array_equal(g[~finite], w[~finite], equal_nan=True):
            where = onp.argwhere(~finite)[:5].tolist()
            return (
                f"leaf {i}: at the reference's NaN/inf entries {where}...\n  got  {g}\n  want {w}"
            )
        g, w = g[finite], w[finite]
        scale = max(1.0, float(onp.max(onp.abs(w), initial=0.0)))
        if not onp.allclose(g, w, rtol=RTOL, atol=ATOL * scale):
            err = float(onp.max(onp.abs(g - w)))
            return f"leaf {i}: max abs error {err:.3g} (scale {scale:.3g})\n  got  {g}\n  want {w}"
    return None


def _comparable(tree, same_nonfinite):
    """Whether a reference has anything to compare: a finite entry, or NaNs that must match."""
    if same_nonfinite:
        return True
    return any(
        not onp.issubdtype(onp.asarray(x).dtype, onp.inexact) or bool(onp.any(onp.isfinite(x)))
        for x in jax.tree_util.tree_leaves(tree)
    )


# Checks also run eagerly with `eager=True` (everything but the checks that are a `jit`
# themselves). Each runs twice: at top level the second call reuses the derivative programs
# and the compiled program the first one made (`staged.py`, `lazy.py`), so both paths are
# compared with JAX.
EAGER_CHECKS = ("value", "grad", "vjp", "jvp", "jacfwd", "jacrev", "vmap_grad", "order2_ff",
                "order2_fr", "order2_rf", "order2_rr")  # fmt: skip


def _evaluate(thunks, jit):
    """`{name: result or the exception}`: eagerly, or all the thunks in one `jax.jit`."""
    if not jit:
        out = {}
        for name, thunk in thunks.items():
            try:
                out[name] = thunk()
            except Exception as e:  # noqa: BLE001 - any failure is reported
                out[name] = e
        return out
    errors = {}

    def everything():
        results = {}
        for name, thunk in thunks.items():
            try:
                results[name] = thunk()
            except Exception as e:  # noqa: BLE001 - any failure is reported
                errors[name] = e
        return results

    try:
        results = jax.jit(everything)()
    except Exception as e:  # noqa: BLE001 - a failure outside every single check
        return {name: e for name in thunks}
    return {**results, **errors}


def check_program(
    program: Program, seed: int = 0, word3: str | None = None, only=None, eager: bool = False
):
    """Runs every check of `program` on inputs drawn from `seed`.

    The JAX references run under one `jax.jit`, and so do functrans' checks (one compilation
    each: eager JAX would compile every operation of every derivative on its own).

    Args:
      program: a `Program` (from `generate`, or written by hand for a regression test).
      seed: seeds the inputs, directions and cotangent.
      word3: the third-order mode mix ("rfr", ...); by default one drawn from `seed`.
      only: names of the checks to run (all by default).
      eager: also run the checks in `EAGER_CHECKS` (and the third-order mix) eagerly, twice.

    Returns:
      `(number of checks compared, list of Mismatch)`. Checks whose JAX reference fails are
      skipped; so are derivative checks whose reference has no finite entry. Values must
      agree on NaN and infinite entries too; derivatives are compared where JAX's are finite.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError("`check_program` compares in float64: enable `jax_enable_x64`.")
    prog = program.function()
    data = make_data(program.shapes, seed)
    if word3 is None:
        word3 = "".join(random.Random(seed).choice("fr") for _ in range(3))
    try:
        ref_vector = jax.eval_shape(_scalar_and_vector(prog, JAX)[1], data["xs"])
    except Exception:  # noqa: BLE001 - the generator made a program JAX refuses
        return 0, []
    rng = onp.random.RandomState(seed + 1)
    data["ct"] = jnp.asarray(rng.normal(size=ref_vector.shape))
    keep = lambda d: {k: v for k, v in d.items() if only is None or k in only}
    ours = keep(checks(prog, FT, data, word3))
    wanted = None if only is None else {REFERENCE_OF.get(k, k) for k in only}
    refs = {k: v for k, v in checks(prog, JAX, data, word3).items() if k in (wanted or [k])}
    refs = _evaluate(refs, jit=True)
    runs = [("jit", _evaluate(ours, jit=True))]
    if eager:
        for mode in ("eager", "eager, again"):
            mine = {k: v for k, v in ours.items() if k in EAGER_CHECKS or k.startswith("order3")}
            runs.append((mode, _evaluate(mine, False)))
    n, found = 0, []
    for mode, results in runs:
        for name, got in results.items():
            want = refs.get(REFERENCE_OF.get(name, name))
            strict = name == "value"
            if want is None or isinstance(want, Exception) or not _comparable(want, strict):
                continue
            n += 1
            if isinstance(got, Exception):
                tb = traceback.format_exception_only(type(got), got)[-1].strip()
                found.append(Mismatch(f"{name} ({mode})", f"raised {tb}"))
                continue
            diff = _compare(got, want, same_nonfinite=strict)
            if diff is not None:
                found.append(Mismatch(f"{name} ({mode})", diff))
    return n, found


# ---------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------


def campaign(programs, seed=0, max_nodes=12, out=sys.stdout, time_limit=None, eager=False):
    """Checks `programs` programs (seeds `seed, seed+1, ...`); returns (programs, checks, bad)."""
    start = time.time()
    n_checks, bad, done = 0, [], 0
    for s in itertools.islice(itertools.count(seed), programs):
        program = generate(s, max_nodes)
        n, found = check_program(program, seed=s, eager=eager)
        n_checks += n
        done += 1
        if found:
            bad.append((s, program, found))
            print(f"--- mismatch, program seed {s}:\n{program.source}", file=out)
            for m in found:
                print(f"  {m}", file=out)
            out.flush()
        if out is sys.stdout and done % 10 == 0:
            print(f"[{done} programs, {n_checks} checks, {time.time() - start:.0f} s]", flush=True)
        if time_limit is not None and time.time() - start > time_limit:
            break
    return done, n_checks, bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-nodes", type=int, default=12)
    parser.add_argument("--time-limit", type=float, default=None, help="seconds")
    parser.add_argument(
        "--eager",
        action="store_true",
        help="also run the checks eagerly, twice (first and reused programs)",
    )
    parser.add_argument("--show", action="store_true", help="print the programs, check none")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.show:
        for s in range(args.seed, args.seed + args.programs):
            print(f"# seed {s}\n{generate(s, args.max_nodes).source}")
        return 0
    start = time.time()
    done, n_checks, bad = campaign(
        args.programs, args.seed, args.max_nodes, time_limit=args.time_limit, eager=args.eager
    )
    n_bad = sum(len(found) for _, _, found in bad)
    print(
        f"{done} programs, {n_checks} checks, {n_bad} mismatches "
        f"({len(bad)} programs, {time.time() - start:.0f} s)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
