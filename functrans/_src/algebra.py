"""Algebraic value numbering: sharing values that are equal as polynomials.

Hash-consing (cse.py) shares applications that are *structurally* identical. Nested
derivatives also build many values that are equal only after algebra: `(a + b) + c` and
`a + (b + c)`, `f + f` and `2 * f`, `t * (1 - t*t)` and `t - t**3`. Each trace that records
work keeps, for every value built by `add`, `sub`, `mul`, `neg` or `integer_pow` from
operands of one shape, its canonical form: a polynomial with literal coefficients over
*atoms* (every other value). A new application whose polynomial is already known returns the
earlier value instead of being recorded, so each level of a nested derivative differentiates
a tape with one entry per distinct polynomial, not per way of writing it.

This is sound for derivatives: two values with the same polynomial in the same atoms are the
same function of those atoms. Forms are capped in size; past the cap a value becomes an atom.
A polynomial that is a constant is never shared (`x - x` stays, keeping NaN and infinity
semantics and the shape of `x`).
"""

from __future__ import annotations

from .core import get_aval, is_inexact, is_python_scalar

POLY_PRIMS = frozenset({"add", "sub", "mul", "neg", "integer_pow", "div"})
MAX_TERMS = 48
MAX_DEGREE = 24

# A polynomial is a dict {monomial: coefficient}; a monomial is a sorted tuple of
# (atom key, power) pairs, () for the constant term. Powers may be negative (Laurent
# polynomials), so `a / b` is `a * b^-1`: a divisor that is a single monomial is inverted,
# any other divisor enters as an atom of its own to the power -1.


def _add(p, q, sign=1.0):
    out = dict(p)
    for m, c in q.items():
        v = out.get(m, 0.0) + sign * c
        if v == 0.0:
            out.pop(m, None)
        else:
            out[m] = v
    return out


def _mul_monomials(m1, m2):
    powers = dict(m1)
    for a, k in m2:
        k = powers.get(a, 0) + k
        if k:
            powers[a] = k
        else:
            powers.pop(a, None)
    return tuple(sorted(powers.items()))


def _inverse(p, atom_key):
    """`p^-1` as a polynomial: exact for a monomial, else the atom `atom_key` to the -1."""
    if len(p) == 1:
        ((m, c),) = p.items()
        return {tuple((a, -k) for a, k in m): 1.0 / c}
    if atom_key is None:
        return None
    return {((atom_key, -1),): 1.0}


def _mul(p, q):
    out = {}
    for m1, c1 in p.items():
        for m2, c2 in q.items():
            m = _mul_monomials(m1, m2)
            v = out.get(m, 0.0) + c1 * c2
            if v == 0.0:
                out.pop(m, None)
            else:
                out[m] = v
        if len(out) > MAX_TERMS * 4:
            return None
    return out


def combine(name, ops, params, divisor_key=None):
    """The polynomial of `name(*ops)` from its operands' polynomials, or None past the caps.

    `divisor_key` names the second operand as an atom, for a `div` by a non-monomial.
    """
    if name == "div":
        if not ops[1]:
            return None  # division by zero: leave it alone
        inv = _inverse(ops[1], divisor_key)
        p = None if inv is None else _mul(ops[0], inv)
    elif name == "add":
        p = _add(ops[0], ops[1])
    elif name == "sub":
        p = _add(ops[0], ops[1], -1.0)
    elif name == "neg":
        p = {m: -c for m, c in ops[0].items()}
    elif name == "mul":
        p = _mul(ops[0], ops[1])
    else:  # integer_pow
        n = params["n"]
        base = ops[0]
        if n < 0:
            base = _inverse(base, None) if base else None
            n = -n
        p = {(): 1.0}
        for _ in range(n):
            if base is None:
                p = None
            if p is None:
                break
            p = _mul(p, base)
    if p is None or len(p) > MAX_TERMS or _degree(p) > MAX_DEGREE:
        return None
    return p


def _degree(p):
    return max((sum(abs(k) for _, k in m) for m in p), default=0)


def _freeze(p):
    # A set, not a sorted tuple: hashing is linear, while sorting compared monomials
    # element by element and was the largest single cost of recording a nested gradient.
    return frozenset(p.items())


class AlgebraTable:
    """Per-trace table from canonical polynomials to the values that hold them."""

    __slots__ = ("poly_of", "by_poly", "keep")

    def __init__(self):
        self.poly_of = {}  # id(value) -> polynomial dict
        self.by_poly = {}  # (frozen polynomial, shape, dtype) -> value
        self.keep = []  # operands named by id in atoms stay alive

    def _operand(self, x, is_own):
        if is_python_scalar(x):
            if type(x) is bool or (type(x) is complex and x.imag != 0):
                return None  # coefficients are real: a complex literal is not algebraic here
            return {(): float(x.real if isinstance(x, complex) else x)} if x != 0 else {}
        p = self.poly_of.get(id(x))
        if p is not None:
            return p
        if not is_own(x):
            self.keep.append(x)
        return {((id(x), 1),): 1.0}

    def lookup(self, prim, args, params, is_own):
        """`(key, existing value or None)` for `prim(*args)`; key is None when not algebraic."""
        if prim.name not in POLY_PRIMS:
            return None, None
        shape = dtype = None
        for a in args:
            if is_python_scalar(a):
                continue
            aval = get_aval(a)
            if shape is None:
                shape, dtype = aval.shape, aval.dtype
            elif aval.shape != shape or aval.dtype != dtype:
                return None, None  # broadcasting or mixed dtypes: keep it simple
        if shape is None or not is_inexact(dtype):
            return None, None
        ops = [self._operand(a, is_own) for a in args]
        if any(o is None for o in ops):
            return None, None
        divisor = args[1] if prim.name == "div" and not is_python_scalar(args[1]) else None
        if divisor is not None:
            self.keep.append(divisor)
        p = combine(prim.name, ops, params, None if divisor is None else id(divisor))
        if p is None:
            return None, None
        if not p or list(p) == [()]:
            return None, None  # a constant: never shared (see the module docstring)
        key = (_freeze(p), shape, dtype)
        return (key, p), self.by_poly.get(key)

    def record(self, key, value):
        if key is None or is_python_scalar(value):
            return
        frozen_key, p = key
        self.poly_of[id(value)] = p
        self.by_poly.setdefault(frozen_key, value)
        self.keep.append(value)

    def note_results(self, prim, args, outs):
        """Register the results of a recorded application that `lookup` found not algebraic.

        A broadcast Python literal (`grad`'s seed cotangent spread by a reduction's rule) is
        that constant, so `x * ones` finds `x` itself and `x + zeros` finds `x` where `x` has
        its shape; constants are never shared themselves. Every other result is an atom.
        """
        if prim.name == "broadcast_to" and is_python_scalar(args[0]):
            p = self._operand(args[0], None)
            if p is not None and is_inexact(get_aval(outs[0]).dtype):
                self.poly_of[id(outs[0])] = p
                self.keep.append(outs[0])
                return
        for o in outs:
            self.note_atom(o)

    def note_atom(self, value):
        """Register a recorded non-polynomial value, so `x * 1` finds `x` itself."""
        if is_python_scalar(value):
            return
        aval = get_aval(value)
        if not is_inexact(aval.dtype):
            return
        p = {((id(value), 1),): 1.0}
        self.by_poly.setdefault((_freeze(p), aval.shape, aval.dtype), value)
        self.keep.append(value)
