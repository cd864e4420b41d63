"""`ft.checkpoint` (alias `remat`): reverse mode saves only a function's inputs.

`checkpoint(fun)` traces `fun` into a `Graph` and binds one `checkpoint` primitive that holds
it. To the reverse-mode tape that primitive is a single equation whose saved values are its
inputs, so none of `fun`'s intermediate values are kept: the VJP rule runs `fun`'s graph
forward again, inside the backward pass, and differentiates that recomputation. Values `fun`
closes over become explicit inputs of the primitive, so outer transformations still see them.
"""

from __future__ import annotations

import functools

import jax

from .api import _finish, _flatten_args
from .core import Primitive, check_callable, get_aval, is_inexact, new_main
from .graph import Graph, GraphTrace
from .jvp import jvp_flat
from .vjp import vjp_flat

checkpoint_p = Primitive("checkpoint", multiple_results=True)


def _impl(*args, graph):
    return graph.eval_lowered([], args)


def _abstract_eval(*args, graph):
    return [v.aval for v in graph.outs]


def _run(graph):
    return lambda ins: (graph.eval_flat(*ins), None)


def _jvp(primals, tangents, graph):
    outs, out_ts, _ = jvp_flat(_run(graph), list(primals), list(tangents), name="checkpoint")
    return outs, out_ts


def _vjp(needs, cts, outs, *primals, graph):
    # The backward pass is itself a checkpointed graph of (inputs, cotangents): it runs the
    # forward pass again at the saved inputs, then walks back. A nested reverse pass over it
    # again saves only those inputs, and `make_graph` shows the recomputation as its body.
    n = len(primals)
    cts = [jax.numpy.zeros(a.shape, a.dtype) if c is None else c
           for c, a in zip(cts, _abstract_eval(graph=graph))]  # fmt: skip
    diff = [i for i, p in enumerate(primals) if is_inexact(get_aval(p).dtype)]

    def recompute_and_backward(*xs):
        _, backward, _ = vjp_flat(_run(graph), list(xs[:n]), name="checkpoint")
        in_cts = backward(list(xs[n:]))
        return [_finish(xs[i], in_cts[i]) for i in diff]

    leaves = [*primals, *cts]
    in_tree = jax.tree_util.tree_structure((tuple(leaves), {}))
    bgraph, consts, _ = _closed_graph(recompute_and_backward, leaves, in_tree)
    res = checkpoint_p.bind(*consts, *leaves, graph=bgraph)
    out = [None] * n
    for i, r in zip(diff, res):
        out[i] = r
    return tuple(out)


def _batch(vals, dims, graph):
    from .batching import vmap

    batched = vmap(lambda *xs: graph.eval_flat(*xs), in_axes=tuple(dims))
    outs = checkpoint(batched)(*vals)  # still recomputed in reverse mode
    return outs, [0] * len(outs)


def _inline(*args, graph):
    """Evaluate by binding the body's primitives (for transformations without a rule)."""
    return graph.eval_flat(*args)


checkpoint_p.impl = _impl
checkpoint_p.abstract_eval = _abstract_eval
checkpoint_p.jvp = _jvp
checkpoint_p.vjp = _vjp
checkpoint_p.batch = _batch
checkpoint_p.inline = _inline
checkpoint_p.primal_body = _inline


def _closed_graph(fun, leaves, in_tree):
    with new_main(GraphTrace, "checkpoint", staging=True) as main:
        trace = main.trace
        tracers = [trace.new_input(get_aval(x)) for x in leaves]
        args, kwargs = jax.tree_util.tree_unflatten(in_tree, tracers)
        out = fun(*args, **kwargs)
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        outs = [trace.atom(o) for o in out_leaves]
    b = trace.builder
    # Constants become leading inputs, bound as operands, so that a closed-over value of an
    # outer transformation is visible to it.
    graph = Graph(b.const_vars + [t.node for t in tracers], [], [], b.eqns, outs, None, None)
    return graph.simplify(), list(b.const_vals), out_tree


def checkpoint(fun, *, prevent_cse=True, policy=None, static_argnums=()):
    """Make reverse mode recompute `fun`'s intermediate values instead of storing them.

    Args:
      fun: a function of pytrees of arrays.
      prevent_cse, policy, static_argnums: accepted for `jax.checkpoint` compatibility;
        functrans always saves only the inputs (`policy` must be None).

    Returns:
      A function with `fun`'s signature and values; under `ft.grad`/`ft.vjp` only its inputs
      are kept for the backward pass.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> f = ft.checkpoint(lambda x: fnp.sin(fnp.sin(x)))
      >>> round(float(ft.grad(f)(1.0)), 6)
      0.360039
    """
    check_callable("checkpoint", fun)
    if policy is not None:
        raise NotImplementedError(
            "`ft.checkpoint` does not support saving policies yet: it always saves only the "
            "inputs. Call it without `policy=`."
        )
    if static_argnums:
        raise NotImplementedError(
            "`ft.checkpoint` does not take `static_argnums` yet; close over static values "
            "instead (`ft.checkpoint(functools.partial(f, n))`)."
        )

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        leaves, in_tree = _flatten_args("checkpoint", (args, kwargs))
        graph, consts, out_tree = _closed_graph(fun, leaves, in_tree)
        outs = checkpoint_p.bind(*consts, *leaves, graph=graph)
        return jax.tree_util.tree_unflatten(out_tree, outs)

    return wrapped


remat = checkpoint
