"""The random programs of the differential fuzzer (`tests/fuzz.py`): an operation table and
a generator.

A *program* is a small random DAG over the operations of `functrans.numpy`, `functrans.nn`
and `ft.lax` that have a twin in `jax.numpy`, `jax.nn` and `jax.lax` of the same name. It is
generated as Python source, a function of the three namespaces and the inputs::

    def prog(np, nn, lax, x0, x1):
        v0 = np.sin(x0)
        v1 = np.log(v0 * v0 + 1.0)
        ...
        return [v3, v5]

so the very same text runs once with `(fnp, fnn, ft.lax)` and once with `(jnp, jax.nn,
jax.lax)`, and a mismatch prints as a program one can paste into a regression test. Each
operation is one row of a table: a name and a way to build its source from operands chosen
among the values already built (shapes that broadcast, that a contraction accepts, ...).
Operations with singularities are written with a guard that keeps them away: `log` of
`x*x + 1`, `sqrt` of `x*x + 0.5`, `arcsin` of `0.9*tanh(x)`, a divisor `1 + y*y`, linear
algebra on `A @ A.T + I`. Operations with kinks (`max`, `maximum`, `std`) are never given
operands that may hold exact copies of one value (`broadcast_to`, repeated indices), where
the derivative is a convention rather than a fact, and binary kinks compare against an
offset operand (`maximum(a, b + 0.125)`), so that two routes to one value never tie.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as onp

MAX_SIZE = 24  # elements per value: keeps Jacobians and third derivatives cheap
MAX_NDIM = 3
INPUT_SHAPES = [(), (3,), (2,), (2, 3), (2, 1), (1, 3), (3, 2), (2, 2), (2, 1, 3)]

# ---------------------------------------------------------------------------------------------
# The operation table
# ---------------------------------------------------------------------------------------------

# Elementwise unary operations: (name, source template of operand {0}). Guards keep each one
# inside the domain where it is smooth, whatever value its operand takes.
UNARY = [
    ("sin", "np.sin({0})"),
    ("cos", "np.cos({0})"),
    ("tan", "np.tan(np.tanh({0}))"),
    ("tanh", "np.tanh({0})"),
    ("exp", "np.exp(np.sin({0}))"),
    ("exp2", "np.exp2(np.tanh({0}))"),
    ("expm1", "np.expm1(np.cos({0}))"),
    ("log", "np.log({0} * {0} + 1.0)"),
    ("log1p", "np.log1p({0} * {0})"),
    ("log2", "np.log2(1.5 + np.sin({0}))"),
    ("log10", "np.log10(1.5 + np.cos({0}))"),
    ("sqrt", "np.sqrt({0} * {0} + 0.5)"),
    ("reciprocal", "np.reciprocal(1.0 + {0} * {0})"),
    ("square", "np.square({0})"),
    ("negative", "-{0}"),
    ("abs", "np.abs({0})"),
    ("sign", "np.sign({0}) * {0}"),
    ("arcsin", "np.arcsin(0.9 * np.tanh({0}))"),
    ("arccos", "np.arccos(0.9 * np.sin({0}))"),
    ("arctan", "np.arctan({0})"),
    ("sinh", "np.sinh(np.sin({0}))"),
    ("cosh", "np.cosh(np.tanh({0}))"),
    ("arcsinh", "np.arcsinh({0})"),
    ("arccosh", "np.arccosh({0} * {0} + 1.5)"),
    ("arctanh", "np.arctanh(0.9 * np.tanh({0}))"),
    ("power", "np.power({0} * {0} + 1.0, 1.5)"),
    ("pow_int", "{0} ** 3"),
    ("pow_neg", "(1.0 + {0} * {0}) ** -2"),
    ("clip", "np.clip({0}, -0.5, 0.7)"),
    ("floor", "np.floor(2.0 * {0}) + {0}"),
    ("mod", "np.mod({0}, 0.7)"),
    ("rsqrt", "lax.rsqrt({0} * {0} + 1.0)"),
    ("logistic", "lax.logistic({0})"),
    ("integer_pow", "lax.integer_pow({0}, 2)"),
    ("stop_gradient", "lax.stop_gradient({0}) * {0}"),
    ("sigmoid", "nn.sigmoid({0})"),
    ("relu", "nn.relu({0})"),
    ("leaky_relu", "nn.leaky_relu({0}, 0.1)"),
    ("elu", "nn.elu({0})"),
    ("gelu", "nn.gelu({0})"),
    ("gelu_exact", "nn.gelu({0}, approximate=False)"),
    ("silu", "nn.silu({0})"),
    ("softplus", "nn.softplus({0})"),
    ("log_sigmoid", "nn.log_sigmoid({0})"),
    ("scalar_ops", "2.0 * {0} - 0.5 / (1.0 + {0} * {0})"),
]

# Elementwise binary operations with broadcasting. `kink` marks those whose derivative is a
# convention where the operands tie.
BINARY = [
    ("add", "{0} + {1}", False),
    ("subtract", "{0} - {1}", False),
    ("multiply", "{0} * {1}", False),
    ("divide", "{0} / (1.0 + {1} * {1})", False),
    ("maximum", "np.maximum({0}, {1} + 0.125)", True),
    ("minimum", "np.minimum({0}, {1} - 0.125)", True),
    ("arctan2", "np.arctan2({0}, 1.5 + np.sin({1}))", False),
    ("logaddexp", "np.logaddexp({0}, {1})", False),
    ("power", "np.power(1.0 + {0} * {0}, np.sin({1}))", False),
    ("where", "np.where({0} > {1} + 0.125, {0} * {1}, {1} - {0})", True),
]

REDUCTIONS = ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "norm"]
KINKED_REDUCTIONS = {"max", "min", "std", "norm"}


@dataclasses.dataclass
class Val:
    name: str
    shape: tuple
    dup: bool = False  # may hold exact copies of one value (ties for kinked operations)


def _shape_of(fn, *shapes):
    """The result shape of a NumPy operation on zeros of `shapes`, or None if it refuses."""
    try:
        with onp.errstate(all="ignore"):
            out = fn(*[onp.zeros(s) for s in shapes])
    except (ValueError, IndexError, TypeError):
        return None
    return tuple(onp.shape(out))


def _size(shape):
    return int(onp.prod(shape, dtype=onp.int64))


class Generator:
    """Builds one random program with a `random.Random`; `ops` are its methods `op_*`."""

    def __init__(self, r: random.Random, max_nodes: int):
        self.r = r
        self.max_nodes = max_nodes
        n_inputs = r.randint(1, 3)
        self.inputs = [Val(f"x{i}", r.choice(INPUT_SHAPES)) for i in range(n_inputs)]
        self.vals = list(self.inputs)
        self.lines = []
        self.used = set()
        self.seen = set()

    # --- operand choice -----------------------------------------------------------------
    def pick(self, pred=lambda v: True, exclude=()):
        cands = [v for v in self.vals if pred(v) and v.name not in exclude]
        if not cands:
            return None
        # Prefer recent values, so programs grow deep rather than wide.
        if self.r.random() < 0.5:
            return cands[-1]
        return self.r.choice(cands)

    def pair(self, shape_fn, pred_a=lambda v: True, pred_b=lambda v: True, distinct=True):
        a = self.pick(pred_a)
        if a is None:
            return None
        cands = [v for v in self.vals if pred_b(v) and not (distinct and v.name == a.name)]
        self.r.shuffle(cands)
        for b in cands:
            shape = shape_fn(a.shape, b.shape)
            if shape is not None:
                return a, b, shape
        return None

    # --- operations ---------------------------------------------------------------------
    def op_unary(self):
        _, template = self.r.choice(UNARY)
        a = self.pick()
        return template.format(a.name), a.shape, a.dup, [a]

    def op_binary(self):
        _, template, kink = self.r.choice(BINARY)
        ok = (lambda v: not v.dup) if kink else (lambda v: True)
        found = self.pair(lambda s, t: _shape_of(onp.add, s, t), ok, ok)
        if found is None:
            return None
        a, b, shape = found
        return template.format(a.name, b.name), shape, a.dup or b.dup, [a, b]

    def op_where(self):
        found = self.pair(lambda s, t: _shape_of(onp.add, s, t))
        if found is None:
            return None
        a, b, shape = found
        c = self.pick(lambda v: _shape_of(onp.add, shape, v.shape) is not None)
        shape = _shape_of(onp.add, shape, c.shape)
        text = f"np.where({a.name} > 0.1, {b.name}, np.sin({c.name}))"
        return text, shape, True, [a, b, c]

    def _axis(self, ndim, allow_none=True, allow_tuple=True):
        choices = ["int"] + (["none"] if allow_none else []) + (["tuple"] if allow_tuple else [])
        kind = self.r.choice(choices)
        if kind == "none":
            return None
        if kind == "int" or ndim < 2:
            return self.r.randrange(-ndim, ndim)
        k = self.r.randint(1, ndim)
        return tuple(sorted(self.r.sample(range(ndim), k)))

    def op_reduction(self):
        name = self.r.choice(REDUCTIONS)
        kinked = name in KINKED_REDUCTIONS
        a = self.pick(lambda v: len(v.shape) >= 1 and not (kinked and v.dup))
        if a is None:
            return None
        axis = self._axis(len(a.shape), allow_tuple=name != "norm")
        keepdims = self.r.random() < 0.3
        shape = _shape_of(lambda z: onp.sum(z, axis=axis, keepdims=keepdims), a.shape)
        if name == "std" and _size(a.shape) // max(_size(shape), 1) < 2:
            return None  # the standard deviation of one entry is 0, where sqrt has no slope
        if name == "norm":
            shape = _shape_of(lambda z: onp.linalg.norm(z, axis=axis, keepdims=keepdims), a.shape)
            text = f"np.linalg.norm({a.name}, axis={axis!r}, keepdims={keepdims})"
        elif name == "logsumexp":
            text = f"nn.logsumexp({a.name}, axis={axis!r}, keepdims={keepdims})"
        elif name == "prod":
            text = f"np.prod(np.tanh({a.name}) + 1.5, axis={axis!r}, keepdims={keepdims})"
        else:
            text = f"np.{name}({a.name}, axis={axis!r}, keepdims={keepdims})"
        return text, shape, a.dup and not kinked, [a]

    def op_softmax(self):
        a = self.pick(lambda v: len(v.shape) >= 1)
        if a is None:
            return None
        axis = self.r.randrange(-len(a.shape), len(a.shape))
        fun = self.r.choice(["nn.softmax", "nn.log_softmax", "np.cumsum"])
        return f"{fun}({a.name}, axis={axis})", a.shape, a.dup, [a]

    def op_reshape(self):
        a = self.pick()
        size = _size(a.shape)
        dims, n = [], size
        for p in (2, 3, 5, 7):
            while n % p == 0:
                dims.append(p)
                n //= p
        self.r.shuffle(dims)
        shape = []
        for d in dims:
            if shape and len(shape) >= MAX_NDIM or (shape and self.r.random() < 0.5):
                shape[-1] *= d
            else:
                shape.append(d)
        if self.r.random() < 0.3 and len(shape) < MAX_NDIM:
            shape.insert(self.r.randint(0, len(shape)), 1)
        shape = tuple(shape)
        spec = list(shape)
        if spec and self.r.random() < 0.3:
            spec[self.r.randrange(len(spec))] = -1
        return f"np.reshape({a.name}, {tuple(spec)!r})", tuple(shape), a.dup, [a]

    def op_transpose(self):
        a = self.pick(lambda v: len(v.shape) >= 2)
        if a is None:
            return None
        nd = len(a.shape)
        kind = self.r.choice(["perm", "T", "swapaxes", "moveaxis"])
        if kind == "T" and nd == 2:
            return f"{a.name}.T", a.shape[::-1], a.dup, [a]
        if kind == "swapaxes":
            i, j = self.r.sample(range(nd), 2)
            text = f"np.swapaxes({a.name}, {i}, {j})"
            return text, _shape_of(lambda z: onp.swapaxes(z, i, j), a.shape), a.dup, [a]
        if kind == "moveaxis":
            i, j = self.r.randrange(nd), self.r.randrange(nd)
            text = f"np.moveaxis({a.name}, {i}, {j})"
            return text, _shape_of(lambda z: onp.moveaxis(z, i, j), a.shape), a.dup, [a]
        perm = list(range(nd))
        self.r.shuffle(perm)
        text = f"np.transpose({a.name}, {tuple(perm)!r})"
        return text, tuple(a.shape[p] for p in perm), a.dup, [a]

    def op_dims(self):
        a = self.pick()
        nd = len(a.shape)
        ones = [i for i, d in enumerate(a.shape) if d == 1]
        kind = self.r.choice(["expand", "squeeze", "ravel", "flip", "broadcast", "tile"])
        if kind == "squeeze" and ones:
            i = self.r.choice(ones)
            return f"np.squeeze({a.name}, axis={i})", a.shape[:i] + a.shape[i + 1 :], a.dup, [a]
        if kind == "ravel":
            return f"np.ravel({a.name})", (_size(a.shape),), a.dup, [a]
        if kind == "flip" and nd:
            i = self.r.randrange(nd)
            return f"np.flip({a.name}, axis={i})", a.shape, a.dup, [a]
        if kind == "broadcast" and nd < MAX_NDIM:
            shape = tuple(self.r.choice((2, 3)) if d == 1 else d for d in a.shape)
            if self.r.random() < 0.5:
                shape = (2,) + shape
            return f"np.broadcast_to({a.name}, {shape!r})", shape, True, [a]
        if kind == "tile" and nd:
            reps = tuple(self.r.choice((1, 2)) for _ in a.shape)
            shape = tuple(d * k for d, k in zip(a.shape, reps))
            return f"np.tile({a.name}, {reps!r})", shape, True, [a]
        if nd < MAX_NDIM:
            i = self.r.randint(-nd - 1, nd)
            shape = _shape_of(lambda z: onp.expand_dims(z, i), a.shape)
            return f"np.expand_dims({a.name}, {i})", shape, a.dup, [a]
        return None

    def op_join(self):
        kind = self.r.choice(["concatenate", "stack", "split", "pad"])
        if kind == "split":
            a = self.pick(lambda v: any(d >= 2 for d in v.shape))
            if a is None:
                return None
            axis = self.r.choice([i for i, d in enumerate(a.shape) if d >= 2])
            cut = self.r.randrange(1, a.shape[axis])
            j = self.r.randrange(2)
            fn = lambda z: onp.split(z, [cut], axis=axis)[j]
            text = f"np.split({a.name}, [{cut}], axis={axis})[{j}]"
            return text, _shape_of(fn, a.shape), a.dup, [a]
        if kind == "pad":
            a = self.pick(lambda v: len(v.shape) >= 1)
            if a is None:
                return None
            config = [(self.r.randint(0, 1), self.r.randint(-1, 1), self.r.randint(0, 1))]
            config = [(lo, max(hi, -d + 1 if d > 1 else 0), i if d > 1 else 0)
                      for (lo, hi, i), d in zip(config * len(a.shape), a.shape)]  # fmt: skip
            shape = tuple(
                lo + hi + d + max(d - 1, 0) * i for (lo, hi, i), d in zip(config, a.shape)
            )
            return f"lax.pad({a.name}, 0.0, {config!r})", shape, True, [a]
        if kind == "concatenate":
            axis = self.r.randrange(MAX_NDIM)
            fn = lambda s, t: _shape_of(lambda x, y: onp.concatenate([x, y], axis=axis), s, t)
            found = self.pair(fn, lambda v: len(v.shape) > axis, distinct=False)
            if found is None:
                return None
            a, b, shape = found
            text = f"np.concatenate([{a.name}, {b.name}], axis={axis})"
            return text, shape, a.dup or b.dup or a is b, [a, b]
        a = self.pick(lambda v: len(v.shape) < MAX_NDIM)
        if a is None:
            return None
        b = self.pick(lambda v: v.shape == a.shape)
        axis = self.r.randint(-len(a.shape) - 1, len(a.shape))
        shape = _shape_of(lambda x, y: onp.stack([x, y], axis=axis), a.shape, b.shape)
        text = f"np.stack([{a.name}, {b.name}], axis={axis})"
        return text, shape, a.dup or b.dup or a is b, [a, b]

    def _index(self, shape, for_set=False):
        """A random NumPy index for `shape`: its source text and its value."""
        parts, texts, dup = [], [], False
        used_array = False
        for d in shape:
            kind = self.r.choice(["int", "slice", "full", "array", "none"])
            if kind == "int":
                i = self.r.randrange(-d, d)
                parts.append(i)
                texts.append(str(i))
            elif kind == "slice":
                start = self.r.choice([None, self.r.randrange(-d, d)])
                stop = self.r.choice([None, self.r.randrange(-d, d + 1)])
                step = self.r.choice([None, 1, 2, -1])
                parts.append(slice(start, stop, step))
                texts.append(
                    f"{'' if start is None else start}:{'' if stop is None else stop}"
                    + ("" if step is None else f":{step}")
                )
            elif kind == "array" and not used_array:
                used_array = True
                k = self.r.randint(1, 3)
                if for_set:
                    idx = self.r.sample(range(d), min(k, d))
                else:
                    idx = [self.r.randrange(-d, d) for _ in range(k)]
                    dup = dup or len({i % d for i in idx}) < len(idx)
                parts.append(onp.array(idx))
                texts.append(f"np.array({idx!r})")
            elif kind == "none":
                parts.extend([None, slice(None)])
                texts.extend(["None", ":"])
            else:
                parts.append(slice(None))
                texts.append(":")
        if shape and self.r.random() < 0.2:
            # Drop the trailing full slices, sometimes as an ellipsis.
            while texts and texts[-1] == ":":
                texts.pop()
                parts.pop()
            if self.r.random() < 0.5:
                texts.insert(0, "...")
                parts.insert(0, Ellipsis)
        if len(texts) == 1 and self.r.random() < 0.5:
            return texts[0], parts[0], dup
        return ", ".join(texts) if texts else "...", tuple(parts) if parts else Ellipsis, dup

    def op_getitem(self):
        a = self.pick(lambda v: len(v.shape) >= 1)
        if a is None:
            return None
        if self.r.random() < 0.15:
            mask = [self.r.random() < 0.6 for _ in range(a.shape[0])]
            if not any(mask):
                return None
            shape = _shape_of(lambda z: z[onp.array(mask)], a.shape)
            return f"{a.name}[np.array({mask!r})]", shape, a.dup, [a]
        if self.r.random() < 0.15:
            axis = self.r.randrange(len(a.shape))
            d = a.shape[axis]
            idx = [self.r.randrange(d) for _ in range(self.r.randint(1, 3))]
            shape = _shape_of(lambda z: onp.take(z, onp.array(idx), axis=axis), a.shape)
            text = f"np.take({a.name}, np.array({idx!r}), axis={axis})"
            return text, shape, True, [a]
        text, index, dup = self._index(a.shape)
        shape = _shape_of(lambda z: z[index], a.shape)
        if shape is None:
            return None
        return f"{a.name}[{text}]", shape, a.dup or dup, [a]

    def op_at(self):
        a = self.pick(lambda v: len(v.shape) >= 1)
        if a is None:
            return None
        text, index, _ = self._index(a.shape, for_set=True)
        target = _shape_of(lambda z: z[index], a.shape)
        if target is None:
            return None
        b = self.pick(lambda v: _shape_of(lambda x, y: onp.broadcast_to(y, x.shape), target,
                                          v.shape) is not None, exclude=(a.name,))  # fmt: skip
        if b is None:
            b = self.pick(exclude=(a.name,))
            if b is None:
                return None
            value = f"np.mean({b.name})"
        else:
            value = b.name
        method = self.r.choice(["set", "add"])
        return f"{a.name}.at[{text}].{method}(np.sin({value}))", a.shape, True, [a, b]

    def op_contract(self):
        kind = self.r.choice(["matmul", "dot", "outer", "inner", "tensordot", "einsum"])
        if kind == "einsum":
            return self._einsum()
        fns = {
            "matmul": (onp.matmul, "np.matmul({0}, {1})"),
            "dot": (onp.dot, "np.dot({0}, {1})"),
            "outer": (onp.outer, "np.outer({0}, {1})"),
            "inner": (onp.inner, "np.inner({0}, {1})"),
            "tensordot": (lambda x, y: onp.tensordot(x, y, axes=1), "np.tensordot({0}, {1}, 1)"),
        }
        fn, template = fns[kind]
        nonscalar = lambda v: len(v.shape) >= 1 or kind in ("dot", "outer", "inner")
        found = self.pair(lambda s, t: _shape_of(fn, s, t), nonscalar, nonscalar, distinct=False)
        if found is None:
            return None
        a, b, shape = found
        return template.format(a.name, b.name), shape, a.dup or b.dup or a is b, [a, b]

    def _einsum(self):
        if self.r.random() < 0.25:
            # '...' over leading (or trailing) axes, broadcast between the operands
            spec = self.r.choice(["...i,ij->...j", "...i,ij", "...ij,...jk->...ik",
                                  "i...,i...->...", "...i,...i"])  # fmt: skip
            fn = lambda s, t: _shape_of(lambda x, y: onp.einsum(spec, x, y), s, t)
            found = self.pair(fn, lambda v: len(v.shape) >= 1, lambda v: len(v.shape) >= 1, False)
            if found is None:
                return None
            a, b, shape = found
            text = f"np.einsum({spec!r}, {a.name}, {b.name})"
            return text, shape, a.dup or b.dup or a is b, [a, b]
        a = self.pick(lambda v: len(v.shape) >= 1)
        b = self.pick()
        if a is None:
            return None
        letters = iter("ijklmn")
        sa = [next(letters) for _ in a.shape]
        sb = []
        for d in b.shape:
            same = [c for c, e in zip(sa, a.shape) if e == d and c not in sb]
            sb.append(self.r.choice(same) if same and self.r.random() < 0.6 else next(letters))
        sizes = dict(zip(sa, a.shape)) | dict(zip(sb, b.shape))
        alls = sorted(set(sa) | set(sb))
        out = self.r.sample(alls, self.r.randint(0, min(len(alls), MAX_NDIM)))
        spec = f"{''.join(sa)},{''.join(sb)}->{''.join(out)}"
        text = f"np.einsum({spec!r}, {a.name}, {b.name})"
        return text, tuple(sizes[c] for c in out), a.dup or b.dup or a is b, [a, b]

    def op_linalg(self):
        a = self.pick(lambda v: 1 <= len(v.shape) <= 2 and not v.dup)
        if a is None:
            return None
        if len(a.shape) == 1:
            m = a.shape[0]
            spd = f"(np.outer({a.name}, {a.name}) + np.eye({m}))"
        else:
            m = a.shape[0]
            spd = f"({a.name} @ {a.name}.T + np.eye({m}))"
        kind = self.r.choice(["solve", "inv", "det", "slogdet", "cholesky"])
        if kind == "solve":
            return f"np.linalg.solve({spd}, {a.name})", a.shape, False, [a]
        if kind == "inv":
            return f"np.linalg.inv({spd})", (m, m), False, [a]
        if kind == "det":
            return f"np.linalg.det({spd})", (), False, [a]
        if kind == "slogdet":
            return f"np.linalg.slogdet({spd})[1]", (), False, [a]
        return f"np.linalg.cholesky({spd})", (m, m), True, [a]

    def op_matrix(self):
        a = self.pick(lambda v: len(v.shape) == 2)
        if a is None:
            return None
        kind = self.r.choice(["diagonal", "trace", "tril", "triu"])
        if kind in ("tril", "triu"):
            k = self.r.randint(-1, 1)
            return f"np.{kind}({a.name}, {k})", a.shape, True, [a]
        shape = _shape_of(getattr(onp, kind), a.shape)
        return f"np.{kind}({a.name})", shape, a.dup, [a]

    def _fits(self, shape, exclude=()):
        """A value that broadcasts to `shape` without changing it, if there is one."""
        return self.pick(
            lambda v: _shape_of(onp.add, shape, v.shape) == tuple(shape), exclude=exclude
        )

    def op_control(self):
        a = self.pick()
        b = self._fits(a.shape, exclude=(a.name,))
        c = b.name if b is not None else "0.5"
        kind = self.r.choice(["cond", "switch", "scan", "fori_loop"])
        operands = [a] + ([b] if b is not None else [])
        if kind == "cond":
            text = (
                f"lax.cond(np.sum({a.name}) > 0.0, lambda a: np.sin(a) * {c}, "
                f"lambda a: np.tanh(a) + {c}, {a.name})"
            )
            return text, a.shape, a.dup, operands
        if kind == "switch":
            if a.dup or not a.shape:
                return None
            text = (
                f"lax.switch(np.argmax(np.ravel({a.name})), [lambda a: a * {c}, "
                f"lambda a: np.cos(a), lambda a: np.exp(np.sin(a)) - {c}], {a.name})"
            )
            return text, a.shape, a.dup, operands
        if kind == "fori_loop":
            n = self.r.randint(0, 3)
            text = f"lax.fori_loop(0, {n}, lambda i, a: np.sin(a) * 0.9 + {c} * i, {a.name})"
            return text, a.shape, a.dup, operands
        if not a.shape:
            return None
        carry = a.shape[1:]
        init = self._fits(carry, exclude=(a.name,)) if carry else self.pick(lambda v: not v.shape)
        init_text = f"np.sin({init.name})" if init is not None else f"{a.name}[0] * 0.5"
        if init is not None and init.shape != carry:
            init_text = f"np.broadcast_to({init_text}, {carry!r})"
        reverse = self.r.random() < 0.3
        k = self.r.randrange(2)
        text = (
            f"lax.scan(lambda c, x: (np.tanh(c * 0.5 + x), c * x + {c}), {init_text}, "
            f"{a.name}, reverse={reverse})[{k}]"
        )
        operands += [init] if init is not None else []
        return text, (carry if k == 0 else a.shape), a.dup, operands

    OPS = [
        ("unary", 8),
        ("binary", 8),
        ("where", 1),
        ("reduction", 3),
        ("softmax", 1),
        ("reshape", 1),
        ("transpose", 1),
        ("dims", 2),
        ("join", 2),
        ("getitem", 3),
        ("at", 1),
        ("contract", 3),
        ("linalg", 1),
        ("matrix", 1),
        ("control", 2),
    ]

    def build(self):
        names, weights = zip(*self.OPS)
        n_nodes = self.r.randint(3, self.max_nodes)
        tries = 0
        while len(self.lines) < n_nodes and tries < 20 * n_nodes:
            tries += 1
            op = self.r.choices(names, weights)[0]
            made = getattr(self, f"op_{op}")()
            if made is None:
                continue
            text, shape, dup, operands = made
            if shape is None or len(shape) > MAX_NDIM or not 0 < _size(shape) <= MAX_SIZE:
                continue
            if text in self.seen:
                continue  # the same expression twice would tie in kinked operations
            self.seen.add(text)
            name = f"v{len(self.lines)}"
            self.lines.append(f"{name} = {text}")
            self.used.update(v.name for v in operands)
            self.vals.append(Val(name, tuple(shape), dup))
        sinks = [v.name for v in self.vals[len(self.inputs) :] if v.name not in self.used]
        if not sinks:
            sinks = [self.vals[-1].name]
        args = ", ".join(v.name for v in self.inputs)
        body = "".join(f"    {line}\n" for line in self.lines)
        source = f"def prog(np, nn, lax, {args}):\n{body}    return [{', '.join(sinks)}]\n"
        return Program(source, tuple(v.shape for v in self.inputs))


@dataclasses.dataclass
class Program:
    """A generated program: its source (defining `prog`) and the shapes of its inputs."""

    source: str
    shapes: tuple

    def function(self):
        namespace = {}
        exec(compile(self.source, "<fuzz program>", "exec"), namespace)
        return namespace["prog"]


def generate(seed: int, max_nodes: int = 12) -> Program:
    """The random program of `seed` (the same program for the same seed, on every run)."""
    return Generator(random.Random(seed), max_nodes).build()
