"""Control flow: `cond`, `switch`, `scan`, `fori_loop` and `while_loop` as primitives.

Each construct traces the user's functions once into `Graph`s and binds one primitive that
holds them (`cond`, `scan`, `while`), lowered to `jax.lax.switch` / `scan` / `while_loop`, so
XLA sees real control flow, never an unrolled loop. Values the functions close over become
explicit leading operands, so outer transformations see them.

The rules build new graphs by transforming the held ones with functrans' own machinery:
- JVP: the graph of `jvp` of the body (a scan over primal and tangent carries; a cond whose
  branches return tangents too).
- VJP: for `cond`, a cond whose branches recompute their forward pass and walk back (as
  `checkpoint` does); for `scan`, a forward scan that also stacks the carries, then a scan in
  the opposite direction whose step recomputes one body application and walks back through
  it. Both are made of the same primitives, so they can be differentiated again.
- Batching: `vmap` of the held graphs; a batched `cond` predicate turns into a `select` of
  every branch, a batched `while` predicate into a loop that runs while any example continues.
- Taylor mode: the held graphs are `jet`-transformed and bound again.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .core import Primitive, ShapedArray, Tracer, get_aval, is_inexact, new_main
from .graph import Graph, GraphTrace, Var
from .jvp import jvp_flat
from .vjp import vjp_flat

# =============================================================================================
# Tracing user functions into graphs
# =============================================================================================


def _trace_flat(fun, avals, name):
    """Trace `fun` (a flat list of inputs -> a flat list of outputs) into a closed graph.

    Returns `(graph, consts)`: the graph's inputs are the captured constants followed by
    `avals`; `consts` are the values to pass for the former.
    """
    with new_main(GraphTrace, name, staging=True) as main:
        trace = main.trace
        ins = [trace.new_input(a) for a in avals]
        outs = [trace.atom(o) for o in fun(ins)]
    b = trace.builder
    graph = Graph(b.const_vars + [t.node for t in ins], [], [], b.eqns, outs, None, None)
    return graph.simplify(), list(b.const_vals)


def _trace_open(fun, avals, name):
    """Like `_trace_flat` for rule bodies, which must not capture anything: constants found
    while tracing (zeros, literals' arrays) are baked into the graph."""
    graph, consts = _trace_flat(fun, avals, name)
    if not consts:
        return graph
    if any(isinstance(c, Tracer) for c in consts):
        raise AssertionError(f"internal error: a `{name}` rule captured a traced value.")
    n = len(consts)
    return Graph(graph.in_vars[n:], graph.in_vars[:n], consts, graph.eqns, graph.outs, None, None)


def _run(graph):
    """A graph as a flat function, evaluated by binding its primitives (any context)."""
    return lambda *xs: graph.eval_flat(*xs)


def _out_avals(graph):
    return [v.aval for v in graph.outs]


def _avals(xs):
    return [get_aval(x) for x in xs]


def _strong(aval):
    return ShapedArray(aval.shape, aval.dtype, False)


def _zeros(aval):
    """Zeros bound as functrans operations, so a traced graph shows `broadcast_to 0.0`."""
    from .prims import elementwise as ew

    zero = ew.convert_element_type_p.bind(0.0, new_dtype=np.dtype(aval.dtype))
    return ew.broadcast_to(zero, aval.shape) if aval.shape else zero


def _instantiate(x, aval):
    return _zeros(aval) if x is None else x


def _flatten_operands(api, tree):
    from .api import _flatten_args

    return _flatten_args(api, tree)


def _describe(aval):
    return aval.str_short()


def _lower_outs(graph, args, avals):
    """Evaluate `graph` with JAX lowerings, casting outputs to `avals` (weak types joined)."""
    outs = graph.eval_lowered(graph.const_vals, args)
    fixed = []
    for o, a in zip(outs, avals):
        o = jnp.asarray(o)
        if o.dtype != a.dtype or (not a.weak_type and getattr(o, "weak_type", False)):
            o = jax.lax.convert_element_type(o, a.dtype)
        fixed.append(o)
    return fixed


def _batch_flat(fun, vals, dims, size, force=None):
    """Run `fun` (flat in, flat out) batched: `vals` carry their batch at `dims` (or None).

    Returns `(outs, out_dims)`; each batched output has its batch moved to axis 0. With
    `force[i]` true, output i is batched even if it does not depend on the batch.
    """
    from functrans import numpy as fnp

    from .batching import BatchTrace, BatchTracer

    with new_main(BatchTrace, "vmap", size) as main:
        trace = main.trace
        outs = fun([trace.wrap(v, d) for v, d in zip(vals, dims)])
        res, res_dims = [], []
        for i, o in enumerate(outs):
            if isinstance(o, BatchTracer) and o._trace is trace:
                res.append(fnp.moveaxis(o.val, o.bdim, 0))
                res_dims.append(0)
            elif force is not None and force[i]:
                res.append(fnp.broadcast_to(o, (size, *get_aval(o).shape)))
                res_dims.append(0)
            else:
                res.append(o)
                res_dims.append(None)
    return res, res_dims


def _batched_avals(vals, dims):
    """Avals of one batched step's operands: batch axes moved to 0."""
    out = []
    for v, d in zip(vals, dims):
        a = get_aval(v)
        if d is not None and d != 0:
            shape = list(a.shape)
            shape.insert(0, shape.pop(d))
            a = ShapedArray(shape, a.dtype, a.weak_type)
        out.append(a)
    return out


# =============================================================================================
# cond / switch
# =============================================================================================

cond_p = Primitive("cond", multiple_results=True)


def _join_avals(per_branch, what):
    first = per_branch[0]
    for i, avals in enumerate(per_branch[1:], 1):
        same = len(avals) == len(first) and all(
            a.shape == b.shape and a.dtype == b.dtype for a, b in zip(avals, first)
        )
        if not same:
            raise TypeError(
                f"`{what}` needs every branch to return the same structure, shapes and dtypes; "
                f"branch 0 returns ({', '.join(map(_describe, first))}) but branch {i} returns "
                f"({', '.join(map(_describe, avals))}). Cast or reshape the outputs so that "
                "they agree."
            )
    return [ShapedArray(a.shape, a.dtype, all(b[j].weak_type for b in per_branch))
            for j, a in enumerate(first)]  # fmt: skip


def _cond_abstract_eval(index, *args, branches):
    return _join_avals([_out_avals(g) for g in branches], "cond")


def _cond_impl(index, *args, branches):
    avals = _cond_abstract_eval(index, *args, branches=branches)
    funs = [lambda *a, g=g: _lower_outs(g, a, avals) for g in branches]
    if len(funs) == 1:
        return funs[0](*args)
    return jax.lax.switch(index, funs, *args)


def _cond_jvp(primals, tangents, branches):
    index, args = primals[0], list(primals[1:])
    arg_ts = list(tangents[1:])
    nz = [t is not None for t in arg_ts]
    in_avals = _avals(args) + [get_aval(t) for t in arg_ts if t is not None]
    out_avals = _cond_abstract_eval(index, *args, branches=branches)
    n_out = len(out_avals)

    def jvp_branch(g, instantiate, found):
        def fun(ins):
            ps, ts_in = ins[: len(args)], iter(ins[len(args) :])
            ts = [next(ts_in) if z else None for z in nz]
            outs, out_ts, _ = jvp_flat(lambda xs: (g.eval_flat(*xs), None), ps, ts, "cond")
            found[:] = [t is not None for t in out_ts]
            return outs + [_instantiate(t, _strong(a)) for t, a, keep
                           in zip(out_ts, out_avals, instantiate) if keep]  # fmt: skip

        return fun

    # Which output tangents are nonzero in some branch: those are carried by every branch.
    patterns = []
    for g in branches:
        found = []
        _trace_open(jvp_branch(g, [False] * n_out, found), in_avals, "cond")
        patterns.append(found)
    need = [any(p[j] for p in patterns) and is_inexact(out_avals[j].dtype)
            for j in range(n_out)]  # fmt: skip
    new = tuple(_trace_open(jvp_branch(g, need, []), in_avals, "cond") for g in branches)
    res = cond_p.bind(index, *args, *[t for t in arg_ts if t is not None], branches=new)
    it = iter(res[n_out:])
    return res[:n_out], [next(it) if k else None for k in need]


def _cond_vjp(needs, cts, outs, index, *args, branches):
    out_avals = _cond_abstract_eval(index, *args, branches=branches)
    ct_given = [c is not None for c in cts]
    wants = [bool(n) and is_inexact(get_aval(a).dtype) for n, a in zip(needs[1:], args)]
    if not any(wants):
        return (None,) + (None,) * len(args)
    in_avals = _avals(args) + [a for a, c in zip(out_avals, ct_given) if c]

    def backward_branch(g):
        def fun(ins):
            xs, ct_in = ins[: len(args)], iter(ins[len(args) :])
            ct_list = [next(ct_in) if c else None for c in ct_given]
            _, back, _ = vjp_flat(lambda v: (g.eval_flat(*v), None), list(xs), "cond")
            in_cts = back(ct_list)
            return [_instantiate(c, _strong(get_aval(x)))
                    for c, x, w in zip(in_cts, args, wants) if w]  # fmt: skip

        return fun

    new = tuple(_trace_open(backward_branch(g), in_avals, "cond") for g in branches)
    res = iter(cond_p.bind(index, *args, *[c for c in cts if c is not None], branches=new))
    return (None,) + tuple(next(res) if w else None for w in wants)


def _cond_batch(vals, dims, branches):
    from functrans import numpy as fnp

    from .batching import vmap

    index, args, arg_dims = vals[0], list(vals[1:]), list(dims[1:])
    if dims[0] is None:
        size = next(get_aval(v).shape[d] for v, d in zip(args, arg_dims) if d is not None)
        args = [a if d is None else fnp.moveaxis(a, d, 0) for a, d in zip(args, arg_dims)]
        arg_dims = [None if d is None else 0 for d in arg_dims]
        avals = _avals(args)
        n_out = len(branches[0].outs)
        # An output is batched if it is in any branch.
        force = [False] * n_out
        for g in branches:
            found = []

            def probe(ins, g=g, found=found):
                outs, ds = _batch_flat(lambda v: g.eval_flat(*v), ins, arg_dims, size)
                found[:] = [d is not None for d in ds]
                return outs

            _trace_open(probe, avals, "cond")
            force = [a or b for a, b in zip(force, found)]
        batched = tuple(
            _trace_open(lambda ins, g=g: _batch_flat(lambda v: g.eval_flat(*v), ins, arg_dims,
                                                     size, force)[0], avals, "cond")
            for g in branches
        )  # fmt: skip
        outs = cond_p.bind(index, *args, branches=batched)
        return outs, [0 if f else None for f in force]
    # A batched predicate: every branch runs for every example, and each example's result is
    # selected by its own index (as JAX does).
    index = fnp.moveaxis(index, dims[0], 0)
    size = get_aval(index).shape[0]
    per_branch = []
    for g in branches:
        if all(d is None for d in arg_dims):
            outs = [fnp.broadcast_to(o, (size, *get_aval(o).shape)) for o in g.eval_flat(*args)]
        else:
            outs = vmap(_run(g), in_axes=tuple(arg_dims))(*args)
        per_branch.append(list(outs))
    result = per_branch[0]
    for i, outs in enumerate(per_branch[1:], 1):
        picked = []
        for r, o in zip(result, outs):
            sel = fnp.reshape(index == i, (size,) + (1,) * (get_aval(o).ndim - 1))
            picked.append(fnp.where(sel, o, r))
        result = picked
    return result, [0] * len(result)


def _cond_jet(K, full, series, branches):
    index, arg_series = full[0][0], full[1:]
    return _jet_of_held(
        K, arg_series, lambda new, ins: cond_p.bind(index, *ins, branches=new), branches
    )


def _cond_subgraphs(in_avals, branches):
    return {f"branch{i}": g for i, g in enumerate(branches)}


cond_p.impl = _cond_impl
cond_p.abstract_eval = _cond_abstract_eval
cond_p.jvp = _cond_jvp
cond_p.vjp = _cond_vjp
cond_p.batch = _cond_batch
cond_p.subgraphs = _cond_subgraphs


def _index_operand(x, api, what):
    from functrans import numpy as fnp

    aval = get_aval(x)
    if aval.shape != ():
        raise TypeError(
            f"`ft.lax.{api}` needs a scalar {what}, got a value of shape {aval.shape} instead. "
            "For one choice per example use `ft.vmap` around the `cond`, or `fnp.where`."
        )
    if is_inexact(aval.dtype) or jnp.issubdtype(aval.dtype, jnp.complexfloating):
        raise TypeError(
            f"`ft.lax.{api}` needs a boolean or integer {what}, got {aval.str_short()}. "
            "Compare first (e.g. `x > 0`) or cast with `.astype(int)`."
        )
    return fnp.asarray(x).astype(np.int32)


def _trace_branches(api, funs, operands):
    leaves, in_tree = _flatten_operands(api, tuple(operands))
    avals = _avals(leaves)
    graphs, consts, out_trees = [], [], []
    for f in funs:
        holder = {}

        def flat(ins, f=f, holder=holder):
            out = f(*jax.tree_util.tree_unflatten(in_tree, ins))
            out_leaves, holder["tree"] = jax.tree_util.tree_flatten(out)
            return out_leaves

        g, c = _trace_flat(flat, avals, api)
        graphs.append(g)
        consts.append(c)
        out_trees.append(holder["tree"])
    for i, t in enumerate(out_trees[1:], 1):
        if t != out_trees[0]:
            raise TypeError(
                f"`ft.lax.{api}` needs every branch to return the same tree structure; branch "
                f"0 returns {out_trees[0]} but branch {i} returns {t}."
            )
    # Every branch takes every branch's constants, then the operands.
    const_avals = [_avals(c) for c in consts]
    padded = []
    for i, g in enumerate(graphs):
        before = [a for avs in const_avals[:i] for a in avs]
        after = [a for avs in const_avals[i + 1 :] for a in avs]
        n = len(consts[i])
        ins = [Var(a) for a in before] + g.in_vars[:n] + [Var(a) for a in after] + g.in_vars[n:]
        padded.append(Graph(ins, [], [], g.eqns, g.outs, None, None))
    all_consts = [x for c in consts for x in c]
    _join_avals([_out_avals(g) for g in padded], api)
    return tuple(padded), all_consts, leaves, out_trees[0]


def switch(index, branches, *operands):
    """Apply `branches[index](*operands)`, with `index` clamped into range (as JAX).

    Only the chosen branch runs; every branch is traced once and must return the same
    structure, shapes and dtypes. Differentiable in every mode; lowered to `jax.lax.switch`.

    Args:
      index: a scalar integer (a traced value is fine).
      branches: a sequence of functions.
      *operands: the arguments passed to the chosen branch (pytrees of arrays).

    Returns:
      The chosen branch's output.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> fs = [fnp.sin, fnp.cos, lambda x: x * x]
      >>> float(ft.grad(lambda x: ft.lax.switch(2, fs, x))(3.0))
      6.0
    """
    branches = list(branches)
    if not branches or not all(callable(b) for b in branches):
        raise TypeError(
            "`ft.lax.switch` needs a non-empty sequence of functions as `branches`, got "
            f"{branches!r:.80} instead."
        )
    index = _index_operand(index, "switch", "index")
    from functrans import numpy as fnp

    index = fnp.clip(index, 0, len(branches) - 1)
    graphs, consts, leaves, out_tree = _trace_branches("switch", branches, operands)
    outs = cond_p.bind(index, *consts, *leaves, branches=graphs)
    return jax.tree_util.tree_unflatten(out_tree, outs)


def cond(pred, true_fun, false_fun, *operands):
    """`true_fun(*operands)` if `pred` else `false_fun(*operands)`, as `jax.lax.cond`.

    Both functions are traced once; only the chosen one runs. Differentiable to any order
    in every mode (the derivative of the branch taken), batched by `ft.vmap` (a batched
    predicate runs both branches and selects per example), lowered to `jax.lax.cond`.

    Args:
      pred: a scalar boolean or integer (nonzero means true).
      true_fun, false_fun: functions of `*operands` returning the same structure.
      *operands: pytrees of arrays.

    Returns:
      The output of the branch taken.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> f = lambda x: ft.lax.cond(x > 0, fnp.sin, lambda x: x ** 3, x)
      >>> float(ft.grad(f)(-2.0)), round(float(ft.grad(f)(0.5)), 4)
      (12.0, 0.8776)
    """
    if not callable(true_fun) or not callable(false_fun):
        raise TypeError(
            "`ft.lax.cond(pred, true_fun, false_fun, *operands)` needs two functions; got "
            f"{type(true_fun).__name__} and {type(false_fun).__name__}."
        )
    from functrans import numpy as fnp

    index = _index_operand(pred, "cond", "predicate")
    index = fnp.where(index != 0, 1, 0).astype(np.int32)
    graphs, consts, leaves, out_tree = _trace_branches("cond", [false_fun, true_fun], operands)
    outs = cond_p.bind(index, *consts, *leaves, branches=graphs)
    return jax.tree_util.tree_unflatten(out_tree, outs)


# =============================================================================================
# Taylor mode through held graphs
# =============================================================================================


def _jet_of_held(K, arg_series, bind_with, graphs):
    """Jet rule shared by the graph-holding primitives.

    Each held graph is replaced by the graph of its jet: inputs are every operand's primal
    followed by its nonzero Taylor terms; outputs are every output's primal and K terms.
    `bind_with(new_graphs, flat_inputs)` binds the primitive on those.
    """
    from .jet import JetTrace, JetTracer

    pattern = [[t is not None for t in s[1:]] for s in arg_series]
    flat_in = []
    for s in arg_series:
        flat_in.append(s[0])
        flat_in.extend(t for t in s[1:] if t is not None)
    in_avals = _avals(flat_in)

    def jet_graph(g):
        out_avals = _out_avals(g)

        def fun(ins):
            it = iter(ins)
            xs = []
            with new_main(JetTrace, "jet", K) as main:
                trace = main.trace
                for pat in pattern:
                    p = next(it)
                    terms = [next(it) if k else None for k in pat]
                    xs.append(trace.wrap(p, terms))
                outs = g.eval_flat(*xs)
                flat_out = []
                for o, a in zip(outs, out_avals):
                    own = isinstance(o, JetTracer) and o._trace is trace
                    flat_out.append(o.primal if own else o)
                    if is_inexact(a.dtype):  # integer outputs carry no Taylor terms
                        terms = list(o.terms) if own else [None] * K
                        flat_out.extend(_instantiate(t, _strong(a)) for t in terms)
            return flat_out

        return _trace_open(fun, in_avals, "jet")

    new = tuple(jet_graph(g) for g in graphs)
    res = iter(bind_with(new, flat_in))
    out = []
    for a in _out_avals(graphs[0]):
        p = next(res)
        out.append([p] + [next(res) if is_inexact(a.dtype) else None for _ in range(K)])
    return out


# =============================================================================================
# scan
# =============================================================================================

scan_p = Primitive("scan", multiple_results=True)


def _split(seq, *sizes):
    out, i = [], 0
    for s in sizes:
        out.append(list(seq[i : i + s]))
        i += s
    out.append(list(seq[i:]))
    return out


def _scan_abstract_eval(*args, body, num_consts, num_carry, length, reverse, unroll):
    outs = _out_avals(body)
    carry = _avals(args[num_consts : num_consts + num_carry])
    ys = [ShapedArray((length, *a.shape), a.dtype, a.weak_type) for a in outs[num_carry:]]
    return carry + ys


def _scan_impl(*args, body, num_consts, num_carry, length, reverse, unroll):
    consts, init, xs = _split(args, num_consts, num_carry)
    avals = _scan_abstract_eval(*args, body=body, num_consts=num_consts, num_carry=num_carry,
                                length=length, reverse=reverse, unroll=unroll)  # fmt: skip
    step_avals = avals[:num_carry] + [ShapedArray(a.shape[1:], a.dtype, a.weak_type)
                                      for a in avals[num_carry:]]  # fmt: skip

    def step(carry, x):
        outs = _lower_outs(body, [*consts, *carry, *x], step_avals)
        return outs[:num_carry], outs[num_carry:]

    carry, ys = jax.lax.scan(step, init, xs, length=length, reverse=reverse, unroll=unroll)
    return [*carry, *ys]


def _bind_scan(step, consts, init, xs, length, reverse, unroll=1, name="scan"):
    """Trace `step(consts, carry, x) -> (carry, y)` (flat lists) and bind a scan on it."""
    c_avals = _avals(consts)
    h_avals = [_strong(a) for a in _avals(init)]
    x_avals = [ShapedArray(a.shape[1:], a.dtype, a.weak_type) for a in _avals(xs)]
    nc, nh = len(consts), len(init)

    def fun(ins):
        c, h, x = _split(ins, nc, nh)
        new_h, y = step(c, h, x)
        return list(new_h) + list(y)

    body = _trace_open(fun, c_avals + h_avals + x_avals, name)
    return scan_p.bind(*consts, *init, *xs, body=body, num_consts=nc, num_carry=nh,
                       length=length, reverse=reverse, unroll=unroll)  # fmt: skip


def _scan_jvp(primals, tangents, body, num_consts, num_carry, length, reverse, unroll):
    consts, init, xs = _split(primals, num_consts, num_carry)
    c_t, h_t, x_t = _split(tangents, num_consts, num_carry)
    h_avals = _avals(init)
    body_outs = _out_avals(body)
    nz_c = [t is not None for t in c_t]
    nz_x = [t is not None for t in x_t]
    nz_h = [t is not None and is_inexact(a.dtype) for t, a in zip(h_t, h_avals)]
    # Fixpoint: a carry whose tangent becomes nonzero after one step is carried as a tangent
    # from the start.
    while True:
        found = {}

        def step_jvp(c, h, x, nz_h=tuple(nz_h), found=found):
            cs, cts = _split(c, num_consts)
            hs, hts = _split(h, num_carry)
            xs_, xts = _split(x, len(xs))
            it_c, it_h, it_x = iter(cts), iter(hts), iter(xts)
            ts = ([next(it_c) if z else None for z in nz_c]
                  + [next(it_h) if z else None for z in nz_h]
                  + [next(it_x) if z else None for z in nz_x])  # fmt: skip
            outs, out_ts, _ = jvp_flat(lambda v: (body.eval_flat(*v), None),
                                       cs + hs + xs_, ts, "scan")  # fmt: skip
            found["carry"] = [t is not None for t in out_ts[:num_carry]]
            found["ys"] = [t is not None for t in out_ts[num_carry:]]
            new_h = outs[:num_carry] + [_instantiate(t, _strong(a)) for t, a, z in
                                        zip(out_ts[:num_carry], h_avals, nz_h) if z]  # fmt: skip
            ys = outs[num_carry:] + [t for t in out_ts[num_carry:] if t is not None]
            return new_h, ys

        # trace once to learn the pattern
        _trace_open(
            lambda ins: sum(step_jvp(*_split(ins, num_consts + sum(nz_c),
                                              num_carry + sum(nz_h))), []),
            _avals(consts) + [get_aval(t) for t in c_t if t is not None]
            + [_strong(a) for a in h_avals]
            + [_strong(a) for a, z in zip(h_avals, nz_h) if z]
            + [ShapedArray(a.shape[1:], a.dtype) for a in _avals(xs)]
            + [ShapedArray(get_aval(t).shape[1:], get_aval(t).dtype) for t in x_t if t is not None],
            "scan",
        )  # fmt: skip
        grown = [a or (b and is_inexact(av.dtype))
                 for a, b, av in zip(nz_h, found["carry"], h_avals)]  # fmt: skip
        if grown == nz_h:
            break
        nz_h = grown
    ys_nz = found["ys"]
    new_consts = consts + [t for t in c_t if t is not None]
    new_init = init + [_instantiate(t, _strong(a)) for t, a, z in zip(h_t, h_avals, nz_h) if z]
    new_xs = xs + [t for t in x_t if t is not None]
    res = _bind_scan(step_jvp, new_consts, new_init, new_xs, length, reverse, unroll)
    carry, carry_t, ys, ys_t = _split(res, num_carry, sum(nz_h), len(body_outs) - num_carry)
    it_h, it_y = iter(carry_t), iter(ys_t)
    out_t = [next(it_h) if z else None for z in nz_h] + [next(it_y) if z else None for z in ys_nz]
    return carry + ys, out_t


def _scan_vjp(needs, cts, outs, *args, body, num_consts, num_carry, length, reverse, unroll):
    consts, init, xs = _split(args, num_consts, num_carry)
    c_avals, h_avals, x_avals = _avals(consts), _avals(init), _avals(xs)
    ct_h, ct_y = cts[:num_carry], cts[num_carry:]
    y_avals = [ShapedArray((length, *a.shape), a.dtype) for a in _out_avals(body)[num_carry:]]
    dc = [is_inexact(a.dtype) for a in c_avals]
    dh = [is_inexact(a.dtype) for a in h_avals]
    dx = [is_inexact(a.dtype) for a in x_avals]

    # 1. Forward again, stacking the carry each step starts from.
    def fwd_step(c, h, x):
        new = body.eval_flat(*c, *h, *x)
        return new[:num_carry], list(h)

    stacked = _bind_scan(fwd_step, consts, init, xs, length, reverse, unroll)[num_carry:]

    # 2. Backward, in the opposite direction: cotangent of the carry, and sums for constants.
    def bwd_step(c, h, x):
        h_ct, acc = h[: sum(dh)], h[sum(dh) :]
        saved, xs_i, yct = _split(x, num_carry, len(xs))
        _, back, _ = vjp_flat(lambda v: (body.eval_flat(*v), None), c + saved + xs_i, "scan")
        it = iter(h_ct)
        in_cts = back([next(it) if d else None for d in dh] + list(yct))
        ct_c, ct_hh, ct_x = _split(in_cts, num_consts, num_carry)
        new_h = [_instantiate(t, _strong(a)) for t, a, d in zip(ct_hh, h_avals, dh) if d]
        new_acc = [a_ if t is None else a_ + t
                   for a_, t in zip(acc, [t for t, d in zip(ct_c, dc) if d])]  # fmt: skip
        ys = [_instantiate(t, _strong(ShapedArray(a.shape[1:], a.dtype)))
              for t, a, d in zip(ct_x, x_avals, dx) if d]  # fmt: skip
        return new_h + new_acc, ys

    h0 = [_instantiate(t, _strong(a)) for t, a, d in zip(ct_h, h_avals, dh) if d]
    acc0 = [_zeros(_strong(a)) for a, d in zip(c_avals, dc) if d]
    yct = [_instantiate(t, _strong(a)) for t, a in zip(ct_y, y_avals)]
    res = _bind_scan(bwd_step, consts, h0 + acc0, stacked + xs + yct, length, not reverse,
                     unroll)  # fmt: skip
    ct_init, ct_consts, ct_xs = _split(res, sum(dh), sum(dc))
    it_c, it_h, it_x = iter(ct_consts), iter(ct_init), iter(ct_xs)
    out = ([next(it_c) if d else None for d in dc] + [next(it_h) if d else None for d in dh]
           + [next(it_x) if d else None for d in dx])  # fmt: skip
    return tuple(o if n else None for o, n in zip(out, needs))


def _scan_batch(vals, dims, body, num_consts, num_carry, length, reverse, unroll):
    from functrans import numpy as fnp

    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not None)
    vals = [v if d in (None, 0) else fnp.moveaxis(v, d, 0) for v, d in zip(vals, dims)]
    consts, init, xs = _split(vals, num_consts, num_carry)
    c_dims, h_dims, x_dims = _split([None if d is None else 0 for d in dims], num_consts,
                                    num_carry)  # fmt: skip
    # Scanned operands carry their batch at axis 1, so one step's slice has it at axis 0.
    xs = [x if d is None else fnp.moveaxis(x, 0, 1) for x, d in zip(xs, x_dims)]
    x_avals = [ShapedArray(a.shape[1:], a.dtype) for a in _avals(xs)]

    def step_fn(hb, force=None, found=None):
        def step(c, h, x):
            ds = c_dims + [0 if b else None for b in hb] + x_dims
            outs, out_ds = _batch_flat(lambda v: body.eval_flat(*v), c + h + x, ds, size, force)
            if found is not None:
                found[:] = [d is not None for d in out_ds]
            return outs[:num_carry], outs[num_carry:]

        return step

    # Fixpoint: a carry that becomes batched after one step is batched from the start.
    hb = [d is not None for d in h_dims]
    while True:
        found = []
        step = step_fn(hb, found=found)
        h_avals = [ShapedArray((size, *a.shape) if b and d is None else a.shape, a.dtype)
                   for a, b, d in zip(_avals(init), hb, h_dims)]  # fmt: skip
        _trace_open(lambda ins, step=step: sum(step(*_split(ins, num_consts, num_carry)), []),
                    _avals(consts) + h_avals + x_avals, "scan")  # fmt: skip
        grown = [a or b for a, b in zip(hb, found[:num_carry])]
        if grown == hb:
            break
        hb = grown
    ys_b = found[num_carry:]
    init = [fnp.broadcast_to(h, (size, *get_aval(h).shape)) if b and d is None else h
            for h, b, d in zip(init, hb, h_dims)]  # fmt: skip
    outs = _bind_scan(step_fn(hb, force=list(hb) + list(ys_b)), consts, init, xs, length,
                      reverse, unroll)  # fmt: skip
    return outs, [0 if b else None for b in hb] + [1 if b else None for b in ys_b]


