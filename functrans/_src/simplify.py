"""Graph simplification: algebraic rewrites as data, common subexpressions, dead code.

`simplify(graph)` walks the equations in order. Each equation's operands are first replaced
by what earlier rewrites turned them into; then the rewrite table is tried. A rule looks at
the equation and at the equations that produced its operands, and returns either `None` (no
match) or a replacement built with `emit`, which appends new equations (shared through the
same hash-consing table). Whatever no rule rewrites is kept, shared if an identical equation
exists. Dead equations are dropped at the end.

Every rule is an identity of functions (not just of values), so derivatives of a simplified
graph are the derivatives of the original. Rules that could turn a NaN or an infinity into a
finite number (`x*0 -> 0`, `x-x -> 0`) are deliberately absent.
"""

from __future__ import annotations

import jax

from .core import ShapedArray, is_python_scalar
from .graph import Eqn, Graph, Lit, Var


def _lit(a, value=None):
    """Whether atom `a` is a literal (equal to `value`, when given)."""
    if not isinstance(a, Lit):
        return False
    return value is None or (a.val == value and type(a.val) is not bool)


class _Rewriter:
    def __init__(self):
        self.eqns: list[Eqn] = []
        self.producer: dict[int, Eqn] = {}  # id(var) -> the equation that made it
        self.table: dict = {}

    def key(self, prim, ins, params):
        try:
            k = (prim, tuple(("lit", type(a.val), repr(a.val)) if isinstance(a, Lit) else id(a)
                             for a in ins), tuple(sorted(params.items())))  # fmt: skip
            hash(k)
            return k
        except TypeError:
            return None

    def emit(self, prim, ins, params, out_avals):
        """Append `prim(*ins)` (or reuse an identical equation); returns its output atoms."""
        k = self.key(prim, ins, params)
        if k is not None and k in self.table:
            return self.table[k]
        outs = [Var(av) for av in out_avals]
        eqn = Eqn(prim, list(ins), outs, dict(params))
        self.eqns.append(eqn)
        for o in outs:
            self.producer[id(o)] = eqn
        if k is not None:
            self.table[k] = outs
        return outs

    def made_by(self, a, name):
        """The equation that produced atom `a`, if it is a `name` primitive."""
        if isinstance(a, Var):
            eqn = self.producer.get(id(a))
            if eqn is not None and eqn.prim.name == name:
                return eqn
        return None


# ---------------------------------------------------------------------------------------------
# The rewrite table: (primitive name, rule). A rule gets (rewriter, inputs, params, out_aval)
# and returns the replacement atom or None. Replacements must have the output's aval.
# ---------------------------------------------------------------------------------------------


def _same(a, aval):
    return not isinstance(a, Lit) and a.aval.shape == aval.shape and a.aval.dtype == aval.dtype


def _prim(name):
    from .core import all_primitives

    return all_primitives()[name]


def _unary(rw, name, x, aval):
    return rw.emit(_prim(name), [x], {}, [aval])[0]


def _binary(rw, name, x, y, aval):
    x, y = (Lit(v) if is_python_scalar(v) else v for v in (x, y))
    return rw.emit(_prim(name), [x, y], {}, [aval])[0]


def _add_rule(rw, ins, params, aval):
    x, y = ins
    if _lit(y, 0) and _same(x, aval):
        return x  # x + 0 -> x
    if _lit(x, 0) and _same(y, aval):
        return y  # 0 + y -> y
    ny = rw.made_by(y, "neg")
    if ny is not None:
        return _binary(rw, "sub", x, ny.inputs[0], aval)  # x + (-y) -> x - y
    nx = rw.made_by(x, "neg")
    if nx is not None:
        return _binary(rw, "sub", y, nx.inputs[0], aval)  # (-x) + y -> y - x
    if x is y and not isinstance(x, Lit):
        return _binary(rw, "mul", x, 2, aval)  # x + x -> x * 2
    return None


def _sub_rule(rw, ins, params, aval):
    x, y = ins
    if _lit(y, 0) and _same(x, aval):
        return x  # x - 0 -> x
    if _lit(x, 0) and _same(y, aval):
        return _unary(rw, "neg", y, aval)  # 0 - y -> -y
    ny = rw.made_by(y, "neg")
    if ny is not None:
        return _binary(rw, "add", x, ny.inputs[0], aval)  # x - (-y) -> x + y
    return None


