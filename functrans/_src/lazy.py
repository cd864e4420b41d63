"""Fast eager transformations: record the whole computation, run it as one compiled program.

Outside any trace, `ft.grad(f)(x)` used to dispatch every primitive of the forward and
backward pass to JAX one at a time, and JAX's eager dispatch costs tens of microseconds per
operation (and a compilation per new operation and shape on the first call). Here a
transformation called at top level instead runs on a `LazyTrace` at the bottom of the stack:
every primitive that reaches it is recorded as an equation, with its abstract value computed
but no arithmetic done. When a concrete value is needed, the equations it depends on are
compiled as one `jax.jit` function and run:

- at the end of the transformation, for its outputs (they are returned as `jax.Array`s);
- in the middle, when Python asks for a value: `bool()`/`if`, `float()`, `print`, `repr`,
  `numpy.asarray`, or a lazy value handed to `jax.numpy` (`__jax_array__`).

The user's Python runs on every call, so control flow and side effects behave as in eager
mode; only the compiled program is reused. The cache key is the full structure of the
recorded equations: primitive, operand numbering, literal values with their types, every
parameter and every abstract value, so two recordings share an executable only if they are
the same program. Graphs held by control flow are keyed by their structure (and baked
constants by value); custom rules and `checkpoint` are recorded through their primal body,
which is all that is left to compute at the bottom of the stack. A parameter that still
cannot be keyed exactly makes the recording uncacheable; it is then evaluated operation by
operation, which is correct but not faster.
"""

from __future__ import annotations

import collections
import enum
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .core import Trace, Tracer, _state, get_aval, is_inexact, new_main, on_rules_changed
from .graph import Eqn, Graph, Lit, Var, abstract_eval

CACHE_SIZE = 512


class LazyTracer(Tracer):
    """A value of a top-level transformation: an equation's output, computed on demand."""

    __slots__ = ("_aval", "node")

    def __init__(self, trace, aval, var):
        self._trace = trace
        self._aval = aval
        self.node = var

    @property
    def aval(self):
        return self._aval

    def value(self):
        return self._trace.materialize([self])[0]

    def to_concrete(self, what):
        return self.value()

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.value(), dtype=dtype)

    def __jax_array__(self):
        return self.value()

    def __repr__(self):
        return repr(self.value())

    def __format__(self, spec):
        return format(self.value(), spec)


class LazyEqn(Eqn):
    __slots__ = ("pkey",)  # the exact key of `params`, or None when they cannot be keyed

    def __init__(self, prim, inputs, outputs, params, pkey):
        super().__init__(prim, inputs, outputs, params)
        self.pkey = pkey


class LazyTrace(Trace):
    def __init__(self, main, payload):
        super().__init__(main, payload)
        self.eqns: list[Eqn] = []
        self.known: dict[Var, object] = {}  # inputs, constants and values already computed
        self._const_ids: dict[int, Var] = {}
        self._keep = []  # constants stay alive while their ids key `_const_ids`

    def new_input(self, x):
        aval = get_aval(x)
        var = Var(aval)
        self.known[var] = x
        return LazyTracer(self, aval, var)

    def atom(self, x):
        if isinstance(x, LazyTracer) and x._trace is self:
            return x.node
        if type(x) in _SCALAR_TYPES:
            return Lit(x)
        var = self._const_ids.get(id(x))
        if var is None:
            var = Var(get_aval(x))
            self._const_ids[id(x)] = var
            self._keep.append(x)
            self.known[var] = x
        return var

    def process_primitive(self, prim, args, params):
        # No hash-consing here: the transformations above already share their work, and
        # XLA eliminates what is left; keying every base operation cost more than it saved.
        try:
            pkey = _param_key(params)
        except _Uncacheable:
            if prim.primal_body is not None:
                # At the bottom of the stack only the primal computation is left (custom
                # rules and rematerialization were for the transformations above): record
                # its body, which can be keyed, instead of an opaque call.
                return prim.primal_body(*args, **params)
            pkey = None
        avals = _avals_out(prim, args, params, pkey)
        outs = [LazyTracer(self, av, Var(av)) for av in avals]
        inputs = [self.atom(a) for a in args]
        self.eqns.append(LazyEqn(prim, inputs, [o.node for o in outs], params, pkey))
        return outs if prim.multiple_results else outs[0]

    def materialize(self, tracers):
        """Concrete values of `tracers` (of this trace), computing what they depend on."""
        wanted = [t.node for t in tracers if t.node not in self.known]
        if wanted:
            values = _run(self.eqns, self.known, wanted)
            self.known.update(zip(wanted, values))
        # An input asked for as such is handed out as a JAX array, as in op-by-op mode.
        return [_on_device(self.known[t.node]) for t in tracers]


