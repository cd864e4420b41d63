"""A bounded run of the differential fuzzer (`tests/fuzz.py`) in CI.

Hypothesis draws the program seeds, derandomized, so CI sees the same programs every run;
`python -m tests.fuzz --programs N` runs the long campaign.
"""

import re

import fuzz
import fuzz_programs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import functrans.numpy as fnp
from functrans._src.prims import elementwise


@settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.integers(0, 2**31 - 1))
def test_random_programs_agree_with_jax(seed):
    program = fuzz_programs.generate(seed, max_nodes=6)
    n, found = fuzz.check_program(program, seed)
    assert not found, f"seed {seed}:\n{program.source}\n" + "\n".join(map(str, found))


def test_generation_is_deterministic():
    assert fuzz_programs.generate(7).source == fuzz_programs.generate(7).source
    sources = {fuzz_programs.generate(s).source for s in range(20)}
    assert len(sources) == 20


def test_generator_covers_the_operation_table():
    """Over a few hundred programs every kind of operation and every guard row appears."""
    text = "".join(fuzz_programs.generate(s).source for s in range(400))
    for _, template in fuzz_programs.UNARY:
        call = re.search(r"(np|nn|lax)\.[\w.]+\(", template)
        assert call is None or call.group() in text, call.group()
    for op in ("lax.cond", "lax.scan", "lax.fori_loop", "lax.switch", ".at[", "np.einsum",
               "np.linalg.solve", "np.concatenate", "np.broadcast_to", "np.array(["):  # fmt: skip
        assert op in text, op


BROKEN = fuzz_programs.Program(
    "def prog(np, nn, lax, x0):\n    return [np.sin(x0) * x0]\n", ((3,),)
)


def test_the_fuzzer_catches_a_wrong_rule(monkeypatch):
    """A VJP rule of `sin` that is off by a factor is reported at first and higher order."""
    n, found = fuzz.check_program(BROKEN, 0, only=("grad", "order2_rr"))
    assert n == 2 and not found
    rule = elementwise.sin_p.vjp
    monkeypatch.setattr(
        elementwise.sin_p, "vjp", lambda needs, ct, *a, **k: tuple(
            None if c is None else 1.01 * c for c in rule(needs, ct, *a, **k)
        )
    )  # fmt: skip
    n, found = fuzz.check_program(BROKEN, 0, only=("grad", "order2_rr"))
    assert [m.check for m in found] == ["grad (jit)", "order2_rr (jit)"]


def test_an_exception_is_a_mismatch(monkeypatch):
    monkeypatch.setattr(fnp, "sin", lambda x: 1 / 0)
    _, found = fuzz.check_program(BROKEN, 0, only=("value",))
    assert "ZeroDivisionError" in found[0].detail


def test_campaign_prints_the_summary(capsys):
    assert fuzz.main(["--programs", "1", "--seed", "3", "--max-nodes", "3"]) in (0, 1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("1 programs, ") and " checks, " in last and " mismatches" in last


_shapes = st.lists(st.lists(st.integers(0, 3), max_size=4).map(tuple), max_size=4)


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(_shapes)
def test_broadcast_shapes_is_numpys_rule(shapes):
    # the recorder's plain-Python broadcasting (a hot path) against NumPy's
    try:
        expected = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        with pytest.raises(ValueError, match="Incompatible shapes for broadcasting"):
            elementwise._broadcast_shapes(*shapes)
    else:
        assert elementwise._broadcast_shapes(*shapes) == expected
