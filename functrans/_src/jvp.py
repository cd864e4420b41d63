"""Forward mode: the JVP trace.

A `JVPTracer` pairs a primal value with its tangent, both values one level down. A tangent of
`None` is a symbolic zero: operations whose inputs all have zero tangents are bound on the
primals alone and their results are never wrapped, so unperturbed work is traced once.
"""

from __future__ import annotations

from .core import Trace, Tracer, get_aval, is_inexact, missing_rule, new_main
from .cse import CSECache


class JVPTracer(Tracer):
    __slots__ = ("primal", "tangent")

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self.primal = primal
        self.tangent = tangent

    @property
    def aval(self):
        return get_aval(self.primal)

    def to_concrete(self, what):
        # Turning a perturbed value into a Python number would drop its tangent.
        raise _drop_error(self, what)

    def __repr__(self):
        name = self._trace.main.name
        return f"Traced<{self.aval.str_short()}> from `{name}` (primal: {self.primal!r})"


def _drop_error(tracer, what):
    return TypeError(
        f"`{what}()` was called on a value that `{tracer._trace.main.name}` is differentiating "
        f"({tracer.aval.str_short()}). Converting it to a Python number would silently drop its "
        "derivative. Keep it as an array and use `functrans.numpy` operations; compare it "
        "(`x > 0`) for a Python `if`, or apply `ft.stop_gradient` if a constant is meant."
    )


class JVPTrace(Trace):
    def __init__(self, main, payload):
        super().__init__(main, payload)
        self.cse = CSECache()

    def wrap(self, primal, tangent):
        if tangent is None or not is_inexact(get_aval(primal).dtype):
            return primal
        return JVPTracer(self, primal, tangent)

    def process_primitive(self, prim, args, params):
        primals, tangents = [], []
        perturbed = False
        for a in args:
            if isinstance(a, JVPTracer) and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
                perturbed = True
            else:
                primals.append(a)
                tangents.append(None)
        if not perturbed or not prim.differentiable:
            return prim.bind(*primals, **params)
        key = self.cse.key(prim, args, params)
        hit = self.cse.get(key)
        if hit is not None:
            return hit
        if prim.jvp is None:
            raise missing_rule(prim, "jvp")
        out, out_dot = prim.jvp(primals, tangents, **params)
        if prim.multiple_results:
            result = [self.wrap(o, t) for o, t in zip(out, out_dot)]
        else:
            result = self.wrap(out, out_dot)
        self.cse.put(key, args, result)
        return result


def jvp_flat(fun, primals, tangents, name="jvp", owner=None):
    """Push `tangents` forward through `fun` at `primals`; flat lists in and out.

    `tangents[i]` may be `None` (symbolic zero). Returns `(out_primals, out_tangents, aux)`
    where `fun` returns `(flat_outs, aux)` and a zero output tangent is `None`. `owner`:
    see `vjp_flat`.
    """
    with new_main(JVPTrace, name) as main:
        trace = main.trace
        ins = [trace.wrap(p, t) for p, t in zip(primals, tangents)]
        if owner is None:
            outs, aux = fun(ins)
        else:
            from . import staged

            outs, aux = staged.call(fun, ins, name, owner)
        out_primals, out_tangents = [], []
        for o in outs:
            if isinstance(o, JVPTracer) and o._trace is trace:
                out_primals.append(o.primal)
                out_tangents.append(o.tangent)
            else:
                out_primals.append(o)
                out_tangents.append(None)
        aux = _lower_aux(aux, trace)
    return out_primals, out_tangents, aux


def _lower_aux(aux, trace):
    import jax

    if aux is None:
        return None

    def lower(x):
        if isinstance(x, JVPTracer) and x._trace is trace:
            return x.primal
        return x

    return jax.tree_util.tree_map(lower, aux)
