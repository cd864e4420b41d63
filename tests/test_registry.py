"""Every primitive carries all of its rules, and each rule agrees with the lowering."""

import numpy as np
import pytest

import functrans  # noqa: F401  (registers every primitive)
from functrans._src.core import all_primitives

PRIMS = sorted(all_primitives().items())


@pytest.mark.parametrize("name,prim", PRIMS, ids=[n for n, _ in PRIMS])
def test_primitive_has_all_rules(name, prim):
    assert prim.name == name
    assert callable(prim.impl), f"{name} has no lowering"
    assert callable(prim.abstract_eval), f"{name} has no abstract evaluation rule"
    if prim.differentiable:
        assert callable(prim.jvp), f"{name} has no JVP rule"
        assert callable(prim.vjp), f"{name} has no VJP rule"
    else:
        assert prim.jvp is None and prim.vjp is None, f"{name} is non-differentiable with rules"
    assert callable(prim.batch), f"{name} has no batching rule"


def test_registry_is_not_trivially_small():
    names = set(all_primitives())
    for expected in [
        "add",
        "mul",
        "tanh",
        "dot_general",
        "gather",
        "scatter_add",
        "reduce_sum",
        "reshape",
        "transpose",
        "broadcast_to",
        "select",
        "cholesky",
        "solve",
    ]:
        assert expected in names
    assert len(names) > 50


@pytest.mark.parametrize(
    "prim_name,args,params",
    [
        ("add", [np.ones((3, 1)), np.ones(4)], {}),
        ("reduce_sum", [np.ones((2, 3, 4))], {"axes": (0, 2)}),
        ("transpose", [np.ones((2, 3, 4))], {"permutation": (2, 0, 1)}),
        (
            "dot_general",
            [np.ones((5, 2, 3)), np.ones((5, 3, 4))],
            {"dimension_numbers": (((2,), (1,)), ((0,), (0,)))},
        ),
        ("gather", [np.ones((4, 5)), np.array([0, 2])], {"indexer": (("a", 0), ("s", 1, None, 2))}),
        ("slogdet", [np.eye(3)], {}),
        ("argmax", [np.ones((2, 3))], {"axis": 1, "index_dtype": np.dtype("int32")}),
    ],
)
def test_abstract_eval_matches_lowering(prim_name, args, params):
    prim = all_primitives()[prim_name]
    avals = prim.abstract_eval(*args, **params)
    outs = prim.impl(*args, **params)
    if not prim.multiple_results:
        avals, outs = [avals], [outs]
    for aval, out in zip(avals, outs):
        assert aval.shape == tuple(np.shape(out))
        assert aval.dtype == out.dtype
