"""Finite, correct results for every finite input; nothing lost; deterministic.

Each backend is compared with a 60-digit mpmath evaluation of the definitions
(:mod:`highprec`), and with the other backends.
"""

import numpy as np
import pytest
from highprec import forward as highprec_forward
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simam_ref import simam, simam_backward
from simam_ref.official import official_forward

BACKENDS = ["numpy", "cpu", "cuda"]
RTOL = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-11}
METHODS = ["paper", "exact"]


def official_same_precision(x, lam=1e-4):
    """The official module in the input's own precision (how frameworks run it)."""
    return official_forward(x, lam, dtype=x.dtype)


def mean_condition(x, axes=None):
    """max over channels of max|x| / std: a float64 mean loses eps * this, relatively."""
    axes = tuple(range(2, x.ndim)) if axes is None else axes
    x64 = x.astype(np.float64) / np.max(np.abs(x)) if np.any(x) else x.astype(np.float64)
    std = x64.std(axis=axes)
    amax = np.abs(x64).max(axis=axes)
    ok = std > 0
    return float(np.max(amax[ok] / std[ok])) if np.any(ok) else 1.0


def assert_close_to_highprec(y, x, method, lam=1e-4, axes=None):
    """Within the dtype's tolerance, widened by float64's mean-representation limit."""
    dt = x.dtype.type
    want = highprec_forward(x, lam, method, axes)
    assert y.dtype == x.dtype
    assert np.all(np.isfinite(y))
    tiny = np.finfo(dt).tiny * 4
    rtol = RTOL[dt] + 64 * np.finfo(np.float64).eps * mean_condition(x, axes)
    np.testing.assert_allclose(y.astype(np.float64), want, rtol=rtol, atol=tiny)


def outlier_case(dtype):
    x = np.ones((1, 2, 3, 4), dtype=dtype)
    x[0, 0, 1, 2] = 1e25 if dtype != np.float16 else 6e4
    return x


