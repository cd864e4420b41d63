"""Top-level eager transformations derive each function's program once per structure.

A top-level `ft.grad(f)(x)` runs lazily (`lazy.py`): everything is recorded and run as one
compiled program. Recording still pays the derivative rules in Python on every call: each
primitive of `f` passes through the transformation's trace, and the backward pass runs every
VJP rule again, although the derivative program came out the same last time.

Here the outermost transformation of a top-level call records `f` alone first, on a
`StageTrace` (one cheap level), into a graph `G` whose inputs are `f`'s arguments and the
values it closes over. `G` is bound as one `staged_call` primitive. Its JVP, VJP and
batching rules derive the transformed graph of `G` (its JVP graph, its backward graph, its
batched graph) once and keep it, keyed by `G`'s exact structure (primitives, parameters,
literal values, operand numbering, abstract values), so that the derivative program of a
function seen before costs one dictionary lookup. The derived graphs take `G`'s inputs as
inputs, closed-over values included: a changed closed-over array is an argument, never a
stale constant. The user's Python still runs on every call.

`f` is recorded abstractly, so the recording stops at the first thing that needs a value
(`if` on a traced value, `print`, `float()`, NumPy): that call, and every later call of the
same function, then runs through the transformation's trace as before, with values. A
recording that cannot be keyed exactly (a custom rule held as a Python function) is
replayed through the transformation's trace, which gives the same result without keying.
"""

from __future__ import annotations

import collections
import os

import jax
import numpy as np

from .core import (
    Primitive,
    Trace,
    Tracer,
    _escaped_error,
    _state,
    get_aval,
    is_inexact,
    is_python_scalar,
    new_main,
    on_rules_changed,
)
from .graph import Graph, GraphTrace, Lit, Var
from .lazy import LazyEqn, LazyTrace, _avals_out, _param_key, _slice, _Uncacheable

CACHE_SIZE = 1024
# `FUNCTRANS_STAGED=0` (or setting this to False) makes top-level transformations run the
# derivative rules on every call again (still compiled as one program by `lazy.py`).
enabled = os.environ.get("FUNCTRANS_STAGED", "1") != "0"
stats = collections.Counter()  # "derived", "reused", "replayed", "unstaged": for tests


class _NeedsValue(Exception):
    """Raised inside a recording when the function asks a traced value for its value."""


class StageTracer(Tracer):
    __slots__ = ("_aval", "node")

    def __init__(self, trace, aval, var):
        self._trace = trace
        self._aval = aval
        self.node = var

    @property
    def aval(self):
        return self._aval

    def _value(self, what):
        # While recording, a value cannot be had: the function then runs with values. A
        # value kept after the call (stored in a list) is computed from the call's inputs.
        if self._trace.main.active:
            raise _NeedsValue(what)
        return self._trace.materialize([self])[0]

    def to_concrete(self, what):
        return self._value(what)

    def __repr__(self):
        return repr(self._value("repr"))

    def __str__(self):
        return str(self._value("str"))

    def __format__(self, spec):
        return format(self._value("format"), spec)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._value("__array__"), dtype=dtype)

    # No `__jax_array__`: `jax_array @ tracer` must defer to the tracer's `__rmatmul__`, as
    # for every transformation's tracer (JAX converts operands that define it). A tracer
    # handed to a `jax.numpy` function fails to convert, and the function then runs with
    # values, where the transformation's own error names the problem.