def _mul_rule(rw, ins, params, aval):
    x, y = ins
    if _lit(x) and not _lit(y):
        x, y = y, x  # literals second, so the rules below see one form
    if _lit(y, 1) and _same(x, aval):
        return x  # x * 1 -> x
    if _lit(y, -1) and _same(x, aval):
        return _unary(rw, "neg", x, aval)  # x * -1 -> -x
    if _lit(y):
        inner = rw.made_by(x, "mul")
        if inner is not None and _lit(inner.inputs[1]):
            c = inner.inputs[1].val * y.val
            return _binary(rw, "mul", inner.inputs[0], c, aval)  # (x * c1) * c2 -> x * (c1 c2)
    nx, ny = rw.made_by(x, "neg"), rw.made_by(y, "neg")
    if nx is not None and ny is not None:
        return _binary(rw, "mul", nx.inputs[0], ny.inputs[0], aval)  # (-x)(-y) -> x y
    return None


def _div_rule(rw, ins, params, aval):
    x, y = ins
    if _lit(y, 1) and _same(x, aval):
        return x  # x / 1 -> x
    return None


def _neg_rule(rw, ins, params, aval):
    (x,) = ins
    inner = rw.made_by(x, "neg")
    if inner is not None:
        return inner.inputs[0]  # -(-x) -> x
    sub = rw.made_by(x, "sub")
    if sub is not None:
        return _binary(rw, "sub", sub.inputs[1], sub.inputs[0], aval)  # -(x - y) -> y - x
    return None


def _no_op(rw, ins, params, aval):
    x = ins[0]
    return x if _same(x, aval) else None  # broadcast/convert to what x already is -> x


def _reshape_rule(rw, ins, params, aval):
    x = ins[0]
    if _same(x, aval):
        return x  # reshape to the same shape -> x
    inner = rw.made_by(x, "reshape")
    if inner is not None:
        return rw.emit(_prim("reshape"), [inner.inputs[0]], params, [aval])[0]  # fold reshapes
    return None


def _transpose_rule(rw, ins, params, aval):
    x = ins[0]
    perm = params["permutation"]
    if perm == tuple(range(len(perm))):
        return x  # identity permutation -> x
    inner = rw.made_by(x, "transpose")
    if inner is not None:
        composed = tuple(inner.params["permutation"][p] for p in perm)
        if composed == tuple(range(len(composed))):
            return inner.inputs[0]  # transpose(transpose(x, p), p^-1) -> x
        return rw.emit(_prim("transpose"), [inner.inputs[0]], {"permutation": composed}, [aval])[0]
    return None


def _select_rule(rw, ins, params, aval):
    pred, x, y = ins
    if x is y and _same(x, aval):
        return x  # select(p, x, x) -> x
    return None


def _integer_pow_rule(rw, ins, params, aval):
    if params["n"] == 1 and _same(ins[0], aval):
        return ins[0]  # x^1 -> x
    return None


RULES = {
    "add": [_add_rule],
    "sub": [_sub_rule],
    "mul": [_mul_rule],
    "div": [_div_rule],
    "neg": [_neg_rule],
    "reshape": [_reshape_rule],
    "transpose": [_transpose_rule],
    "broadcast_to": [_no_op],
    "convert_element_type": [_no_op],
    "select": [_select_rule],
    "integer_pow": [_integer_pow_rule],
}


def _fold_literals(eqn, ins):
    """Evaluate a scalar equation on Python-literal operands into a literal."""
    if not ins or not all(isinstance(a, Lit) for a in ins) or eqn.prim.multiple_results:
        return None
    if eqn.outputs[0].aval.shape != () or eqn.prim.name not in _FOLDABLE:
        return None
    # Under an enclosing `jax.jit` (`jax.jit(ft.jit(f))`) JAX would stage even this
    # literal arithmetic; folding needs the number now.
    with jax.ensure_compile_time_eval():
        out = eqn.prim.impl(*[a.val for a in ins], **eqn.params)
        value = out.item()
    return Lit(value) if is_python_scalar(value) else None


_FOLDABLE = {"add", "sub", "mul", "div", "neg", "exp", "log", "sin", "cos", "tanh", "sqrt"}


# ---------------------------------------------------------------------------------------------
# Polynomial outputs, written again compactly
# ---------------------------------------------------------------------------------------------


def _polynomials(graph):
    """Canonical polynomial (over atoms: inputs, constants, non-polynomial results) per var."""
    from .algebra import POLY_PRIMS, combine

    polys = {}
    for eqn in graph.eqns:
        if eqn.prim.name not in POLY_PRIMS:
            continue
        out = eqn.outputs[0]
        ops = []
        for a in eqn.inputs:
            if isinstance(a, Lit):
                if type(a.val) not in (int, float):
                    break
                ops.append({(): float(a.val)} if a.val != 0 else {})
            elif a.aval.shape != out.aval.shape or a.aval.dtype != out.aval.dtype:
                break
            else:
                ops.append(polys.get(id(a), {((id(a), 1),): 1.0}))
        else:
            divisor = eqn.inputs[1] if eqn.prim.name == "div" else None
            divisor_key = id(divisor) if isinstance(divisor, Var) else None
            p = combine(eqn.prim.name, ops, eqn.params, divisor_key)
            if p is not None:
                polys[id(out)] = p
    return polys


