"""`ft.custom_jvp` and `ft.custom_vjp`: user-defined derivative rules, as in JAX.

A call of a decorated function binds one primitive (`custom_jvp_call` or `custom_vjp_call`)
whose params hold the function and its rules as flat-list functions. Without a
transformation it runs the function; forward mode calls the JVP rule; reverse mode through a
`custom_jvp` transposes the JVP rule (it is linear in the tangents) by running it on a tape;
reverse mode through a `custom_vjp` calls `fwd` then `bwd`. The rules are written with
functrans operations, so they can themselves be differentiated, batched or staged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .api import _flatten_args
from .core import Primitive, get_aval, new_main, no_staging

tree_flatten = jax.tree_util.tree_flatten
tree_unflatten = jax.tree_util.tree_unflatten


_CLOSURE_ERROR = (
    "A `{api}` function or rule closes over a value of an outer transformation (`{name}`), and "
    "reverse mode runs the rule after that transformation has ended. functrans does not "
    "support such closures in custom rules yet: pass the value as an explicit argument of the "
    "custom function (it then gets its own derivative), or mark it in `nondiff_argnums`."
)


def _closure_guard(api, rule):
    """Run a reverse-mode rule, turning an escaped-tracer error into one that says why."""

    def guarded(*args, **kwargs):
        try:
            return rule(*args, **kwargs)
        except RuntimeError as err:
            msg = str(err)
            if "was used after that transformation ended" not in msg:
                raise
            name = msg.split("`")[1] if "`" in msg else "an outer transformation"
            raise RuntimeError(_CLOSURE_ERROR.format(api=api, name=name)) from err

    return guarded


def _zeros(x):
    aval = get_aval(x)
    return jnp.zeros(aval.shape, aval.dtype)


def _as_value(t, like):
    """An output tangent or input cotangent from a user rule: zeros for `None`, the shape of
    `like` (a scalar is broadcast)."""
    from .prims import elementwise as ew

    if t is None:
        return _zeros(like)
    aval = get_aval(like)
    if get_aval(t).shape != aval.shape:
        t = ew.broadcast_to(t, aval.shape)
    return t


def _abstract_eval(prim):
    def rule(*args, **params):
        from .core import ShapedArray

        structs = []
        for a in args:
            av = get_aval(a)
            structs.append(jax.ShapeDtypeStruct(av.shape, av.dtype, weak_type=av.weak_type))
        with no_staging():
            outs = jax.eval_shape(lambda *xs: prim.impl(*xs, **params), *structs)
        return [ShapedArray(o.shape, o.dtype, getattr(o, "weak_type", False)) for o in outs]

    return rule


def _split_args(api, args, nondiff_argnums):
    nondiff = tuple(args[i] for i in nondiff_argnums)
    diff = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
    leaves, in_tree = _flatten_args(api, diff)
    return nondiff, diff, leaves, in_tree


def _merge_args(nargs, nondiff_argnums, nondiff, diff):
    it_nd, it_d = iter(nondiff), iter(diff)
    return tuple(next(it_nd) if i in nondiff_argnums else next(it_d) for i in range(nargs))


def _normalize_nondiff(nondiff_argnums):
    if isinstance(nondiff_argnums, int):
        nondiff_argnums = (nondiff_argnums,)
    return tuple(sorted(int(i) for i in nondiff_argnums))


# =============================================================================================
# custom_jvp
# =============================================================================================

custom_jvp_call_p = Primitive("custom_jvp_call", multiple_results=True)


def _cjvp_impl(*args, fun, jvp):
    with no_staging():
        return list(fun(*args))


def _cjvp_jvp(primals, tangents, *, fun, jvp):
    tangents = [_zeros(p) if t is None else t for p, t in zip(primals, tangents)]
    outs, out_tangents = jvp(list(primals), tangents)
    return list(outs), list(out_tangents)


def _cjvp_vjp(needs, cts, outs, *primals, fun, jvp):
    from .vjp import vjp_flat

    idx = [i for i, n in enumerate(needs) if n]
    base = [_zeros(p) for p in primals]

    def linear(ts_sub):
        ts = list(base)
        for i, t in zip(idx, ts_sub):
            ts[i] = t
        _, out_t = jvp(list(primals), ts)
        return list(out_t), None

    _, backward, _ = vjp_flat(linear, [base[i] for i in idx], name="custom_jvp transpose")
    cts_sub = backward(list(cts))
    result = [None] * len(primals)
    for i, c in zip(idx, cts_sub):
        result[i] = c
    return tuple(result)


def _cjvp_batch(vals, dims, *, fun, jvp):
    from .batching import vmap

    in_axes = tuple(dims)

    def bfun(*xs):
        return list(vmap(lambda *a: list(fun(*a)), in_axes=in_axes, out_axes=0)(*xs))

    def bjvp(ps, ts):
        def one(p, t):
            o, ot = jvp(list(p), list(t))
            return list(o), list(ot)

        o, ot = vmap(one, in_axes=(in_axes, in_axes), out_axes=0)(tuple(ps), tuple(ts))
        return list(o), list(ot)

    outs = custom_jvp_call_p.bind(*vals, fun=bfun, jvp=bjvp)
    return outs, [0] * len(outs)


custom_jvp_call_p.impl = _cjvp_impl
custom_jvp_call_p.primal_body = lambda *args, fun, jvp: list(fun(*args))
custom_jvp_call_p.abstract_eval = _abstract_eval(custom_jvp_call_p)
custom_jvp_call_p.jvp = _cjvp_jvp
custom_jvp_call_p.vjp = _closure_guard("custom_jvp", _cjvp_vjp)
custom_jvp_call_p.batch = _cjvp_batch


class _CustomFunction:
    """What `custom_jvp` and `custom_vjp` share: the wrapped function, `nondiff_argnums`,
    method binding, and the primal function flattened to leaves."""

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = _normalize_nondiff(nondiff_argnums)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def _flat_fun(self, nargs, nondiff, in_tree, holder):
        user_fun, nd = self.fun, self.nondiff_argnums

        def flat_fun(*xs):
            diff = tree_unflatten(in_tree, list(xs))
            out = user_fun(*_merge_args(nargs, nd, nondiff, diff))
            out_leaves, holder["tree"] = tree_flatten(out)
            return out_leaves

        return flat_fun


class custom_jvp(_CustomFunction):  # noqa: N801  (named as JAX's)
    """Set up a function for a custom JVP rule, as `jax.custom_jvp`.

    Define the rule with `defjvp` (one function of `(primals, tangents)` returning
    `(primal_out, tangent_out)`) or `defjvps` (one function per argument of
    `(tangent, primal_out, *primals)`). The rule is written with functrans operations and may
    itself be differentiated; reverse mode transposes it. Arguments listed in
    `nondiff_argnums` are passed first to the rule, as in JAX.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> @ft.custom_jvp
      ... def log1pexp(x):
      ...     return fnp.log(1. + fnp.exp(x))
      >>> @log1pexp.defjvp
      ... def log1pexp_jvp(primals, tangents):
      ...     x, = primals; t, = tangents
      ...     return log1pexp(x), t * (1. - 1. / (1. + fnp.exp(x)))
      >>> float(ft.grad(log1pexp)(100.))
      1.0
    """

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.jvp = None

    def defjvp(self, jvp):
        self.jvp = jvp
        return jvp

    def defjvps(self, *jvps):
        """One rule per differentiable argument, `rule(tangent, primal_out, *primals)`;
        `None` for an argument whose tangent contributes nothing."""
        if self.nondiff_argnums:
            raise TypeError("`defjvps` does not support `nondiff_argnums`; use `defjvp`.")

        def jvp(primals, tangents):
            from functrans import numpy as fnp

            out = self(*primals)
            out_leaves, out_tree = tree_flatten(out)
            acc = None
            for rule, t in zip(jvps, tangents):
                if rule is None:
                    continue
                contrib = tree_flatten(rule(t, out, *primals))[0]
                acc = contrib if acc is None else [fnp.add(a, c) for a, c in zip(acc, contrib)]
            if acc is None:
                acc = [_zeros(o) for o in out_leaves]
            return out, tree_unflatten(out_tree, acc)

        self.jvp = jvp
        return jvps

    def __call__(self, *args):
        if self.jvp is None:
            raise AttributeError(
                f"No JVP defined for custom_jvp function {getattr(self.fun, '__name__', '?')} "
                "using defjvp."
            )
        nargs = len(args)
        nd = self.nondiff_argnums
        nondiff, _, leaves, in_tree = _split_args("custom_jvp", args, nd)
        holder = {}
        user_jvp = self.jvp
        flat_fun = self._flat_fun(nargs, nondiff, in_tree, holder)

        def flat_jvp(ps, ts):
            p = tree_unflatten(in_tree, list(ps))
            t = tree_unflatten(in_tree, list(ts))
            out, out_t = user_jvp(*nondiff, tuple(p), tuple(t))
            out_leaves, tree = tree_flatten(out)
            holder["tree"] = tree
            t_leaves, t_tree = tree_flatten(out_t, is_leaf=lambda x: x is None)
            if t_tree != tree and not (len(t_leaves) == 1 and t_leaves[0] is None):
                raise TypeError(
                    "Custom JVP rule must produce primal and tangent outputs with equal "
                    f"container (pytree) structures, but got {tree} and {t_tree}."
                )
            if len(t_leaves) != len(out_leaves):
                t_leaves = [None] * len(out_leaves)
            for i, (t, o) in enumerate(zip(t_leaves, out_leaves)):
                _check_rule_shape("custom_jvp", "JVP rule", "tangent", i, t, o)
            return out_leaves, [_as_value(x, o) for x, o in zip(t_leaves, out_leaves)]

        outs = custom_jvp_call_p.bind(*leaves, fun=flat_fun, jvp=flat_jvp)
        if "tree" not in holder:  # a transformation did not need the function itself
            with no_staging():
                jax.eval_shape(flat_fun, *[jax.ShapeDtypeStruct(
                    get_aval(x).shape, get_aval(x).dtype) for x in leaves])  # fmt: skip
        return tree_unflatten(holder["tree"], list(outs))


def _check_rule_shape(api, rule, what, i, value, like):
    """A rule's tangent or cotangent must have the shape of the value it belongs to."""
    if value is None:
        return
    got, want = get_aval(value).shape, get_aval(like).shape
    if got != want:
        raise ValueError(
            f"The `{api}` {rule} returned a {what} of shape {got} for leaf {i}, whose value "
            f"has shape {want}. Return {what}s with exactly the shapes of the values they "
            "belong to (reduce or broadcast them in the rule)."
        )