_SCALAR_TYPES = (bool, int, float, complex)
_aval_cache: dict = {}


def _avals_out(prim, args, params, pkey):
    """Output avals, memoized on the exact input signature: every call re-records the same
    primitives on the same shapes, and abstract evaluation is a large part of recording."""
    key = None
    if pkey is not None:
        sig = []  # a loop, not a generator: this runs for every recorded primitive
        for a in args:
            sig.append((type(a), repr(a)) if type(a) in _SCALAR_TYPES else get_aval(a))
        key = (prim, tuple(sig), pkey)
    avals = _aval_cache.get(key) if key is not None else None
    if avals is None:
        out = abstract_eval(prim, args, params)
        avals = list(out) if prim.multiple_results else [out]
        if key is not None and len(_aval_cache) < 100_000:
            _aval_cache[key] = avals
    return avals


# ---------------------------------------------------------------------------------------------
# Running a recording: slice, key, compile (cached), call
# ---------------------------------------------------------------------------------------------


class _Uncacheable(Exception):
    pass


def _static_key(v):
    """An exact, hashable key of a parameter value, or `_Uncacheable`.

    Types are part of the key so that `1`, `1.0` and `True` (equal and equally hashed in
    Python) never share a program.
    """
    t = type(v)
    if t is float or t is complex:
        return (t, repr(v))  # repr keeps -0.0 apart from 0.0 and nan equal to itself
    if t in (int, bool, str, type(None)):
        return (t, v)
    if t is tuple or t is list:
        for x in v:
            if type(x) is not int:
                return (t, tuple([_static_key(x) for x in v]))
        return (t, tuple(v))  # axes, shapes: the ints key themselves (no bool among them)
    if t is slice:
        return (t, _static_key(v.start), _static_key(v.stop), _static_key(v.step))
    if isinstance(v, (np.dtype, type, enum.Enum)):  # dtypes, `jax.lax.Precision`
        return (t, v)
    if isinstance(v, np.generic):
        return (t, v.dtype, v.tobytes())
    if t is Graph:
        key = getattr(v, "staged_key", None)  # a `staged_call` graph: keyed when it was made
        return (t, key if key is not None else _graph_key(v))
    raise _Uncacheable


_MAX_KEYED_CONST = 4096  # elements: a graph constant larger than this is not keyed by value


def _graph_key(graph):
    """The exact structure of a graph held by a primitive (a `cond` branch, a `scan` body).

    Control flow traces its bodies afresh on every call, so the graphs are new objects with
    the same structure; keying them by structure lets the recording be compiled once.
    Constants baked into a graph are part of its meaning, so they are keyed by value.
    """
    num, parts = {}, []
    for v in (*graph.const_vars, *graph.in_vars):
        num[v] = len(num)
        parts.append(v.aval)
    for c in graph.const_vals:
        if isinstance(c, Tracer) or np.size(c) > _MAX_KEYED_CONST:
            raise _Uncacheable
        c = np.asarray(c)
        parts.append((c.dtype, c.shape, c.tobytes()))

    def operand(a):
        return (type(a.val), repr(a.val)) if type(a) is Lit else num[a]

    for eqn in graph.eqns:
        ins = tuple(map(operand, eqn.inputs))
        for o in eqn.outputs:
            num[o] = len(num)
        parts.append((eqn.prim, ins, _param_key(eqn.params), tuple(o.aval for o in eqn.outputs)))
    parts.append(tuple(map(operand, graph.outs)))
    return tuple(parts)


def _param_key(params):
    if not params:
        return ()
    return tuple([(k, _static_key(v)) for k, v in sorted(params.items())])


def _slice(eqns, known, wanted):
    """The equations `wanted` needs, in order, stopping at values already known."""
    needed = set(wanted)
    kept = []
    for eqn in reversed(eqns):
        if any(o in needed for o in eqn.outputs):
            kept.append(eqn)
            for a in eqn.inputs:
                if type(a) is Var and a not in known:
                    needed.add(a)
    kept.reverse()
    return kept


def _structure(eqns, known, wanted):
    """`(key, input vars)` of the program computing `wanted` from known values."""
    num, inputs, parts = {}, [], []
    for eqn in eqns:
        ins = []
        for a in eqn.inputs:
            if type(a) is Lit:
                ins.append((type(a.val), repr(a.val)))
                continue
            i = num.get(a)
            if i is None:  # a known value: an input of the program
                i = num[a] = len(num)
                inputs.append(a)
                parts.append(a.aval)
            ins.append(i)
        for o in eqn.outputs:
            num[o] = len(num)
        if eqn.pkey is None:
            raise _Uncacheable
        parts.append((eqn.prim, tuple(ins), eqn.pkey,
                      tuple(o.aval for o in eqn.outputs)))  # fmt: skip
    parts.append(tuple(num[v] for v in wanted))
    return tuple(parts), inputs


