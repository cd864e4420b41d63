"""Taylor mode: `ft.jet` and `ft.derivatives`.

A `JetTracer` carries a truncated Taylor series `x(t) = x0 + x1 t + ... + xK t^K` of a value
along a path (coefficients, not derivatives: `x_k = x^(k)(0) / k!`; the public API converts).
Each primitive has a rule that maps input series to the output series in one pass, so the
K-th derivative costs O(K^2) operations rather than the exponential growth of nesting.
A zero coefficient is `None` and never computed with.

The rules are written with functrans operations: a jet can itself be traced by `make_graph`,
compiled by `ft.jit`, or differentiated. They live in one table in this module, keyed by
primitive name, following the standard recurrences (Griewank & Walther, *Evaluating
Derivatives*, ch. 13): products by convolution, quotients and square roots by solving the
convolution for the newest term, and `exp`, `log`, `sin`, `tanh`, ... through the linear ODE
`y' = g(x, y) x'` that each satisfies.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from .api import _flatten_args, _outputs_to_arrays
from .core import Trace, Tracer, get_aval, is_inexact, new_main
from .cse import CSECache
from .jvp import _drop_error
from .prims import conv as cv
from .prims import elementwise as ew
from .prims import indexing as ix
from .prims import linalg as la
from .prims import reductions as red
from .prims import structural as st

# =============================================================================================
# The trace
# =============================================================================================


class JetTracer(Tracer):
    __slots__ = ("primal", "terms")

    def __init__(self, trace, primal, terms):
        self._trace = trace
        self.primal = primal
        self.terms = terms  # list of K coefficients (index k-1 holds x_k), None for zero

    @property
    def aval(self):
        return get_aval(self.primal)

    def to_concrete(self, what):
        raise _drop_error(self, what)


class JetTrace(Trace):
    def __init__(self, main, order):
        super().__init__(main, order)
        self.order = order
        self.cse = CSECache()

    def wrap(self, primal, terms):
        if terms is None or all(t is None for t in terms):
            return primal
        if not is_inexact(get_aval(primal).dtype):
            return primal
        return JetTracer(self, primal, terms)

    def process_primitive(self, prim, args, params):
        primals, series, moving = [], [], False
        for a in args:
            if isinstance(a, JetTracer) and a._trace is self:
                primals.append(a.primal)
                series.append([a.primal, *a.terms])
                moving = True
            else:
                primals.append(a)
                series.append(None)
        if not moving or not prim.differentiable:
            return prim.bind(*primals, **params)
        key = self.cse.key(prim, args, params)
        hit = self.cse.get(key)
        if hit is not None:
            return hit
        rule = JET_RULES.get(prim.name)
        if rule is None and prim.inline is not None:
            # A primitive that holds a graph (checkpoint) is expanded: its body has rules.
            result = prim.inline(*args, **params)
            self.cse.put(key, args, result)
            return result
        if rule is None:
            raise NotImplementedError(
                f"The primitive `{prim.name}` has no Taylor (jet) rule yet, so `ft.jet` and "
                f"`ft.derivatives` cannot pass through it. Add one to `JET_RULES` in "
                "`functrans/_src/jet.py`, or use nested `ft.grad` / `ft.jvp` instead."
            )
        K = self.order
        full = [s if s is not None else [p] + [None] * K for s, p in zip(series, primals)]
        out = rule(K, full, series, **params)
        if prim.multiple_results:
            result = [self.wrap(o[0], o[1:]) for o in out]
        else:
            shape = ew.shape_of(out[0])
            terms = [None if t is None else ew.broadcast_to(t, shape) for t in out[1:]]
            result = self.wrap(out[0], terms)
        self.cse.put(key, args, result)
        return result


# =============================================================================================
# Series arithmetic. A series is a list [x0, x1, ..., xK]; entries after x0 may be None.
# =============================================================================================


def _sum(terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    out = terms[0]
    for t in terms[1:]:
        out = ew.add(out, t)
    return out


def _mul_opt(a, b):
    return None if a is None or b is None else ew.mul(a, b)


def _scale(a, c):
    return None if a is None else ew.mul(a, c)


def cauchy(a, b, k, start=0, stop=None):
    """sum_{i=start}^{stop} a_i b_{k-i}."""
    stop = k if stop is None else stop
    return _sum([_mul_opt(a[i], b[k - i]) for i in range(start, stop + 1)])


def s_mul(a, b, K):
    return [ew.mul(a[0], b[0])] + [cauchy(a, b, k) for k in range(1, K + 1)]


def s_div(a, b, K):
    """c = a / b: c_k = (a_k - sum_{i=1}^{k} b_i c_{k-i}) / b_0."""
    c = [ew.div(a[0], b[0])]
    for k in range(1, K + 1):
        num = a[k]
        rest = cauchy(b, c, k, start=1)
        if rest is not None:
            num = ew.neg(rest) if num is None else ew.sub(num, rest)
        c.append(None if num is None else ew.div(num, b[0]))
    return c


def s_ode(x, y0, g_of, K):
    """Solve y' = g x' for y's series: y_k = (1/k) sum_{j=1}^k j x_j g_{k-j}.

    `g_of(y, k)` returns g_k from y_0..y_k.
    """
    y = [y0]
    g = [g_of(y, 0)]
    for k in range(1, K + 1):
        y.append(_sum([ew.mul(ew.mul(x[j], g[k - j]), j / k) for j in range(1, k + 1)
                       if x[j] is not None and g[k - j] is not None]))  # fmt: skip
        g.append(g_of(y, k))
    return y


def s_sqrt(x, K):
    """y = sqrt(x): y_k = (x_k - sum_{j=1}^{k-1} y_j y_{k-j}) / (2 y_0)."""
    y = [ew.sqrt(x[0])]
    for k in range(1, K + 1):
        num = x[k]
        rest = cauchy(y, y, k, start=1, stop=k - 1)
        if rest is not None:
            num = ew.neg(rest) if num is None else ew.sub(num, rest)
        y.append(None if num is None else ew.div(num, ew.mul(y[0], 2.0)))
    return y


def s_const_plus(x, c):
    return [ew.add(x[0], c)] + x[1:]


def s_neg(x):
    return [None if t is None else ew.neg(t) for t in x]


def s_square(x, K):
    return s_mul(x, x, K)


def s_exp(x, K):
    return s_ode(x, ew.exp(x[0]), lambda y, k: y[k], K)


def _s_log(x, K):
    inv = s_div([1.0] + [None] * K, x, K)
    return s_ode(x, ew.log(x[0]), lambda y, k: inv[k], K)


def s_sin_cos(x, K):
    s, c = [ew.sin(x[0])], [ew.cos(x[0])]
    for k in range(1, K + 1):
        s.append(_sum([None if x[j] is None else ew.mul(ew.mul(x[j], c[k - j]), j / k)
                       for j in range(1, k + 1) if c[k - j] is not None]))  # fmt: skip
        c.append(_sum([None if x[j] is None else ew.mul(ew.mul(x[j], s[k - j]), -j / k)
                       for j in range(1, k + 1) if s[k - j] is not None]))  # fmt: skip
    return s, c


def s_sinh_cosh(x, K):
    s, c = [ew.sinh(x[0])], [ew.cosh(x[0])]
    for k in range(1, K + 1):
        s.append(_sum([None if x[j] is None else ew.mul(ew.mul(x[j], c[k - j]), j / k)
                       for j in range(1, k + 1) if c[k - j] is not None]))  # fmt: skip
        c.append(_sum([None if x[j] is None else ew.mul(ew.mul(x[j], s[k - j]), j / k)
                       for j in range(1, k + 1) if s[k - j] is not None]))  # fmt: skip
    return s, c


def _ode_from_y(y0_fn, g_from_y):
    """A unary rule for y = f(x) with y' = g(y) x', g a polynomial in y given as a series map."""

    def rule(K, full, series, **params):
        (x,) = full
        ys = [y0_fn(x[0])]

        def g_of(y, k):
            return g_from_y(y, k, K)[k]

        return s_ode(x, ys[0], g_of, K)

    return rule


def _g_one_minus_y2(y, k, K):
    # g = 1 - y^2 (tanh); only the terms up to k are known
    sq = [cauchy(y, y, m) for m in range(k + 1)]
    return [ew.sub(1.0, sq[0])] + [None if t is None else ew.neg(t) for t in sq[1:]]


def _g_one_plus_y2(y, k, K):
    sq = [cauchy(y, y, m) for m in range(k + 1)]
    return [ew.add(1.0, sq[0])] + sq[1:]


def _g_y_minus_y2(y, k, K):
    sq = [cauchy(y, y, m) for m in range(k + 1)]
    return [None if (a is None and b is None) else
            (a if b is None else (ew.neg(b) if a is None else ew.sub(a, b)))
            for a, b in zip(y[: k + 1], sq)]  # fmt: skip


def _ode_from_x(y0_fn, g_series):
    """A unary rule for y = f(x) with y' = g(x) x', where g's series is computed from x's."""

    def rule(K, full, series, **params):
        (x,) = full
        g = g_series(x, K)
        return s_ode(x, y0_fn(x[0]), lambda y, k: g[k], K)

    return rule


def _one_over(s, K):
    return s_div([1.0] + [None] * K, s, K)


def _inv_sqrt_of(poly):
    """Series of 1/sqrt(poly(x))."""
    return lambda x, K: _one_over(s_sqrt(poly(x, K), K), K)


def _one_minus_x2(x, K):
    return [ew.sub(1.0, ew.mul(x[0], x[0]))] + [
        None if t is None else ew.neg(t) for t in s_square(x, K)[1:]
    ]


def _one_plus_x2(x, K):
    return [ew.add(1.0, ew.mul(x[0], x[0]))] + s_square(x, K)[1:]


def _x2_minus_one(x, K):
    return [ew.sub(ew.mul(x[0], x[0]), 1.0)] + s_square(x, K)[1:]


# =============================================================================================
# The rule table: name -> rule(K, full_series, raw_series, **params) -> output series
# =============================================================================================


def _linear(fn):
    """A primitive linear in its first operand (the others carry no series)."""

    def rule(K, full, series, **params):
        x, rest = full[0], [s[0] for s in full[1:]]
        return [fn(x[0], rest, params, primal=True)] + [
            None if t is None else fn(t, rest, params, primal=False) for t in x[1:]
        ]

    return rule


def _bind_linear(prim):
    return _linear(lambda t, rest, params, primal: prim.bind(t, *rest, **params))


def _add_rule(K, full, series):
    a, b = full
    return [ew.add_p.bind(a[0], b[0])] + [_sum([a[k], b[k]]) for k in range(1, K + 1)]


def _sub_rule(K, full, series):
    a, b = full
    out = [ew.sub_p.bind(a[0], b[0])]
    for k in range(1, K + 1):
        if b[k] is None:
            out.append(a[k])
        else:
            out.append(ew.neg(b[k]) if a[k] is None else ew.sub(a[k], b[k]))
    return out


def _zeros_like(x):
    aval = get_aval(x)
    return jax.numpy.zeros(aval.shape, aval.dtype)


def _select_rule(K, full, series):
    pred = full[0][0]
    out = [ew.select(pred, full[1][0], full[2][0])]
    for k in range(1, K + 1):
        x, y = full[1][k], full[2][k]
        out.append(None if x is None and y is None else
                   ew.select(pred, 0.0 if x is None else x, 0.0 if y is None else y))  # fmt: skip
    return out


def _dot_general_rule(K, full, series, dimension_numbers, **params):
    a, b = full
    f = lambda u, v: la.dot_general(u, v, dimension_numbers, **params)
    out = [f(a[0], b[0])]
    for k in range(1, K + 1):
        out.append(_sum([None if a[i] is None or b[k - i] is None else f(a[i], b[k - i])
                         for i in range(k + 1)]))  # fmt: skip
    return out


def _conv_rule(K, full, series, **params):
    # Bilinear, like `dot_general`: x_k * w_k convolves like a product of series.
    a, b = full
    f = lambda u, v: cv.conv_general_dilated_p.bind(u, v, **params)
    out = [f(a[0], b[0])]
    for k in range(1, K + 1):
        out.append(_sum([None if a[i] is None or b[k - i] is None else f(a[i], b[k - i])
                         for i in range(k + 1)]))  # fmt: skip
    return out


def _integer_pow_rule(K, full, series, n):
    (x,) = full
    if n == 0:
        return [ew.integer_pow(x[0], 0)] + [None] * K
    base, m = x, abs(n)
    result = None
    while m:  # binary powering with truncated products
        if m & 1:
            result = base if result is None else s_mul(result, base, K)
        m >>= 1
        if m:
            base = s_mul(base, base, K)
    return _one_over(result, K) if n < 0 else result


def _pow_rule(K, full, series):
    x, y = full
    # x^y = exp(y log x), for x > 0
    logx = _s_log(x, K)
    e = s_exp(s_mul(y, logx, K), K)
    return [ew.pow(x[0], y[0])] + e[1:]


def _abs_rule(K, full, series):
    (x,) = full
    if jax.numpy.issubdtype(get_aval(x[0]).dtype, jax.numpy.complexfloating):
        return _by_nested_jvp(ew.abs_p)(K, full, series)  # |z| is not a function of z alone
    s = ew.select(ew.ge_p.bind(x[0], 0), 1.0, -1.0)
    return [ew.abs_p.bind(x[0])] + [None if t is None else ew.mul(t, s) for t in x[1:]]


def _max_min(prim, beats):
    def rule(K, full, series):
        a, b = full
        z = prim.bind(a[0], b[0])
        # Compare the operands, not an operand with `z` (see `elementwise._wins`).
        wa = ew.select(beats.bind(a[0], b[0]), 1.0, ew.select(ew.eq(a[0], b[0]), 0.5, 0.0))
        wb = ew.sub(1.0, wa)
        out = [z]
        for k in range(1, K + 1):
            out.append(_sum([_mul_opt(a[k], wa), _mul_opt(b[k], wb)]))
        return out

    return rule


def _atan2_rule(K, full, series):
    x, y = full
    r = s_div(x, y, K)  # atan2(x, y) = atan(x / y) + a constant branch offset
    t = _ode_from_x(ew.atan_p.bind, lambda x, K: _one_over(_one_plus_x2(x, K), K))(K, [r], None)
    return [ew.atan2_p.bind(x[0], y[0])] + t[1:]


def _rem_rule(K, full, series):
    x, y = full
    q = ew.floor(ew.div(x[0], y[0]))  # locally constant
    out = [ew.rem_p.bind(x[0], y[0])]
    for k in range(1, K + 1):
        out.append(_sum([x[k], None if y[k] is None else ew.neg(ew.mul(y[k], q))]))
    return out


def _extremum_rule(prim):
    def rule(K, full, series, axes):
        (x,) = full
        out = prim.bind(x[0], axes=axes)
        w = red.extremum_weights(prim, x[0], axes)
        return [out] + [None if t is None else red.reduce_sum(ew.mul(t, w), axes)
                        for t in x[1:]]  # fmt: skip

    return rule


def _reduce_prod_rule(K, full, series, axes):
    (x,) = full
    shape = ew.shape_of(x[0])
    kept = [i for i in range(len(shape)) if i not in axes]
    perm = kept + list(axes)
    lead = [shape[i] for i in kept]
    n = int(np.prod([shape[i] for i in axes], dtype=np.int64))

    def flat(t):
        return None if t is None else st.reshape(st.transpose(t, perm), (*lead, n))

    xs = [flat(t) for t in x]
    acc = None
    for i in range(n):
        sl = [None if t is None else ix.gather(t, [], (("e",), ("i", i))) for t in xs]
        acc = sl if acc is None else s_mul(acc, sl, K)
    return acc


def _solve_rule(K, full, series):
    a, b = full
    x = [la.solve(a[0], b[0])]
    for k in range(1, K + 1):
        rest = _sum([None if a[i] is None else la.matmul2(a[i], x[k - i])
                     for i in range(1, k + 1) if x[k - i] is not None])  # fmt: skip
        rhs = b[k]
        if rest is not None:
            rhs = ew.neg(rest) if rhs is None else ew.sub(rhs, rest)
        x.append(None if rhs is None else la.solve(a[0], rhs))
    return x


def _scatter_rule(prim):
    def rule(K, full, series, indexer):
        (x, y), arrays = full[:2], [s[0] for s in full[2:]]
        out = [prim.bind(x[0], y[0], *arrays, indexer=indexer)]
        for k in range(1, K + 1):
            if x[k] is None and y[k] is None:
                out.append(None)
                continue
            xk = _zeros_like(x[0]) if x[k] is None else x[k]
            yk = 0.0 if y[k] is None else y[k]
            out.append(prim.bind(xk, yk, *arrays, indexer=indexer))
        return out

    return rule


def _concatenate_rule(K, full, series, axis):
    out = [_concat([s[0] for s in full], axis)]
    for k in range(1, K + 1):
        if all(s[k] is None for s in full):
            out.append(None)
        else:
            out.append(_concat([_zeros_like(s[0]) if s[k] is None else s[k] for s in full], axis))
    return out


def _concat(xs, axis):
    return st.concatenate(xs, axis)


def _triangular_solve_rule(K, full, series, lower, transpose_a):
    a, b = full
    x = [la.triangular_solve(a[0], b[0], lower, transpose_a)]
    for k in range(1, K + 1):
        rest = _sum(
            [
                la.matmul2(la.mT(a[i]) if transpose_a else a[i], x[k - i])
                for i in range(1, k + 1)
                if a[i] is not None and x[k - i] is not None
            ]
        )
        rhs = b[k]
        if rest is not None:
            rhs = ew.neg(rest) if rhs is None else ew.sub(rhs, rest)
        x.append(None if rhs is None else la.triangular_solve(a[0], rhs, lower, transpose_a))
    return x


def _cholesky_rule(K, full, series):
    """L L^T = A: L0 Lk^T + Lk L0^T = A_k - sum_{0<i<k} L_i L_{k-i}^T, solved as in the JVP."""
    (a,) = full
    L = [la.cholesky(a[0])]
    for k in range(1, K + 1):
        rest = _sum([la.matmul2(L[i], la.mT(L[k - i])) for i in range(1, k)
                     if L[i] is not None and L[k - i] is not None])  # fmt: skip
        s_k = a[k]
        if s_k is not None:
            s_k = ew.mul(ew.add(s_k, la.mT(s_k)), 0.5)  # only the symmetric part counts
        if rest is not None:
            s_k = ew.neg(rest) if s_k is None else ew.sub(s_k, rest)
        if s_k is None:
            L.append(None)
            continue
        inner = la.triangular_solve(L[0], la.mT(la.triangular_solve(L[0], s_k, True)), True)
        L.append(la.matmul2(L[0], la._phi(inner)))
    return L


def _slogdet_rule(K, full, series):
    """log|det A(t)| = log|det A0| + tr log(I + E(t)), E = A0^{-1} (A(t) - A0)."""
    (a,) = full
    sign, logdet = la.slogdet(a[0])
    e = [None] + [None if a[k] is None else la.solve(a[0], a[k]) for k in range(1, K + 1)]
    power = e  # E^m as a matrix series; E^1 first
    acc = [None] * (K + 1)
    for m in range(1, K + 1):
        if m > 1:
            power = [None] + [_sum([la.matmul2(power[i], e[k - i]) for i in range(1, k)
                                    if power[i] is not None and e[k - i] is not None])
                              for k in range(1, K + 1)]  # fmt: skip
        coef = (-1.0) ** (m + 1) / m
        for k in range(m, K + 1):
            if power[k] is not None:
                acc[k] = _sum([acc[k], ew.mul(power[k], coef)])
    nd = len(ew.shape_of(a[0]))
    diag = np.eye(ew.shape_of(a[0])[-1], dtype=get_aval(a[0]).dtype)
    terms = [None if t is None else red.reduce_sum(ew.mul(t, diag), (nd - 2, nd - 1))
             for t in acc[1:]]  # fmt: skip
    return [[sign] + [None] * K, [logdet, *terms]]


def _table():
    t = {
        "add": _add_rule,
        "sub": _sub_rule,
        "neg": lambda K, full, series: s_neg(full[0]),
        "mul": lambda K, full, series: s_mul(full[0], full[1], K),
        "div": lambda K, full, series: s_div(full[0], full[1], K),
        "integer_pow": _integer_pow_rule,
        "pow": _pow_rule,
        "exp": lambda K, full, series: s_exp(full[0], K),
        "expm1": lambda K, full, series: [ew.expm1_p.bind(full[0][0])] + s_exp(full[0], K)[1:],
        "log": lambda K, full, series: _s_log(full[0], K),
        "log1p": lambda K, full, series: [ew.log1p_p.bind(full[0][0])]
        + _s_log(s_const_plus(full[0], 1.0), K)[1:],
        "sin": lambda K, full, series: s_sin_cos(full[0], K)[0],
        "cos": lambda K, full, series: s_sin_cos(full[0], K)[1],
        "sinh": lambda K, full, series: s_sinh_cosh(full[0], K)[0],
        "cosh": lambda K, full, series: s_sinh_cosh(full[0], K)[1],
        "tanh": _ode_from_y(ew.tanh, _g_one_minus_y2),
        "tan": _ode_from_y(ew.tan_p.bind, _g_one_plus_y2),
        "logistic": _ode_from_y(ew.logistic_p.bind, _g_y_minus_y2),
        "atan": _ode_from_x(ew.atan_p.bind, lambda x, K: _one_over(_one_plus_x2(x, K), K)),
        "asin": _ode_from_x(ew.asin_p.bind, _inv_sqrt_of(_one_minus_x2)),
        "acos": _ode_from_x(ew.acos_p.bind, lambda x, K: s_neg(
            _one_over(s_sqrt(_one_minus_x2(x, K), K), K))),
        "asinh": _ode_from_x(ew.asinh_p.bind, _inv_sqrt_of(_one_plus_x2)),
        "acosh": _ode_from_x(ew.acosh_p.bind, _inv_sqrt_of(_x2_minus_one)),
        "atanh": _ode_from_x(ew.atanh_p.bind, lambda x, K: _one_over(_one_minus_x2(x, K), K)),
        "erf": _ode_from_x(ew.erf_p.bind, lambda x, K: [ew.mul(t, 2 / math.sqrt(math.pi))
                                                         if t is not None else None
                                                         for t in s_exp(s_neg(s_square(x, K)),
                                                                        K)]),
        "sqrt": lambda K, full, series: s_sqrt(full[0], K),
        "rsqrt": lambda K, full, series: _one_over(s_sqrt(full[0], K), K),
        "abs": _abs_rule,
        "max": _max_min(ew.max_p, ew.gt_p),
        "min": _max_min(ew.min_p, ew.lt_p),
        "atan2": _atan2_rule,
        "rem": _rem_rule,
        "select": _select_rule,
        "dot_general": _dot_general_rule,
        "conv_general_dilated": _conv_rule,
        "reduce_max": _extremum_rule(red.reduce_max_p),
        "reduce_min": _extremum_rule(red.reduce_min_p),
        "reduce_prod": _reduce_prod_rule,
        "solve": _solve_rule,
        "scatter_add": _scatter_rule(ix.scatter_add_p),
        "scatter": _scatter_rule(ix.scatter_p),
        "concatenate": _concatenate_rule,
        "slogdet": _slogdet_rule,
        "cholesky": _cholesky_rule,
        "triangular_solve": _triangular_solve_rule,
    }  # fmt: skip
    for name, prim in [
        ("reshape", st.reshape_p), ("transpose", st.transpose_p),
        ("broadcast_to", ew.broadcast_to_p), ("reduce_sum", red.reduce_sum_p),
        ("convert_element_type", ew.convert_element_type_p), ("cumsum", red.cumsum_p),
        ("gather", ix.gather_p),
    ]:  # fmt: skip
        t[name] = _bind_linear(prim)
    t["pad"] = _linear(
        lambda x, rest, params, primal: st.pad_p.bind(
            x, padding_value=params["padding_value"] if primal else 0.0, config=params["config"]
        )
    )
    return t


def _complex_rule(K, full, series):
    from .prims import complex as cx

    (x, y) = full
    out = [cx.complex_p.bind(x[0], y[0])]
    for k in range(1, K + 1):
        if x[k] is None and y[k] is None:
            out.append(None)
            continue
        re = x[k] if x[k] is not None else ew.mul(x[0], 0.0)
        im = y[k] if y[k] is not None else ew.mul(y[0], 0.0)
        out.append(cx.complex_p.bind(re, im))
    return out


def _by_nested_jvp(prim):
    """A rule for any primitive with a JVP: Taylor coefficients of `prim(x(t))` by nested
    forward differentiation along the path `x(t) = sum_k x_k t^k`.

    Nesting costs more than the dedicated recurrences above (exponential in K instead of
    quadratic), so it serves the primitives used rarely at high order: special functions,
    matrix factorizations, complex embedding.
    """
    from .jvp import jvp_flat

    def rule(K, full, series, **params):
        ref = next(s[0] for s in full if is_inexact(get_aval(s[0]).dtype))
        dtype = np.finfo(get_aval(ref).dtype).dtype

        def path(t):
            args = []
            for s in full:
                v = s[0]
                for k in range(1, K + 1):
                    if s[k] is not None:
                        v = ew.add(v, ew.mul(s[k], ew.integer_pow(t, k)))
                args.append(v)
            out = prim.bind(*args, **params)
            return list(out) if prim.multiple_results else [out]

        def derivative(f):
            def df(t):
                outs, tangents, _ = jvp_flat(lambda ts: (f(ts[0]), None), [t], [np.ones((), dtype)])
                return [
                    d if d is not None else ew.mul(o, 0.0) if is_inexact(get_aval(o).dtype) else o
                    for o, d in zip(outs, tangents)
                ]

            return df

        zero = np.zeros((), dtype)
        outs0 = path(zero)
        columns, f = [], path
        for k in range(1, K + 1):
            f = derivative(f)
            columns.append([ew.mul(d, 1.0 / math.factorial(k)) for d in f(zero)])
        result = []
        for i, o in enumerate(outs0):
            if not is_inexact(get_aval(o).dtype):
                result.append([o] + [None] * K)
            else:
                result.append([o] + [col[i] for col in columns])
        return result if prim.multiple_results else result[0]

    return rule


def _more_rules(t):
    from .prims import complex as cx
    from .prims import fft as fftm
    from .prims import special as sp

    for prim in (cx.real_p, cx.imag_p, cx.conj_p, fftm.fft_p):
        t[prim.name] = _bind_linear(prim)
    t["complex"] = _complex_rule
    for prim in (sp.lgamma_p, sp.digamma_p, sp.polygamma_p, sp.erf_inv_p, sp.igamma_p,
                 sp.igammac_p, sp.igamma_grad_a_p, sp.zeta_p, sp.bessel_i0e_p, sp.bessel_i1e_p,
                 la.lu_p, la.eigh_p, la.svd_p, la.qr_p, la.eig_p):  # fmt: skip
        t[prim.name] = _by_nested_jvp(prim)
    return t


JET_RULES = _more_rules(_table())


# =============================================================================================
# Public API
# =============================================================================================


def _fact(n):
    return float(math.factorial(n))


def jet(fun, primals, series, factorial_scaled=True):
    """Taylor-mode higher-order differentiation, as `jax.experimental.jet` (with pytrees).

    Args:
      fun: function of `len(primals)` pytrees of arrays.
      primals: tuple or list of the arguments.
      series: one list per primal of K terms, each term a pytree shaped like its primal.
        With `factorial_scaled=True` (the default, as JAX) term k is the k-th derivative of
        the input path; otherwise it is the k-th Taylor coefficient.
      factorial_scaled: see `series`.

    Returns:
      `(primal_out, series_out)`: `fun(*primals)`, and for each output leaf the list of its K
      terms (in the same scaling), arranged in the output's tree structure.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> y, (d1, d2) = ft.jet(fnp.sin, (0.5,), ((1.0, 0.0),))  # sin' = cos, sin'' = -sin
      >>> round(float(d1), 6), round(float(d2), 6)
      (0.877583, -0.479426)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(series, (tuple, list)):
        raise TypeError(
            "`jet` takes `primals` as a tuple of arguments and `series` as a tuple with one list "
            "of terms per argument, e.g. `ft.jet(f, (x,), ((x1, x2),))`."
        )
    if len(primals) != len(series):
        raise ValueError(
            f"`jet` got {len(primals)} primal(s) but {len(series)} series; give one list of "
            "terms per primal."
        )
    orders = {len(s) for s in series}
    if len(orders) != 1:
        raise ValueError(
            f"`jet` needs the same number of terms for every argument, got {sorted(orders)}."
        )
    (K,) = orders
    flat, in_tree = _flatten_args("jet", tuple(primals))
    per_leaf = [[] for _ in flat]
    for k in range(K):
        term_tree = tuple(s[k] for s in series)
        leaves, tree = jax.tree_util.tree_flatten(term_tree)
        if tree != in_tree:
            raise ValueError(
                f"Term {k} of the `jet` series has structure {tree}, but the primals have "
                f"{in_tree}; each term must be shaped like its primal."
            )
        for i, (p, t) in enumerate(zip(flat, leaves)):
            if np.shape(t) != get_aval(p).shape:
                raise ValueError(
                    f"Term {k} for leaf {i} of the `jet` series has shape {np.shape(t)}, but "
                    f"its primal has shape {get_aval(p).shape}."
                )
            scale = 1.0 / _fact(k + 1) if factorial_scaled else 1.0
            t = t if isinstance(t, Tracer) else jax.numpy.asarray(t)
            per_leaf[i].append(t if scale == 1.0 else ew.mul(t, scale))
    holder = {}
    with new_main(JetTrace, "jet", K) as main:
        trace = main.trace
        ins = [trace.wrap(p, ts) for p, ts in zip(flat, per_leaf)]
        out = fun(*jax.tree_util.tree_unflatten(in_tree, ins))
        out_leaves, holder["tree"] = jax.tree_util.tree_flatten(out)
        out_p, out_s = [], []
        for o in out_leaves:
            if isinstance(o, JetTracer) and o._trace is trace:
                out_p.append(o.primal)
                out_s.append(o.terms)
            else:
                out_p.append(o)
                out_s.append([None] * K)
    out_series = []
    for p, terms in zip(out_p, out_s):
        aval = get_aval(p)
        leaf_terms = []
        for k, t in enumerate(terms):
            if t is None:
                t = jax.numpy.zeros(aval.shape, aval.dtype)
            elif factorial_scaled:
                t = ew.mul(t, _fact(k + 1))
            leaf_terms.append(_outputs_to_arrays(t))
        out_series.append(leaf_terms)
    tree = holder["tree"]
    return (
        _outputs_to_arrays(jax.tree_util.tree_unflatten(tree, out_p)),
        jax.tree_util.tree_unflatten(tree, out_series),
    )


def derivatives(fun, order):
    """All derivatives `[f(x), f'(x), ..., f^(order)(x)]` of a scalar function, in one pass.

    Args:
      fun: a function of one array argument (applied elementwise along the path `x + t`).
      order: the highest derivative wanted.

    Returns:
      A function of `x` returning the list of `order + 1` arrays.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> [round(float(d), 6) for d in ft.derivatives(fnp.exp, 3)(0.0)]
      [1.0, 1.0, 1.0, 1.0]
    """
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"`derivatives` needs a non-negative integer order, got {order!r}.")

    def wrapped(x):
        (x,), _ = _flatten_args("derivatives", (x,))
        if order == 0:
            return [fun(x)]
        ones = jax.numpy.ones(get_aval(x).shape, get_aval(x).dtype)
        zeros = jax.numpy.zeros(get_aval(x).shape, get_aval(x).dtype)
        y, terms = jet(fun, (x,), ([ones] + [zeros] * (order - 1),))
        return [y, *terms]

    return wrapped
