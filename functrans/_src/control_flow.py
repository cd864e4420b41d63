"""Control flow: `cond`, `switch`, `scan`, `fori_loop`, `while_loop` (work in progress)."""

from __future__ import annotations

_TODO = "`ft.lax.{}` is not implemented yet."


def cond(pred, true_fun, false_fun, *operands):
    raise NotImplementedError(_TODO.format("cond"))


def switch(index, branches, *operands):
    raise NotImplementedError(_TODO.format("switch"))


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    raise NotImplementedError(_TODO.format("scan"))


def fori_loop(lower, upper, body_fun, init_val):
    raise NotImplementedError(_TODO.format("fori_loop"))


def while_loop(cond_fun, body_fun, init_val):
    raise NotImplementedError(_TODO.format("while_loop"))
