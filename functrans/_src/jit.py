"""`ft.jit`: trace once per signature into a simplified graph, compile it with `jax.jit`.

The cache key is what determines the graph: the pytree structure, shapes, dtypes and weak
types of the dynamic arguments, and the values of the static ones. When the arguments are
values of an outer functrans transformation (`ft.grad(ft.jit(f))`, `ft.vmap(ft.jit(f))`),
the cached graph is evaluated by binding its primitives, so the outer transformation sees
and transforms them; otherwise the compiled XLA function runs.
"""

from __future__ import annotations

import functools

import jax

from .api import _flatten_args
from .core import Tracer, check_callable, get_aval, new_main
from .graph import Graph, GraphTrace


def _normalize_static(static_argnums, nargs):
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    out = set()
    for i in nums:
        if not isinstance(i, int) or not -nargs <= i < nargs:
            raise ValueError(
                f"`jit` got static_argnums={static_argnums!r}, but the function was called with "
                f"{nargs} positional argument(s). Each entry must be an index below {nargs}."
            )
        out.add(i % nargs)
    return out


def _trace(fun, args, kwargs, static):
    dyn = ([a for i, a in enumerate(args) if i not in static], kwargs)
    leaves, in_tree = _flatten_args("jit", dyn)
    with new_main(GraphTrace, "jit", staging=True) as main:
        trace = main.trace
        tracers = [trace.new_input(get_aval(x)) for x in leaves]
        dyn_args, dyn_kwargs = jax.tree_util.tree_unflatten(in_tree, tracers)
        it = iter(dyn_args)
        full = [a if i in static else next(it) for i, a in enumerate(args)]
        out = fun(*full, **dyn_kwargs)
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        outs = [trace.atom(o) for o in out_leaves]
    b = trace.builder
    graph = Graph([t.node for t in tracers], b.const_vars, b.const_vals, b.eqns, outs, in_tree,
                  out_tree)  # fmt: skip
    return graph.simplify()


def jit(fun, static_argnums=()):
    """Compile `fun`: one functrans graph per input signature, simplified, run by `jax.jit`.

    Args:
      fun: a function of arrays (pytrees), e.g. `ft.grad(loss)`.
      static_argnums: positions of hashable Python arguments that select the graph.

    Returns:
      A function with `fun`'s signature. It composes with every transformation, in either
      order: `ft.jit(ft.grad(f))` compiles the whole derivative graph, `ft.grad(ft.jit(f))`
      differentiates the cached graph.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> d2 = ft.jit(ft.grad(ft.grad(fnp.tanh)))
      >>> round(float(d2(0.5)), 6)
      -0.726862
    """
    check_callable("jit", fun)
    cache: dict = {}

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        static = _normalize_static(static_argnums, len(args)) if static_argnums != () else set()
        static_vals = tuple(args[i] for i in sorted(static))
        try:
            hash(static_vals)
        except TypeError:
            raise TypeError(
                "`jit` needs hashable static arguments (they select the compiled graph), got "
                f"{static_vals!r:.80}. Pass arrays as ordinary (non-static) arguments."
            ) from None
        dyn = ([a for i, a in enumerate(args) if i not in static], kwargs)
        leaves, in_tree = _flatten_args("jit", dyn)
        avals = tuple(get_aval(x) for x in leaves)
        key = (in_tree, avals, static_vals)
        entry = cache.get(key)
        if entry is None:
            graph = _trace(fun, args, kwargs, static)
            wrapped.trace_count += 1

            def run(consts, xs):
                return graph.eval_lowered(consts, xs)

            entry = (graph, jax.jit(run))
            # A graph that closed over a value of an outer functrans transformation is only
            # valid for this call: do not keep it.
            if not any(isinstance(c, Tracer) for c in graph.const_vals):
                cache[key] = entry
        graph, compiled = entry
        if any(isinstance(x, Tracer) for x in leaves) or any(
            isinstance(c, Tracer) for c in graph.const_vals
        ):
            outs = graph.eval_flat(*leaves)  # an outer transformation sees the primitives
        else:
            outs = compiled(list(graph.const_vals), list(leaves))
        return jax.tree_util.tree_unflatten(graph.out_tree, outs)

    wrapped.trace_count = 0
    wrapped.clear_cache = cache.clear
    return wrapped
