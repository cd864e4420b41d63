"""The tracing core: abstract values, primitives, `bind`, and the stack of transformations.

Every operation a user writes with `functrans.numpy` ends in `Primitive.bind`. `bind` looks at
its operands, finds the innermost transformation that owns one of them (the highest *level*),
and hands the primitive to that transformation's trace. A trace processes the primitive by
binding simpler primitives on the values one level down, so a stack of transformations
unwinds one level at a time until plain JAX arrays reach the primitive's lowering.

Each transformation instance gets its own `MainTrace` with a fresh level. Values of an outer
transformation are constants to an inner one, which is what keeps nested derivatives from
confusing their perturbations.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# ---------------------------------------------------------------------------------------------
# Abstract values
# ---------------------------------------------------------------------------------------------

_SHORT_DTYPE = {
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
    "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
    "uint8": "u8", "uint16": "u16", "uint32": "u32", "uint64": "u64",
    "bool": "bool", "complex64": "c64", "complex128": "c128",
}  # fmt: skip


class ShapedArray:
    """The abstract value of an array: its shape, dtype and whether its type is weak.

    A weak type marks a value that came from a Python scalar; it gives way to the other
    operand's dtype in promotion, as in `jax.numpy`.
    """

    __slots__ = ("shape", "dtype", "weak_type", "_hash")

    def __init__(self, shape, dtype, weak_type=False):
        self.shape = tuple(map(int, shape))
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.weak_type = bool(weak_type)
        self._hash = None

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __eq__(self, other):
        return self is other or (
            isinstance(other, ShapedArray)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.weak_type == other.weak_type
        )

    def __hash__(self):
        h = self._hash
        if h is None:  # avals key every cache of a recording: hash each once
            h = self._hash = hash((self.shape, self.dtype, self.weak_type))
        return h

    def str_short(self):
        name = _SHORT_DTYPE.get(self.dtype.name, self.dtype.name)
        return f"{name}[{','.join(map(str, self.shape))}]"

    def __repr__(self):
        return f"ShapedArray({self.str_short()}{', weak' if self.weak_type else ''})"


_PY_SCALARS = (bool, int, float, complex)


def is_python_scalar(x) -> bool:
    return type(x) in _PY_SCALARS


_SCALAR_WIDE = {bool: np.dtype(bool), int: np.dtype(np.int64), float: np.dtype(np.float64),
                complex: np.dtype(np.complex128)}  # fmt: skip


def python_scalar_dtype(x):
    """The dtype `jax.numpy` gives a Python scalar under the current x64 setting."""
    # Canonicalizing the widest dtype asks the x64 flag without building an array (which
    # would cost a JAX dispatch for every literal a transformation meets).
    return jax.dtypes.canonicalize_dtype(_SCALAR_WIDE[type(x)])


_JAX_AVALS: dict = {}  # (shape, dtype, weak_type) of a JAX array -> its (shared) ShapedArray


def get_aval(x) -> ShapedArray:
    """The abstract value of any operand: a functrans tracer, an array or a Python scalar."""
    if isinstance(x, Tracer):
        return x.aval
    if is_python_scalar(x):
        return ShapedArray((), python_scalar_dtype(x), weak_type=type(x) is not bool)
    if isinstance(x, (np.ndarray, np.generic)):
        return ShapedArray(np.shape(x), x.dtype)
    if isinstance(x, jax.Array):  # also a JAX tracer under jax.jit / jax.grad
        aval = getattr(x, "aval", None)
        if aval is None:
            return ShapedArray(x.shape, x.dtype)
        key = (aval.shape, aval.dtype, getattr(aval, "weak_type", False))
        out = _JAX_AVALS.get(key)
        if out is None:
            out = ShapedArray(*key)
            if len(_JAX_AVALS) < 10_000:
                _JAX_AVALS[key] = out
        return out
    raise TypeError(
        f"Expected an array, a Python scalar or a functrans value, got {type(x).__name__} "
        f"instead: {x!r:.80}. Convert it with `functrans.numpy.asarray` first."
    )


def check_callable(api, fun):
    """Raise at once when a transformation is handed something it cannot call."""
    if not callable(fun):
        raise TypeError(
            f"`{api}` expects a callable as its first argument, got {type(fun).__name__} "
            f"instead: {fun!r:.60}. Pass the function itself, e.g. `ft.{api}(f)(x)`."
        )


_SUBDTYPE: dict = {}


def issubdtype(dtype, category) -> bool:
    """`jax.numpy.issubdtype`, memoized: recording asks it of the same few dtypes each call."""
    key = (dtype, category)
    out = _SUBDTYPE.get(key)
    if out is None:
        out = _SUBDTYPE[key] = bool(jnp.issubdtype(dtype, category))
    return out


def is_inexact(dtype) -> bool:
    return issubdtype(dtype, jnp.inexact)


# ---------------------------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------------------------

_ALL_PRIMITIVES: dict[str, Primitive] = {}


class Primitive:
    """One operation of functrans' graph language, with one rule per transformation.

    Attributes set where the primitive is defined (see `functrans/_src/prims/`):
      impl: lowering, a function of JAX arrays (the operands) and keyword params.
      abstract_eval: optional; `(*avals, **params) -> aval or list of avals`. When absent,
        `jax.eval_shape` of `impl` gives the answer (cached per signature).
      jvp: `(primals, tangents, **params) -> (primal_out, tangent_out)`; a tangent is `None`
        when it is a symbolic zero. Written with functrans operations, so it can itself be
        differentiated.
      vjp: `(needs, ct, out, *primals, **params) -> tuple of cotangents (None for zero)`;
        `needs[i]` says whether input i wants a cotangent.
      batch: filled in by the batching transformation.
      differentiable: False for primitives whose derivative is zero everywhere (comparisons,
        `floor`, `stop_gradient`); transformations then pass them straight through.
    """

    def __init__(self, name: str, multiple_results: bool = False, differentiable: bool = True):
        self.name = name
        self.multiple_results = multiple_results
        self.differentiable = differentiable
        self.impl = None
        self.abstract_eval = None
        self.jvp = None
        self.vjp = None
        self.batch = None
        self.inline = None  # for primitives holding a graph: evaluate it by binding its body
        # for primitives holding functions: compute the primal result by binding the body's
        # primitives, where no transformation is left to use the held rules (eager recording)
        self.primal_body = None
        # for primitives holding functions (custom rules): `(in_avals, **params) -> {name:
        # Graph}`, traced only to print them nested
        self.subgraphs = None
        _ALL_PRIMITIVES[name] = self

    def __repr__(self):
        return self.name

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name in _RULES:
            rules_changed()

    def bind(self, *args, **params):
        return bind(self, args, params)


# Caches that hold the result of applying rules (compiled eager programs, derived graphs,
# abstract values) register here; a rule set or replaced later (`functrans.extend`, a
# notebook redefining a rule, a test patching one) empties them, so nothing computed with
# the old rule is reused.
_RULES = frozenset(("impl", "abstract_eval", "jvp", "vjp", "batch", "inline", "primal_body"))
_rule_caches: list = []


def on_rules_changed(clear):
    """Register `clear()`, called whenever a primitive's rule is set or replaced."""
    _rule_caches.append(clear)