# =============================================================================================
# custom_vjp
# =============================================================================================

custom_vjp_call_p = Primitive("custom_vjp_call", multiple_results=True)

_FWD_ERROR = "can't apply forward-mode autodiff (jvp) to a custom_vjp function."


def _cvjp_impl(*args, fun, fwd, bwd):
    with no_staging():
        return list(fun(*args))


def _cvjp_jvp(primals, tangents, **params):
    raise TypeError(_FWD_ERROR)


def _cvjp_vjp(needs, cts, outs, *primals, fun, fwd, bwd):
    outs2, res = fwd(list(primals))
    cts = [_zeros(o) if c is None else c for c, o in zip(cts, outs2)]
    cts_in = bwd(list(res), cts)
    return tuple(c if n else None for c, n in zip(cts_in, needs))


def _cvjp_batch(vals, dims, *, fun, fwd, bwd):
    from .batching import vmap
    from .prims import reductions as red
    from .prims import structural as st

    in_axes = tuple(dims)

    def bfun(*xs):
        return list(vmap(lambda *a: list(fun(*a)), in_axes=in_axes, out_axes=0)(*xs))

    def bfwd(xs):
        o, r = vmap(lambda *a: tuple(map(list, fwd(list(a)))), in_axes=in_axes, out_axes=0)(*xs)
        return list(o), list(r)

    def bbwd(res, cts):
        cs = vmap(lambda r, c: list(bwd(list(r), list(c))), in_axes=0, out_axes=0)(res, cts)
        result = []
        for c, d in zip(cs, dims):
            result.append(red.reduce_sum(c, (0,)) if d is None else st.moveaxis(c, 0, d))
        return result

    outs = custom_vjp_call_p.bind(*vals, fun=bfun, fwd=bfwd, bwd=bbwd)
    return outs, [0] * len(outs)


