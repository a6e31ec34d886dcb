"""Tests for derivations.display: pretty strings are the same expressions."""

from __future__ import annotations

import sympy as sp

from derivations import display as dp
from derivations import minimizer as mz


def test_pretty_str_is_display_of_same_expression():
    from derivations.check import parse_rhs

    assert dp.pretty_str(mz.closed_form().w_t) == "2*(t - mu)/((t - mu)**2 + 2*lam + 2*sigma**2)"
    for labels in [(1, -1), (1, 0), (2, 0)]:
        for key, expr in mz.closed_form(labels).as_dict().items():
            back = parse_rhs(dp.pretty_str(expr))  # round-trip through the safe parser
            assert sp.cancel(back - expr) == 0, (labels, key)
