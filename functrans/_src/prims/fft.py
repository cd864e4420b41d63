"""Fast Fourier transforms: one linear primitive for FFT, IFFT, RFFT and IRFFT.

The transform acts on the trailing `len(fft_lengths)` axes; leading axes are a free batch.
Being linear, its JVP applies it to the tangent. Its VJP is its transpose, under JAX's
convention of transposing (not taking adjoints): the complex transforms are symmetric
matrices, so FFT and IFFT are their own transposes; RFFT is "make complex, FFT, keep the
first n//2+1 bins", whose transpose zero-pads the bins, applies FFT and keeps the real part;
IRFFT's transpose is an RFFT whose bins that stand for two frequencies count twice, scaled
and conjugated (the cotangent convention for a real output of a complex input).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..core import Primitive, ShapedArray, get_aval
from .complex import conj, real
from .elementwise import mul
from .structural import moveaxis, pad

TYPES = ("FFT", "IFFT", "RFFT", "IRFFT")

fft_p = Primitive("fft")
fft_p.impl = lambda x, *, fft_type, fft_lengths: jax.lax.fft(
    x, jax.lax.FftType[fft_type], fft_lengths
)


def _fft_aval(x, *, fft_type, fft_lengths):
    aval = get_aval(x)
    if fft_type == "RFFT":
        shape = (*aval.shape[:-1], fft_lengths[-1] // 2 + 1)
        return ShapedArray(shape, np.result_type(aval.dtype, np.complex64))
    if fft_type == "IRFFT":
        return ShapedArray((*aval.shape[:-1], fft_lengths[-1]), np.finfo(aval.dtype).dtype)
    return aval


def _fft_jvp(primals, tangents, *, fft_type, fft_lengths):
    (x,), (t,) = primals, tangents
    return fft(x, fft_type, fft_lengths), fft(t, fft_type, fft_lengths)


def _fft_vjp(needs, ct, out, x, *, fft_type, fft_lengths):
    if fft_type in ("FFT", "IFFT"):
        return (fft(ct, fft_type, fft_lengths),)
    if fft_type == "RFFT":
        n = fft_lengths[-1]
        bins = get_aval(ct).shape[-1]
        config = [(0, 0, 0)] * (get_aval(ct).ndim - 1) + [(0, n - bins, 0)]
        return (real(fft(pad(ct, 0.0, config), "FFT", fft_lengths)),)
    # IRFFT
    spectrum = fft(ct, "RFFT", fft_lengths)
    bins = get_aval(spectrum).shape[-1]
    odd = fft_lengths[-1] % 2
    # bins 1 .. n/2-1 (and the last one for odd n) stand for a frequency and its mirror
    twice = np.concatenate([[1.0], np.full(bins - 2 + odd, 2.0), np.ones(1 - odd)])
    scale = (twice / math.prod(fft_lengths)).astype(np.finfo(get_aval(ct).dtype).dtype)
    return (conj(mul(spectrum, scale)),)


def _fft_batch(args, dims, *, fft_type, fft_lengths):
    (x,), (d,) = args, dims
    return fft(moveaxis(x, d, 0), fft_type, fft_lengths), 0


fft_p.abstract_eval = _fft_aval
fft_p.jvp = _fft_jvp
fft_p.vjp = _fft_vjp
fft_p.batch = _fft_batch


def fft(x, fft_type, fft_lengths):
    """`jax.lax.fft` with `fft_type` one of "FFT", "IFFT", "RFFT", "IRFFT"."""
    fft_type = getattr(fft_type, "name", fft_type).upper()
    if fft_type not in TYPES:
        raise ValueError(f"`fft_type` must be one of {TYPES}, got {fft_type!r} instead.")
    lengths = tuple(int(n) for n in fft_lengths)
    if fft_type in ("FFT", "IFFT") and not jnp.issubdtype(get_aval(x).dtype, jnp.complexfloating):
        from .complex import complex_

        x = complex_(x, jnp.zeros((), get_aval(x).dtype))
    return fft_p.bind(x, fft_type=fft_type, fft_lengths=lengths)


__all__ = ["fft", "fft_p"]