def _example_inputs(avals):
    return [jax.numpy.zeros(a.shape, a.dtype) for a in avals]


def _cjvp_subgraphs(avals, *, fun, jvp):
    """The body and the JVP rule as graphs, so that `print(graph)` shows them nested."""
    from .graph import make_graph

    xs, n = _example_inputs(avals), len(avals)
    return {
        "fun": make_graph(lambda *a: fun(*a))(*xs),
        "jvp": make_graph(lambda *a: jvp(a[:n], a[n:]))(*xs, *xs),
    }


def _cvjp_subgraphs(avals, *, fun, fwd, bwd):
    from .graph import make_graph

    xs = _example_inputs(avals)
    return {"fun": make_graph(lambda *a: fun(*a))(*xs), "fwd": make_graph(lambda *a: fwd(a))(*xs)}


custom_jvp_call_p.subgraphs = _cjvp_subgraphs
custom_vjp_call_p.subgraphs = _cvjp_subgraphs
custom_vjp_call_p.impl = _cvjp_impl
custom_vjp_call_p.primal_body = lambda *args, fun, fwd, bwd: list(fun(*args))
custom_vjp_call_p.abstract_eval = _abstract_eval(custom_vjp_call_p)
custom_vjp_call_p.jvp = _cvjp_jvp
custom_vjp_call_p.vjp = _closure_guard("custom_vjp", _cvjp_vjp)
custom_vjp_call_p.batch = _cvjp_batch


