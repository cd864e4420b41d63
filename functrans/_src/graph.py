"""The graph language: `Var`, `Lit`, `Eqn`, `Graph`, and the trace that builds graphs.

`make_graph(f)(*args)` runs `f` on abstract values (shape and dtype only) and records every
primitive into a `Graph`. Because derivatives are computed by binding functrans primitives,
`make_graph(grad(f))` records the whole expanded derivative. A `Graph` prints, counts its
equations, evaluates (under any transformation: it binds its primitives again), and lowers
to a pure JAX function for `jax.jit`.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np

from .algebra import AlgebraTable
from .core import (
    ShapedArray,
    Trace,
    Tracer,
    check_callable,
    get_aval,
    is_python_scalar,
    new_main,
    no_staging,
    on_rules_changed,
)
from .cse import CSECache


class Var:
    """A value produced by an equation (or an input) of a graph."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval


class Lit:
    """A Python scalar literal operand."""

    __slots__ = ("val", "aval")

    def __init__(self, val):
        self.val = val
        self.aval = get_aval(val)


class Eqn:
    __slots__ = ("prim", "inputs", "outputs", "params")

    def __init__(self, prim, inputs, outputs, params):
        self.prim = prim
        self.inputs = inputs
        self.outputs = outputs
        self.params = params


# ---------------------------------------------------------------------------------------------
# Abstract evaluation
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _eval_shape_cached(prim, in_key, params_key):
    params = dict(params_key)
    structs, scalars = [], {}
    for i, k in enumerate(in_key):
        if k[0] == "lit":
            scalars[i] = k[1]
        else:
            structs.append(jax.ShapeDtypeStruct(k[0], k[1], weak_type=k[2]))

    def f(*arrays):
        it = iter(arrays)
        args = [scalars[i] if i in scalars else next(it) for i in range(len(in_key))]
        return prim.impl(*args, **params)

    with no_staging():
        out = jax.eval_shape(f, *structs)
    leaves = out if prim.multiple_results else [out]
    avals = [ShapedArray(o.shape, o.dtype, getattr(o, "weak_type", False)) for o in leaves]
    return avals if prim.multiple_results else avals[0]


on_rules_changed(_eval_shape_cached.cache_clear)


def abstract_eval(prim, args, params):
    if prim.abstract_eval is not None:
        return prim.abstract_eval(*args, **params)
    key = tuple(
        ("lit", a) if is_python_scalar(a) else (get_aval(a).shape, get_aval(a).dtype,
                                                  get_aval(a).weak_type)
        for a in args
    )  # fmt: skip
    return _eval_shape_cached(prim, key, tuple(sorted(params.items())))


# ---------------------------------------------------------------------------------------------
# The graph-building trace
# ---------------------------------------------------------------------------------------------


class GraphTracer(Tracer):
    __slots__ = ("_aval", "node")

    def __init__(self, trace, aval, var):
        self._trace = trace
        self._aval = aval
        self.node = var

    @property
    def aval(self):
        return self._aval


class GraphBuilder:
    def __init__(self):
        self.eqns: list[Eqn] = []
        self.const_vars: list[Var] = []
        self.const_vals: list = []
        self._const_ids: dict[int, Var] = {}

    def const(self, value):
        var = self._const_ids.get(id(value))
        if var is None:
            var = Var(get_aval(value))
            self._const_ids[id(value)] = var
            self.const_vars.append(var)
            self.const_vals.append(value)
        return var


class GraphTrace(Trace):
    def __init__(self, main, payload):
        super().__init__(main, payload)
        self.builder = GraphBuilder()
        self.cse = CSECache()
        self.algebra = AlgebraTable()

    def new_input(self, aval):
        t = GraphTracer(self, aval, Var(aval))
        self.algebra.note_atom(t)
        return t

    def _is_own(self, x):
        return isinstance(x, GraphTracer) and x._trace is self

    def atom(self, x):
        if isinstance(x, GraphTracer) and x._trace is self:
            return x.node
        if is_python_scalar(x):
            return Lit(x)
        return self.builder.const(x)

    def process_primitive(self, prim, args, params):
        key = self.cse.key(prim, args, params)
        hit = self.cse.get(key)
        if hit is not None:
            return hit
        akey, same = self.algebra.lookup(prim, args, params, self._is_own)
        if same is not None:
            return same
        out_aval = abstract_eval(prim, args, params)
        avals = out_aval if prim.multiple_results else [out_aval]
        outs = [GraphTracer(self, av, Var(av)) for av in avals]
        inputs = [self.atom(a) for a in args]
        self.builder.eqns.append(Eqn(prim, inputs, [o.node for o in outs], dict(params)))
        result = outs if prim.multiple_results else outs[0]
        self.cse.put(key, args, result)
        if akey is not None:
            self.algebra.record(akey, result)
        else:
            self.algebra.note_results(prim, args, outs)
        return result