class StageTrace(Trace):
    """Records primitives abstractly; everything not its own becomes an input of the graph."""

    def __init__(self, main, payload):
        super().__init__(main, payload)
        self.eqns: list = []
        self.const_vars: list[Var] = []
        self.const_vals: list = []
        self._const_ids: dict[int, Var] = {}
        self.revive = None  # after the call: the values of the inputs, to compute kept values

    def new_input(self, aval):
        return StageTracer(self, aval, Var(aval))

    def materialize(self, tracers):
        """Values of tracers kept after the call, computed by binding the recorded work."""
        if self.revive is None:
            raise _escaped_error(self.main)
        graph, args, tmain = self.revive
        mine = [isinstance(x, Tracer) and x._trace.main is tmain for x in args]
        if not all(getattr(x, "primal", None) is not None for x, m in zip(args, mine) if m):
            raise _escaped_error(self.main)  # under vmap: the inputs have no single value
        env = dict(zip(graph.in_vars, [x.primal if m else x for x, m in zip(args, mine)]))
        perturbed = _perturbed(graph, [v for v, m in zip(graph.in_vars, mine) if m])
        wanted = [t.node for t in tracers]
        if any(v in perturbed for v in wanted):
            # A value the transformation was differentiating (or batching): as in a run
            # with values, it cannot be used once the transformation has ended.
            raise _escaped_error(self.main)
        for eqn in _slice(self.eqns, env, wanted):
            vals = [a.val if type(a) is Lit else env[a] for a in eqn.inputs]
            out = eqn.prim.bind(*vals, **eqn.params)
            env.update(zip(eqn.outputs, out if eqn.prim.multiple_results else [out]))
        return [env[v] for v in wanted]

    def atom(self, x):
        if isinstance(x, StageTracer) and x._trace is self:
            return x.node
        if is_python_scalar(x):
            return Lit(x)
        var = self._const_ids.get(id(x))
        if var is None:
            var = Var(get_aval(x))
            self._const_ids[id(x)] = var
            self.const_vars.append(var)
            self.const_vals.append(x)  # kept alive while its id keys `_const_ids`
        return var

    def process_primitive(self, prim, args, params):
        try:
            pkey = _param_key(params)
        except _Uncacheable:
            pkey = None
        avals = _avals_out(prim, args, params, pkey)
        outs = [StageTracer(self, av, Var(av)) for av in avals]
        inputs = [self.atom(a) for a in args]
        self.eqns.append(LazyEqn(prim, inputs, [o.node for o in outs], params, pkey))
        return outs if prim.multiple_results else outs[0]


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


class _Key:
    """A structure key whose hash is computed once (tuples re-hash on every lookup)."""

    __slots__ = ("parts", "hash")

    def __init__(self, parts):
        self.parts = parts
        self.hash = hash(parts)

    def __hash__(self):
        return self.hash

    def __eq__(self, other):
        return self is other or (type(other) is _Key and self.parts == other.parts)


def _structure_key(graph):
    """The exact structure of a recorded graph without constants (`_Uncacheable` if none)."""
    num, parts = {}, []
    for v in graph.in_vars:
        num[v] = len(num)
        parts.append(v.aval)
    # Plain loops: a generator per equation cost as much as the rest of the key.
    for eqn in graph.eqns:
        if eqn.pkey is None:
            raise _Uncacheable
        ins = []
        for a in eqn.inputs:
            ins.append((type(a.val), repr(a.val)) if type(a) is Lit else num[a])
        avals = []
        for o in eqn.outputs:
            num[o] = len(num)
            avals.append(o.aval)
        parts.append((eqn.prim, tuple(ins), eqn.pkey, tuple(avals)))
    parts.append(tuple(num[v] for v in graph.outs))
    return _intern(_Key(tuple(parts)))


_interned: dict = {}


def _intern(key):
    """One shared object per structure: later comparisons of keys holding it (the derived
    graph cache, an enclosing recording's key, the compiled-program cache) stop at `is`."""
    out = _interned.get(key)
    if out is None:
        if len(_interned) >= 4 * CACHE_SIZE:
            _interned.clear()
        out = _interned[key] = key
    return out


def graph_key(graph):
    """The key of a graph held by `staged_call` (computed when the graph was made)."""
    return graph.staged_key


# ---------------------------------------------------------------------------------------------
# The primitive and its rules
# ---------------------------------------------------------------------------------------------

staged_call_p = Primitive("staged_call", multiple_results=True)