def _evaluate(eqns, inputs, wanted, xs):
    env = dict(zip(inputs, xs))
    for eqn in eqns:
        args = [a.val if type(a) is Lit else env[a] for a in eqn.inputs]
        out = eqn.prim.impl(*args, **eqn.params)
        if eqn.prim.multiple_results:
            env.update(zip(eqn.outputs, out))
        else:
            env[eqn.outputs[0]] = out
    return [env[v] for v in wanted]


_EAGER_ONLY = object()
_cache: collections.OrderedDict = collections.OrderedDict()
stats = collections.Counter()  # "hits", "compiles", "uncacheable": for tests and benchmarks


def _run(eqns, known, wanted):
    eqns = _slice(eqns, known, wanted)
    try:
        key, inputs = _structure(eqns, known, wanted)
    except _Uncacheable:
        stats["uncacheable"] += 1
        inputs = _inputs(eqns, known)
        return _evaluate(eqns, inputs, wanted, [known[v] for v in inputs])
    xs = [known[v] for v in inputs]
    fn = _cache.get(key)
    if fn is None:
        stats["compiles"] += 1
        fn = jax.jit(functools.partial(_evaluate, eqns, inputs, wanted))
        _cache[key] = fn
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        stats["hits"] += 1
        _cache.move_to_end(key)
    if fn is _EAGER_ONLY:
        return _evaluate(eqns, inputs, wanted, xs)
    try:
        return fn(xs)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        # A lowering that needs concrete values (it cannot be compiled): run it eagerly.
        _cache[key] = _EAGER_ONLY
        return _evaluate(eqns, inputs, wanted, xs)


def _inputs(eqns, known):
    seen, out = set(), []
    for eqn in eqns:
        for a in eqn.inputs:
            if type(a) is Var and a in known and a not in seen:
                seen.add(a)
                out.append(a)
    return out


def clear_cache():
    """Forget every compiled program of top-level transformations."""
    _cache.clear()
    _aval_cache.clear()


on_rules_changed(clear_cache)


# ---------------------------------------------------------------------------------------------
# Entering lazy mode
# ---------------------------------------------------------------------------------------------


def _device(x):
    """An input as the compiled program will take it.

    NumPy arrays stay on the host: `jax.jit` transfers them in its C++ dispatch path for
    less than `jnp.asarray` costs in Python (which dominated small eager calls). Only a
    dtype that JAX would change (float64 without x64) is converted here, so the recorded
    abstract value is the one the program sees.
    """
    if isinstance(x, np.ndarray) and (
        not x.flags.c_contiguous or jax.dtypes.canonicalize_dtype(x.dtype) != x.dtype
    ):
        return jnp.asarray(x)
    return x


def _on_device(x):
    return jnp.asarray(x) if isinstance(x, np.ndarray) else x


def _liftable(x):
    return isinstance(x, (jax.Array, np.ndarray)) and is_inexact(x.dtype)


def at_top_level(transform):
    """Run `transform` (a transformation's entry point) lazily when no trace encloses it.

    Floating-point array arguments become lazy inputs; everything the transformation binds
    on them is recorded and compiled as one program when values are needed.
    """

    @functools.wraps(transform)
    def run(*args, **kwargs):
        if not enabled or _state.stack or _state.staging is not None:
            return transform(*args, **kwargs)
        leaves, tree = jax.tree_util.tree_flatten((args, kwargs))
        if not any(_liftable(x) for x in leaves) or any(
            isinstance(x, jax.core.Tracer) for x in leaves
        ):
            return transform(*args, **kwargs)
        with new_main(LazyTrace, "eager", staging=True) as main:
            trace = main.trace
            leaves = [trace.new_input(_device(x)) if _liftable(x) else x for x in leaves]
            args, kwargs = jax.tree_util.tree_unflatten(tree, leaves)
            out = transform(*args, **kwargs)
            return _concretize(out, trace)

    return run


def _concretize(out, trace):
    leaves, tree = jax.tree_util.tree_flatten(out)
    lazy = [x for x in leaves if isinstance(x, LazyTracer) and x._trace is trace]
    if not lazy:
        return out
    values = dict(zip(map(id, lazy), trace.materialize(lazy)))
    leaves = [values.get(id(x), x) if isinstance(x, LazyTracer) else x for x in leaves]
    return jax.tree_util.tree_unflatten(tree, leaves)


# `FUNCTRANS_LAZY=0` in the environment (or setting this to False) restores op-by-op eager
# evaluation, e.g. to step through a derivative rule in a debugger.
enabled = os.environ.get("FUNCTRANS_LAZY", "1") != "0"

__all__ = ["LazyTrace", "LazyTracer", "at_top_level", "clear_cache", "stats"]