def _scan_jet(K, full, series, body, num_consts, num_carry, length, reverse, unroll):
    # A scan of the body's jet. Every carry's series is carried whole: its terms may become
    # nonzero after one step even when they start at zero.
    full = [list(s) for s in full]
    for s in full[num_consts : num_consts + num_carry]:
        if is_inexact(get_aval(s[0]).dtype):
            s[1:] = [_instantiate(t, _strong(get_aval(s[0]))) for t in s[1:]]
    return _jet_scan_body(K, full, body, num_consts, num_carry, length, reverse, unroll)


def _jet_scan_body(K, full, body, num_consts, num_carry, length, reverse, unroll):
    from .jet import JetTrace, JetTracer

    pattern = [[t is not None for t in s[1:]] for s in full]
    counts = [1 + sum(p) for p in pattern]
    flat_in = [x for s in full for x in [s[0]] + [t for t in s[1:] if t is not None]]
    nc = sum(counts[:num_consts])
    nh = sum(counts[num_consts : num_consts + num_carry])
    body_outs = _out_avals(body)

    out_inexact = [is_inexact(a.dtype) for a in body_outs]

    def step(c, h, x):
        ins = iter(c + h + x)
        with new_main(JetTrace, "jet", K) as main:
            trace = main.trace
            xs_ = []
            for pat in pattern:
                p = next(ins)
                xs_.append(trace.wrap(p, [next(ins) if k else None for k in pat]))
            outs = body.eval_flat(*xs_)
            flat_out = []
            for o, a, inexact in zip(outs, body_outs, out_inexact):
                own = isinstance(o, JetTracer) and o._trace is trace
                flat_out.append(o.primal if own else o)
                if inexact:  # integer outputs carry no Taylor terms
                    terms = list(o.terms) if own else [None] * K
                    flat_out.extend(_instantiate(t, _strong(a)) for t in terms)
        n_h = sum(1 + K * k for k in out_inexact[:num_carry])
        return flat_out[:n_h], flat_out[n_h:]

    res = iter(_bind_scan(step, flat_in[:nc], flat_in[nc: nc + nh], flat_in[nc + nh:], length,
                          reverse, unroll, "jet"))  # fmt: skip
    out = []
    for inexact in out_inexact:
        p = next(res)
        out.append([p] + [next(res) if inexact else None for _ in range(K)])
    return out


