"""Hash-consing of primitive applications inside one transformation.

Primitives are pure, so binding the same primitive with the same parameters on the same
operands twice must give the same value. Each trace keeps a table from that application to
its result and returns the earlier result instead of tracing the work again. Nested
derivatives recompute the same primal and partial-derivative expressions at every level;
this table is what keeps them from being traced (and recorded) more than once.
"""

from __future__ import annotations


def _operand_key(a):
    t = type(a)
    if t is float:
        return (t, repr(a))  # repr keeps -0.0 apart from 0.0 and makes nan equal to itself
    if t in (int, bool, complex):
        return (t, a)
    return id(a)


class CSECache:
    __slots__ = ("table",)

    def __init__(self):
        self.table = {}

    @staticmethod
    def key(prim, args, params):
        try:
            pkey = tuple(sorted(params.items())) if params else ()
            key = (prim, tuple(_operand_key(a) for a in args), pkey)
            hash(key)
        except TypeError:  # an unhashable parameter: do not share this application
            return None
        return key

    def get(self, key):
        if key is None:
            return None
        entry = self.table.get(key)
        return None if entry is None else entry[1]

    def put(self, key, args, result):
        # The operands are kept alive with the entry so that their ids cannot be reused.
        if key is not None:
            self.table[key] = (args, result)
