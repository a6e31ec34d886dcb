"""The vectorisable ``exp(-e)`` of the CPU kernels against ``np.exp`` in float64.

The kernels call it with ``e = E >= 1/2`` (the inverse energy), which may be huge,
+inf or NaN; the claimed bounds are checked on a dense grid of every float32 /
float64 argument range the kernels can produce.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit
from numba.core import codegen

from simam_ref.kernels import cpu
from simam_ref.kernels.cpu import base, elements, fastexp

F32_BOUND = 3e-7  # claimed max relative error of exp_neg_f32 on [0, 32]
F64_BOUND = 5e-16  # claimed max relative error of exp_neg_f64 on [0, 40]


# cache=False: Numba's cache does not notice edits to the callee in cpu/fastexp.py
@njit(cache=False)
def _apply32(e, out):
    for i in range(e.shape[0]):
        out[i] = cpu.exp_neg_f32(e[i])


@njit(cache=False)
def _apply_one_plus32(e, out):
    for i in range(e.shape[0]):
        out[i] = fastexp.one_plus_exp_neg_f32(e[i])


@njit(cache=False)
def _apply64(e, out):
    for i in range(e.shape[0]):
        out[i] = cpu.exp_neg_f64(e[i])


def exp32(e: np.ndarray) -> np.ndarray:
    e = np.ascontiguousarray(e, dtype=np.float32)
    out = np.empty_like(e)
    _apply32(e, out)
    return out


def one_plus32(e: np.ndarray) -> np.ndarray:
    e = np.ascontiguousarray(e, dtype=np.float32)
    out = np.empty_like(e)
    _apply_one_plus32(e, out)
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
    # the forward forms gain = 1 / (1 + exp(-E)) in float32 for E in [0.5, ~104]
    e = np.linspace(0.5, 104.0, 1_000_001, dtype=np.float32)
    gain = np.float32(1.0) / one_plus32(e)
    ref = 1.0 / (1.0 + np.exp(-e.astype(np.float64)))
    assert np.max(np.abs(gain / ref - 1.0)) < 1.5e-7


def test_f32_one_plus_exp_is_the_sum_and_one_beyond_the_clamp():
    e = np.linspace(0.0, 32.0, 200_001, dtype=np.float32)
    np.testing.assert_array_equal(one_plus32(e), np.float32(1.0) + exp32(e))
    big = np.array([32.5, 33.0, 88.0, 1e30, 3.4e38, np.inf], np.float32)
    assert np.all(one_plus32(big) == np.float32(1.0))
    assert np.isnan(one_plus32(np.array([np.nan], np.float32))[0])


def test_f32_large_inf_nan():
    # up to the clamp (32) the value is accurate; beyond it exactly 0, so the backward's
    # q = go x g (1 - g) is exactly 0 where 1 + exp(-E) == 1, even for a huge outlier x
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


def _loop_source(dtype) -> str:
    """The fused output loop of ``dtype`` (as the kernels run it), compiled only."""
    paper32, paper64 = elements.paper_fast_f32, elements.paper_f64
    fast32, channel = base.Fast32, base.Channel

    if dtype == np.float32:

        def loop(xb, ob, mu, c):
            for i in range(xb.shape[0]):
                ob[i] = paper32(xb[i], fast32(np.float32(mu), np.float32(0.0), np.float32(c)))
    else:

        def loop(xb, ob, mu, c):
            for i in range(xb.shape[0]):
                ob[i] = paper64(xb[i], channel(1.0, mu, 0.0, 0.0), c)

    return loop


def _asm_of_output_loop(dtype) -> str:
    """Assembly of the output loop for Numba's target CPU.

    Compiled from an explicit signature and never run, so the listing can be made
    for a CPU other than the host's (``NUMBA_CPU_NAME``), e.g. an AVX-512 one.
    """
    t = numba.float32 if dtype == np.float32 else numba.float64
    sig = (t[::1], t[::1], numba.float64, numba.float64)
    loop = njit(sig, cache=False, error_model="numpy")(_loop_source(dtype))
    return loop.inspect_asm(loop.signatures[0])


def _target_lacks_wide_simd() -> str | None:
    """Why Numba's target CPU cannot run 256-bit FMA code, or None if it can
    (or if its features are not spelled out: a bare ``NUMBA_CPU_NAME``)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"inspects x86-64 assembly; this host is {platform.machine() or 'unknown'}"
    if str(numba.config.CPU_NAME).lower() == "generic":
        return "NUMBA_CPU_NAME=generic targets baseline x86-64 (no AVX)"
    feats = numba.config.CPU_FEATURES
    if feats is None:
        feats = codegen.get_host_cpu_features()
    on = {f[1:] for f in str(feats).split(",") if f.startswith("+")}
    if feats and not (on & {"avx2", "avx512f"} and on & {"fma", "avx512f"}):
        return "Numba's target CPU has no AVX2/AVX-512 with FMA"
    return None