# ---------------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------------


class Graph:
    """An explicit functrans graph: inputs, equations and outputs.

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> g = ft.make_graph(ft.grad(fnp.sin))(1.0)
      >>> g.num_equations, g.simplify().num_equations  # the primal sin(x) is dead
      (2, 1)
    """

    def __init__(self, in_vars, const_vars, const_vals, eqns, outs, in_tree, out_tree):
        self.in_vars = list(in_vars)
        self.const_vars = list(const_vars)
        self.const_vals = list(const_vals)
        self.eqns = list(eqns)
        self.outs = list(outs)
        self.in_tree = in_tree
        self.out_tree = out_tree

    # --- inspection -----------------------------------------------------------------------
    @property
    def num_equations(self) -> int:
        return len(self.eqns)

    def primitive_counts(self) -> collections.Counter:
        return collections.Counter(e.prim.name for e in self.eqns)

    def __str__(self):
        return pretty_print(self)

    def __repr__(self):
        return f"<Graph: {self.num_equations} equations, {len(self.in_vars)} inputs>"

    def _repr_html_(self):
        import html

        return f"<pre>{html.escape(str(self))}</pre>"

    def _repr_svg_(self):
        """An SVG drawing for Jupyter when Graphviz's `dot` is installed, else `None`."""
        import shutil
        import subprocess

        dot = shutil.which("dot")
        if dot is None:
            return None  # Jupyter falls back to `_repr_html_`
        try:
            done = subprocess.run(
                [dot, "-Tsvg"], input=self.to_dot(), capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    def to_dot(self) -> str:
        """Graphviz DOT text: inputs and constants as ellipses, equations as boxes."""
        return to_dot(self)

    # --- evaluation -----------------------------------------------------------------------
    def eval_flat(self, *args):
        """Evaluate on flat inputs by binding each primitive in the current context."""
        return self.eval_flat_with(self.const_vals, args)

    def eval_flat_with(self, consts, args):
        """`eval_flat` with the constants given explicitly (as `jax.jit` arguments)."""
        env = {}
        for v, x in zip(self.const_vars, consts):
            env[v] = x
        for v, x in zip(self.in_vars, args):
            env[v] = x

        def read(a):
            return a.val if isinstance(a, Lit) else env[a]

        for eqn in self.eqns:
            out = eqn.prim.bind(*[read(a) for a in eqn.inputs], **eqn.params)
            if eqn.prim.multiple_results:
                env.update(zip(eqn.outputs, out))
            else:
                env[eqn.outputs[0]] = out
        return [jnp.asarray(a.val) if isinstance(a, Lit) else env[a] for a in self.outs]

    def __call__(self, *args):
        leaves, tree = jax.tree_util.tree_flatten(args)
        if tree != self.in_tree:
            raise ValueError(
                f"This graph takes arguments with structure {self.in_tree}, got {tree} instead."
            )
        for i, (v, x) in enumerate(zip(self.in_vars, leaves)):
            aval = get_aval(x)
            if aval.shape != v.aval.shape or aval.dtype != v.aval.dtype:
                raise TypeError(
                    f"Graph input {i} expects {v.aval.str_short()}, got {aval.str_short()}."
                )
        return jax.tree_util.tree_unflatten(self.out_tree, self.eval_flat(*leaves))

    def to_jax(self):
        """A pure function of JAX arrays computing this graph, ready for `jax.jit`.

        It calls each primitive's lowering directly, so no functrans transformation sees it.
        """

        def fun(*args):
            leaves, _ = jax.tree_util.tree_flatten(args)
            outs = self.eval_lowered(self.const_vals, leaves)
            return jax.tree_util.tree_unflatten(self.out_tree, outs)

        return fun

    def eval_lowered(self, consts, args):
        """Evaluate with each primitive's JAX lowering: plain JAX, for `jax.jit` to compile."""
        env = dict(zip(self.const_vars, consts))
        env.update(zip(self.in_vars, args))
        read = lambda a: a.val if isinstance(a, Lit) else env[a]
        with no_staging():
            for eqn in self.eqns:
                out = eqn.prim.impl(*[read(a) for a in eqn.inputs], **eqn.params)
                env.update(zip(eqn.outputs, out if eqn.prim.multiple_results else [out]))
        return [jnp.asarray(a.val) if isinstance(a, Lit) else env[a] for a in self.outs]

    # --- rewriting ------------------------------------------------------------------------
    def dce(self) -> Graph:
        """The same graph without equations that no output depends on."""
        live = {id(a) for a in self.outs if isinstance(a, Var)}
        kept = []
        for eqn in reversed(self.eqns):
            if any(id(o) in live for o in eqn.outputs):
                kept.append(eqn)
                live.update(id(a) for a in eqn.inputs if isinstance(a, Var))
        kept.reverse()
        consts = [(v, x) for v, x in zip(self.const_vars, self.const_vals) if id(v) in live]
        return Graph(
            self.in_vars, [v for v, _ in consts], [x for _, x in consts], kept, self.outs,
            self.in_tree, self.out_tree,
        )  # fmt: skip

    def simplify(self) -> Graph:
        """An equivalent graph after algebraic rewriting, sharing and dead-code elimination.

        The rewrite table lives in `functrans/_src/simplify.py` (`x*1 -> x`, `x+0 -> x`,
        `neg(neg(x)) -> x`, `x + (-y) -> x - y`, no-op reshapes and transposes, literal
        folding, ...); every rule is an identity of functions, so derivatives agree too.
        """
        from .simplify import simplify

        return simplify(self)


# ---------------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------------


def _names():
    i = 0
    while True:
        n, s = i, ""
        while True:
            s = chr(ord("a") + n % 26) + s
            n = n // 26 - 1
            if n < 0:
                break
        yield s
        i += 1


def _fmt_param(v):
    if isinstance(v, np.dtype):
        return v.name
    if callable(v):
        return getattr(v, "__qualname__", type(v).__name__)
    if isinstance(v, tuple):
        return "(" + ",".join(_fmt_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return repr(v) if isinstance(v, str) else str(v)


def pretty_print(graph: Graph) -> str:
    """The listing of `graph`; graphs held in parameters (control flow, custom rules) nest."""
    return "\n".join(_listing(graph, frozenset()))


def _subgraphs(eqn, active):
    subs = {k: v for k, v in eqn.params.items() if isinstance(v, Graph)}
    key = eqn.prim.name  # a rule that calls its own custom function: expand it once
    if eqn.prim.subgraphs is not None and key not in active:
        try:
            subs.update(eqn.prim.subgraphs([a.aval for a in eqn.inputs], **eqn.params))
        except Exception:  # printing must never fail; the flat listing still names it
            pass
    return subs, key


def _listing(graph, active):
    names = {}
    gen = _names()

    def name(v):
        if isinstance(v, Lit):
            return repr(v.val)
        if id(v) not in names:
            names[id(v)] = next(gen)
        return names[id(v)]

    def decl(v):
        return f"{name(v)}:{v.aval.str_short()}"

    consts = ", ".join(decl(v) for v in graph.const_vars)
    ins = ", ".join(decl(v) for v in graph.in_vars)
    head = f"graph({ins})" + (f" with constants ({consts})" if consts else "") + " {"
    lines = [head]
    for eqn in graph.eqns:
        outs = " ".join(decl(v) for v in eqn.outputs)
        subs, key = _subgraphs(eqn, active)
        flat = {k: v for k, v in eqn.params.items() if k not in subs}
        params = ", ".join(f"{k}={_fmt_param(v)}" for k, v in flat.items())
        prim = eqn.prim.name + (f"[{params}]" if params else "")
        args = " ".join(name(a) for a in eqn.inputs)
        lines.append(f"  {outs} = {prim} {args}".rstrip())
        for k, v in subs.items():
            # a rule that calls its own function (a custom JVP) is shown once, not forever
            nested = _listing(v, active | {key})
            lines.append(f"    {k}=" + nested[0])
            lines.extend("    " + line for line in nested[1:])
    lines.append("  return (" + ", ".join(name(a) for a in graph.outs) + ")")
    lines.append("}")
    return lines


def to_dot(graph: Graph) -> str:
    names = {}
    gen = _names()

    def name(v):
        if id(v) not in names:
            names[id(v)] = next(gen)
        return names[id(v)]

    lines = ["digraph functrans {", "  rankdir=TB;", '  node [fontname="monospace"];']
    for kind, vs in (("input", graph.in_vars), ("const", graph.const_vars)):
        for v in vs:
            n = name(v)
            style = "" if kind == "input" else ", style=dashed"
            lines.append(f'  {n} [shape=ellipse, label="{n}: {v.aval.str_short()}"{style}];')
    for i, eqn in enumerate(graph.eqns):
        params = ", ".join(f"{k}={_fmt_param(v)}" for k, v in eqn.params.items())
        label = eqn.prim.name + (f"[{params}]" if params else "")
        outs = ", ".join(f"{name(o)}: {o.aval.str_short()}" for o in eqn.outputs)
        label = f"{label}\\n{outs}".replace('"', "'")
        lines.append(f'  eqn{i} [shape=box, label="{label}"];')
        for a in eqn.inputs:
            if isinstance(a, Lit):
                lit = f"lit{i}_{id(a)}"
                lines.append(f'  {lit} [shape=plaintext, label="{a.val!r}"];')
                lines.append(f"  {lit} -> eqn{i};")
            else:
                lines.append(f"  {_dot_src(a, names, graph)} -> eqn{i};")
        for o in eqn.outputs:
            names.setdefault(("eqn", id(o)), f"eqn{i}")
    for k, a in enumerate(graph.outs):
        lines.append(f'  out{k} [shape=doublecircle, label="out {k}"];')
        if isinstance(a, Lit):
            lines.append(f'  out{k}_lit [shape=plaintext, label="{a.val!r}"];')
            lines.append(f"  out{k}_lit -> out{k};")
        else:
            lines.append(f"  {_dot_src(a, names, graph)} -> out{k};")
    lines.append("}")
    return "\n".join(lines)


def _dot_src(var, names, graph):
    """The DOT node that produces `var`: its equation's box, or its input ellipse."""
    return names.get(("eqn", id(var))) or names[id(var)]


# ---------------------------------------------------------------------------------------------
# make_graph
# ---------------------------------------------------------------------------------------------


def trace_to_graph(fun, args, static_argnums=(), name="make_graph"):
    """Trace `fun(*args)` on abstract values into a `Graph` (static args passed through)."""
    static = set(i % len(args) for i in static_argnums) if args else set()
    dyn = [a for i, a in enumerate(args) if i not in static]
    leaves, in_tree = jax.tree_util.tree_flatten(tuple(dyn))
    with new_main(GraphTrace, name, staging=True) as main:
        trace = main.trace
        tracers = [trace.new_input(get_aval(x)) for x in leaves]
        dyn_args = iter(jax.tree_util.tree_unflatten(in_tree, tracers))
        full = [a if i in static else next(dyn_args) for i, a in enumerate(args)]
        out = fun(*full)
        out_leaves, out_tree = jax.tree_util.tree_flatten(out)
        outs = [trace.atom(o) for o in out_leaves]
    b = trace.builder
    return Graph([t.node for t in tracers], b.const_vars, b.const_vals, b.eqns, outs, in_tree,
                 out_tree)  # fmt: skip


def make_graph(fun, static_argnums=()):
    """Return a function that traces `fun` on its arguments' shapes into a `Graph`.

    Args:
      fun: any function of arrays, e.g. `ft.grad(f)`.
      static_argnums: positions of arguments that are Python values, not arrays.

    Returns:
      A function of the same arguments returning the `Graph` (its inputs are the non-static
      arguments' leaves).

    Example:
      >>> import functrans as ft, functrans.numpy as fnp
      >>> print(ft.make_graph(ft.grad(fnp.sin))(1.0).simplify())
      graph(a:f32[]) {
        b:f32[] = cos a
        return (b)
      }
    """
    check_callable("make_graph", fun)
    static_argnums = (static_argnums,) if isinstance(static_argnums, int) else static_argnums

    @functools.wraps(fun)
    def wrapped(*args):
        for i in static_argnums:
            if not -len(args) <= i < len(args):
                raise ValueError(
                    f"`make_graph` got static_argnums={static_argnums}, but the function was "
                    f"called with {len(args)} positional argument(s)."
                )
        return trace_to_graph(fun, args, static_argnums)

    return wrapped
