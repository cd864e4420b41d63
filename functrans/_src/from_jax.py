"""`ft.from_jax`: run a function written with `jax.numpy` through functrans' own primitives.

`from_jax(fun)` traces `fun` to a jaxpr with `jax.make_jaxpr` (once per input signature) and
evaluates that jaxpr equation by equation, giving each JAX primitive its interpretation in
functrans operations (the table in `from_jax_rules.py`). Every value a transformation would
see therefore flows through functrans primitives, so `ft.grad`, `ft.vmap`, `ft.make_graph`
and the rest apply to flax and equinox models, and derivatives of any order are right.

Jaxprs nested in an equation (`jit`, `custom_jvp_call`, `custom_vjp_call`, `checkpoint`,
`cond`, `scan`, `while`) are interpreted by the same evaluator. A `custom_jvp` function keeps
JAX's JVP rule (its jaxpr, interpreted too, becomes an `ft.custom_jvp` rule); of a
`custom_vjp` function functrans differentiates the primal body, which gives the same
derivative wherever the function is differentiable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np

from .core import Tracer, get_aval, is_python_scalar
from .from_jax_rules import RULES, register
from .prims import elementwise as ew

_MISSING_RULE = (
    "`ft.from_jax` has no rule for the JAX primitive `{name}` (used by `{fun}` on a value "
    "that a functrans transformation traces). Register one with "
    '`functrans.extend.register_jax_rule("{name}")`: a function of the equation\'s operands '
    "and params (as keywords) written with `functrans.numpy` / `ft.lax` operations, e.g. "
    '`@register_jax_rule("{name}")\\ndef rule(x, **params): ...`. Alternatively compute '
    "this part outside the function given to `ft.from_jax`."
)


def register_jax_rule(name: str, rule: Callable | None = None):
    """Teach `ft.from_jax` how to interpret the JAX primitive called `name`.

    The rule receives the operands of one jaxpr equation (functrans values or arrays) and
    its params as keywords, and returns the result (a list for primitives with several
    results), computed with functrans operations so that every transformation applies.

    Args:
      name: the JAX primitive's name, as printed by `jax.make_jaxpr` (`eqn.primitive.name`).
      rule: the rule; when omitted, `register_jax_rule(name)` is a decorator.

    Returns:
      The rule (so that it can be used as a decorator).

    Example (the built-in rule for `cumprod`: a product over a masked square):
      >>> import jax.numpy as jnp, functrans as ft
      >>> from functrans.extend import register_jax_rule
      >>> @register_jax_rule("cumprod")
      ... def cumprod(x, *, axis, reverse):
      ...     import functrans.numpy as fnp  # the rule outlives this example's names
      ...
      ...     x = fnp.moveaxis(x, axis, -1)
      ...     x = fnp.flip(x, -1) if reverse else x
      ...     n = x.shape[-1]
      ...     keep = fnp.arange(n)[:, None] >= fnp.arange(n)  # keep[i, j]: j <= i
      ...     out = fnp.prod(fnp.where(keep, x[..., None, :], 1.0), axis=-1)
      ...     return fnp.moveaxis(fnp.flip(out, -1) if reverse else out, -1, axis)
      >>> f = ft.from_jax(lambda x: jnp.cumprod(x)[-1])
      >>> [float(g) for g in ft.grad(f)(jnp.array([1.0, 2.0, 3.0]))]
      [6.0, 3.0, 2.0]
    """
    if rule is None:
        return functools.partial(register_jax_rule, name)
    if not isinstance(name, str) or not callable(rule):
        raise TypeError(
            "`functrans.extend.register_jax_rule(name, rule)` expects a primitive name (a "
            f"string) and a callable, got {type(name).__name__} and {type(rule).__name__} "
            "instead."
        )
    RULES[name] = rule
    return rule


# =============================================================================================
# The interpreter
# =============================================================================================


def _is_dynamic(leaf) -> bool:
    return isinstance(leaf, (Tracer, jax.Array, np.ndarray, np.generic)) or is_python_scalar(leaf)


def _read(env, v):
    if isinstance(v, jex.Literal):  # JAX may wrap Python numbers (`TypedInt`): unwrap them
        return np.asarray(v.val, v.aval.dtype)
    return env[v]


def _fix_dtype(out, aval):
    """Give a rule's result the dtype JAX's equation declares (rules may promote literals)."""
    if get_aval(out).dtype != aval.dtype:
        return ew.convert_element_type(out, aval.dtype)
    return out


def _apply(eqn, invals, fun_name):
    name = eqn.primitive.name
    rule = RULES.get(name)
    if rule is None:
        if any(isinstance(v, Tracer) for v in invals):
            raise NotImplementedError(_MISSING_RULE.format(name=name, fun=fun_name))
        # No functrans value reaches it (integer index work, random bits): JAX computes it.
        outs = eqn.primitive.bind(*invals, **eqn.params)
        return outs if eqn.primitive.multiple_results else [outs]
    outs = rule(*invals, **eqn.params)
    if not eqn.primitive.multiple_results:
        outs = [outs]
    return [_fix_dtype(out, v.aval) for out, v in zip(outs, eqn.outvars)]


def eval_jaxpr(jaxpr, consts, args, fun_name="fun"):
    """Evaluate an open `jaxpr` on functrans values, one functrans rule per equation."""
    env = {}
    for v, c in zip(jaxpr.constvars, consts):
        env[v] = c
    for v, a in zip(jaxpr.invars, args):
        env[v] = a
    for eqn in jaxpr.eqns:
        outs = _apply(eqn, [_read(env, v) for v in eqn.invars], fun_name)
        for v, out in zip(eqn.outvars, outs):
            if not isinstance(v, jex.DropVar):
                env[v] = out
    return [_read(env, v) for v in jaxpr.outvars]


def eval_closed(closed, args, fun_name="fun"):
    return eval_jaxpr(closed.jaxpr, closed.consts, args, fun_name)


def _struct(aval):
    return jax.ShapeDtypeStruct(aval.shape, aval.dtype, weak_type=aval.weak_type)


def from_jax(fun: Callable) -> Callable:
    """Make a function written with `jax.numpy` / `jax.lax` transformable by functrans.

    The returned function traces `fun` to a jaxpr (once per input shapes, dtypes and tree
    structure) and interprets each JAX primitive with functrans primitives, so every
    functrans transformation (`grad` at any order, `vjp`, `jvp`, `vmap`, `make_graph`,
    `jit`, ...) applies to it. Array leaves of the arguments (JAX or NumPy arrays, Python
    scalars, functrans values) are inputs; other leaves (such as an equinox module's
    activation function) are held fixed, as `equinox.filter_jit` does.

    Args:
      fun: a function of pytrees of arrays written with `jax.numpy`, `jax.nn`, `jax.lax`,
        flax or equinox, returning a pytree of arrays.

    Returns:
      A function with `fun`'s signature whose results are computed by functrans.

    Raises:
      NotImplementedError: when the jaxpr uses a JAX primitive with no functrans rule; it
        names the primitive and how to add a rule with `functrans.extend.register_jax_rule`.

    Example:
      >>> import jax, jax.numpy as jnp, functrans as ft
      >>> f = ft.from_jax(lambda x: jnp.sum(jax.nn.softplus(x) ** 2))
      >>> round(float(ft.grad(ft.grad(f))(0.5)), 3)
      1.233
    """
    if not callable(fun):
        raise TypeError(
            f"`ft.from_jax` expects a callable, got {type(fun).__name__} instead. Pass the "
            "function itself, e.g. `ft.from_jax(loss)`, not its result."
        )
    fun_name = getattr(fun, "__name__", type(fun).__name__)
    cache: dict = {}

    def trace(leaves, treedef, dyn_pos, avals):
        out_tree = []

        def flat(*dyn):
            full = list(leaves)
            for i, v in zip(dyn_pos, dyn):
                full[i] = v
            args, kwargs = jax.tree_util.tree_unflatten(treedef, full)
            out_leaves, tree = jax.tree_util.tree_flatten(fun(*args, **kwargs))
            out_tree.append(tree)
            return out_leaves

        closed = jax.make_jaxpr(flat)(*[_struct(a) for a in avals])
        return closed, out_tree[0]

    @functools.wraps(fun)
    def wrapped(*args, **kwargs):
        leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
        dyn_pos = tuple(i for i, leaf in enumerate(leaves) if _is_dynamic(leaf))
        avals = tuple(get_aval(leaves[i]) for i in dyn_pos)
        dyn = set(dyn_pos)
        static = tuple((i, leaf) for i, leaf in enumerate(leaves) if i not in dyn)
        key = (treedef, dyn_pos, avals, static)
        try:
            hit = cache.get(key)
        except TypeError:  # an unhashable fixed leaf: trace every call
            key, hit = None, None
        if hit is None:
            template = [None if i in dyn else leaf for i, leaf in enumerate(leaves)]
            hit = trace(template, treedef, dyn_pos, avals)
            if key is not None:
                cache[key] = hit
        closed, out_tree = hit
        outs = eval_closed(closed, [leaves[i] for i in dyn_pos], fun_name)
        outs = [o if isinstance(o, Tracer) else jnp.asarray(o) for o in outs]
        return jax.tree_util.tree_unflatten(out_tree, outs)

    return wrapped


# =============================================================================================
# Rules for primitives that hold jaxprs
# =============================================================================================


@register("jit", "pjit", "closed_call", "core_call")
def _call(*args, jaxpr=None, call_jaxpr=None, name="jit", **params):
    closed = jaxpr if jaxpr is not None else call_jaxpr
    if isinstance(closed, jex.ClosedJaxpr):
        return eval_closed(closed, args, name)
    return eval_jaxpr(closed, [], args, name)


@register("custom_jvp_call")
def _custom_jvp(*args, call_jaxpr, jvp_jaxpr_fun, num_consts, name="custom_jvp", **params):
    consts, xs = args[:num_consts], args[num_consts:]
    rule = _jax_jvp_rule(jvp_jaxpr_fun, xs, consts, name)
    if rule is None:
        return eval_closed(call_jaxpr, args, name)
    from .custom import custom_jvp

    fun = custom_jvp(lambda *xs: eval_closed(call_jaxpr, [*consts, *xs], name))
    fun.defjvp(rule)
    return list(fun(*xs))


def _jax_jvp_rule(jvp_jaxpr_fun, xs, consts, name):
    """JAX's own JVP rule of a `custom_jvp` function, as a functrans rule, when usable.

    The rule is JAX's jaxpr of `(primals, tangents) -> (outputs, output tangents)`, which
    this module interprets like any other, so it can itself be differentiated. When the
    inputs are not all floating point, or constants carry functrans values (whose
    derivatives the rule would ignore), the primal body is differentiated instead.
    """
    if any(isinstance(c, Tracer) for c in consts):
        return None
    if not all(jnp.issubdtype(get_aval(x).dtype, jnp.inexact) for x in xs):
        return None
    try:
        jvp_jaxpr, jvp_consts, out_zeros = jvp_jaxpr_fun.call_wrapped(*[False] * len(xs))
    except Exception:  # an internal JAX interface: fall back to the primal body
        return None

    def rule(primals, tangents):
        outs = eval_jaxpr(jvp_jaxpr, jvp_consts, [*primals, *tangents], name)
        n = len(out_zeros)
        nonzero = iter(outs[n:])
        return outs[:n], [None if z else next(nonzero) for z in out_zeros]

    return rule


@register("custom_vjp_call", "custom_vjp_call_jaxpr")
def _custom_vjp(*args, call_jaxpr=None, fun_jaxpr=None, name="custom_vjp", **params):
    # functrans differentiates the primal body; JAX's rule gives the same derivative
    # wherever the function is differentiable.
    return eval_closed(call_jaxpr if call_jaxpr is not None else fun_jaxpr, args, name)


@register("checkpoint", "remat")
def _checkpoint(*args, jaxpr, **params):
    from .checkpoint import checkpoint

    def body(*xs):
        return eval_jaxpr(jaxpr, [], xs, "checkpoint")

    return list(checkpoint(body)(*args))


# =============================================================================================
# Control flow
# =============================================================================================


def _is_concrete(x):
    return not isinstance(x, (Tracer, jax.core.Tracer))


@register("cond")
def _cond(index, *operands, branches, **params):
    if _is_concrete(index):  # a known branch (the common case under `grad`): run only it
        i = int(np.clip(np.asarray(index), 0, len(branches) - 1))
        return eval_closed(branches[i], operands, "cond")
    from .control_flow import switch

    funs = [functools.partial(_run_branch, b) for b in branches]
    return list(switch(index, funs, *operands))


def _run_branch(branch, *operands):
    return eval_closed(branch, operands, "cond")


@register("while")
def _while(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    from .control_flow import while_loop

    cconsts, bconsts = args[:cond_nconsts], args[cond_nconsts : cond_nconsts + body_nconsts]
    carry = list(args[cond_nconsts + body_nconsts :])

    def cond_fun(c):
        return eval_closed(cond_jaxpr, [*cconsts, *c], "while_loop")[0]

    def body_fun(c):
        return eval_closed(body_jaxpr, [*bconsts, *c], "while_loop")

    # While the predicate is concrete (under `grad` it usually is: comparisons carry no
    # derivative) the loop runs in Python, so reverse mode works; once it is abstract
    # (`make_graph`, `vmap`, `jax.jit`) the rest is one `ft.lax.while_loop`.
    while True:
        pred = cond_fun(carry)
        if not _is_concrete(pred):
            return while_loop(cond_fun, body_fun, carry)
        if not bool(np.asarray(pred)):
            return carry
        carry = body_fun(carry)


@register("scan")
def _scan(*args, jaxpr, num_consts, num_carry, length, reverse, **params):
    from .control_flow import scan

    consts, init = args[:num_consts], list(args[num_consts : num_consts + num_carry])
    xs = list(args[num_consts + num_carry :])

    def step(carry, x):
        out = eval_closed(jaxpr, [*consts, *carry, *x], "scan")
        return out[:num_carry], out[num_carry:]

    carry, ys = scan(step, init, xs, length=length, reverse=reverse)
    return [*carry, *ys]


@register("custom_linear_solve")
def _custom_linear_solve(*args, const_lengths, jaxprs):
    """`x` with `matvec(x) = b`, through an explicit matrix and functrans' `solve`.

    JAX's `solve` jaxpr works on factors of a matrix computed under `stop_gradient` (its
    derivatives come from implicit differentiation of `matvec`), so evaluating it would lose
    the derivative in the matrix. Instead the linear map is materialized column by column
    (one batched `matvec`), which keeps every dependence on traced values, and solved with
    the `solve` primitive, whose rules hold at every order.
    """
    from .batching import vmap
    from .prims import linalg as la
    from .prims import structural as st

    matvec = jaxprs.matvec
    n_consts = const_lengths.matvec
    consts = list(args[:n_consts])
    b = list(args[sum(const_lengths) :])
    x_avals = matvec.in_avals[n_consts:]
    sizes = [math.prod(av.shape) for av in x_avals]
    total = sum(sizes)
    dtype = jnp.result_type(*(av.dtype for av in x_avals))

    def flat(leaves):
        return st.concatenate([st.reshape(v, (math.prod(get_aval(v).shape),)) for v in leaves], 0)

    def apply(e):  # matvec of one flat vector
        leaves, start = [], 0
        for av, size in zip(x_avals, sizes):
            piece = st.reshape(ew.convert_element_type(e[start : start + size], av.dtype), av.shape)
            leaves.append(piece)
            start += size
        return flat(eval_closed(matvec, [*consts, *leaves], "custom_linear_solve"))

    columns = vmap(apply)(np.eye(total, dtype=dtype))  # row j is matvec(e_j)
    x = la.solve(la.mT(columns), st.reshape(flat(b), (total, 1)))
    outs, start = [], 0
    for av, size in zip(x_avals, sizes):
        outs.append(st.reshape(x[start : start + size, 0], av.shape))
        start += size
    return outs