def _impl(*args, graph):
    return graph.eval_lowered(graph.const_vals, args)


def _abstract_eval(*args, graph):
    return [v.aval for v in graph.outs]


def _inline(*args, graph):
    return graph.eval_flat(*args)


_derived: collections.OrderedDict = collections.OrderedDict()
on_rules_changed(_derived.clear)  # a derived graph applied the rules of its time


def _operand_spec(x):
    """How an operand enters a derived graph: a Python scalar by value, else by aval."""
    if x is None:
        return None
    if is_python_scalar(x):
        return ("lit", type(x), repr(x))
    return get_aval(x)


def _derive(graph, kind, operands, build):
    """The graph `build` makes from `graph` for `operands` (`None`: a zero), cached.

    `build(inputs)` returns `(outputs, info)`. Returns `(derived graph, output mask, info)`,
    or `None` when the result cannot be reused.
    """
    specs = tuple(map(_operand_spec, operands))
    key = (graph_key(graph), kind, specs)
    entry = _derived.get(key)
    if entry is not None:
        stats["reused"] += 1
        return entry
    stats["derived"] += 1
    # Constants the rules make with `jax.numpy` (zeros to scatter into) are values even when
    # this call runs while `jax.jit` traces (closed-over concrete arrays reach top level
    # there): a tracer of that jit kept in the derived graph would outlive it.
    with jax.ensure_compile_time_eval(), new_main(GraphTrace, f"staged {kind}",
                                                  staging=True) as main:  # fmt: skip
        trace = main.trace
        ins = [x if s is None or type(s) is tuple else trace.new_input(s)
               for x, s in zip(operands, specs)]  # fmt: skip
        outs, info = build(ins)
        mask = tuple(o is not None for o in outs)
        out_atoms = [trace.atom(o) for o in outs if o is not None]
    b = trace.builder
    if any(isinstance(c, (Tracer, jax.core.Tracer)) for c in b.const_vals):
        return None  # it captured a value of this call: not reusable
    in_vars = [x.node for x, s in zip(ins, specs) if s is not None and type(s) is not tuple]
    derived = Graph(in_vars, b.const_vars, b.const_vals, b.eqns, out_atoms, None, None).dce()
    derived.staged_key = _Key(("derived", key))
    entry = (derived, mask, info)
    _derived[key] = entry
    if len(_derived) > CACHE_SIZE:
        _derived.popitem(last=False)
    return entry


def _bind_derived(entry, operands, specs):
    derived, mask, _ = entry
    dyn = [x for x, s in zip(operands, specs) if s is not None and type(s) is not tuple]
    res = iter(staged_call_p.bind(*dyn, graph=derived))
    return [next(res) if m else None for m in mask]


def _jvp(primals, tangents, graph):
    from .jvp import jvp_flat

    # The primal outputs are the graph itself on the primals (so they depend on nothing
    # else, as under `vmap`); the derived graph computes the tangents, and XLA shares the
    # primal work the two have in common.
    outs = staged_call_p.bind(*primals, graph=graph)
    n = len(primals)

    def build(ins):
        _, out_ts, _ = jvp_flat(lambda xs: (graph.eval_flat(*xs), None), ins[:n], ins[n:],
                                name="staged_call")  # fmt: skip
        return out_ts, None

    operands = [*primals, *tangents]
    entry = _derive(graph, "jvp", operands, build)
    if entry is None:
        return outs, build(operands)[0]
    return outs, _bind_derived(entry, operands, tuple(map(_operand_spec, operands)))


def _vjp(needs, cts, outs, *primals, graph):
    from .vjp import vjp_flat

    n = len(primals)

    def build(ins):
        _, backward, _ = vjp_flat(lambda xs: (graph.eval_flat(*xs), None), ins[:n],
                                  name="staged_call")  # fmt: skip
        in_cts = backward(list(ins[n:]))
        return [c if need else None for c, need in zip(in_cts, needs)], None

    operands = [*primals, *cts]
    entry = _derive(graph, ("vjp", tuple(needs)), operands, build)
    if entry is None:
        return tuple(build(operands)[0])
    return tuple(_bind_derived(entry, operands, tuple(map(_operand_spec, operands))))