def _emit_polynomial(rw, p, atoms, aval):
    """Emit `p` with few equations: Horner's rule in one atom, else a sum of monomials."""
    names = {a for m in p for a, _ in m}
    if len(names) == 1 and all(k > 0 for m in p for _, k in m):
        (atom_id,) = names
        t = atoms[atom_id]
        coeffs = {sum(k for _, k in m): c for m, c in p.items()}
        acc = None
        for k in range(max(coeffs), -1, -1):
            c = coeffs.get(k, 0.0)
            if acc is None:
                acc = Lit(_num(c))
                continue
            acc = t if _lit(acc, 1) else _binary(rw, "mul", acc, t, aval)
            if c != 0.0:
                acc = _binary(rw, "add", acc, _num(c), aval)
        return acc
    total = None
    for m, c in sorted(p.items()):
        term = None
        for atom_id, k in m:
            factor = atoms[atom_id]
            if k != 1:
                factor = rw.emit(_prim("integer_pow"), [factor], {"n": k}, [aval])[0]
            term = factor if term is None else _binary(rw, "mul", term, factor, aval)
        if term is None:
            term = Lit(_num(c))
        elif c != 1.0:
            term = _binary(rw, "mul", term, _num(c), aval)
        total = term if total is None else _binary(rw, "add", total, term, aval)
    if total is None or isinstance(total, Lit):
        # A constant (`x - x`, `(x + 1) * 2 - 2 * x`): an array of the output's shape and
        # dtype, not a bare Python number.
        return _constant(rw, 0 if total is None else total.val, aval)
    return total


def _constant(rw, value, aval):
    x = rw.emit(_prim("convert_element_type"), [Lit(value)], {"new_dtype": aval.dtype},
                [ShapedArray((), aval.dtype)])[0]  # fmt: skip
    if aval.shape:
        x = rw.emit(_prim("broadcast_to"), [x], {"shape": tuple(aval.shape)}, [aval])[0]
    return x


def _num(c):
    return int(c) if float(c).is_integer() else c


def _rewrite_polynomial_outputs(graph: Graph) -> Graph:
    polys = _polynomials(graph)
    targets = [o for o in graph.outs if isinstance(o, Var) and id(o) in polys]
    if not targets:
        return graph
    atoms = {id(v): v for v in graph.in_vars + graph.const_vars}
    for eqn in graph.eqns:
        for o in eqn.outputs:
            atoms[id(o)] = o
    rw = _Rewriter()
    remap = {}  # `emit` makes fresh output vars: old var id -> new var
    for eqn in graph.eqns:
        ins = [remap.get(id(a), a) if isinstance(a, Var) else a for a in eqn.inputs]
        outs = rw.emit(eqn.prim, ins, eqn.params, [o.aval for o in eqn.outputs])
        remap.update((id(old), new) for old, new in zip(eqn.outputs, outs))
    atoms = {k: remap.get(k, v) for k, v in atoms.items()}
    new_outs = []
    for o in graph.outs:
        if isinstance(o, Var) and id(o) in polys:
            new_outs.append(_emit_polynomial(rw, polys[id(o)], atoms, o.aval))
        else:
            new_outs.append(remap.get(id(o), o) if isinstance(o, Var) else o)
    candidate = Graph(graph.in_vars, graph.const_vars, graph.const_vals, rw.eqns, new_outs,
                      graph.in_tree, graph.out_tree).dce()  # fmt: skip
    return candidate if candidate.num_equations < graph.num_equations else graph


def simplify(graph: Graph) -> Graph:
    rw = _Rewriter()
    env: dict[int, object] = {}

    def read(a):
        return a if isinstance(a, Lit) else env.get(id(a), a)

    for eqn in graph.eqns:
        ins = [read(a) for a in eqn.inputs]
        replacement = None
        if not eqn.prim.multiple_results:
            replacement = _fold_literals(eqn, ins)
            for rule in RULES.get(eqn.prim.name, ()):
                if replacement is not None:
                    break
                replacement = rule(rw, ins, eqn.params, eqn.outputs[0].aval)
        if replacement is not None:
            env[id(eqn.outputs[0])] = replacement
            continue
        outs = rw.emit(eqn.prim, ins, eqn.params, [o.aval for o in eqn.outputs])
        for old, new in zip(eqn.outputs, outs):
            env[id(old)] = new
    outs = [read(a) for a in graph.outs]
    out_graph = Graph(graph.in_vars, graph.const_vars, graph.const_vals, rw.eqns, outs,
                      graph.in_tree, graph.out_tree)  # fmt: skip
    return _rewrite_polynomial_outputs(out_graph.dce())