def rules_changed():
    for clear in _rule_caches:
        clear()


def all_primitives() -> dict[str, Primitive]:
    return dict(_ALL_PRIMITIVES)


def missing_rule(prim: Primitive, transformation: str):
    return NotImplementedError(
        f"The primitive `{prim.name}` has no {transformation} rule yet, so "
        f"`{transformation}` cannot pass through it. Define `{prim.name}_p.{transformation}` "
        "(see `functrans.extend`) or avoid this operation inside the transformation."
    )


# ---------------------------------------------------------------------------------------------
# The transformation stack
# ---------------------------------------------------------------------------------------------


class MainTrace:
    """One active transformation instance: its level, its trace, and whether it is running."""

    __slots__ = ("level", "trace", "name", "active", "outer_staging")

    def __init__(self, level, trace_type, name, payload):
        self.level = level
        self.name = name
        self.active = True
        self.outer_staging = None  # for a staging main: the staging main around it
        self.trace = trace_type(self, payload)

    def __repr__(self):
        return f"MainTrace({self.name}, level={self.level})"


class _State(threading.local):
    def __init__(self):
        self.stack: list[MainTrace] = []
        # The innermost graph-building transformation: operations on constants alone are
        # recorded there too, so a graph holds its constant work instead of baked arrays.
        self.staging: MainTrace | None = None
        # The level of the transformation whose rule is running (None at user level). Its
        # operations on constants belong to it, never to a graph being built inside it.
        self.processing: int | None = None