class custom_vjp(_CustomFunction):  # noqa: N801  (named as JAX's)
    """Set up a function for a custom VJP rule, as `jax.custom_vjp`.

    `defvjp(fwd, bwd)`: `fwd(*args)` returns `(out, residuals)`; `bwd(residuals, ct)` returns
    a tuple with one cotangent per differentiable argument (`None` for zero). As in JAX,
    `fwd` takes every argument in place and `bwd` takes the `nondiff_argnums` arguments
    first. Forward mode through a `custom_vjp` function raises JAX's error.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> @ft.custom_vjp
      ... def clip_gradient(x):
      ...     return x
      >>> clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (fnp.clip(g, -1., 1.),))
      >>> float(ft.grad(lambda x: 5. * clip_gradient(x))(2.))
      1.0
    """

    def __init__(self, fun, nondiff_argnums=()):
        super().__init__(fun, nondiff_argnums)
        self.fwd = self.bwd = None

    def defvjp(self, fwd, bwd):
        self.fwd, self.bwd = fwd, bwd

    def __call__(self, *args):
        if self.fwd is None:
            raise AttributeError(
                f"No VJP defined for custom_vjp function {getattr(self.fun, '__name__', '?')} "
                "using defvjp."
            )
        nargs = len(args)
        nd = self.nondiff_argnums
        nondiff, diff_args, leaves, in_tree = _split_args("custom_vjp", args, nd)
        holder = {}
        user_fwd, user_bwd = self.fwd, self.bwd
        flat_fun = self._flat_fun(nargs, nondiff, in_tree, holder)

        def flat_fwd(xs):
            diff = tree_unflatten(in_tree, list(xs))
            out, res = user_fwd(*_merge_args(nargs, nd, nondiff, diff))
            out_leaves, holder["tree"] = tree_flatten(out)
            res_leaves, holder["res"] = tree_flatten(res)
            return out_leaves, res_leaves

        def flat_bwd(res_leaves, cts):
            res = tree_unflatten(holder["res"], list(res_leaves))
            ct = tree_unflatten(holder["tree"], list(cts))
            cts_in = user_bwd(*nondiff, res, ct)
            if not isinstance(cts_in, (tuple, list)) or len(cts_in) != len(diff_args):
                raise TypeError(
                    "Custom VJP bwd rule must produce a tuple with one cotangent per "
                    f"differentiable argument ({len(diff_args)}), got {cts_in!r:.80}."
                )
            flat = []
            for arg, c in zip(diff_args, cts_in):
                arg_leaves, arg_tree = tree_flatten(arg)
                if c is None:
                    c_leaves = [None] * len(arg_leaves)
                else:
                    c_leaves, c_tree = tree_flatten(c, is_leaf=lambda x: x is None)
                    if len(c_leaves) != len(arg_leaves):
                        raise TypeError(
                            "Custom VJP bwd rule returned a cotangent of structure "
                            f"{c_tree} for an argument of structure {arg_tree}."
                        )
                flat.extend(c_leaves)
            for i, (c, x) in enumerate(zip(flat, leaves)):
                _check_rule_shape("custom_vjp", "bwd rule", "cotangent", i, c, x)
            return [_as_value(c, x) for c, x in zip(flat, leaves)]

        outs = custom_vjp_call_p.bind(*leaves, fun=flat_fun, fwd=flat_fwd, bwd=flat_bwd)
        if "tree" not in holder:
            with no_staging():
                jax.eval_shape(flat_fun, *[jax.ShapeDtypeStruct(
                    get_aval(x).shape, get_aval(x).dtype) for x in leaves])  # fmt: skip
        return tree_unflatten(holder["tree"], list(outs))


# =============================================================================================
# Taylor mode: through the function for custom_jvp (as `jax.experimental.jet`), an error for
# custom_vjp (forward mode).
# =============================================================================================


def _cjvp_jet_rule(K, full, series, *, fun, jvp):
    from .jet import JetTrace, JetTracer

    with new_main(JetTrace, "jet", K) as main:
        trace = main.trace
        ins = [trace.wrap(s[0], list(s[1:])) for s in full]
        outs = fun(*ins)
        result = []
        for o in outs:
            if isinstance(o, JetTracer) and o._trace is trace:
                result.append([o.primal, *o.terms])
            else:
                result.append([o] + [None] * K)
    return result


def _cvjp_jet_rule(K, full, series, **params):
    raise TypeError(_FWD_ERROR)


def _register_jet():
    from .jet import JET_RULES

    JET_RULES["custom_jvp_call"] = _cjvp_jet_rule
    JET_RULES["custom_vjp_call"] = _cvjp_jet_rule


_register_jet()
