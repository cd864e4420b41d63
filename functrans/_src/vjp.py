"""Reverse mode: a tape of the forward computation, walked backwards by graph expansion.

While the function runs, a `VJPTrace` computes every primal value one level down and records
each differentiable primitive application on its tape. The backward pass walks the tape in
reverse and applies each primitive's VJP rule. The rules are written with functrans
operations, so the backward pass is itself a functrans computation: whatever transformation
is active when it runs (an outer `grad`, `jvp`, `make_graph`, or a JAX trace) records it.
That is what makes `grad(grad(f))` and a gradient inside a loss correct with no flag.
"""

from __future__ import annotations

from . import staged
from .algebra import AlgebraTable
from .core import Trace, Tracer, get_aval, is_inexact, missing_rule, new_main
from .cse import CSECache
from .jvp import _drop_error


class VJPTracer(Tracer):
    __slots__ = ("primal", "node")

    def __init__(self, trace, primal, node):
        self._trace = trace
        self.primal = primal
        self.node = node

    @property
    def aval(self):
        return get_aval(self.primal)

    def to_concrete(self, what):
        raise _drop_error(self, what)

    def __repr__(self):
        name = self._trace.main.name
        return f"Traced<{self.aval.str_short()}> from `{name}` (primal: {self.primal!r})"


class TapeEqn:
    """One recorded primitive application: primal inputs and outputs, and their tape nodes."""

    __slots__ = ("prim", "params", "primals", "in_nodes", "outs", "out_nodes")

    def __init__(self, prim, params, primals, in_nodes, outs, out_nodes):
        self.prim = prim
        self.params = params
        self.primals = primals
        self.in_nodes = in_nodes
        self.outs = outs
        self.out_nodes = out_nodes


class VJPTrace(Trace):
    def __init__(self, main, payload):
        super().__init__(main, payload)
        self.tape: list[TapeEqn] = []
        self.num_nodes = 0
        self.cse = CSECache()
        self.algebra = AlgebraTable()

    def new_tracer(self, primal):
        node = self.num_nodes
        self.num_nodes += 1
        t = VJPTracer(self, primal, node)
        self.algebra.note_atom(t)
        return t

    def _is_own(self, x):
        return isinstance(x, VJPTracer) and x._trace is self

    def process_primitive(self, prim, args, params):
        primals, in_nodes = [], []
        tracked = False
        for a in args:
            if isinstance(a, VJPTracer) and a._trace is self:
                primals.append(a.primal)
                in_nodes.append(a.node)
                tracked = True
            else:
                primals.append(a)
                in_nodes.append(None)
        if not tracked or not prim.differentiable:
            return prim.bind(*primals, **params)
        key = self.cse.key(prim, args, params)
        hit = self.cse.get(key)
        if hit is not None:
            return hit
        akey, same = self.algebra.lookup(prim, args, params, self._is_own)
        if same is not None:
            return same
        out = prim.bind(*primals, **params)
        outs = list(out) if prim.multiple_results else [out]
        results, out_nodes = [], []
        for o in outs:
            if is_inexact(get_aval(o).dtype):
                t = self.new_tracer(o)
                results.append(t)
                out_nodes.append(t.node)
            else:
                results.append(o)
                out_nodes.append(None)
        self.tape.append(TapeEqn(prim, params, primals, in_nodes, outs, out_nodes))
        result = results if prim.multiple_results else results[0]
        self.cse.put(key, args, result)
        if akey is not None:
            self.algebra.record(akey, result)
        return result


def _shape(x):
    return tuple(getattr(x, "shape", ()))


def backward_pass(tape, ct_env):
    """Walk `tape` backwards from the cotangents in `ct_env` (node -> cotangent).

    Returns `ct_env` holding the cotangents of the nodes no equation produced: the inputs.
    """
    from .prims.elementwise import add_any

    for eqn in reversed(tape):
        cts = [None if n is None else ct_env.pop(n, None) for n in eqn.out_nodes]
        if all(c is None for c in cts):
            continue  # no cotangent reaches this equation: it is dead for this derivative
        prim = eqn.prim
        if prim.vjp is None:
            raise missing_rule(prim, "vjp")
        needs = tuple(n is not None for n in eqn.in_nodes)
        if prim.multiple_results:
            cts_in = prim.vjp(needs, cts, eqn.outs, *eqn.primals, **eqn.params)
        else:
            cts_in = prim.vjp(needs, cts[0], eqn.outs[0], *eqn.primals, **eqn.params)
        for node, primal, ct in zip(eqn.in_nodes, eqn.primals, cts_in):
            if node is None or ct is None:
                continue
            if _shape(ct) != _shape(primal):
                raise AssertionError(
                    f"internal error: the VJP rule of `{prim.name}` returned a cotangent of "
                    f"shape {_shape(ct)} for an input of shape {_shape(primal)}."
                )
            prev = ct_env.get(node)
            ct_env[node] = ct if prev is None else add_any(prev, ct)
    return ct_env


def vjp_flat(fun, primals, name="vjp", owner=None):
    """Run `fun` (flat list in, `(flat_outs, aux)` out) on a tape.

    Returns `(out_primals, backward, aux)`, where `backward(cts)` maps a list of output
    cotangents (`None` for zero) to a list of input cotangents (`None` for zero or for inputs
    that are not differentiable). `owner`, the user's function, lets a top-level eager call
    reuse the derivative program of a structure seen before (`staged.py`).
    """
    with new_main(VJPTrace, name) as main:
        trace = main.trace
        ins = [trace.new_tracer(p) if is_inexact(get_aval(p).dtype) else p for p in primals]
        in_nodes = [x.node if isinstance(x, VJPTracer) else None for x in ins]
        outs, aux = fun(ins) if owner is None else staged.call(fun, ins, name, owner)
        out_primals, out_nodes = [], []
        for o in outs:
            if isinstance(o, VJPTracer) and o._trace is trace:
                out_primals.append(o.primal)
                out_nodes.append(o.node)
            else:
                out_primals.append(o)
                out_nodes.append(None)
        aux = _lower_aux(aux, trace)
    tape = trace.tape

    def backward(cts):
        from .prims.elementwise import add_any

        ct_env = {}
        for node, ct in zip(out_nodes, cts):
            if node is None or ct is None:
                continue
            prev = ct_env.get(node)
            ct_env[node] = ct if prev is None else add_any(prev, ct)
        ct_env = backward_pass(tape, ct_env)
        return [None if n is None else ct_env.get(n) for n in in_nodes]

    return out_primals, backward, aux


def _lower_aux(aux, trace):
    import jax

    if aux is None:
        return None

    def lower(x):
        if isinstance(x, VJPTracer) and x._trace is trace:
            return x.primal
        return x

    return jax.tree_util.tree_map(lower, aux)


def saved_values(fun, *primals):
    """The arrays a reverse pass through `fun` keeps for its backward pass (a diagnostic).

    Returns a list of `(primitive name, shape)`, one per distinct saved array: the inputs and
    outputs each recorded equation holds for its VJP rule.
    """
    import jax

    leaves, tree = jax.tree_util.tree_flatten(primals)
    with new_main(VJPTrace, "saved_values") as main:
        trace = main.trace
        ins = [trace.new_tracer(p) if is_inexact(get_aval(p).dtype) else p for p in leaves]
        fun(*jax.tree_util.tree_unflatten(tree, ins))
    seen, out = set(), []
    for eqn in trace.tape:
        for v in (*eqn.primals, *eqn.outs):
            if id(v) not in seen and hasattr(v, "shape"):
                seen.add(id(v))
                out.append((eqn.prim.name, tuple(v.shape)))
    return out