scan_p.impl = _scan_impl
scan_p.abstract_eval = _scan_abstract_eval
scan_p.jvp = _scan_jvp
scan_p.vjp = _scan_vjp
scan_p.batch = _scan_batch


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loop `f(carry, x) -> (carry, y)` over the leading axis of `xs`, as `jax.lax.scan`.

    Lowered to one `jax.lax.scan` (never unrolled). Differentiable to any order in every
    mode: reverse mode stacks the carries in a forward scan and walks back in a scan in the
    opposite direction. `ft.vmap` batches it.

    Args:
      f: function of `(carry, x)` returning `(new_carry, y)`; `new_carry` must have the
        structure, shapes and dtypes of `init`.
      init: the initial carry, a pytree of arrays.
      xs: a pytree of arrays scanned along axis 0, or `None` (then give `length`).
      length: the number of steps, when `xs` is `None` (or as a check).
      reverse: scan from the end of `xs` to its start.
      unroll: passed to `jax.lax.scan`.

    Returns:
      `(final_carry, ys)`, with the `y`s stacked along a new leading axis.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> cumprod = lambda x: ft.lax.scan(lambda c, xi: (c * xi, c * xi), 1.0, x)[0]
      >>> [float(g) for g in ft.grad(cumprod)(fnp.array([1.0, 2.0, 3.0]))]
      [6.0, 3.0, 2.0]
    """
    if not callable(f):
        raise TypeError(f"`ft.lax.scan` needs a function `f(carry, x)`, got {f!r:.60}.")
    init_leaves, init_tree = _flatten_operands("scan", init)
    xs_leaves, xs_tree = _flatten_operands("scan", xs)
    lengths = {get_aval(x).shape[0] for x in xs_leaves if get_aval(x).shape}
    if any(not get_aval(x).shape for x in xs_leaves):
        raise ValueError(
            "`ft.lax.scan` scans `xs` along axis 0, but some leaf of `xs` is a scalar. Give "
            "every leaf of `xs` a leading axis of the scan length."
        )
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        raise ValueError(
            "`ft.lax.scan` needs one scan length: the leading axes of `xs` and `length` give "
            f"{sorted(lengths) or 'none'}. Make them agree, or pass `length=` when `xs` is "
            "None."
        )
    (n,) = lengths
    init_leaves = [_as_strong(x) for x in init_leaves]
    h_avals = _avals(init_leaves)
    x_avals = [ShapedArray(a.shape[1:], a.dtype) for a in _avals(xs_leaves)]
    holder = {}

    def flat(ins):
        h = jax.tree_util.tree_unflatten(init_tree, ins[: len(h_avals)])
        x = jax.tree_util.tree_unflatten(xs_tree, ins[len(h_avals) :])
        new_h, y = f(h, x)
        h_leaves, h_tree = jax.tree_util.tree_flatten(new_h)
        if h_tree != init_tree:
            raise TypeError(
                "`ft.lax.scan` needs `f` to return a carry with the structure of `init`: "
                f"expected {init_tree}, got {h_tree} instead."
            )
        fixed = []
        for i, (o, a) in enumerate(zip(h_leaves, h_avals)):
            oa = get_aval(o)
            if oa.shape != a.shape or oa.dtype != a.dtype:
                raise TypeError(
                    f"`ft.lax.scan` needs `f` to return a carry of the type of `init`; carry "
                    f"leaf {i} is {a.str_short()} in `init` but {oa.str_short()} after one "
                    "step. Cast `init` (e.g. `fnp.asarray(init, dtype)`) or the new carry."
                )
            fixed.append(_as_strong(o))
        y_leaves, holder["y_tree"] = jax.tree_util.tree_flatten(y)
        return fixed + list(y_leaves)

    body, consts = _trace_flat(flat, h_avals + x_avals, "scan")
    outs = scan_p.bind(*consts, *init_leaves, *xs_leaves, body=body, num_consts=len(consts),
                       num_carry=len(h_avals), length=n, reverse=bool(reverse),
                       unroll=unroll)  # fmt: skip
    carry = jax.tree_util.tree_unflatten(init_tree, outs[: len(h_avals)])
    ys = jax.tree_util.tree_unflatten(holder["y_tree"], outs[len(h_avals) :])
    return carry, ys


def _as_strong(x):
    """`x` as a strongly typed array (a carry's type must not change from step to step)."""
    from .prims import elementwise as ew

    aval = get_aval(x)
    if not aval.weak_type:
        return x
    return ew.convert_element_type_p.bind(x, new_dtype=aval.dtype)


# =============================================================================================
# while_loop and fori_loop
# =============================================================================================

while_p = Primitive("while", multiple_results=True)

_WHILE_REVERSE = (
    "Reverse-mode differentiation does not work through `ft.lax.while_loop` (or "
    "`ft.lax.fori_loop` with bounds that are not concrete), because the number of steps is "
    "not known ahead. Use `ft.lax.scan`, or `ft.lax.fori_loop` with Python int bounds, which "
    "lowers to a scan; forward mode (`ft.jvp`, `ft.jacfwd`) works through `while_loop`."
)


def _while_abstract_eval(*args, cond_graph, body_graph, cond_nconsts, body_nconsts):
    return _avals(args[cond_nconsts + body_nconsts :])


def _while_impl(*args, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, init = _split(args, cond_nconsts, body_nconsts)
    avals = [_strong(a) if not a.weak_type else a for a in _avals(init)]

    def cond_fun(carry):
        return cond_graph.eval_lowered(cond_graph.const_vals, [*cc, *carry])[0]

    def body_fun(carry):
        return _lower_outs(body_graph, [*bc, *carry], avals)

    return list(jax.lax.while_loop(cond_fun, body_fun, list(init)))


def _bind_while(cond_fn, body_fn, cond_consts, body_consts, init):
    """Trace `cond_fn(c, h)` and `body_fn(c, h) -> h` (flat lists) and bind a while loop."""
    h_avals = [_strong(a) for a in _avals(init)]
    ncc, nbc = len(cond_consts), len(body_consts)
    cg = _trace_open(lambda ins: [cond_fn(ins[:ncc], ins[ncc:])],
                     _avals(cond_consts) + h_avals, "while_loop")  # fmt: skip
    bg = _trace_open(lambda ins: list(body_fn(ins[:nbc], ins[nbc:])),
                     _avals(body_consts) + h_avals, "while_loop")  # fmt: skip
    return while_p.bind(*cond_consts, *body_consts, *init, cond_graph=cg, body_graph=bg,
                        cond_nconsts=ncc, body_nconsts=nbc)  # fmt: skip


def _while_jvp(primals, tangents, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, init = _split(primals, cond_nconsts, body_nconsts)
    _, bc_t, h_t = _split(tangents, cond_nconsts, body_nconsts)
    h_avals = _avals(init)
    nz_c = [t is not None for t in bc_t]
    nz_h = [t is not None and is_inexact(a.dtype) for t, a in zip(h_t, h_avals)]
    nh = len(init)
    while True:
        found = []

        def body_jvp(c, h, nz_h=tuple(nz_h), found=found):
            cs, cts = c[:body_nconsts], iter(c[body_nconsts:])
            hs, hts = h[:nh], iter(h[nh:])
            ts = [next(cts) if z else None for z in nz_c] + [next(hts) if z else None
                                                              for z in nz_h]  # fmt: skip
            outs, out_ts, _ = jvp_flat(lambda v: (body_graph.eval_flat(*v), None), cs + hs, ts,
                                       "while_loop")  # fmt: skip
            found[:] = [t is not None for t in out_ts]
            return outs + [_instantiate(t, _strong(a)) for t, a, z in zip(out_ts, h_avals, nz_h)
                           if z]  # fmt: skip

        c_in = bc + [t for t in bc_t if t is not None]
        h_in = [_strong(a) for a in h_avals] + [_strong(a) for a, z in zip(h_avals, nz_h) if z]
        _trace_open(lambda ins: body_jvp(ins[: len(c_in)], ins[len(c_in):]),
                    _avals(c_in) + h_in, "while_loop")  # fmt: skip
        grown = [a or (b and is_inexact(av.dtype)) for a, b, av in zip(nz_h, found, h_avals)]
        if grown == nz_h:
            break
        nz_h = grown
    init_t = [_instantiate(t, _strong(a)) for t, a, z in zip(h_t, h_avals, nz_h) if z]
    res = _bind_while(
        lambda c, h: cond_graph.eval_flat(*c, *h[:nh])[0],
        body_jvp,
        cc,
        bc + [t for t in bc_t if t is not None],
        init + init_t,
    )
    it = iter(res[nh:])
    return res[:nh], [next(it) if z else None for z in nz_h]


def _while_vjp(needs, cts, outs, *args, **params):
    raise ValueError(_WHILE_REVERSE)


def _while_batch(vals, dims, cond_graph, body_graph, cond_nconsts, body_nconsts):
    from functrans import numpy as fnp

    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not None)
    vals = [v if d in (None, 0) else fnp.moveaxis(v, d, 0) for v, d in zip(vals, dims)]
    cc, bc, init = _split(vals, cond_nconsts, body_nconsts)
    cc_d, bc_d, h_d = _split([None if d is None else 0 for d in dims], cond_nconsts,
                             body_nconsts)  # fmt: skip
    nh = len(init)
    run_cond = lambda v: cond_graph.eval_flat(*v)
    run_body = lambda v: body_graph.eval_flat(*v)

    def h_avals(hb):
        return [ShapedArray((size, *a.shape) if b and d is None else a.shape, a.dtype)
                for a, b, d in zip(_avals(init), hb, h_d)]  # fmt: skip

    # Fixpoint on which carries are batched, then whether the predicate is.
    hb = [d is not None for d in h_d]
    while True:
        found = []

        def probe(ins, hb=tuple(hb), found=found):
            outs, ds = _batch_flat(run_body, ins, bc_d + [0 if b else None for b in hb], size)
            found[:] = [d is not None for d in ds]
            return outs

        _trace_open(probe, _avals(bc) + h_avals(hb), "while_loop")
        grown = [a or b for a, b in zip(hb, found)]
        if grown == hb:
            break
        hb = grown
    pred_found = []

    def probe_cond(ins):
        outs, ds = _batch_flat(run_cond, ins, cc_d + [0 if b else None for b in hb], size)
        pred_found[:] = [d is not None for d in ds]
        return outs

    _trace_open(probe_cond, _avals(cc) + h_avals(hb), "while_loop")
    if pred_found[0]:
        hb = [True] * nh  # a per-example predicate: every example keeps its own loop value
    init = [fnp.broadcast_to(h, (size, *get_aval(h).shape)) if b and d is None else h
            for h, b, d in zip(init, hb, h_d)]  # fmt: skip
    h_dims = [0 if b else None for b in hb]

    def preds(c, h):
        return _batch_flat(run_cond, list(c) + list(h), cc_d + h_dims, size)[0][0]

    def body(c, h):
        new = _batch_flat(run_body, list(c[len(cc) :]) + list(h), bc_d + h_dims, size, hb)[0]
        if not pred_found[0]:
            return new
        p = preds(c[: len(cc)], h)
        return [fnp.where(fnp.reshape(p, (size,) + (1,) * (get_aval(o).ndim - 1)), o, old)
                for o, old in zip(new, h)]  # fmt: skip

    if pred_found[0]:
        cond_fn = lambda c, h: fnp.any(preds(c, h))
    else:
        cond_fn = preds
    outs = _bind_while(cond_fn, body, cc, cc + bc, init)
    return outs, h_dims


def _while_jet(K, full, series, cond_graph, body_graph, cond_nconsts, body_nconsts):
    from .jet import JetTrace, JetTracer

    full = [list(s) for s in full]
    cc, bc, h = _split(full, cond_nconsts, body_nconsts)
    for s in h:
        if is_inexact(get_aval(s[0]).dtype):
            s[1:] = [_instantiate(t, _strong(get_aval(s[0]))) for t in s[1:]]
    bc_pat = [[t is not None for t in s[1:]] for s in bc]
    h_pat = [[t is not None for t in s[1:]] for s in h]
    flat = lambda ss: [x for s in ss for x in [s[0]] + [t for t in s[1:] if t is not None]]
    b_avals = _out_avals(body_graph)

    def body_fn(c, hh):
        ins_c, ins_h = iter(c), iter(hh)
        with new_main(JetTrace, "jet", K) as main:
            trace = main.trace
            cs = [trace.wrap(next(ins_c), [next(ins_c) if k else None for k in pat])
                  for pat in bc_pat]  # fmt: skip
            hs = [trace.wrap(next(ins_h), [next(ins_h) if k else None for k in pat])
                  for pat in h_pat]  # fmt: skip
            outs = body_graph.eval_flat(*cs, *hs)
            res = []
            for o, a, pat in zip(outs, b_avals, h_pat):
                own = isinstance(o, JetTracer) and o._trace is trace
                res.append(o.primal if own else o)
                terms = list(o.terms) if own else [None] * K
                res.extend(_instantiate(t, _strong(a)) for t, k in zip(terms, pat) if k)
        return res

    def cond_fn(c, hh):
        it = iter(hh)
        primals = []
        for pat in h_pat:
            primals.append(next(it))
            for k in pat:
                if k:
                    next(it)
        return cond_graph.eval_flat(*c, *primals)[0]

    res = iter(_bind_while(cond_fn, body_fn, [s[0] for s in cc], flat(bc), flat(h)))
    out = []
    for pat in h_pat:
        p = next(res)
        out.append([p] + [next(res) if k else None for k in pat])
    return out


while_p.impl = _while_impl
while_p.abstract_eval = _while_abstract_eval
while_p.jvp = _while_jvp
while_p.vjp = _while_vjp
while_p.batch = _while_batch
while_p.subgraphs = lambda in_avals, cond_graph, body_graph, **_: {
    "cond": cond_graph,
    "body": body_graph,
}


def while_loop(cond_fun, body_fun, init_val):
    """Repeat `val = body_fun(val)` while `cond_fun(val)`, as `jax.lax.while_loop`.

    Lowered to `jax.lax.while_loop`. Forward mode (`ft.jvp`, `ft.jacfwd`) and `ft.vmap` work
    through it; reverse mode raises, as in JAX (use `ft.lax.scan` or a `fori_loop` with
    Python int bounds).

    Args:
      cond_fun: function of the loop value returning a scalar boolean.
      body_fun: function of the loop value returning a new value of the same type.
      init_val: the initial loop value, a pytree of arrays.

    Returns:
      The final loop value.

    Example:
      >>> import functrans as ft
      >>> halve = lambda x: ft.lax.while_loop(lambda v: v > 1.0, lambda v: v * 0.5, x)
      >>> float(halve(10.0)), float(ft.jvp(halve, (10.0,), (1.0,))[1])
      (0.625, 0.0625)
    """
    if not callable(cond_fun) or not callable(body_fun):
        raise TypeError("`ft.lax.while_loop(cond_fun, body_fun, init_val)` needs two functions.")
    leaves, tree = _flatten_operands("while_loop", init_val)
    leaves = [_as_strong(x) for x in leaves]
    avals = _avals(leaves)

    def cond_flat(ins):
        p = cond_fun(jax.tree_util.tree_unflatten(tree, ins))
        pa = get_aval(p)
        if pa.shape != () or pa.dtype != np.dtype(bool):
            raise TypeError(
                "`ft.lax.while_loop` needs `cond_fun` to return a scalar boolean, got "
                f"{pa.str_short()} instead."
            )
        return [p]

    def body_flat(ins):
        out = body_fun(jax.tree_util.tree_unflatten(tree, ins))
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        if out_tree != tree:
            raise TypeError(
                "`ft.lax.while_loop` needs `body_fun` to return the structure of `init_val`: "
                f"expected {tree}, got {out_tree} instead."
            )
        fixed = []
        for i, (o, a) in enumerate(zip(out_leaves, avals)):
            oa = get_aval(o)
            if oa.shape != a.shape or oa.dtype != a.dtype:
                raise TypeError(
                    f"`ft.lax.while_loop` needs `body_fun` to keep the loop value's type; leaf "
                    f"{i} is {a.str_short()} in `init_val` but {oa.str_short()} after one step."
                )
            fixed.append(_as_strong(o))
        return fixed

    cg, cc = _trace_flat(cond_flat, avals, "while_loop")
    bg, bc = _trace_flat(body_flat, avals, "while_loop")
    outs = while_p.bind(*cc, *bc, *leaves, cond_graph=cg, body_graph=bg, cond_nconsts=len(cc),
                        body_nconsts=len(bc))  # fmt: skip
    return jax.tree_util.tree_unflatten(tree, outs)


def _concrete_int(x):
    """`x` as a Python int if it is a concrete integer scalar, else None."""
    if isinstance(x, Tracer) or isinstance(x, bool):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (np.ndarray, jax.Array)) and np.shape(x) == ():
        if not jnp.issubdtype(x.dtype, jnp.integer):
            return None
        try:
            return int(x)
        except jax.errors.ConcretizationTypeError:  # a bound traced by `jax.jit`
            return None
    return None


def fori_loop(lower, upper, body_fun, init_val):
    """`val = body_fun(i, val)` for `i` in `range(lower, upper)`, as `jax.lax.fori_loop`.

    With concrete bounds (Python ints) it lowers to a `scan`, so every mode of
    differentiation works; with traced bounds it is a `while_loop` (forward mode only).

    Args:
      lower, upper: the loop bounds (integers).
      body_fun: function of `(i, val)` returning a new `val` of the same type.
      init_val: the initial value, a pytree of arrays.

    Returns:
      The final value.

    Example:
      >>> import functrans as ft
      >>> power = lambda x: ft.lax.fori_loop(0, 3, lambda i, v: v * x, 1.0)
      >>> float(ft.grad(power)(2.0))  # d/dx x**3 = 12
      12.0
    """
    lo, hi = _concrete_int(lower), _concrete_int(upper)
    if lo is not None and hi is not None:
        idx_dtype = np.int32

        def step(carry, _):
            i, v = carry
            return (i + 1, body_fun(i, v)), None

        start = jnp.asarray(lo, idx_dtype)
        (_, out), _ = scan(step, (start, init_val), None, length=max(hi - lo, 0))
        return out
    from functrans import numpy as fnp

    lower = fnp.asarray(lower)
    upper = fnp.asarray(upper).astype(get_aval(lower).dtype)

    def cond_fun(c):
        return c[0] < c[1]

    def body(c):
        i, u, v = c
        return i + 1, u, body_fun(i, v)

    return while_loop(cond_fun, body, (lower, upper, init_val))[2]


def _install_jet_rules():
    from .jet import JET_RULES

    JET_RULES["cond"] = _cond_jet
    JET_RULES["scan"] = _scan_jet
    JET_RULES["while"] = _while_jet


_install_jet_rules()