CASES = {
    "huge_1e20": lambda dt: (np.random.default_rng(1).normal(size=(2, 3, 4, 4)) * 1e20).astype(dt),
    "huge_1e30": lambda dt: (np.random.default_rng(2).normal(size=(2, 3, 4, 4)) * 1e30).astype(dt),
    "near_max": lambda dt: (np.random.default_rng(3).uniform(-1, 1, (1, 2, 3, 3))
                            * np.finfo(dt).max).astype(dt),
    "tiny": lambda dt: (np.random.default_rng(4).normal(size=(1, 2, 3, 3)) * 1e-30).astype(dt),
    "subnormal": lambda dt: (np.random.default_rng(5).integers(-50, 50, (1, 2, 3, 3))
                             * np.finfo(dt).smallest_subnormal).astype(dt),
    "constant": lambda dt: np.full((2, 2, 3, 3), 0.1, dtype=dt),
    "outlier_1e25": outlier_case,
    "huge_constant": lambda dt: np.full((1, 2, 3, 3), -0.9 * np.finfo(dt).max, dtype=dt),
    "huge_constant_one_outlier": lambda dt: np.where(
        np.arange(9).reshape(1, 1, 3, 3) == 4, 0.5, 1.0).astype(dt) * np.finfo(dt).max * 0.9,
    "offset_1e7": lambda dt: (1e7 + np.random.default_rng(6).normal(size=(1, 2, 4, 4))).astype(dt),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_inputs_are_finite_and_correct(case, dtype, method, backend):
    x = CASES[case](dtype)
    assert np.all(np.isfinite(x))
    y = simam(x, method=method, backend=backend)
    assert_close_to_highprec(y, x, method)
    go = np.random.default_rng(12).normal(size=x.shape).astype(dtype)
    g = simam_backward(x, go, method=method, backend=backend)
    assert np.all(np.isfinite(g)), f"non-finite gradient for {case}"
    # against the float64 NumPy backward (itself checked against finite differences and
    # torch autograd in test_reference.py); the backward cancels, so the tolerance is
    # relative to the largest gradient
    want = simam_backward(x.astype(np.float64), go.astype(np.float64), method=method,
                          backend="numpy")
    tol = 2e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(g, want, rtol=tol, atol=tol * np.max(np.abs(want)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_channel_gain_is_sigmoid_half(backend):
    x = np.full((1, 3, 5, 5), -2.5e12)
    for method in METHODS:
        y = simam(x, method=method, backend=backend)
        np.testing.assert_allclose(y, x / (1 + np.exp(-0.5)), rtol=1e-15)


# --- the official formula's failures, one test each, and this project getting it right ---
def test_official_overflows_at_1e20_float32():
    x = CASES["huge_1e20"](np.float32)
    bad = ~np.isfinite(official_same_precision(x))
    assert bad.sum() > x.size // 2  # most outputs are inf/nan
    for backend in BACKENDS:
        assert_close_to_highprec(simam(x, backend=backend), x, "paper")


def test_official_all_non_finite_at_1e30_float32():
    x = CASES["huge_1e30"](np.float32)
    assert not np.any(np.isfinite(official_same_precision(x)))
    for backend in BACKENDS:
        assert_close_to_highprec(simam(x, backend=backend), x, "paper")


def test_official_divides_by_zero_when_one_neuron_per_channel():
    x = np.ones((1, 2, 1, 1), dtype=np.float32)
    assert np.all(np.isnan(official_same_precision(x)))
    with pytest.raises(ValueError, match="at least 2 neurons"):
        simam(x)


def test_official_overflows_in_float16_at_a_few_hundred():
    x = (np.random.default_rng(7).normal(size=(1, 2, 4, 4)) * 300).astype(np.float16)
    assert not np.all(np.isfinite(official_same_precision(x)))
    for backend in BACKENDS:
        y = simam(x, backend=backend)
        assert y.dtype == np.float16
        assert_close_to_highprec(y, x, "paper")


# --- nothing lost -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
def test_input_never_modified(backend, method):
    x = np.random.default_rng(8).normal(size=(2, 3, 4, 5)).astype(np.float32)
    keep = x.copy()
    simam(x, method=method, backend=backend)
    simam_backward(x, keep, method=method, backend=backend)
    np.testing.assert_array_equal(x, keep)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_stays_in_its_channel(backend, bad):
    x = np.random.default_rng(9).normal(size=(2, 3, 4, 5))
    x[1, 2, 3, 4] = bad
    for method in METHODS:
        y = simam(x, method=method, backend=backend)
        g = simam_backward(x, np.ones_like(x), method=method, backend=backend)
        clean = np.ones((2, 3), bool)
        clean[1, 2] = False
        want = highprec_forward(x[clean][:, None], 1e-4, method)[:, 0]
        np.testing.assert_allclose(y[clean], want, rtol=1e-11)
        assert np.all(np.isfinite(g[clean]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bit_identical_run_to_run(backend):
    x = np.random.default_rng(10).normal(size=(2, 4, 9, 7)).astype(np.float32)
    for method in METHODS:
        a = simam(x, method=method, backend=backend)
        b = simam(x, method=method, backend=backend)
        np.testing.assert_array_equal(a, b)
        ga = simam_backward(x, x, method=method, backend=backend)
        gb = simam_backward(x, x, method=method, backend=backend)
        np.testing.assert_array_equal(ga, gb)


@pytest.mark.parametrize("split", [False, True])
def test_cpu_bit_identical_across_thread_counts(split, monkeypatch):
    numba = pytest.importorskip("numba")
    from simam_ref import constants
    from simam_ref.kernels import cpu

    most = numba.config.NUMBA_NUM_THREADS  # the most set_num_threads allows, not the current
    if most < 2:
        pytest.skip(f"Numba has {most} thread here (NUMBA_NUM_THREADS): nothing to compare")
    if split:
        monkeypatch.setattr(constants, "SPLIT_MIN_M", 1024)
        monkeypatch.setattr(constants, "BLOCK", 256)
    x = np.random.default_rng(11).normal(size=(3, 5, 64, 64)).astype(np.float32)
    assert cpu.use_split(15, 64 * 64) == split
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2, most):
            numba.set_num_threads(threads)
            results.append((simam(x, backend="cpu", method="exact"),
                            simam_backward(x, x, backend="cpu")))
    finally:
        numba.set_num_threads(before)
    for y, g in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(g, results[0][1])


# --- fuzzing --------------------------------------------------------------------------------
@st.composite
def inputs(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    info = np.finfo(dtype)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3)),
             draw(st.integers(2, 4)))
    offset = draw(st.sampled_from([0.0, 1.0, 1e3]))
    # |normal + offset| < 10 * max(offset, 1): keep every value finite in the dtype
    top = int(np.log10(info.max)) - 2 - int(np.log10(max(offset, 1.0)))
    exponent = draw(st.integers(int(np.log10(info.tiny)) + 2, top))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = ((rng.normal(size=shape) + offset) * 10.0**exponent).astype(dtype)
    assert np.all(np.isfinite(x))
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs(), st.sampled_from(METHODS), st.sampled_from(["numpy", "cpu"]),
       st.sampled_from([1e-4, 0.1, 3.0]))
def test_fuzz_against_high_precision(x, method, backend, lam):
    y = simam(x, lam, method=method, backend=backend)
    assert_close_to_highprec(y, x, method, lam)
    go = np.linspace(-1.0, 1.0, x.size).reshape(x.shape).astype(x.dtype)
    g = simam_backward(x, go, lam, method=method, backend=backend)
    assert np.all(np.isfinite(g))
    want = simam_backward(x.astype(np.float64), go.astype(np.float64), lam, method=method,
                          backend="numpy")
    tol = 2e-5 if x.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(g, want, rtol=tol, atol=tol * np.max(np.abs(want)))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs(), st.sampled_from(METHODS))
def test_fuzz_cuda_matches_numpy(x, method):
    want = simam(x, method=method, backend="numpy")
    got = simam(x, method=method, backend="cuda")
    np.testing.assert_allclose(got, want, rtol=RTOL[x.dtype.type], atol=np.finfo(x.dtype).tiny * 4)


@pytest.mark.parametrize("scale", [1e-20, 1e-17, 1e-15, 1.0, 1e15, 1e17, 1e18, 1e19])
@pytest.mark.parametrize("lam", [1e-4, 1e-38])
@pytest.mark.parametrize("method", METHODS)
def test_float32_scales_across_the_fast_path_boundary(scale, lam, method):
    """The CPU kernel runs an all-float32 path only where that is safe; on either side of
    its range limits (std ~ 2**-60 .. 2**60, tiny lam) results stay correct."""
    x = (np.random.default_rng(13).normal(size=(2, 3, 4, 4)) * scale).astype(np.float32)
    for backend in ("cpu", "numpy"):
        assert_close_to_highprec(simam(x, lam, method=method, backend=backend), x, method, lam)