_state = _State()
_level_counter = itertools.count(1)


class new_main:  # noqa: N801 - used like a function: `with new_main(...) as main:`
    """Push a fresh transformation instance; it is deactivated when the block ends.

    Levels grow monotonically across the whole process, so an inner transformation always
    has a higher level than every transformation already running, and a leaked tracer from
    an ended transformation can be recognised by its `active` flag. (A class rather than a
    generator-based context manager: every eager call enters several.)
    """

    __slots__ = ("main", "staging", "prev_staging", "prev_processing")

    def __init__(self, trace_type, name: str, payload: Any = None, staging: bool = False):
        # Levels only need to be ordered within one thread's stack; a global counter keeps
        # them unique, which also makes leaked tracers from other threads harmless to detect.
        self.main = MainTrace(next(_level_counter), trace_type, name, payload)
        self.staging = staging

    def __enter__(self):
        main = self.main
        state = _state
        state.stack.append(main)
        self.prev_staging, self.prev_processing = state.staging, state.processing
        if self.staging:
            main.outer_staging = self.prev_staging
            state.staging = main
        state.processing = None  # the new transformation runs user-level code
        return main

    def __exit__(self, *exc):
        main = self.main
        state = _state
        state.staging = self.prev_staging
        state.processing = self.prev_processing
        main.active = False
        main.trace.finish()
        main.trace = None  # the trace still names its main (escaped tracers find it inactive)
        # Remove this main even if an exception left inner ones behind.
        stack = state.stack
        while stack:
            top = stack.pop()
            top.active = False
            if top is main:
                break
        return False


@contextlib.contextmanager
def no_staging():
    """Run plain JAX code (a lowering, `jax.eval_shape`) without recording it in a graph."""
    prev = _state.staging
    _state.staging = None
    try:
        yield
    finally:
        _state.staging = prev


def _escaped_error(main: MainTrace):
    return RuntimeError(
        f"A functrans traced value from `{main.name}` was used after that transformation "
        "ended (for example it was stored in a global variable, a closure or a list inside "
        "the transformed function). Return the value from the function instead of keeping it."
    )


def bind(prim: Primitive, args, params):
    top = None
    for a in args:
        if isinstance(a, Tracer):
            main = a._trace.main
            if not main.active:
                if hasattr(a._trace, "materialize"):  # a lazy eager value: compute it
                    return bind(prim, [_revive(x) for x in args], params)
                raise _escaped_error(main)
            if top is None or main.level > top.level:
                top = main
    if top is None:
        # Only constants: record the operation in the innermost graph being built, unless a
        # transformation outside that graph is running its rule (its work on plain values,
        # e.g. the primal half of an outer `grad`, belongs outside).
        top = _state.staging
        cur = _state.processing
        while top is not None and cur is not None and top.level > cur:
            top = top.outer_staging
        if top is None:
            return prim.impl(*args, **params)
    prev = _state.processing
    _state.processing = top.level
    try:
        return top.trace.process_primitive(prim, args, params)
    finally:
        _state.processing = prev


def _revive(x):
    if isinstance(x, Tracer) and not x._trace.main.active and hasattr(x._trace, "materialize"):
        return x._trace.materialize([x])[0]
    return x


# ---------------------------------------------------------------------------------------------
# Traces and tracers
# ---------------------------------------------------------------------------------------------


class Trace:
    """Base class of a transformation's trace. Subclasses implement `process_primitive`."""

    def __init__(self, main: MainTrace, payload):
        self.main = main

    def process_primitive(self, prim, args, params):
        raise NotImplementedError

    def finish(self):
        """Called when the transformation ends: drop what only its run needed.

        Tables that map operands to this trace's own tracers (common-subexpression and
        algebraic caches) form reference cycles through the tracers. Dropping them lets
        reference counting free a finished transformation at once; otherwise every eager
        call leaves its whole recording to the cyclic garbage collector, whose passes over
        JAX's large heap cost milliseconds.
        """
        for name in ("cse", "algebra"):
            if getattr(self, name, None) is not None:
                setattr(self, name, type(getattr(self, name))())

    def concrete_error(self, tracer, what):
        return TypeError(
            f"`{what}` was called on a functrans value of type {tracer.aval.str_short()} "
            f"inside `{self.main.name}`, where it is abstract (it has no concrete value). "
            "Use `functrans.numpy.where` or `ft.lax.cond` for value-dependent choices, or "
            "mark the argument static with `static_argnums`."
        )


