"""Doctests in `functrans/` show float32 results, so they run with x64 off whatever the
test suite (which turns x64 on in `tests/conftest.py`) has set."""

import jax
import pytest


@pytest.fixture(autouse=True)
def _doctests_in_float32(request):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)