_PACKED_DIV = r"\bvdiv{w}\s+[^\n]*%[yz]mm"  # 256-bit (ymm) or 512-bit (zmm) registers
_PACKED_FMA = r"\bvfn?m(?:add|sub)\w*{w}\s+[^\n]*%[yz]mm"
_LIBM_EXP = r"\bexpf?\b"  # a call to libm's exp/expf names the symbol


def assert_vectorised_without_libm_exp(asm: str, width: str) -> None:
    """``asm`` holds packed ``width`` (ps/pd) division and FMA on >= 256-bit vector
    registers (``%ymm`` on AVX2, ``%ymm`` or ``%zmm`` on AVX-512) and no libm exp."""
    assert re.search(_PACKED_DIV.format(w=width), asm), "output loop is not vectorised"
    assert re.search(_PACKED_FMA.format(w=width), asm), "no packed FMA in the output loop"
    assert not re.search(_LIBM_EXP, asm), "the output loop calls libm exp"


@pytest.mark.parametrize("dtype, width", [(np.float32, "ps"), (np.float64, "pd")])
def test_output_loop_vectorises_without_libm_exp(dtype, width):
    """The fused output loop compiles to >= 256-bit SIMD with no call to expf/exp."""
    reason = _target_lacks_wide_simd()
    if reason:
        pytest.skip(reason)
    asm = _asm_of_output_loop(dtype)
    if not asm.strip():
        pytest.skip("Numba returned no assembly to inspect")
    assert_vectorised_without_libm_exp(asm, width)


_AVX512_SCRIPT = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_fast_exp as t
print(json.dumps({k: t._asm_of_output_loop(d) for k, d in
                  (("ps", np.float32), ("pd", np.float64))}))
"""


def test_output_loop_vectorises_for_an_avx512_target():
    """On an AVX-512 CPU (Zen 4: LLVM uses 512-bit ``%zmm`` there) the loop still
    vectorises without libm exp.  The listing is made for that CPU in a subprocess
    (``NUMBA_CPU_NAME=znver4``) and never run, so any x86-64 host can check it."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"inspects x86-64 assembly; this host is {platform.machine()}")
    env = dict(os.environ, NUMBA_CPU_NAME="znver4", NUMBA_CPU_FEATURES="")
    proc = subprocess.run(
        [sys.executable, "-c", _AVX512_SCRIPT, str(Path(__file__).parent)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listings = json.loads(proc.stdout.strip().splitlines()[-1])
    for width, asm in listings.items():
        assert_vectorised_without_libm_exp(asm, width)


@pytest.mark.parametrize("reg, ok", [("ymm", True), ("zmm", True), ("xmm", False)])
def test_vector_width_check_accepts_256_and_512_bit_registers(reg, ok):
    """The check above on AVX2 (``%ymm``) and AVX-512 (``%zmm``) style listings;
    128-bit ``%xmm`` only (scalar or SSE code) and a libm call fail it."""
    asm = (f"\tvdivps\t%{reg}2, %{reg}1, %{reg}0\n"
           f"\tvfmadd213ps\t%{reg}3, %{reg}2, %{reg}1\n")
    if ok:
        assert_vectorised_without_libm_exp(asm, "ps")
        with pytest.raises(AssertionError, match="libm exp"):
            assert_vectorised_without_libm_exp(asm + "\tmovabsq\t$expf, %rax\n", "ps")
    else:
        with pytest.raises(AssertionError, match="not vectorised"):
            assert_vectorised_without_libm_exp(asm, "ps")
