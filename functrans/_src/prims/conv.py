"""Convolutions: `conv_general_dilated` and `conv` (work in progress)."""

from __future__ import annotations

_TODO = "`ft.lax.{}` is not implemented yet."


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
):
    raise NotImplementedError(_TODO.format("conv_general_dilated"))


def conv(lhs, rhs, window_strides, padding, precision=None, preferred_element_type=None):
    raise NotImplementedError(_TODO.format("conv"))
