"""Every functrans primitive, grouped by kind; each module holds a primitive's rules together."""

from . import conv, elementwise, indexing, linalg, reductions, structural  # noqa: F401
