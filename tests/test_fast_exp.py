"""The vectorisable ``exp(-e)`` of the CPU kernels against ``np.exp`` in float64.

The kernels call it with ``e = E >= 1/2`` (the inverse energy), which may be huge,
+inf or NaN; the claimed bounds are checked on a dense grid of every float32 /
float64 argument range the kernels can produce.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from numba import njit

from simam_ref.kernels import cpu

F32_BOUND = 1.5e-7  # claimed max relative error of exp_neg_f32 on [0, 32]
F64_BOUND = 5e-16  # claimed max relative error of exp_neg_f64 on [0, 40]


# cache=False: Numba's cache does not notice edits to the callee in cpu.py
@njit(cache=False)
def _apply32(e, out):
    for i in range(e.shape[0]):
        out[i] = cpu.exp_neg_f32(e[i])


@njit(cache=False)
def _apply64(e, out):
    for i in range(e.shape[0]):
        out[i] = cpu.exp_neg_f64(e[i])


def exp32(e: np.ndarray) -> np.ndarray:
    e = np.ascontiguousarray(e, dtype=np.float32)
    out = np.empty_like(e)
    _apply32(e, out)
    return out


def exp64(e: np.ndarray) -> np.ndarray:
    e = np.ascontiguousarray(e, dtype=np.float64)
    out = np.empty_like(e)
    _apply64(e, out)
    return out


def test_f32_relative_error_dense_grid():
    e = np.linspace(0.0, 32.0, 2_000_001, dtype=np.float32)
    ref = np.exp(-e.astype(np.float64))
    err = np.abs(exp32(e).astype(np.float64) / ref - 1.0)
    assert err.max() < F32_BOUND


def test_f32_every_float32_in_one_binade():
    # all 2**23 float32 values in [1, 2): catches range-reduction slips at k steps
    e = (np.arange(2**23, dtype=np.uint32) | np.uint32(0x3F800000)).view(np.float32)
    ref = np.exp(-e.astype(np.float64))
    assert np.max(np.abs(exp32(e) / ref - 1.0)) < F32_BOUND


def test_f32_gain_accuracy_over_kernel_range():
    # the kernels form gain = 1 / (1 + exp(-E)) in float32 for E in [0.5, ~104]
    e = np.linspace(0.5, 104.0, 1_000_001, dtype=np.float32)
    gain = np.float32(1.0) / (np.float32(1.0) + exp32(e))
    ref = 1.0 / (1.0 + np.exp(-e.astype(np.float64)))
    assert np.max(np.abs(gain / ref - 1.0)) < 1.2e-7


def test_f32_large_inf_nan():
    # up to the clamp (32) the value is accurate; beyond it exactly 0, so the backward's
    # q = go x g (1 - g) is exactly 0 where 1 + exp(-E) == 1 anyway
    assert exp32(np.array([32.0], np.float32))[0] == pytest.approx(np.exp(-32.0), rel=F32_BOUND)
    big = np.array([32.5, 33.0, 88.0, 104.0, 1e30, 3.4e38, np.inf], np.float32)
    assert np.all(exp32(big) == 0.0)
    assert np.isnan(exp32(np.array([np.nan], np.float32))[0])


def test_f64_relative_error_dense_grid():
    e = np.linspace(0.0, 40.0, 2_000_001)
    assert np.max(np.abs(exp64(e) / np.exp(-e) - 1.0)) < F64_BOUND


def test_f64_large_inf_nan():
    assert exp64(np.array([40.0]))[0] == pytest.approx(np.exp(-40.0), rel=F64_BOUND)
    assert np.all(exp64(np.array([40.5, 41.0, 700.0, 1e300, np.inf])) == 0.0)
    assert np.isnan(exp64(np.array([np.nan]))[0])


def _asm_of_output_loop(dtype) -> str:
    paper32, paper64 = cpu._paper_fast_f32, cpu._paper_f64

    if dtype == np.float32:

        @njit(cache=False, error_model="numpy")
        def loop(xb, ob, mu, c):
            for i in range(xb.shape[0]):
                ob[i] = paper32(xb[i], np.float32(mu), np.float32(0.0), np.float32(c))
    else:

        @njit(cache=False, error_model="numpy")
        def loop(xb, ob, mu, c):
            for i in range(xb.shape[0]):
                ob[i] = paper64(xb[i], 1.0, mu, c)

    x = np.ones(64, dtype)
    loop(x, np.empty_like(x), 0.1, 0.3)
    return next(iter(loop.inspect_asm().values()))


@pytest.mark.parametrize("dtype, width", [(np.float32, "ps"), (np.float64, "pd")])
def test_output_loop_vectorises_without_libm_exp(dtype, width):
    """The fused output loop compiles to 256-bit SIMD with no call to expf/exp."""
    asm = _asm_of_output_loop(dtype)
    assert re.search(rf"vdiv{width}\s+[^\n]*%ymm", asm), "output loop is not vectorised"
    assert re.search(r"vfmadd\w+\s+[^\n]*%ymm", asm)
    assert not re.search(r"\bexpf?\b", asm)