def _batch(vals, dims, graph):
    from .batching import BatchTrace, BatchTracer

    dims = tuple(dims)
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not None)

    def build(ins):
        with new_main(BatchTrace, "vmap", size) as main:
            trace = main.trace
            outs = graph.eval_flat(*[trace.wrap(x, d) for x, d in zip(ins, dims)])
            res = [(o.val, o.bdim) if isinstance(o, BatchTracer) and o._trace is trace
                   else (o, None) for o in outs]  # fmt: skip
        return [v for v, _ in res], tuple(d for _, d in res)

    entry = _derive(graph, ("batch", dims), vals, build)
    if entry is None:
        return build(vals)
    return _bind_derived(entry, vals, tuple(map(_operand_spec, vals))), entry[2]


staged_call_p.impl = _impl
staged_call_p.abstract_eval = _abstract_eval
staged_call_p.jvp = _jvp
staged_call_p.vjp = _vjp
staged_call_p.batch = _batch
staged_call_p.inline = _inline


# ---------------------------------------------------------------------------------------------
# Entering: the outermost transformation of a top-level call records its function
# ---------------------------------------------------------------------------------------------

_unstaged: dict = {}  # functions that needed a value while recorded: run them with values


def _owner_key(owner):
    key = getattr(owner, "__code__", owner)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _perturbed(graph, inputs):
    """The values of `graph` that depend on `inputs` through differentiable operations."""
    out = set(inputs)
    for eqn in graph.eqns:
        if eqn.prim.differentiable and any(type(a) is Var and a in out for a in eqn.inputs):
            out.update(o for o in eqn.outputs if is_inexact(o.aval.dtype))
    return out


def call(fun, ins, name, owner):
    """`fun(ins)` (a flat function returning `(outs, aux)`) for the transformation running now.

    When the level below that transformation is the top-level eager recording or another
    function being recorded here (a `grad` inside a loss), `fun` is recorded and bound as
    one `staged_call`; otherwise, or when recording is not possible, `fun` runs on the
    transformation's own values.
    """
    stack = _state.stack
    okey = _owner_key(owner) if owner is not None else None
    if (
        not enabled
        or okey is None
        or len(stack) < 2
        or type(stack[-2].trace) not in (LazyTrace, StageTrace)
        or okey in _unstaged
    ):
        return fun(ins)
    tmain = stack[-1]
    try:
        with new_main(StageTrace, name, staging=True) as main:
            trace = main.trace
            tins = [trace.new_input(get_aval(x)) for x in ins]
            outs, aux = fun(tins)
            leaves, tree = jax.tree_util.tree_flatten((list(outs), aux))
            own = [isinstance(x, StageTracer) and x._trace is trace for x in leaves]
            out_vars = [x.node for x, o in zip(leaves, own) if o]
    except Exception:  # noqa: BLE001 - a value was needed, or `fun` failed: run it with values
        stats["unstaged"] += 1
        if len(_unstaged) < 4096:
            _unstaged[okey] = True
        return fun(ins)
    graph = Graph([t.node for t in tins] + trace.const_vars, [], [], trace.eqns, out_vars, None,
                  None)  # fmt: skip
    args = [*ins, *trace.const_vals]
    trace.revive = (graph, args, tmain)  # worked out only if a value outlives the call
    try:
        graph.staged_key = _structure_key(graph)
    except _Uncacheable:
        stats["replayed"] += 1
        res = graph.eval_flat(*args)
    else:
        res = staged_call_p.bind(*args, graph=graph)
    it = iter(res)
    leaves = [next(it) if o else x for x, o in zip(leaves, own)]
    outs, aux = jax.tree_util.tree_unflatten(tree, leaves)
    return outs, aux