_NP_ERROR = (
    "A functrans traced value ({aval} from `{name}`) was passed to {where}, which would "
    "treat it as a constant and silently drop its derivative. Use `functrans.numpy` (and "
    "`functrans.nn`, `ft.lax`) for operations inside functrans transformations, or wrap "
    "existing JAX code with `ft.from_jax`."
)


_UNSET = object()


def _refuse_numpy_call(tracer, out, name):
    # NumPy's `np.sum(x)` and friends call `x.sum(axis=..., out=None)`; users never pass
    # `out`, so its presence means a functrans value reached NumPy.
    if out is not _UNSET:
        raise TypeError(
            _NP_ERROR.format(aval=tracer.aval.str_short(), name=tracer._trace.main.name,
                             where=f"`numpy.{name}`")
        )  # fmt: skip


def _namespace():
    from functrans import numpy as fnp

    return fnp


class _TracerType(type):
    """Metaclass whose `repr` explains itself.

    JAX reports a foreign argument by the repr of its type, replacing any error our value
    raises, so the type's own repr is where the fix has to be spelled out.
    """

    def __repr__(cls):
        return (
            f"<class '{cls.__module__}.{cls.__qualname__}'> (a functrans traced value: inside "
            "functrans transformations use `functrans.numpy` instead of `jax.numpy` or "
            "`numpy`, or wrap existing JAX code with `ft.from_jax`)"
        )


