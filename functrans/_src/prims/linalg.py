"""Linear algebra primitives: `dot_general`, `solve`, `triangular_solve`, `cholesky`, `slogdet`.

Every rule is written with these same primitives, so derivatives of any order stay in
closed form (the derivative of a solve is a solve, of a Cholesky factor a triangular solve).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .elementwise import (
    add,
    add_any,
    broadcast_to,
    convert_element_type,
    mul,
    neg,
    select,
    shape_of,
    sub,
)
from .structural import batch_size, batch_to_front, moveaxis, reshape, transpose

# =============================================================================================
# dot_general (lax semantics: ((lhs_contract, rhs_contract), (lhs_batch, rhs_batch)))
# =============================================================================================

dot_general_p = Primitive("dot_general")
# `precision` and `preferred_element_type` are parameters only when given (a pair of
# `jax.lax.Precision`, a dtype), so the usual product's equations and cache keys stay as they are.


def _dot_general_impl(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    return jax.lax.dot_general(
        x, y, dimension_numbers, precision=precision, preferred_element_type=preferred_element_type
    )


dot_general_p.impl = _dot_general_impl


def _free(ndim, contract, batch):
    return [i for i in range(ndim) if i not in contract and i not in batch]


def _dot_general_aval(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    (lc, rc), (lb, rb) = dimension_numbers
    xa, ya = get_aval(x), get_aval(y)
    for a, b in list(zip(lc, rc)) + list(zip(lb, rb)):
        if xa.shape[a] != ya.shape[b]:
            raise ValueError(
                f"`dot_general` got operands of shapes {xa.shape} and {ya.shape} whose paired "
                f"axes {a} and {b} differ in size ({xa.shape[a]} vs {ya.shape[b]})."
            )
    shape = (
        [xa.shape[i] for i in lb]
        + [xa.shape[i] for i in _free(xa.ndim, lc, lb)]
        + [ya.shape[i] for i in _free(ya.ndim, rc, rb)]
    )
    if preferred_element_type is not None:
        return ShapedArray(shape, np.dtype(preferred_element_type), False)
    dtype = xa.dtype if xa.dtype == ya.dtype else jnp.promote_types(xa.dtype, ya.dtype)
    return ShapedArray(shape, dtype, xa.weak_type and ya.weak_type)


def _dot_general_transpose(ct, other, dims, self_ndim, other_ndim, self_first, params):
    """Cotangent of one operand of a `dot_general` (`self_first`: it was the lhs).

    `dims` is `((self_contract, other_contract), (self_batch, other_batch))`.
    """
    (c_self, c_other), (b_self, b_other) = dims
    nb = len(b_self)
    f_self = _free(self_ndim, c_self, b_self)
    f_other = _free(other_ndim, c_other, b_other)
    # ct's axes are: batch, lhs free, rhs free. Contract away the free axes of `other`.
    first = nb + len(f_self) if self_first else nb
    other_free_in_ct = tuple(range(first, first + len(f_other)))
    g = dot_general(
        ct, other, ((other_free_in_ct, tuple(f_other)), (tuple(range(nb)), b_other)), **params
    )
    # g's axes: batch, free axes of self, then the contracting axes of `other` in positional
    # order, each standing where its partner contracting axis of self belongs.
    pos = [0] * self_ndim
    for i, a in enumerate(b_self):
        pos[a] = i
    for j, a in enumerate(f_self):
        pos[a] = nb + j
    for r, k in enumerate(sorted(range(len(c_other)), key=lambda k: c_other[k])):
        pos[c_self[k]] = nb + len(f_self) + r
    return transpose(g, pos)


def _dot_general_vjp(needs, ct, out, x, y, dimension_numbers, **params):
    (lc, rc), (lb, rb) = dimension_numbers
    xn, yn = len(shape_of(x)), len(shape_of(y))
    cts = [None, None]
    sides = [(x, y, ((lc, rc), (lb, rb))), (y, x, ((rc, lc), (rb, lb)))]
    for i, (me, other, dims) in enumerate(sides):
        if needs[i]:
            g = _dot_general_transpose(ct, other, dims, (xn, yn)[i], (yn, xn)[i], i == 0, params)
            # With a preferred element type the cotangent comes out in it (as the output
            # did); it goes back to the operand's own dtype, as in JAX.
            want = get_aval(me).dtype
            cts[i] = g if get_aval(g).dtype == want else convert_element_type(g, want)
    return tuple(cts)


def _dot_general_jvp(primals, tangents, dimension_numbers, **params):
    (x, y), (tx, ty) = primals, tangents
    out = dot_general(x, y, dimension_numbers, **params)
    terms = []
    if tx is not None:
        terms.append(dot_general(tx, y, dimension_numbers, **params))
    if ty is not None:
        terms.append(dot_general(x, ty, dimension_numbers, **params))
    return out, add_any(*terms)


def _dot_general_batch(args, dims, dimension_numbers, **params):
    (x, y), (xd, yd) = args, dims
    (lc, rc), (lb, rb) = dimension_numbers

    def shift(axes, d):
        return tuple(a + (a >= d) for a in axes)

    if xd is not None and yd is not None:
        # Both batched: the batch axis becomes a leading dot_general batch dimension.
        x, y = moveaxis(x, xd, 0), moveaxis(y, yd, 0)
        dn = ((shift(lc, 0), shift(rc, 0)), ((0, *shift(lb, 0)), (0, *shift(rb, 0))))
        return dot_general(x, y, dn, **params), 0
    if xd is not None:
        # Only x batched: its batch axis is one more free axis of x.
        lc, lb = shift(lc, xd), shift(lb, xd)
        free = _free(len(shape_of(x)), lc, lb)
        return dot_general(x, y, ((lc, rc), (lb, rb)), **params), len(lb) + free.index(xd)
    rc, rb = shift(rc, yd), shift(rb, yd)
    free = _free(len(shape_of(y)), rc, rb)
    x_free = len(shape_of(x)) - len(lc) - len(lb)
    return dot_general(x, y, ((lc, rc), (lb, rb)), **params), len(lb) + x_free + free.index(yd)


dot_general_p.abstract_eval = _dot_general_aval
dot_general_p.jvp = _dot_general_jvp
dot_general_p.vjp = _dot_general_vjp
dot_general_p.batch = _dot_general_batch


def canonical_precision(precision):
    """`None`, or a pair `(lhs, rhs)` of `jax.lax.Precision` (or dot algorithms) as JAX keeps it.

    Accepts what `jax.lax.dot_general` accepts: one precision for both operands, its name
    (`"highest"`), or a pair.
    """
    if precision is None:
        return None

    def one(p):
        if p is None or isinstance(p, jax.lax.Precision):
            return p
        if isinstance(p, str):
            try:
                return jax.lax.Precision(p)
            except ValueError:
                raise ValueError(
                    f"Unknown precision {p!r}: use one of {[q.name for q in jax.lax.Precision]} "
                    "(or `jax.lax.Precision.HIGHEST`)."
                ) from None
        return p  # a dot algorithm (`jax.lax.DotAlgorithmPreset`), passed on as it is

    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            raise ValueError(
                f"`precision` takes one value or a pair (lhs, rhs), got {len(precision)} values."
            )
        pair = (one(precision[0]), one(precision[1]))
    else:
        pair = (one(precision),) * 2
    return None if pair == (None, None) else pair


def dot_general(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    (lc, rc), (lb, rb) = dimension_numbers
    dn = ((tuple(map(int, lc)), tuple(map(int, rc))), (tuple(map(int, lb)), tuple(map(int, rb))))
    params = {}
    if precision is not None:
        precision = canonical_precision(precision)
        if precision is not None:
            params["precision"] = precision
    if preferred_element_type is not None:
        params["preferred_element_type"] = np.dtype(
            jax.dtypes.canonicalize_dtype(preferred_element_type)
        )
    return dot_general_p.bind(x, y, dimension_numbers=dn, **params)


def matmul2(a, b):
    """Batched matrix product of `(..., m, k)` and `(..., k, n)` with equal batch shapes."""
    nb = len(shape_of(a)) - 2
    batch = tuple(range(nb))
    return dot_general(a, b, (((nb + 1,), (nb,)), (batch, batch)))


def _solve_batcher(solve_fn):
    """Batch rule of a left-side solve `f(a, b)` with `a: (..., n, n)`, `b: (..., n, k)`.

    A batch of right-hand sides against one shared matrix becomes extra columns of a single
    solve; otherwise both operands get the batch as their leading axis.
    """

    def rule(args, dims, **params):
        (a, b), (ad, bd) = args, dims
        if ad is None:
            shape = shape_of(b)
            size = shape[bd]
            per = shape[:bd] + shape[bd + 1 :]
            cols = reshape(moveaxis(b, bd, len(shape) - 1), (*per[:-1], per[-1] * size))
            out = reshape(solve_fn(a, cols, **params), (*per, size))
            return out, len(shape) - 1
        size = batch_size(args, dims)
        return solve_fn(batch_to_front(a, ad, size), batch_to_front(b, bd, size), **params), 0

    return rule


def _leading_batch(prim):
    """Batch rule of a primitive that already accepts leading batch axes."""

    def rule(args, dims, **params):
        (a,), (d,) = args, dims
        out = prim.bind(moveaxis(a, d, 0), **params)
        return out, ([0] * len(out) if prim.multiple_results else 0)

    return rule


def mT(a):
    """Swap the last two axes."""
    n = len(shape_of(a))
    return transpose(a, tuple(range(n - 2)) + (n - 1, n - 2))


# =============================================================================================
# solve(a, b): a^{-1} b for a of shape (..., n, n) and b of shape (..., n, k)
# =============================================================================================

solve_p = Primitive("solve")
solve_p.impl = lambda a, b: jnp.linalg.solve(a, b)
solve_p.abstract_eval = lambda a, b: get_aval(b)


def _solve_jvp(primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    out = solve(a, b)
    rhs = tb
    if ta is not None:
        term = matmul2(ta, out)  # d(a^{-1} b) = a^{-1} (db - da a^{-1} b)
        rhs = neg(term) if rhs is None else sub(rhs, term)
    return out, solve(a, rhs)


def _solve_vjp(needs, ct, out, a, b):
    ct_b = solve(mT(a), ct)
    ct_a = neg(matmul2(ct_b, mT(out))) if needs[0] else None
    return ct_a, ct_b if needs[1] else None


solve_p.jvp = _solve_jvp
solve_p.vjp = _solve_vjp
solve_p.batch = _solve_batcher(solve_p.bind)


def solve(a, b):
    return solve_p.bind(a, b)


# =============================================================================================
# triangular_solve(a, b, lower, transpose_a): op(a)^{-1} b, op(a) = a or a^T (left side only)
# =============================================================================================

triangular_solve_p = Primitive("triangular_solve")
triangular_solve_p.impl = lambda a, b, lower, transpose_a: jax.lax.linalg.triangular_solve(
    a, b, left_side=True, lower=lower, transpose_a=transpose_a
)
triangular_solve_p.abstract_eval = lambda a, b, lower, transpose_a: get_aval(b)


def _tri_mask(a, lower):
    n = shape_of(a)[-1]
    return np.tril(np.ones((n, n), bool)) if lower else np.triu(np.ones((n, n), bool))


def _triangular_solve_jvp(primals, tangents, lower, transpose_a):
    (a, b), (ta, tb) = primals, tangents
    out = triangular_solve(a, b, lower, transpose_a)
    rhs = tb
    if ta is not None:
        ta = select(_tri_mask(a, lower), ta, 0.0)
        term = matmul2(mT(ta) if transpose_a else ta, out)
        rhs = neg(term) if rhs is None else sub(rhs, term)
    return out, triangular_solve(a, rhs, lower, transpose_a)


def _triangular_solve_vjp(needs, ct, out, a, b, lower, transpose_a):
    ct_b = triangular_solve(a, ct, lower, not transpose_a)
    ct_a = None
    if needs[0]:
        # X = op(a)^{-1} B: ct_op(a) = -ct_B X^T, so ct_a = that or its transpose.
        g = neg(matmul2(out, mT(ct_b)) if transpose_a else matmul2(ct_b, mT(out)))
        ct_a = select(_tri_mask(a, lower), g, 0.0)
    return ct_a, ct_b if needs[1] else None


triangular_solve_p.jvp = _triangular_solve_jvp
triangular_solve_p.vjp = _triangular_solve_vjp
triangular_solve_p.batch = _solve_batcher(triangular_solve_p.bind)


def triangular_solve(a, b, lower, transpose_a=False):
    return triangular_solve_p.bind(a, b, lower=bool(lower), transpose_a=bool(transpose_a))


# =============================================================================================
# cholesky(a) = L with a = L L^T. Only the symmetric part of a tangent counts, as in JAX.
# =============================================================================================

cholesky_p = Primitive("cholesky")
cholesky_p.impl = lambda a: jnp.linalg.cholesky(a)
cholesky_p.abstract_eval = lambda a: get_aval(a)


def _phi(x):
    """Lower triangle of x with its diagonal halved."""
    n = shape_of(x)[-1]
    weights = np.tril(np.ones((n, n))) - 0.5 * np.eye(n)
    return mul(x, weights.astype(get_aval(x).dtype))


def _cholesky_jvp(primals, tangents):
    (a,), (ta,) = primals, tangents
    L = cholesky(a)
    sym = mul(add_any(ta, mT(ta)), 0.5)
    # dL = L phi(L^{-1} dA L^{-T})
    inner = triangular_solve(L, mT(triangular_solve(L, sym, lower=True)), lower=True)
    return L, matmul2(L, _phi(inner))


def _cholesky_vjp(needs, ct, L, a):
    # Transpose of the JVP: S = L^{-T} phi(L^T ct) L^{-1}, then symmetrise.
    p = _phi(matmul2(mT(L), ct))
    s = triangular_solve(L, mT(triangular_solve(L, p, lower=True, transpose_a=True)), lower=True,
                         transpose_a=True)  # fmt: skip
    return (mul(add_any(s, mT(s)), 0.5),)


cholesky_p.jvp = _cholesky_jvp
cholesky_p.vjp = _cholesky_vjp
cholesky_p.batch = _leading_batch(cholesky_p)


def cholesky(a):
    return cholesky_p.bind(a)


# =============================================================================================
# slogdet(a) -> (sign, log|det a|); sign has no derivative
# =============================================================================================

slogdet_p = Primitive("slogdet", multiple_results=True)
slogdet_p.impl = lambda a: tuple(jnp.linalg.slogdet(a))


def _slogdet_aval(a):
    aval = get_aval(a)
    shape = aval.shape[:-2]
    return [ShapedArray(shape, aval.dtype), ShapedArray(shape, aval.dtype)]


def _inv_T(a):
    n = shape_of(a)[-1]
    eye = broadcast_to(np.eye(n, dtype=get_aval(a).dtype), shape_of(a))
    return solve(mT(a), eye)


def _slogdet_jvp(primals, tangents):
    (a,), (ta,) = primals, tangents
    sign, logdet = slogdet(a)
    # d log|det a| = tr(a^{-1} da) = sum(a^{-T} * da)
    from .reductions import reduce_sum

    nd = len(shape_of(a))
    return [sign, logdet], [None, reduce_sum(mul(_inv_T(a), ta), (nd - 2, nd - 1))]


def _slogdet_vjp(needs, cts, outs, a):
    _, ct = cts
    if ct is None:
        return (None,)
    from .reductions import expand_back

    nd = len(shape_of(a))
    return (mul(expand_back(ct, shape_of(a), (nd - 2, nd - 1)), _inv_T(a)),)


slogdet_p.abstract_eval = _slogdet_aval
slogdet_p.jvp = _slogdet_jvp
slogdet_p.vjp = _slogdet_vjp
slogdet_p.batch = _leading_batch(slogdet_p)


def slogdet(a):
    return slogdet_p.bind(a)


# =============================================================================================
# lu(a) -> (packed L\U, pivots, permutation) with a[permutation] = L U, L unit lower triangular
# =============================================================================================

lu_p = Primitive("lu", multiple_results=True)
lu_p.impl = lambda a: tuple(jax.lax.linalg.lu(a))


def _lu_aval(a):
    aval = get_aval(a)
    if len(aval.shape) < 2 or aval.shape[-1] != aval.shape[-2]:
        raise NotImplementedError(
            f"functrans' `lu` supports square matrices (with leading batch axes), got shape "
            f"{aval.shape} instead."
        )
    ints = ShapedArray(aval.shape[:-1], np.int32)
    return [aval, ints, ints]


def _lu_parts(lu):
    """`(L, U)` from the packed factor."""
    n = shape_of(lu)[-1]
    dtype = get_aval(lu).dtype
    strict = np.tril(np.ones((n, n), bool), -1)
    lower = add(select(strict, lu, 0.0), np.eye(n, dtype=dtype))
    upper = select(np.triu(np.ones((n, n), bool)), lu, 0.0)
    return lower, upper


def _perm_matrix(perm, dtype):
    from .elementwise import convert_element_type, eq

    n = shape_of(perm)[-1]
    # P[i, j] = 1 where perm[i] == j, so (P a)[i] = a[perm[i]]
    hit = eq(reshape(perm, (*shape_of(perm), 1)), np.arange(n, dtype=np.int32))
    return convert_element_type(hit, dtype)


def _right_solve_upper(upper, b, transpose):
    """`b U^{-1}` (or `b U^{-T}`) through a left solve with the transpose."""
    return mT(triangular_solve(upper, mT(b), lower=False, transpose_a=not transpose))


def _lu_jvp(primals, tangents):
    (a,), (ta,) = primals, tangents
    lu, pivots, perm = lu_p.bind(a)
    lower, upper = _lu_parts(lu)
    pm = _perm_matrix(perm, get_aval(a).dtype)
    # P da = dL U + L dU, so X = L^{-1} P da U^{-1} = L^{-1} dL + dU U^{-1}: its strictly
    # lower part is L^{-1} dL (dL has a zero diagonal), its upper part dU U^{-1}.
    x = _right_solve_upper(upper, triangular_solve(lower, matmul2(pm, ta), lower=True), False)
    n = shape_of(a)[-1]
    d_lower = matmul2(lower, select(np.tril(np.ones((n, n), bool), -1), x, 0.0))
    d_upper = matmul2(select(np.triu(np.ones((n, n), bool)), x, 0.0), upper)
    return [lu, pivots, perm], [add(d_lower, d_upper), None, None]


def _lu_vjp(needs, cts, outs, a):
    ct = cts[0]
    if ct is None:
        return (None,)
    lu, _, perm = outs
    lower, upper = _lu_parts(lu)
    n = shape_of(a)[-1]
    strict = np.tril(np.ones((n, n), bool), -1)
    triu = np.triu(np.ones((n, n), bool))
    # Transpose of the JVP: M = tril_(-1)(L^T C_L) + triu(C_U U^T), then a's cotangent is
    # P^T L^{-T} M U^{-T}, with C_L, C_U the parts of the packed cotangent.
    m = add(
        select(strict, matmul2(mT(lower), select(strict, ct, 0.0)), 0.0),
        select(triu, matmul2(select(triu, ct, 0.0), mT(upper)), 0.0),
    )
    r = _right_solve_upper(upper, triangular_solve(lower, m, lower=True, transpose_a=True), True)
    return (matmul2(mT(_perm_matrix(perm, get_aval(a).dtype)), r),)


lu_p.abstract_eval = _lu_aval
lu_p.jvp = _lu_jvp
lu_p.vjp = _lu_vjp
lu_p.batch = _leading_batch(lu_p)


def lu(a):
    """`(lu, pivots, permutation)` as `jax.lax.linalg.lu`, for square matrices."""
    return lu_p.bind(a)


# The permutation of the rows that `lu`'s pivots (successive row swaps) amount to: integers.
lu_pivots_to_permutation_p = Primitive("lu_pivots_to_permutation", differentiable=False)
lu_pivots_to_permutation_p.impl = lambda pivots, *, permutation_size: (
    jax.lax.linalg.lu_pivots_to_permutation(pivots, permutation_size)
)
lu_pivots_to_permutation_p.abstract_eval = lambda pivots, *, permutation_size: ShapedArray(
    (*get_aval(pivots).shape[:-1], permutation_size), np.int32
)
lu_pivots_to_permutation_p.batch = _leading_batch(lu_pivots_to_permutation_p)


# =============================================================================================
# eigh(a) -> (v, w): a = v diag(w) v^T for symmetric a, eigenvalues ascending
# =============================================================================================

eigh_p = Primitive("eigh", multiple_results=True)
eigh_p.impl = lambda a, *, lower: tuple(jax.lax.linalg.eigh(a, lower=lower, sort_eigenvalues=True))
eigh_p.abstract_eval = lambda a, *, lower: [
    get_aval(a),
    ShapedArray(get_aval(a).shape[:-1], get_aval(a).dtype),
]


def _eigh_gaps(w):
    """`F[i, j] = 1 / (w[j] - w[i])` off the diagonal, 0 on it (distinct eigenvalues)."""
    from .elementwise import div
    from .structural import reshape

    n = shape_of(w)[-1]
    eye = np.eye(n, dtype=bool)
    gaps = sub(reshape(w, (*shape_of(w)[:-1], 1, n)), reshape(w, (*shape_of(w), 1)))
    return select(eye, 0.0, div(1.0, select(eye, 1.0, gaps)))


def _diag_part(x):
    from .reductions import reduce_sum

    n = shape_of(x)[-1]
    nd = len(shape_of(x))
    return reduce_sum(mul(x, np.eye(n, dtype=get_aval(x).dtype)), (nd - 1,))


def _eigh_jvp(primals, tangents, *, lower):
    (a,), (ta,) = primals, tangents
    v, w = eigh_p.bind(a, lower=lower)
    # With a = v diag(w) v^T: dw = diag(v^T da v), dv = v (F o (v^T da v)).
    inner = matmul2(mT(v), matmul2(ta, v))
    return [v, w], [matmul2(v, mul(_eigh_gaps(w), inner)), _diag_part(inner)]


def _eigh_vjp(needs, cts, outs, a, *, lower):
    from .structural import reshape

    ct_v, ct_w = cts
    v, w = outs
    n = shape_of(a)[-1]
    middle = None
    if ct_v is not None:
        middle = mul(_eigh_gaps(w), matmul2(mT(v), ct_v))
    if ct_w is not None:
        diag = mul(reshape(ct_w, (*shape_of(ct_w), 1)), np.eye(n, dtype=get_aval(a).dtype))
        middle = diag if middle is None else add(middle, diag)
    if middle is None:
        return (None,)
    return (matmul2(v, matmul2(middle, mT(v))),)  # the transpose: v (diag(ct_w) + F o v^T ct_v) v^T


eigh_p.jvp = _eigh_jvp
eigh_p.vjp = _eigh_vjp
eigh_p.batch = _leading_batch(eigh_p)


def eigh(a, lower=True):
    """`(v, w)` with `a = v diag(w) v^T`, eigenvalues ascending (`a` symmetric).

    Derivatives assume distinct eigenvalues, as JAX's do.
    """
    return eigh_p.bind(a, lower=bool(lower))


# =============================================================================================
# svd and qr: JVPs by the standard formulas, VJPs by transposing them
# =============================================================================================


def _vjp_by_transposing(tangent_map):
    """A VJP rule from `tangent_map(a, outs, da, **params) -> output tangents`, linear in
    `da`: reverse mode through that linear map is its transpose, and is itself made of
    differentiable functrans operations, so every order keeps working."""

    def vjp(needs, cts, outs, a, **params):
        from ..vjp import vjp_flat

        zeros = jnp.zeros(get_aval(a).shape, get_aval(a).dtype)
        _, backward, _ = vjp_flat(lambda ins: (tangent_map(a, outs, ins[0], **params), None),
                                  [zeros])  # fmt: skip
        return (backward(list(cts))[0],)

    return vjp


def _matrix_diag(v):
    n = shape_of(v)[-1]
    return mul(reshape(v, (*shape_of(v), 1)), np.eye(n, dtype=get_aval(v).dtype))


svd_p = Primitive("svd", multiple_results=True)


def _svd_impl(a, *, compute_uv):
    if compute_uv:
        u, s, vt = jnp.linalg.svd(a, full_matrices=False)
        return s, u, vt
    return (jnp.linalg.svd(a, compute_uv=False),)


def _svd_aval(a, *, compute_uv):
    aval = get_aval(a)
    *batch, m, n = aval.shape
    k = min(m, n)
    s = ShapedArray((*batch, k), aval.dtype)
    if not compute_uv:
        return [s]
    return [s, ShapedArray((*batch, m, k), aval.dtype), ShapedArray((*batch, k, n), aval.dtype)]


def _svd_tangents(a, outs, da, *, compute_uv):
    from .elementwise import div

    if not compute_uv:
        outs = svd_p.bind(a, compute_uv=True)
    s, u, vt = outs
    v = mT(vt)
    dp = matmul2(mT(u), matmul2(da, v))  # U^T dA V
    ds = _diag_part(dp)
    if not compute_uv:
        return [ds]
    k = shape_of(s)[-1]
    eye = np.eye(k, dtype=bool)
    row = reshape(s, (*shape_of(s)[:-1], 1, k))  # s_j along columns
    col = reshape(s, (*shape_of(s), 1))  # s_i along rows
    f = select(eye, 0.0, div(1.0, select(eye, 1.0, sub(mul(row, row), mul(col, col)))))
    dps, sdp = mul(dp, row), mul(col, dp)  # dP S and S dP
    du = matmul2(u, mul(f, add(dps, mT(dps))))
    dv = matmul2(v, mul(f, add(sdp, mT(sdp))))
    m, n = shape_of(a)[-2:]
    if m > k:  # the part of dA V outside the span of U
        dav = matmul2(da, v)
        du = add(du, div(sub(dav, matmul2(u, matmul2(mT(u), dav))), row))
    if n > k:
        dau = matmul2(mT(da), u)
        dv = add(dv, div(sub(dau, matmul2(v, matmul2(vt, dau))), row))
    return [ds, du, mT(dv)]


def _svd_jvp(primals, tangents, *, compute_uv):
    (a,), (ta,) = primals, tangents
    outs = svd_p.bind(a, compute_uv=compute_uv)
    return list(outs), _svd_tangents(a, outs, ta, compute_uv=compute_uv)


svd_p.impl = _svd_impl
svd_p.abstract_eval = _svd_aval
svd_p.jvp = _svd_jvp
svd_p.vjp = _vjp_by_transposing(_svd_tangents)
svd_p.batch = _leading_batch(svd_p)


def svd(a, compute_uv=True):
    """`(s, u, vt)` (reduced) or `(s,)`; derivatives assume distinct nonzero singular values."""
    return svd_p.bind(a, compute_uv=bool(compute_uv))


qr_p = Primitive("qr", multiple_results=True)
qr_p.impl = lambda a: tuple(jnp.linalg.qr(a, mode="reduced"))


def _qr_aval(a):
    aval = get_aval(a)
    *batch, m, n = aval.shape
    k = min(m, n)
    return [ShapedArray((*batch, m, k), aval.dtype), ShapedArray((*batch, k, n), aval.dtype)]


def _qr_tangents(a, outs, da):
    q, r = outs
    m, n = shape_of(a)[-2:]
    if m < n:
        raise NotImplementedError(
            f"The derivative of `qr` needs at least as many rows as columns, got shape "
            f"{shape_of(a)}."
        )
    # X = dA R^{-1}; Y = Q^T X; Omega = tril(Y, -1) - tril(Y, -1)^T (skew-symmetric)
    x = _right_solve_upper(r, da, False)
    y = matmul2(mT(q), x)
    strict = np.tril(np.ones((n, n), bool), -1)
    low = select(strict, y, 0.0)
    omega = sub(low, mT(low))
    dq = add(matmul2(q, sub(omega, y)), x)
    dr = matmul2(sub(y, omega), r)
    return [dq, dr]


def _qr_jvp(primals, tangents):
    (a,), (ta,) = primals, tangents
    outs = qr_p.bind(a)
    return list(outs), _qr_tangents(a, outs, ta)


qr_p.abstract_eval = _qr_aval
qr_p.jvp = _qr_jvp
qr_p.vjp = _vjp_by_transposing(_qr_tangents)
qr_p.batch = _leading_batch(qr_p)


def qr(a):
    """Reduced `(q, r)`; differentiable for matrices with at least as many rows as columns."""
    return qr_p.bind(a)


# =============================================================================================
# eig(a): eigenvalues (and right eigenvectors) of a general matrix; complex results
# =============================================================================================

_EIGVEC_ERROR = (
    "Derivatives of the eigenvectors of a non-symmetric matrix are not supported (as in JAX by "
    "default: they need assumptions on the input that cannot be checked). Differentiate the "
    "eigenvalues (`jnp.linalg.eigvals`) or use `eigh` for symmetric matrices."
)

eig_p = Primitive("eig", multiple_results=True)


def _eig_impl(a, *, vectors):
    return tuple(jnp.linalg.eig(a)) if vectors else (jnp.linalg.eigvals(a),)


def _eig_aval(a, *, vectors):
    aval = get_aval(a)
    dtype = np.result_type(aval.dtype, np.complex64)
    w = ShapedArray(aval.shape[:-1], dtype)
    return [w, ShapedArray(aval.shape, dtype)] if vectors else [w]


def _eig_tangents(a, outs, da, *, vectors):
    from .elementwise import convert_element_type

    if vectors:
        raise NotImplementedError(_EIGVEC_ERROR)
    _, v = eig_p.bind(a, vectors=True)
    dtype = get_aval(v).dtype
    # dw_i = (V^{-1} dA V)_ii
    return [_diag_part(solve(v, matmul2(convert_element_type(da, dtype), v)))]


def _eig_jvp(primals, tangents, *, vectors):
    (a,), (ta,) = primals, tangents
    outs = eig_p.bind(a, vectors=vectors)
    return list(outs), _eig_tangents(a, outs, ta, vectors=vectors)


eig_p.impl = _eig_impl
eig_p.abstract_eval = _eig_aval
eig_p.jvp = _eig_jvp
eig_p.vjp = _vjp_by_transposing(_eig_tangents)
eig_p.batch = _leading_batch(eig_p)


def eig(a, vectors=True):
    """`(w, v)` (or `(w,)`) of a square matrix, complex; only `w` is differentiable."""
    return eig_p.bind(a, vectors=bool(vectors))