class Tracer(metaclass=_TracerType):
    """A value seen by a transformation. Arithmetic dispatches to `functrans.numpy`."""

    __slots__ = ("_trace",)
    __array_priority__ = 1000

    @property
    def aval(self) -> ShapedArray:
        raise NotImplementedError

    # --- metadata -------------------------------------------------------------------------
    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: self.aval.ndim)
    size = property(lambda self: self.aval.size)

    def __len__(self):
        if not self.aval.shape:
            raise TypeError("len() of a 0-d (scalar) array is not defined.")
        return self.aval.shape[0]

    def __iter__(self):
        if not self.aval.shape:
            raise TypeError("Iteration over a 0-d (scalar) array is not defined.")
        return (self[i] for i in range(self.aval.shape[0]))

    # --- refusals: values that would be silently treated as constants ------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            _NP_ERROR.format(aval=self.aval.str_short(), name=self._trace.main.name,
                             where="`numpy` or `jax.numpy` (via `__array__`)")
        )  # fmt: skip

    def to_concrete(self, what):
        """The concrete Python value for `bool()`, `int()`, `float()`, or an error."""
        raise self._trace.concrete_error(self, what)

    def __bool__(self):
        return bool(self.to_concrete("bool"))

    def __int__(self):
        return int(self.to_concrete("int"))

    def __float__(self):
        return float(self.to_concrete("float"))

    def __complex__(self):
        return complex(self.to_concrete("complex"))

    def __index__(self):
        return int(self.to_concrete("index"))

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}> from `{self._trace.main.name}`"

    # --- arithmetic ---------------------------------------------------------------------
    def __neg__(self):
        return _namespace().negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _namespace().abs(self)

    def __add__(self, o):
        return _namespace().add(self, o)

    def __radd__(self, o):
        return _namespace().add(o, self)

    def __sub__(self, o):
        return _namespace().subtract(self, o)

    def __rsub__(self, o):
        return _namespace().subtract(o, self)

    def __mul__(self, o):
        return _namespace().multiply(self, o)

    def __rmul__(self, o):
        return _namespace().multiply(o, self)

    def __truediv__(self, o):
        return _namespace().divide(self, o)

    def __rtruediv__(self, o):
        return _namespace().divide(o, self)

    def __floordiv__(self, o):
        return _namespace().floor_divide(self, o)

    def __rfloordiv__(self, o):
        return _namespace().floor_divide(o, self)

    def __mod__(self, o):
        return _namespace().remainder(self, o)

    def __rmod__(self, o):
        return _namespace().remainder(o, self)

    def __pow__(self, o):
        return _namespace().power(self, o)

    def __rpow__(self, o):
        return _namespace().power(o, self)

    def __matmul__(self, o):
        return _namespace().matmul(self, o)

    def __rmatmul__(self, o):
        return _namespace().matmul(o, self)

    def __eq__(self, o):
        return _namespace().equal(self, o)

    def __ne__(self, o):
        return _namespace().not_equal(self, o)

    def __lt__(self, o):
        return _namespace().less(self, o)

    def __le__(self, o):
        return _namespace().less_equal(self, o)

    def __gt__(self, o):
        return _namespace().greater(self, o)

    def __ge__(self, o):
        return _namespace().greater_equal(self, o)

    def __invert__(self):
        return _namespace().logical_not(self)

    def __and__(self, o):
        return _namespace().logical_and(self, o)

    def __or__(self, o):
        return _namespace().logical_or(self, o)

    def __getitem__(self, idx):
        from .prims.indexing import getitem

        return getitem(self, idx)

    @property
    def at(self):
        from .prims.indexing import _IndexUpdateHelper

        return _IndexUpdateHelper(self)

    @property
    def T(self):
        return _namespace().transpose(self)

    @property
    def real(self):
        return _namespace().real(self)

    @property
    def imag(self):
        return _namespace().imag(self)

    def conj(self):
        return _namespace().conj(self)

    # The methods of `jax.Array`, with its signatures, forwarding to `functrans.numpy`. An
    # `out` argument is never passed by users (arrays are immutable), only by NumPy handing a
    # functrans value back to its method, which `_refuse_numpy_call` reports.

    def sum(self, axis=None, dtype=None, out=_UNSET, keepdims=False, initial=None, where=None):
        _refuse_numpy_call(self, out, "sum")
        return _namespace().sum(self, axis=axis, dtype=dtype, keepdims=keepdims,
                                initial=initial, where=where)  # fmt: skip

    def prod(self, axis=None, dtype=None, out=_UNSET, keepdims=False, initial=None, where=None):
        _refuse_numpy_call(self, out, "prod")
        return _namespace().prod(self, axis=axis, dtype=dtype, keepdims=keepdims,
                                 initial=initial, where=where)  # fmt: skip

    def mean(self, axis=None, dtype=None, out=_UNSET, keepdims=False, *, where=None):
        _refuse_numpy_call(self, out, "mean")
        return _namespace().mean(self, axis=axis, dtype=dtype, keepdims=keepdims, where=where)

    def max(self, axis=None, out=_UNSET, keepdims=False, initial=None, where=None):
        _refuse_numpy_call(self, out, "max")
        return _namespace().max(self, axis=axis, keepdims=keepdims, initial=initial, where=where)

    def min(self, axis=None, out=_UNSET, keepdims=False, initial=None, where=None):
        _refuse_numpy_call(self, out, "min")
        return _namespace().min(self, axis=axis, keepdims=keepdims, initial=initial, where=where)

    def var(self, axis=None, dtype=None, out=_UNSET, ddof=0, keepdims=False, *, where=None,
            correction=None):  # fmt: skip
        _refuse_numpy_call(self, out, "var")
        return _namespace().var(self, axis=axis, keepdims=keepdims, ddof=ddof, dtype=dtype,
                                where=where, correction=correction)  # fmt: skip

    def std(self, axis=None, dtype=None, out=_UNSET, ddof=0, keepdims=False, *, where=None,
            correction=None):  # fmt: skip
        _refuse_numpy_call(self, out, "std")
        return _namespace().std(self, axis=axis, keepdims=keepdims, ddof=ddof, dtype=dtype,
                                where=where, correction=correction)  # fmt: skip

    def all(self, axis=None, out=_UNSET, keepdims=False, *, where=None):
        _refuse_numpy_call(self, out, "all")
        return _namespace().all(self, axis=axis, keepdims=keepdims, where=where)

    def any(self, axis=None, out=_UNSET, keepdims=False, *, where=None):
        _refuse_numpy_call(self, out, "any")
        return _namespace().any(self, axis=axis, keepdims=keepdims, where=where)

    def ptp(self, axis=None, out=_UNSET, keepdims=False):
        _refuse_numpy_call(self, out, "ptp")
        return _namespace().ptp(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, out=_UNSET, keepdims=None):
        _refuse_numpy_call(self, out, "argmax")
        return _namespace().argmax(self, axis=axis, keepdims=bool(keepdims))

    def argmin(self, axis=None, out=_UNSET, keepdims=None):
        _refuse_numpy_call(self, out, "argmin")
        return _namespace().argmin(self, axis=axis, keepdims=bool(keepdims))

    def cumsum(self, axis=None, dtype=None, out=_UNSET):
        _refuse_numpy_call(self, out, "cumsum")
        return _namespace().cumsum(self, axis=axis, dtype=dtype)

    def cumprod(self, axis=None, dtype=None, out=_UNSET):
        _refuse_numpy_call(self, out, "cumprod")
        return _namespace().cumprod(self, axis=axis, dtype=dtype)

    def sort(self, axis=-1, *, kind=None, order=None, stable=True, descending=False):
        return _namespace().sort(self, axis, kind=kind, order=order, stable=stable,
                                 descending=descending)  # fmt: skip

    def argsort(self, axis=-1, *, kind=None, order=None, stable=True, descending=False):
        return _namespace().argsort(self, axis, kind=kind, order=order, stable=stable,
                                    descending=descending)  # fmt: skip

    def searchsorted(self, v, side="left", sorter=None, *, method="scan"):
        return _namespace().searchsorted(self, v, side, sorter, method=method)

    def nonzero(self, *, fill_value=None, size=None):
        return _namespace().nonzero(self, size=size, fill_value=fill_value)

    def round(self, decimals=0, out=_UNSET):
        _refuse_numpy_call(self, out, "round")
        return _namespace().round(self, decimals)

    def take(self, indices, axis=None, out=_UNSET, mode=None, unique_indices=False,
             indices_are_sorted=False, fill_value=None):  # fmt: skip
        # `unique_indices` and `indices_are_sorted` are promises that only speed up JAX's
        # scatter; the result does not depend on them.
        _refuse_numpy_call(self, out, "take")
        return _namespace().take(self, indices, axis=axis, mode=mode, fill_value=fill_value)

    def repeat(self, repeats, axis=None, *, total_repeat_length=None):
        return _namespace().repeat(self, repeats, axis, total_repeat_length=total_repeat_length)

    def diagonal(self, offset=0, axis1=0, axis2=1):
        return _namespace().diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=_UNSET):
        _refuse_numpy_call(self, out, "trace")
        return _namespace().trace(self, offset, axis1, axis2, dtype=dtype)

    def reshape(self, *shape, order="C"):
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return _namespace().reshape(self, shape, order=order)

    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return _namespace().transpose(self, axes or None)

    def swapaxes(self, axis1, axis2):
        return _namespace().swapaxes(self, axis1, axis2)

    @property
    def mT(self):
        if self.aval.ndim < 2:
            raise ValueError(
                f"`.mT` transposes the last two axes, so it needs at least 2 dimensions; got "
                f"shape {self.aval.shape}. Use `.T` or `.reshape` for a vector."
            )
        return _namespace().swapaxes(self, -1, -2)

    def squeeze(self, axis=None):
        return _namespace().squeeze(self, axis)

    def astype(self, dtype, copy=False, device=None):
        if device is not None:
            raise NotImplementedError(
                "`.astype(..., device=...)` is not supported on a functrans traced value: it "
                "has no device of its own. Move the result with `jax.device_put` instead."
            )
        return _namespace().asarray(self, dtype=dtype)

    def copy(self):
        return _namespace().copy(self)

    def conjugate(self):
        return _namespace().conjugate(self)

    def item(self, *args):
        """The entry at `args` (the only one when none are given) as a Python scalar.

        Like `float()`, this needs a concrete value: it raises inside `ft.jit`, `make_graph`
        and `vmap`, and on a value being differentiated (whose derivative it would drop).
        """
        return np.asarray(self.to_concrete("item")).item(*args)

    itemsize = property(lambda self: self.aval.dtype.itemsize)
    nbytes = property(lambda self: self.aval.size * self.aval.dtype.itemsize)

    def dot(self, b, *, precision=None, preferred_element_type=None):
        return _namespace().dot(self, b, precision=precision,
                                preferred_element_type=preferred_element_type)  # fmt: skip

    def flatten(self, order="C"):
        return _namespace().reshape(self, (-1,), order=order)

    def ravel(self, order="C"):
        return _namespace().reshape(self, (-1,), order=order)

    def clip(self, min=None, max=None):
        return _namespace().clip(self, min, max)


def is_tracer(x) -> bool:
    return isinstance(x, Tracer)


def full_lower(x):
    return x
