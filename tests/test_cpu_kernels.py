"""Numba CPU kernels (``backend="cpu"``) against independent float64 transcriptions.

Covers: the official formula (paper), a brute-force leave-one-out minimiser of
eq 2 (exact), the NumPy backend (forward and backward), layouts (1D/2D/3D
spatial, odd sizes, M=2, non-contiguous, ``axes=``, ``out=x``), float32 accuracy,
determinism across runs, thread counts and the within-channel split path.
"""

from __future__ import annotations

import numba
import numpy as np
import oracles
import pytest
from conftest import cancelling_rows

from simam_ref import constants, reference, simam, simam_backward
from simam_ref.kernels import cpu

LAM = 1e-4


# Independent float64 oracles (tests/oracles.py): the official formula and the
# exact method found by minimising eq 2 numerically (no closed form).
official_paper = oracles.official


def brute_exact(x: np.ndarray, lam: float) -> np.ndarray:
    """Exact SimAM of an ``(N, C, *spatial)`` array by minimising eq 2 per neuron."""
    return oracles.exact_by_minimisation(x, lam, axes=None)


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    a64 = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a64 - ref) / np.maximum(np.abs(ref), 1e-300)))


def sample(shape, dtype, seed=0, loc=0.5, scale=2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + loc).astype(dtype)


@pytest.fixture
def small_blocks(monkeypatch):
    """Tiny blocks and a low split threshold: multi-block sums and the split path
    run on small arrays."""
    monkeypatch.setattr(constants, "BLOCK", 64)
    monkeypatch.setattr(constants, "SPLIT_MIN_M", 128)
    return cpu


def force_path(monkeypatch, split: bool) -> None:
    monkeypatch.setattr(cpu, "use_split", lambda c, m: split)


@pytest.fixture
def threads():
    """Restore Numba's thread count after a test changes it."""
    before = numba.get_num_threads()
    yield numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(before)


# ------------------------------------------------------------------- helpers
@numba.njit(cache=False)
def _fma(a, b, c):
    return cpu.base.fma(a, b, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fma_rounds_once(dtype):
    # a*a = 1 + 2**(1-h) + 2**(-2h) is a tie between two neighbours of 1 + 2**(1-h)
    # (h = 12 for float32, 27 for float64): rounded once, a*a - (1 + 2**(1-h)) is the
    # exact 2**(-2h); rounding the product first would give 0
    h = 12 if dtype == np.float32 else 27
    a = dtype(1.0 + 2.0**-h)
    c = dtype(-(1.0 + 2.0 ** (1 - h)))
    got = _fma(a, a, c)
    assert got == 2.0 ** (-2 * h)
    assert a * a + c == 0.0  # NumPy rounds the product: the case tells them apart


# ------------------------------------------------------------------ accuracy
SHAPES = [
    (2, 3, 5, 7),  # odd 2D
    (1, 2, 2),  # 1D spatial, M = 2
    (3, 1, 1, 2),  # M = 2 in 2D
    (2, 2, 3, 4, 5),  # 3D spatial
    (1, 3, 17),  # 1D odd
    (2, 4, 56, 56),
    (4, 8, 7, 7),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_paper_float64_matches_official_formula(shape):
    x = sample(shape, np.float64, seed=1)
    axes = tuple(range(2, len(shape)))
    y = simam(x, LAM, backend="cpu")
    assert y.dtype == np.float64
    assert rel_err(y, official_paper(x, LAM, axes)) < 1e-13


@pytest.mark.parametrize("shape", SHAPES)
def test_paper_float32_within_1e6_of_float64_formula(shape):
    x = sample(shape, np.float32, seed=2)
    axes = tuple(range(2, len(shape)))
    y = simam(x, LAM, backend="cpu")
    assert y.dtype == np.float32
    assert rel_err(y, official_paper(x.astype(np.float64), LAM, axes)) < 1e-6


@pytest.mark.parametrize("shape", [(1, 2, 2), (2, 2, 3, 3), (1, 1, 2, 3, 2), (1, 2, 11)])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 1e-6)])
def test_exact_matches_brute_force_leave_one_out(shape, dtype, tol):
    x = sample(shape, dtype, seed=3)
    y = simam(x, LAM, method="exact", backend="cpu")
    assert rel_err(y, brute_exact(x.astype(np.float64), LAM)) < tol


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES + [(1, 1, 300, 301)])
def test_forward_matches_numpy_backend(shape, dtype, method):
    x = sample(shape, dtype, seed=4)
    y = simam(x, 0.1, method=method, backend="cpu")
    ref = simam(x.astype(np.float64), 0.1, method=method, backend="numpy")
    assert rel_err(y, ref) < (1e-6 if dtype == np.float32 else 1e-13)


def test_float32_large_offset_channel_keeps_accuracy():
    # mean >> spread: u = x - mu must not be formed in float32
    x = sample((2, 3, 20, 20), np.float32, seed=5, loc=1000.0, scale=0.5)
    y = simam(x, LAM, backend="cpu")
    assert rel_err(y, official_paper(x.astype(np.float64), LAM, (2, 3))) < 1e-6


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e200, 2.0**-1060])
def test_float64_extreme_scales_match_numpy_backend(scale, method, small_blocks):
    # exercises the power-of-two scaling path (and, with small blocks, the split path)
    x = sample((1, 2, 20, 20), np.float64, seed=6) * scale
    y = simam(x, LAM, method=method, backend="cpu")
    ref = simam(x, LAM, method=method, backend="numpy")
    assert np.all(np.isfinite(y))
    assert rel_err(y, ref) < 1e-12


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("scale", [1e36, 1e-30])
def test_float32_extreme_values_stay_finite(scale, method):
    x = sample((1, 2, 8, 8), np.float32, seed=7) * np.float32(scale)
    y = simam(x, LAM, method=method, backend="cpu")
    assert np.all(np.isfinite(y))
    ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
    assert rel_err(y, ref) < 1e-6


def test_constant_channel_gain_is_sigmoid_half():
    x = np.full((1, 2, 4, 4), 3.25, dtype=np.float32)
    y = simam(x, LAM, backend="cpu")
    np.testing.assert_allclose(y, 3.25 / (1.0 + np.exp(-0.5)), rtol=2e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_stays_in_its_channel(dtype):
    x = sample((2, 3, 6, 6), dtype, seed=8)
    clean = simam(x, LAM, backend="cpu")
    x[1, 2, 3, 4] = np.nan
    y = simam(x, LAM, backend="cpu")
    assert np.all(np.isnan(y[1, 2]))
    mask = np.ones((2, 3), bool)
    mask[1, 2] = False
    np.testing.assert_array_equal(y[mask], clean[mask])


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("value, lam", [(1e300, 1e-4), (3.0, 1e-320), (-2.5e-310, 1e-4)])
def test_constant_channel_extreme_is_finite(value, lam, method):
    # S2 == 0 with a (scaled) lam that underflows: 1/(4 lam) overflows; E must be 1/2
    x = np.full((1, 2, 4, 4), value)
    y = simam(x, lam, method=method, backend="cpu")
    np.testing.assert_allclose(y, value / (1.0 + np.exp(-0.5)), rtol=1e-15)
    g = simam_backward(x, np.ones_like(x), lam, method=method, backend="cpu")
    assert np.all(np.isfinite(g))


def test_infinite_gain_argument_gives_unit_gain():
    # exact method, one outlier, tiny lam: its leave-one-out variance is 0, so E is
    # huge (or +inf) -> gain exactly 1
    x = np.zeros((1, 1, 64), np.float32)
    x[0, 0, 5] = 1.0
    y = simam(x, 1e-30, method="exact", backend="cpu")
    assert y[0, 0, 5] == np.float32(1.0)


# -------------------------------------------------------------------- layouts
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_contiguous_input(dtype):
    base = sample((3, 4, 10, 12), dtype, seed=9)
    x = base[:, ::2, :, ::2]
    y = simam(x, LAM, backend="cpu")
    ref = simam(np.ascontiguousarray(x), LAM, backend="cpu")
    np.testing.assert_array_equal(y, ref)
    xt = base.transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(
        simam(xt, LAM, backend="cpu"), simam(np.ascontiguousarray(xt), LAM, backend="cpu")
    )


@pytest.mark.parametrize("axes", [(1,), (0, 2), -1])
def test_axes_argument(axes):
    x = sample((4, 5, 6), np.float64, seed=10)
    ax = tuple(sorted(a % 3 for a in np.atleast_1d(axes)))
    y = simam(x, LAM, axes=axes, backend="cpu")
    assert rel_err(y, official_paper(x, LAM, ax)) < 1e-13


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_out_is_x(dtype, method):
    x = sample((2, 3, 9, 9), dtype, seed=11)
    expected = simam(x, LAM, method=method, backend="cpu")
    before = x.copy()
    y = simam(x, LAM, method=method, backend="cpu")
    np.testing.assert_array_equal(x, before)  # input untouched without out=
    res = simam(x, LAM, method=method, out=x, backend="cpu")
    assert res is x
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, expected)


def test_out_argument_separate_array():
    x = sample((2, 3, 5, 5), np.float32, seed=12)
    out = np.empty_like(x)
    res = simam(x, LAM, out=out, backend="cpu")
    assert res is out
    np.testing.assert_array_equal(out, simam(x, LAM, backend="cpu"))


# ------------------------------------------------------------------- backward
@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 2), (2, 2, 3, 4, 5), (2, 3, 56, 56)])
def test_backward_matches_numpy_backend(shape, dtype, method):
    x = sample(shape, dtype, seed=13)
    g = sample(shape, dtype, seed=14, loc=0.0, scale=1.0)
    gx = simam_backward(x, g, 0.1, method=method, backend="cpu")
    ref = simam_backward(x.astype(np.float64), g.astype(np.float64), 0.1, method=method,
                         backend="numpy")
    assert gx.dtype == dtype
    tol = 2e-6 if dtype == np.float32 else 1e-12
    # relative to each channel's gradient scale (the VJP has cancellation)
    scale = np.max(np.abs(ref), axis=tuple(range(2, len(shape))), keepdims=True)
    assert np.max(np.abs(gx - ref) / scale) < tol


@pytest.mark.parametrize("method", ["paper", "exact"])
def test_backward_matches_finite_differences(method):
    x = sample((1, 1, 3, 3), np.float64, seed=15)
    g = sample((1, 1, 3, 3), np.float64, seed=16, loc=0.0, scale=1.0)
    gx = simam_backward(x, g, 0.05, method=method, backend="cpu")
    h = 1e-6
    fd = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fp = np.sum(g * simam(xp, 0.05, method=method, backend="cpu"))
        fm = np.sum(g * simam(xm, 0.05, method=method, backend="cpu"))
        fd[idx] = (fp - fm) / (2 * h)
    np.testing.assert_allclose(gx, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_out_aliases_x_or_grad(dtype):
    x = sample((2, 3, 6, 6), dtype, seed=17)
    g = sample((2, 3, 6, 6), dtype, seed=18, loc=0.0)
    expected = simam_backward(x, g, LAM, backend="cpu")
    x1, g1 = x.copy(), g.copy()
    simam_backward(x1, g1, LAM, out=x1, backend="cpu")
    np.testing.assert_array_equal(x1, expected)
    np.testing.assert_array_equal(g1, g)
    x2, g2 = x.copy(), g.copy()
    simam_backward(x2, g2, LAM, out=g2, backend="cpu")
    np.testing.assert_array_equal(g2, expected)
    np.testing.assert_array_equal(x2, x)


# ---------------------------------------------------------------- determinism
def both(x, g, method):
    return (simam(x, LAM, method=method, backend="cpu"),
            simam_backward(x, g, LAM, method=method, backend="cpu"))


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_across_thread_counts(dtype, method, threads, small_blocks):
    if threads < 2:
        pytest.skip("needs more than one Numba thread")
    # 9 channels of M=400: channel path, multi-block sums; (1, 1, 3000): split path
    for shape in [(3, 3, 20, 20), (1, 1, 3000)]:
        x = sample(shape, dtype, seed=19)
        g = sample(shape, dtype, seed=20, loc=0.0)
        numba.set_num_threads(threads)
        many = both(x, g, method)
        numba.set_num_threads(1)
        one = both(x, g, method)
        for a, b in zip(many, one, strict=True):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_path_agrees_with_channel_path(dtype, method, monkeypatch, small_blocks):
    # The path is a function of the shape (use_split), so the paths need not share bits.
    # They do for float64 (same blocked sums); float32 takes one-pass statistics on the
    # channel path (and float32 element code for the paper backward) and agrees to
    # float32 rounding.
    for shape in [(1, 1, 40, 37), (1, 2, 1000), (2, 3, 129)]:
        x = sample(shape, dtype, seed=21)
        g = sample(shape, dtype, seed=22, loc=0.0)
        force_path(monkeypatch, True)
        split = both(x, g, method)
        force_path(monkeypatch, False)
        chan = both(x, g, method)
        if dtype == np.float64:
            assert split[0].tobytes() == chan[0].tobytes()
            assert split[1].tobytes() == chan[1].tobytes()
        else:
            np.testing.assert_allclose(split[0], chan[0], rtol=3e-7, atol=1e-30)
            scale = np.max(np.abs(split[1]), axis=-1, keepdims=True)
            assert np.max(np.abs(split[1] - chan[1]) / scale) < 1e-6
        ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
        assert rel_err(split[0], ref) < (1e-6 if dtype == np.float32 else 1e-13)


def test_split_path_runs_on_large_single_channel():
    # the default constants choose the split for one 1024x1024 channel
    assert cpu.use_split(1, 1024 * 1024) and cpu.use_split(2, 1024 * 1024)
    assert not cpu.use_split(4096, 3136)
    x = sample((1, 2, 1024, 1024), np.float32, seed=23)
    y = simam(x, LAM, backend="cpu")
    ref = simam(x.astype(np.float64), LAM, backend="numpy")
    assert rel_err(y, ref) < 1e-6


def test_split_path_in_place(monkeypatch, small_blocks):
    force_path(monkeypatch, True)
    x = sample((1, 2, 500), np.float32, seed=24)
    expected = simam(x, LAM, backend="cpu")
    simam(x, LAM, out=x, backend="cpu")
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_run_to_run_bit_identical(dtype):
    x = sample((4, 16, 28, 28), dtype, seed=25)
    g = sample((4, 16, 28, 28), dtype, seed=26, loc=0.0)
    first = both(x, g, "paper")
    for _ in range(3):
        again = both(x, g, "paper")
        for a, b in zip(first, again, strict=True):
            assert a.tobytes() == b.tobytes()


def test_kernel_rejects_bad_arrays():
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(ValueError):
        cpu.forward_2d(x, LAM, False, np.zeros((2, 8), np.float64))
    with pytest.raises(ValueError):
        cpu.forward_2d(np.zeros((2, 8, 2), np.float32)[:, :, 0], LAM, False, x)
    with pytest.raises(TypeError):
        cpu.forward_2d(x.astype(np.int32), LAM, False, x.astype(np.int32))


# ------------------------------------------------------------ read-only inputs
def _read_only(a: np.ndarray, kind: str, path) -> np.ndarray:
    """``a``'s values in a read-only array made the way ``kind`` names."""
    if kind == "flag":
        r = a.copy()
        r.flags.writeable = False
    elif kind == "frombuffer":
        r = np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)
    elif kind == "memmap":
        a.tofile(path)
        r = np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape)
    else:  # broadcast: every image of the batch is the same (zero batch stride)
        r = np.broadcast_to(a[:1], a.shape)
    assert not r.flags.writeable
    return r


@pytest.mark.parametrize("kind", ["flag", "frombuffer", "memmap", "broadcast"])
@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_input_and_grad(dtype, method, split, kind, monkeypatch, small_blocks,
                                  tmp_path):
    force_path(monkeypatch, split)
    shape = (2, 3, 150)  # M = 150: three blocks of 64 on the split path
    x0 = sample(shape, dtype, seed=27)
    g0 = sample(shape, dtype, seed=28, loc=0.0)
    if kind == "broadcast":
        x0 = np.repeat(x0[:1], 2, axis=0)
        g0 = np.repeat(g0[:1], 2, axis=0)
    x = _read_only(x0, kind, tmp_path / "x.bin")
    g = _read_only(g0, kind, tmp_path / "g.bin")
    exact = method == "exact"
    x64, g64 = x0.astype(np.float64).reshape(6, -1), g0.astype(np.float64).reshape(6, -1)
    ref_y = np.empty_like(x64)
    ref_g = np.empty_like(x64)
    reference.forward_2d(x64, LAM, exact, ref_y)
    reference.backward_2d(x64, g64, LAM, exact, ref_g)
    ref_y, ref_g = ref_y.reshape(shape), ref_g.reshape(shape)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    y = simam(x, LAM, method=method, backend="cpu")
    assert rel_err(y, ref_y) < tol
    for gx in (simam_backward(x, g, LAM, method=method, backend="cpu"),
               simam_backward(x, g0, LAM, method=method, backend="cpu"),
               simam_backward(x0, g, LAM, method=method, backend="cpu")):
        scale = np.max(np.abs(ref_g), axis=-1, keepdims=True)
        assert np.max(np.abs(gx - ref_g) / scale) < tol
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_view_in_place_through_writable_alias(dtype, split, monkeypatch,
                                                         small_blocks):
    # x is a read-only view of out's memory: in place, written through out
    force_path(monkeypatch, split)
    x0 = sample((1, 2, 300), dtype, seed=29)
    g0 = sample((1, 2, 300), dtype, seed=30, loc=0.0)
    expected = simam(x0, LAM, backend="cpu")
    expected_g = simam_backward(x0, g0, LAM, backend="cpu")
    base = x0.copy()
    ro = base.view()
    ro.flags.writeable = False
    assert simam(ro, LAM, out=base, backend="cpu") is base
    np.testing.assert_array_equal(base, expected)
    for alias in ("x", "g"):
        xb, gb = x0.copy(), g0.copy()
        xr, gr = xb.view(), gb.view()
        xr.flags.writeable = False
        gr.flags.writeable = False
        target = xb if alias == "x" else gb
        simam_backward(xr, gr, LAM, out=target, backend="cpu")
        np.testing.assert_array_equal(target, expected_g)


def test_kernel_rejects_read_only_output():
    x = np.zeros((2, 8), np.float32)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cpu.forward_2d(x, LAM, False, ro)
    with pytest.raises(ValueError, match="read-only"):
        cpu.backward_2d(x, x, LAM, False, ro)


# ------------------------------------------------------------- channels-last
def channels_last(x: np.ndarray) -> np.ndarray:
    """``x`` (N, C, *spatial) copied to channels-last memory, shape (N, *spatial, C)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


@pytest.fixture
def nlc_spy(monkeypatch):
    """Record the arrays the channels-last kernels receive."""
    seen = []
    for name in ("forward_nlc", "backward_nlc"):
        real = getattr(cpu, name)

        def spy(*args, _real=real):
            seen.append(args)
            return _real(*args)

        monkeypatch.setattr(cpu, name, spy)
    return seen


#: ``NLC_COLUMN_MIN`` values that run the channels-last statistics blocked in registers
#: on every tile (1) and on none (huge).
COLUMN_PATHS = pytest.mark.parametrize("column_min", [1, 1 << 30], ids=["columns", "rows"])


@COLUMN_PATHS
@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("shape", [(2, 24, 7, 7), (3, 5, 4, 6), (1, 300, 3, 3), (2, 4, 2, 3, 5),
                                   (2, 70, 9, 4)])
def test_channels_last_matches_reference_without_copy(shape, method, column_min, nlc_spy,
                                                      monkeypatch):
    monkeypatch.setattr(constants, "NLC_TILE", 16 if shape[1] < 70 else 4096)  # partial tiles
    monkeypatch.setattr(constants, "NLC_COLUMN_MIN", column_min)
    x = sample(shape, np.float32, seed=31)
    g = sample(shape, np.float32, seed=32, loc=0.0)
    xl, gl = channels_last(x), channels_last(g)
    axes = tuple(range(1, x.ndim - 1))
    ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
    ref_g = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM, method=method,
                           backend="numpy")
    y = simam(xl, LAM, method=method, axes=axes, backend="cpu")
    gx = simam_backward(xl, gl, LAM, method=method, axes=axes, backend="cpu")
    assert len(nlc_spy) == 2
    assert np.shares_memory(nlc_spy[0][0], xl) and np.shares_memory(nlc_spy[1][1], gl)
    assert y.flags.c_contiguous and gx.flags.c_contiguous
    assert rel_err(np.moveaxis(y, -1, 1), ref) < 1e-6
    scale = np.max(np.abs(ref_g), axis=tuple(range(2, len(shape))), keepdims=True)
    assert np.max(np.abs(np.moveaxis(gx, -1, 1) - ref_g) / scale) < 2e-6
    # the same memory seen as (N, C, *spatial) with the default axes
    xv = np.moveaxis(xl, -1, 1)
    yv = simam(xv, LAM, method=method, backend="cpu")
    assert len(nlc_spy) == 3 and np.shares_memory(nlc_spy[2][0], xl)
    np.testing.assert_array_equal(yv, np.moveaxis(y, -1, 1))


@pytest.mark.parametrize("method", ["paper", "exact"])
def test_channels_last_in_place_and_aliases(method, nlc_spy):
    x = channels_last(sample((2, 20, 5, 6), np.float32, seed=33))
    g = channels_last(sample((2, 20, 5, 6), np.float32, seed=34, loc=0.0))
    y = simam(x, LAM, method=method, axes=(1, 2), backend="cpu")
    gx = simam_backward(x, g, LAM, method=method, axes=(1, 2), backend="cpu")
    xc = x.copy()
    simam(xc, LAM, method=method, axes=(1, 2), out=xc, backend="cpu")
    np.testing.assert_array_equal(xc, y)
    x1, g1 = x.copy(), g.copy()
    simam_backward(x1, g1, LAM, method=method, axes=(1, 2), out=x1, backend="cpu")
    np.testing.assert_array_equal(x1, gx)
    np.testing.assert_array_equal(g1, g)
    x2, g2 = x.copy(), g.copy()
    simam_backward(x2, g2, LAM, method=method, axes=(1, 2), out=g2, backend="cpu")
    np.testing.assert_array_equal(g2, gx)
    np.testing.assert_array_equal(x2, x)
    assert len(nlc_spy) == 5


@pytest.mark.parametrize("cols", [6, 5])
@pytest.mark.parametrize("method", ["paper", "exact"])
def test_channels_last_row_calls_match_nested_loops(method, cols, monkeypatch):
    """Tiles of at least ``NLC_ROW_CALL`` channels run each neuron row as a call of a
    row function (the backward's sums two rows a call, the last one alone when the
    rows are odd: 25), narrower tiles the nested twin loops, one row at a time: both
    give the same bits (forward out of place and in place; backward into a new
    array, over x, over g) and match the float64 reference."""
    monkeypatch.setattr(constants, "NLC_TILE", 16)  # tiles of 16 and a partial one of 4
    x = sample((2, 20, 5, cols), np.float32, seed=43)
    g = sample((2, 20, 5, cols), np.float32, seed=44, loc=0.0)
    ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
    ref_g = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM, method=method,
                           backend="numpy")
    xl, gl = channels_last(x), channels_last(g)
    runs = {}
    for row_call in (1, 10**9):
        monkeypatch.setattr(constants, "NLC_ROW_CALL", row_call)
        kw = {"method": method, "axes": (1, 2), "backend": "cpu"}
        xi, x1, g1, x2, g2 = xl.copy(), xl.copy(), gl.copy(), xl.copy(), gl.copy()
        runs[row_call] = [simam(xl, LAM, **kw), simam(xi, LAM, out=xi, **kw),
                          simam_backward(xl, gl, LAM, **kw),
                          simam_backward(x1, g1, LAM, out=x1, **kw),
                          simam_backward(x2, g2, LAM, out=g2, **kw)]
    for a, b in zip(runs[1], runs[10**9]):
        np.testing.assert_array_equal(a, b)
    y, yi, gx, gx1, gx2 = runs[1]
    np.testing.assert_array_equal(yi, y)
    np.testing.assert_array_equal(gx1, gx)
    np.testing.assert_array_equal(gx2, gx)
    assert rel_err(np.moveaxis(y, -1, 1), ref) < 1e-6
    scale = np.max(np.abs(ref_g), axis=(2, 3), keepdims=True)
    assert np.max(np.abs(np.moveaxis(gx, -1, 1) - ref_g) / scale) < 2e-6


@pytest.mark.parametrize("row_call", [1, 10**9])
@pytest.mark.parametrize("out", ["new", "x", "g"])
def test_channels_last_backward_sums_fallback_overwrites_kept_terms(out, row_call,
                                                                    monkeypatch):
    """The channels-last float32 backward keeps ``go g + q alpha`` in the output
    during its sums pass (when the output is neither input); a tile whose sums fail
    (``grad_out`` of one channel near float32's range, the others fine) reruns in
    float64 and must overwrite every kept value: the result matches the float64
    reference, with a NaN-filled output buffer and writing over ``x`` or ``g``
    alike, from the row calls and from the nested loops."""
    monkeypatch.setattr(constants, "NLC_TILE", 8)
    monkeypatch.setattr(constants, "NLC_ROW_CALL", row_call)
    x = sample((2, 12, 6, 6), np.float32, seed=41)
    g = sample((2, 12, 6, 6), np.float32, seed=42, loc=0.0)
    # mean |grad_out| beyond 2**60 (the range check): those tiles (batch 1 channels
    # 0-7, batch 0 channels 8-11, a partial tile) run float64
    g[1, 5] *= np.float32(1e30)
    g[0, 9] *= np.float32(1e30)
    ref = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM, backend="numpy")
    xl, gl = channels_last(x), channels_last(g)
    dest = {"new": np.full_like(xl, np.nan), "x": xl, "g": gl}[out]
    gx = simam_backward(xl, gl, LAM, axes=(1, 2), out=dest, backend="cpu")
    assert gx is dest
    scale = np.max(np.abs(ref), axis=(2, 3), keepdims=True)
    err = np.max(np.abs(np.moveaxis(gx, -1, 1) - ref) / scale, axis=(2, 3))
    assert np.max(err) < 2e-6
    # the fallback tiles carry float64 accuracy (one float32 rounding; measured at
    # most 6.5e-8), which the float32 path misses on this data (1.6e-7 and 1.15e-7
    # in the other two tiles): proof that those tiles were rerun, not kept from the
    # float32 pass
    assert np.max(err[1, :8]) < 9e-8 and np.max(err[0, 8:]) < 9e-8
    assert np.max(err[0, :8]) > 9e-8 and np.max(err[1, 8:]) > 9e-8


@pytest.mark.parametrize("inplace", [False, True])
@COLUMN_PATHS
def test_channels_last_odd_channels_keep_neighbours_bits(inplace, column_min, monkeypatch):
    # a NaN channel and a huge-offset channel (not the all-float32 loop) next to clean ones
    monkeypatch.setattr(constants, "NLC_TILE", 8)
    monkeypatch.setattr(constants, "NLC_COLUMN_MIN", column_min)
    x = sample((2, 12, 6, 6), np.float32, seed=35)
    clean = simam(channels_last(x), LAM, axes=(1, 2), backend="cpu")
    x[1, 3, 2, 2] = np.nan
    x[0, 5] = x[0, 5] * np.float32(1e-3) + np.float32(3e30)
    xl = channels_last(x)
    y = simam(xl, LAM, axes=(1, 2), out=xl if inplace else None, backend="cpu")
    assert np.all(np.isnan(y[1, :, :, 3]))
    mask = np.ones((2, 12), bool)
    mask[1, 3] = mask[0, 5] = False
    np.testing.assert_array_equal(np.moveaxis(y, -1, 1)[mask], np.moveaxis(clean, -1, 1)[mask])
    ref = simam(x[0:1, 5:6].astype(np.float64), LAM, backend="numpy")
    assert rel_err(y[0:1, :, :, 5:6].transpose(0, 3, 1, 2), ref) < 1e-6


@COLUMN_PATHS
def test_channels_last_bit_identical_across_thread_counts(threads, column_min, monkeypatch):
    if threads < 2:
        pytest.skip("needs more than one Numba thread")
    monkeypatch.setattr(constants, "NLC_TILE", 8)
    monkeypatch.setattr(constants, "NLC_COLUMN_MIN", column_min)
    x = channels_last(sample((3, 40, 5, 5), np.float32, seed=36))
    g = channels_last(sample((3, 40, 5, 5), np.float32, seed=37, loc=0.0))
    res = []
    for nt in (threads, 1):
        numba.set_num_threads(nt)
        res.append((simam(x, LAM, axes=(1, 2), backend="cpu").tobytes(),
                    simam_backward(x, g, LAM, axes=(1, 2), backend="cpu").tobytes()))
    assert res[0] == res[1]


def test_channels_last_column_statistics_keep_each_channels_bits_in_any_tile(monkeypatch):
    """The blocked statistics read 32 channels at a time (fewer with masks): a channel
    gets the same bits in tiles of 8, 40 or all 70 channels, in a full chunk or a
    masked one."""
    monkeypatch.setattr(constants, "NLC_COLUMN_MIN", 1)
    x = channels_last(sample((2, 70, 7, 5), np.float32, seed=40))
    g = channels_last(sample((2, 70, 7, 5), np.float32, seed=41, loc=0.0))
    res = []
    for tile in (8, 40, 4096):
        monkeypatch.setattr(constants, "NLC_TILE", tile)
        res.append((simam(x, LAM, axes=(1, 2), backend="cpu").tobytes(),
                    simam_backward(x, g, LAM, axes=(1, 2), backend="cpu").tobytes()))
    assert res[0] == res[1] == res[2]


def test_channels_last_statistics_bits_do_not_depend_on_tile_or_path():
    """``nlc_stats`` on data whose float64 sums round in an order-dependent way
    (exponents over 2**-30..2**30): each channel's ``mu`` and ``S2`` are those of a
    running sum over its neurons in order (replayed in NumPy, bit for bit) in tiles
    of 8-70 channels, in full or partial 32-channel chunks, on the register path and
    on the row-loop path; the same sum taken backwards rounds differently."""
    m, nc = 37, 70
    rng = np.random.default_rng(42)
    x = (rng.standard_normal((m, nc)) * 2.0 ** rng.integers(-30, 31, (m, nc))).astype(np.float32)
    x[0] = 0.0  # x - x[0] = x: squares exact in float64, so the kernels' FMA rounds as here
    v = x.astype(np.float64)
    s1, s2 = np.zeros(nc), np.zeros(nc)
    for row in v[1:]:
        s1 = s1 + row
        s2 = s2 + row * row
    expect = (x[0] + s1 / m, np.maximum(s2 - s1 * s1 / m, 0.0))
    backwards = np.zeros(nc)
    for row in v[:0:-1]:
        backwards = backwards + row
    assert np.any(backwards != s1)  # the data can tell orders apart
    xf = x.reshape(-1)
    for width in (8, 32, 40, 70):
        for column_min in (1, 1 << 30):
            mu, var_sum = np.empty(nc), np.empty(nc)
            for c0 in range(0, nc, width):
                t = min(width, nc - c0)
                tile_mu, tile_s2 = cpu.nlc.nlc_stats(xf, cpu.nlc.Tile(c0, nc, m, t),
                                                     np.empty((3, width)), column_min)
                mu[c0:c0 + t], var_sum[c0:c0 + t] = tile_mu, tile_s2
            assert mu.tobytes() == expect[0].tobytes(), (width, column_min)
            assert var_sum.tobytes() == expect[1].tobytes(), (width, column_min)


@pytest.mark.parametrize("gscale", [1.0, 1e30, 1e-30, 0.0])
@pytest.mark.parametrize("xscale, loc", [(1.0, 0.5), (1e-30, 0.0), (0.5, 1000.0), (1e30, 0.0)])
def test_float32_backward_float32_code_and_its_fallback(xscale, loc, gscale):
    # the paper backward runs float32 element code where the statistics and the sums
    # allow it, float64 elsewhere (grad_out near overflow or underflow, extreme x)
    x = (sample((2, 3, 7, 7), np.float64, seed=38) * xscale + loc).astype(np.float32)
    g = (sample((2, 3, 7, 7), np.float64, seed=39, loc=0.0) * gscale).astype(np.float32)
    gx = simam_backward(x, g, LAM, backend="cpu")
    ref = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM, backend="numpy")
    assert np.all(np.isfinite(gx))
    scale = np.max(np.abs(ref), axis=(2, 3), keepdims=True)
    if gscale == 0.0:
        assert np.all(gx == 0.0)
    else:
        assert np.max(np.abs(gx - ref) / scale) < 2e-6


@pytest.mark.parametrize("alias", ["x", "g"])
def test_float32_backward_nan_grad_stays_in_its_channel(alias):
    x = sample((2, 3, 6, 6), np.float32, seed=40)
    g = sample((2, 3, 6, 6), np.float32, seed=41, loc=0.0)
    clean = simam_backward(x, g, LAM, backend="cpu")
    g[0, 1, 2, 2] = np.nan
    xc, gc = x.copy(), g.copy()
    res = simam_backward(xc, gc, LAM, out=xc if alias == "x" else gc, backend="cpu")
    assert np.all(np.isnan(res[0, 1]))
    mask = np.ones((2, 3), bool)
    mask[0, 1] = False
    np.testing.assert_array_equal(res[mask], clean[mask])


# ---------------------------------- small float32 rows: grouped forward and backward
def mixed_rows(nc: int, m: int, seed: int) -> np.ndarray:
    """float32 ``(nc, m)`` rows, a few of them far outside the all-float32 fast range."""
    x = sample((nc, m), np.float32, seed=seed)
    x[3] = x[3] * np.float32(1e31)  # |mu|, S2 beyond the fast range: float64 row code
    x[nc - 2] = np.float32(7.0)  # constant row
    return x


def reference_rows(x: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    x64 = x.astype(np.float64)
    out = np.empty_like(x64)
    if g is None:
        reference.forward_2d(x64, LAM, False, out)
    else:
        reference.backward_2d(x64, g.astype(np.float64), LAM, False, out)
    return out


def rows_to_nlc(a: np.ndarray, batch: int = 4) -> np.ndarray:
    """``(channels, M)`` rows as C-contiguous channels-last ``(batch, M, channels //
    batch)`` data (row ``b * (channels // batch) + c`` is channel ``c`` of item ``b``)."""
    nc, m = a.shape
    return np.ascontiguousarray(a.reshape(batch, nc // batch, m).transpose(0, 2, 1))


def nlc_to_rows(a: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rows_to_nlc`: ``(batch, M, C)`` as ``(batch C, M)`` rows."""
    return a.transpose(0, 2, 1).reshape(-1, a.shape[1])


def assert_backward_rows_ok(x: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
    """``out = cpu.backward_2d(x, g)`` is within 2e-6 of the float64 reference relative
    to each row's largest gradient (the VJP cancels within a row), and the kernel
    gives the same bits written over ``x`` or ``g`` and with one thread (the caller's
    ``threads`` fixture restores the count)."""
    ref = reference_rows(x, g)
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    assert np.all(np.abs(out.astype(np.float64) - ref) <= 2e-6 * scale)
    for target in ("x", "g"):
        x1, g1 = x.copy(), g.copy()
        o1 = x1 if target == "x" else g1
        cpu.backward_2d(x1, g1, LAM, False, o1)
        assert o1.tobytes() == out.tobytes()
    numba.set_num_threads(1)
    one = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, False, one)
    assert one.tobytes() == out.tobytes()


@pytest.mark.parametrize("m", [2, 15, 16, 17, 49, 128])
def test_grouped_forward_matches_reference_and_is_per_row(m, monkeypatch, threads):
    assert m <= constants.FLAT_MAX_M
    calls = []
    grouped = cpu.grouped.forward_flat_f32
    monkeypatch.setattr(cpu.grouped, "forward_flat_f32",
                        lambda *a: calls.append(1) or grouped(*a))
    nc = 2 * (constants.FLAT_ELEMS // m) + 5  # a partial last group
    x = mixed_rows(nc, m, seed=41)
    out = np.empty_like(x)
    cpu.forward_2d(x, LAM, False, out)
    assert calls
    assert rel_err(out, reference_rows(x)) <= 2e-6
    # every row's bits are its own: alone, in other groupings, in place, any thread count
    for r in (0, 3, nc - 1):
        alone = np.empty_like(x[r:r + 1])
        cpu.forward_2d(x[r:r + 1], LAM, False, alone)
        assert alone.tobytes() == out[r:r + 1].tobytes()
    monkeypatch.setattr(constants, "FLAT_ELEMS", 3 * m)
    other = np.empty_like(x)
    cpu.forward_2d(x, LAM, False, other)
    assert other.tobytes() == out.tobytes()
    inplace = x.copy()
    cpu.forward_2d(inplace, LAM, False, inplace)
    assert inplace.tobytes() == out.tobytes()
    numba.set_num_threads(1)
    one = np.empty_like(x)
    cpu.forward_2d(x, LAM, False, one)
    assert one.tobytes() == out.tobytes()


@pytest.mark.parametrize("m", [16, 49, 196, 1024, 1025, 4097])
def test_channel_backward_matches_reference_and_aliases(m, threads, monkeypatch):
    monkeypatch.setattr(constants, "FLAT_BW_MAX_M", 0)  # short rows too: no grouped path
    monkeypatch.setattr(constants, "BW_SUMS_BLOCK", 1000)  # several sums blocks per row
    nc = 70  # more than one chunk of rows
    x = mixed_rows(nc, m, seed=43)
    g = sample((nc, m), np.float32, seed=44, loc=0.0)
    g[5] = g[5] * np.float32(1e30)  # mean |go| beyond 2**60: float64 fallback row
    out = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, False, out)
    alone = np.empty_like(x[7:8])
    cpu.backward_2d(x[7:8], g[7:8], LAM, False, alone)
    assert alone.tobytes() == out[7:8].tobytes()
    assert_backward_rows_ok(x, g, out)


@pytest.mark.parametrize("m", [16, 17, 49, 196, 256, 784, 4096])
def test_grouped_backward_matches_reference_and_is_per_row(m, monkeypatch, threads):
    assert m <= constants.FLAT_BW_MAX_M
    calls = []
    grouped = cpu.grouped_backward.backward_flat_f32
    monkeypatch.setattr(cpu.grouped_backward, "backward_flat_f32",
                        lambda *a: calls.append(1) or grouped(*a))
    nc = 2 * (constants.FLAT_BW_ELEMS // m) + 5  # a partial last group
    x = mixed_rows(nc, m, seed=45)
    g = sample((nc, m), np.float32, seed=46, loc=0.0)
    g[5] = g[5] * np.float32(1e30)  # mean |go| beyond 2**60: float64 fallback row
    out = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, False, out)
    assert calls
    # every row's bits are its own: alone, in other groupings, aliased, any thread count
    for r in (0, 3, 5, nc - 1):
        alone = np.empty_like(x[r:r + 1])
        cpu.backward_2d(x[r:r + 1], g[r:r + 1], LAM, False, alone)
        assert alone.tobytes() == out[r:r + 1].tobytes()
    monkeypatch.setattr(constants, "FLAT_BW_ELEMS", 3 * m)
    other = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, False, other)
    assert other.tobytes() == out.tobytes()
    assert_backward_rows_ok(x, g, out)


@pytest.mark.parametrize("m", [1, 16, 49, 196, 3136])
def test_statistics_with_grad_sum_match_float64_sums(m):
    """The grouped backward's one pass over a row: ``(mu, S2)`` as the forward's
    statistics (float64 sums of ``x - x[0]``) and ``sum |go|`` in float32, whose
    overflow to ``inf`` fails the range check (the float64 row code takes over)."""
    stats, backward_f32 = cpu.stats, cpu.backward_f32
    x = sample((3, m), np.float32, seed=47, loc=3.0)
    g = sample((3, m), np.float32, seed=48, loc=0.0)
    x[1] = np.float32(7.0)  # constant row: mu exactly, S2 = 0
    g[2] = np.float32(3e38)  # sum |go| beyond float32
    for c in range(3):
        mu, s2, sg = stats.row_stats_go_f32(x, g, c, m)
        x64 = x[c].astype(np.float64)
        mean = float(np.mean(x64))
        np.testing.assert_allclose((mu, s2), stats.row_stats_f32(x, c, m), rtol=1e-13)
        assert mu == pytest.approx(mean, rel=1e-14)
        assert s2 == pytest.approx(float(np.sum((x64 - mean) ** 2)), rel=1e-10, abs=1e-300)
        if c == 1:
            assert (mu, s2) == (7.0, 0.0)
        if c == 2:  # mean |go| 3e38: out of range whether or not the sum overflowed
            assert sg == np.inf or m == 1
            assert not backward_f32.bw_sums_ok(0.0, 0.0, float(sg), m)
        else:
            assert sg == pytest.approx(float(np.sum(np.abs(g[c].astype(np.float64)))), rel=1e-5)
            assert backward_f32.bw_sums_ok(0.0, 0.0, float(sg), m)


@pytest.mark.parametrize("m", [5, 49, 64, 1100])
@pytest.mark.parametrize("out", ["new", "x", "g"])
def test_grouped_backward_falls_back_on_the_rows_its_range_checks_reject(m, out):
    """One group of the grouped backward: exactly the rows whose statistics or
    ``mean |go|`` (summed in float32 with the statistics) are out of the float32
    range run the float64 row code (``oks[i] == 0`` after the group), and every row
    matches the float64 reference, whether each row's output follows its sums (5:
    not padded, 49, 64: padded and not) or every row's sums come first (1100),
    written over ``x``, ``g`` or a new array (a padded row must not write into a row
    the float64 code still has to read)."""
    assert 64 < cpu.grouped_backward.ROW_OUT_MAX_M < 1100
    n = 12
    x = sample((n, m), np.float32, seed=49)
    g = sample((n, m), np.float32, seed=50, loc=0.0)
    g[2] *= np.float32(1e30)  # mean |go| above 2**60
    g[5] *= np.float32(1e-30)  # mean |go| below 2**-60
    g[7] = np.float32(1e37)  # sum |go| overflows float32
    g[9] = np.float32(0.0)  # exactly 0: the float32 code
    x[10] *= np.float32(1e31)  # |mu|, S2 beyond the fast range
    grouped = cpu.grouped_backward
    sc = np.empty((3, n * m + grouped.Z_PAD), np.float32)
    rs, fs, oks = np.empty((4, n)), np.empty((6, n), np.float32), np.empty(n, np.int64)
    ref = reference_rows(x, g)
    dest = {"new": np.full_like(x, np.nan), "x": x, "g": g}[out]
    grouped._group(x, g, dest, 0, n, LAM, {"new": 0, "x": 1, "g": 2}[out], sc, rs, fs, oks)
    assert [i for i in range(n) if oks[i] == 0] == [2, 5, 7, 10]
    assert np.all(np.isfinite(dest))
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    assert np.all(np.abs(dest.astype(np.float64) - ref) <= 2e-6 * scale)
    # a group's last row writes nothing past it (the next group's rows)
    part = np.full_like(x, np.nan)
    grouped._group(x, g, part, 0, n - 1, LAM, 0, sc, rs, fs, oks)
    assert np.all(np.isnan(part[n - 1])) and np.all(np.isfinite(part[:n - 1]))


def test_group_rows_grow_with_the_input_and_keep_threads_busy(threads):
    """Groups of the grouped kernels: ``elems`` neurons for small inputs, up to
    ``GROUP_GROWTH`` times more for large ones, and in between every thread keeps
    ``GROUPS_PER_THREAD`` groups; work items of up to 32 groups, as many as leave
    every thread ``GROUPS_PER_THREAD`` of them; a row longer than ``elems`` of a
    small input is a group alone."""
    m, elems = 49, 8192
    growth, per_thread = constants.GROUP_GROWTH, constants.GROUPS_PER_THREAD
    assert growth > 1
    for t in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        numba.set_num_threads(t)
        assert cpu.group_rows(100, m, elems) == (elems // m, 1)
        rows, per_item = cpu.group_rows(10**7, m, elems)
        assert rows == growth * elems // m and per_item == 32
        nc = 2 * elems * per_thread * t // m  # each thread's share: 2 * elems neurons
        rows, per_item = cpu.group_rows(nc, m, elems)
        assert rows == 2 * elems // m and per_item == 1
        assert -(-nc // rows) >= per_thread * t
        rows, per_item = cpu.group_rows(nc * 16, m, elems)  # grown groups, several an item
        items = -(-nc * 16 // (rows * per_item))
        assert rows == growth * elems // m and per_item > 1
        assert per_thread * t <= items < 2 * per_thread * t + 1
    assert cpu.group_rows(3, 5000, elems) == (1, 1)


def test_grouped_backward_scratch_rows_start_apart_modulo_4k():
    """The grouped backward's three scratch rows (two stored while another is read)
    start at least 1 KiB apart modulo 4 KiB for every group size up to the largest
    (grown) group: a load whose low 12 address bits match a buffered store's waits
    for it (4K aliasing), which made the 7x7 terms loop 1.5x slower with rows
    ``e + Z_PAD`` elements apart."""
    grouped = cpu.grouped_backward
    for e in range(1, constants.GROUP_GROWTH * constants.FLAT_BW_ELEMS + 1):
        sc = grouped.backward_scratch(e)
        assert sc.shape[0] == 3 and sc.shape[1] >= e + grouped.Z_PAD
        for k in (1, 2):
            d = k * sc.strides[0] % 4096
            assert min(d, 4096 - d) >= 1024, e
    assert sc.dtype == np.float32 and sc.flags.c_contiguous


def test_channels_last_scratch_rows_start_apart_modulo_4k():
    """``nlc_backward.lane_stride``, the row length the channels-last backward
    allocates its per-channel scratch with (float32 and float64, any tile width up
    to ``NLC_TILE``): at least as long as the tile, at most 1 KiB longer, and any two
    of up to 16 rows a nonzero multiple of 256 B apart modulo 4 KiB (4K aliasing:
    rows of 2048 lanes 16 KiB apart made the sums loop 2.7x slower)."""
    lane_stride = cpu.nlc_backward.lane_stride
    for size in (4, 8):
        for t in range(1, constants.NLC_TILE + 1):
            n = lane_stride(t, size)
            assert t <= n <= t + 1024 // size, (size, t)
            starts = {r * n * size % 4096 for r in range(16)}
            assert len(starts) == 16 and all(s % 256 == 0 for s in starts), (size, t)


@pytest.mark.parametrize("path", ["grouped", "channel", "channels-last"])
@pytest.mark.parametrize("m", [17, 19, 23, 49, 56])
def test_backward_of_offset_rows_with_near_constant_grad_is_accurate(m, path, monkeypatch):
    """Rows far off 0 (mean 100-1e4 standard deviations) with a nearly constant
    ``grad_out``: the gradient is a small difference of terms that carry ``x``, which
    float32 terms got wrong by up to 5.7e-6 of a row's largest gradient (19 neurons,
    1e3 sigma); such channels run in float64 (``constants.BW_OFFSET_LIM``), on every
    float32 path, and every row is within 2e-6 of the float64 reference."""
    if path == "channel":
        monkeypatch.setattr(constants, "FLAT_BW_MAX_M", 0)
    rng = np.random.default_rng(m)
    nc = 120
    off = np.repeat([100.0, 1e3, 1e4], nc // 3)[:, None]
    x = (off + rng.standard_normal((nc, m))).astype(np.float32)
    g = (1.0 + 0.01 * rng.standard_normal((nc, m))).astype(np.float32)
    ref = reference_rows(x, g)
    if path == "channels-last":
        xl, gl = rows_to_nlc(x), rows_to_nlc(g)
        out = nlc_to_rows(simam_backward(xl[:, :, None, :], gl[:, :, None, :], LAM,
                                         axes=(1, 2), backend="cpu")[:, :, 0, :])
    else:
        out = np.empty_like(x)
        cpu.backward_2d(x, g, LAM, False, out)
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    assert np.max(np.abs(out.astype(np.float64) - ref) / scale) < 2e-6


_CANCEL_CASES = [
    *[("paper", path, *rows) for path in ("grouped", "channel", "split", "channels-last")
      for rows in ((32, 19, 6.93), (20, 12, 7.0), (16, 10, 6.93), (32, 19, 4.9))],
    *[("exact", path, 8, 6, 4.5) for path in ("channel", "channels-last")],
]


@pytest.mark.parametrize(("method", "path", "m", "outliers", "offset"), _CANCEL_CASES)
def test_backward_of_rows_whose_terms_cancel_is_accurate(method, path, m, outliers, offset,
                                                         monkeypatch):
    """Rows whose bulk sits where ``go g`` and ``q alpha`` cancel (:func:`conftest.
    cancelling_rows`).  Paper method, 7 standard deviations off 0: float32 terms, and
    float64 terms with the float32 ``exp``, were off by up to 8.2e-5 of a row's
    largest gradient; such channels now run the float64 element math with the
    float64 ``exp`` (``constants.BW_OFFSET_LIM``, ``backward.exp32_ok``) on every path
    (the 6.93-7 sigma cases fail with the limit at 16, or with the float32 ``exp``
    kept), and within the limit (4.9) the float32 code stays within 2e-6.  Exact
    method: its leave-one-out terms cancel nearer 0 on short rows (8 neurons, 4.5
    sigma: 5.4e-6 here with the float32 ``exp``, 6.2e-4 at worst), which keep the
    float64 copy in both layouts (``constants.F32_BW_EXACT_MIN_M``; these cases
    fail with it at 2)."""
    if path == "channel":
        monkeypatch.setattr(constants, "FLAT_BW_MAX_M", 0)
    if path == "split":
        monkeypatch.setattr(constants, "SPLIT_MIN_M", 2)
        monkeypatch.setattr(constants, "BLOCK", 8)
    exact = method == "exact"
    nc = 12  # the split path runs fewer than SPLIT_MAX_CHANNELS rows
    x, g = cancelling_rows(nc, m, outliers, offset, seed=m)
    ref = np.empty(x.shape)
    reference.backward_2d(x.astype(np.float64), g.astype(np.float64), LAM, exact, ref)
    if path == "channels-last":
        lanes = np.empty((4, m, nc // 4), np.float32)
        cpu.backward_nlc(rows_to_nlc(x), rows_to_nlc(g), LAM, exact, lanes)
        out = nlc_to_rows(lanes)
    else:
        assert cpu.use_split(nc, m) == (path == "split")
        out = np.empty_like(x)
        cpu.backward_2d(x, g, LAM, exact, out)
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    assert np.max(np.abs(out.astype(np.float64) - ref) / scale) < 2e-6


def close_offset_rows(nc: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows ``300 + N(0, 0.1)`` and gradients: the backward of short such rows
    is a small difference of large terms (float32 terms lose 2e-4 of it at M = 2)."""
    rng = np.random.default_rng(seed)
    x = (300.0 + 0.1 * rng.standard_normal((nc, m))).astype(np.float32)
    return x, rng.normal(0.3, 1.0, (nc, m)).astype(np.float32)


@pytest.mark.parametrize("min_m", [2, 16])
@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("m", [2, 4, 8, 15, 16])
def test_short_rows_backward_is_accurate_in_both_layouts(m, method, min_m, monkeypatch):
    """float32 rows shorter than ``F32_BW_MIN_M`` (2 by default, 16 until the offset
    check took over) run the backward in float64; every row is within 2e-6 of the
    float64 reference relative to its largest gradient, channels-first and
    channels-last, and within 1e-7 below the threshold; writing over ``x`` or ``g``
    gives the same bits."""
    monkeypatch.setattr(constants, "F32_BW_MIN_M", min_m)
    x, g = close_offset_rows(2000, m, seed=m)
    exact = method == "exact"
    ref = np.empty(x.shape)
    reference.backward_2d(x.astype(np.float64), g.astype(np.float64), LAM, exact, ref)
    scale = np.max(np.abs(ref), axis=1, keepdims=True)
    out = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, exact, out)
    nlc = np.empty((4, m, 500), np.float32)  # the same rows as (batch, M, channels)
    cpu.backward_nlc(rows_to_nlc(x), rows_to_nlc(g), LAM, exact, nlc)
    bound = 1e-7 if m < cpu.short_rows_min(exact) else 2e-6
    for got in (out, nlc_to_rows(nlc)):
        assert np.all(np.abs(got - ref) <= bound * scale)
    for which in (0, 1):  # out= the input x or g itself: the same bits as a fresh output
        rows = [x.copy(), g.copy()]
        cpu.backward_2d(*rows, LAM, exact, rows[which])
        np.testing.assert_array_equal(rows[which], out)
        lanes = [rows_to_nlc(x), rows_to_nlc(g)]
        cpu.backward_nlc(*lanes, LAM, exact, lanes[which])
        np.testing.assert_array_equal(lanes[which], nlc)


@pytest.mark.parametrize("row_call", [1, 10**9])
@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("m", [2, 3, 5, 9, 15])
def test_short_rows_near_zero_take_float32_and_are_accurate(m, method, row_call, monkeypatch):
    """Rows of 2-15 neurons within ``BW_OFFSET_LIM`` standard deviations of 0 run the
    float32 paper backward (``F32_BW_MIN_M`` is 2; the exact method's stay float64,
    ``F32_BW_EXACT_MIN_M``): normal and two-valued rows, ``lam`` from 1e-8 to 10,
    ``grad_out`` of both signs or of one, channels-first and channels-last (its row
    calls, two rows a sums call, and its nested loops), within 2e-6 of the float64
    reference."""
    monkeypatch.setattr(constants, "NLC_ROW_CALL", row_call)
    assert cpu.short_rows_min(False) <= 2 and cpu.short_rows_min(True) == 16
    rng = np.random.default_rng(m)
    nc, exact = 240, method == "exact"
    u = rng.standard_normal((nc, m))
    u[nc // 2:] = np.where(u[nc // 2:] > 0.5, 1.0, -1.0) + 1e-3 * u[nc // 2:]
    u[:, 0] = 1.0  # no constant row
    u = (u - u.mean(axis=1, keepdims=True)) / u.std(axis=1, keepdims=True)
    x = (np.repeat([0.0, 3.0, 4.9], nc // 3)[:, None] + u).astype(np.float32)
    g = np.concatenate([rng.standard_normal((nc // 2, m)), 1 + 0.01 * rng.standard_normal(
        (nc // 2, m))])[rng.permutation(nc)].astype(np.float32)
    x64 = x.astype(np.float64)
    mu, s2 = x64.mean(axis=1), ((x64 - x64.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    row = cpu.base.row_consts(m)
    for lam in (1e-8, 1e-4, 10.0):  # every row passes the float32 backward's checks
        assert all(cpu.backward_f32.fast_bw32(a, b, lam, row)[0] for a, b in zip(mu, s2))
        ref = np.empty(x.shape)
        reference.backward_2d(x.astype(np.float64), g.astype(np.float64), lam, exact, ref)
        scale = np.max(np.abs(ref), axis=1, keepdims=True)
        out = np.empty_like(x)
        cpu.backward_2d(x, g, lam, exact, out)
        lanes = np.empty((4, m, nc // 4), np.float32)
        cpu.backward_nlc(rows_to_nlc(x), rows_to_nlc(g), lam, exact, lanes)
        for got in (out, nlc_to_rows(lanes)):
            assert np.max(np.abs(got - ref) / scale) < 2e-6


def test_short_offset_rows_fail_the_float32_offset_check(monkeypatch):
    """The data of the test above defeated float32 terms (2e-4 of a 2-neuron row's
    largest gradient with the threshold at 2): its rows lie thousands of standard
    deviations off 0, so :func:`~.backward_f32.fast_bw32` now sends them to float64
    even below ``F32_BW_MIN_M``'s protection, while rows within ``BW_OFFSET_LIM``
    standard deviations keep float32."""
    monkeypatch.setattr(constants, "F32_BW_MIN_M", 2)
    x, g = close_offset_rows(2000, 2, seed=2)
    ref = np.empty(x.shape)
    reference.backward_2d(x.astype(np.float64), g.astype(np.float64), LAM, False, ref)
    out = np.empty_like(x)
    cpu.backward_2d(x, g, LAM, False, out)
    assert np.max(np.abs(out - ref) / np.max(np.abs(ref), axis=1, keepdims=True)) < 2e-6
    fast_bw32, row = cpu.backward_f32.fast_bw32, cpu.base.row_consts(16)
    s2 = 16.0  # sigma = 1 over 16 neurons
    lim = constants.BW_OFFSET_LIM
    assert not fast_bw32(300.0, s2, LAM, row)[0]
    assert not fast_bw32(-1.01 * lim, s2, LAM, row)[0] and not fast_bw32(7.0, 0.0, LAM, row)[0]
    assert fast_bw32(0.9 * lim, s2, LAM, row)[0] and fast_bw32(-lim, s2, LAM, row)[0]
    assert fast_bw32(0.0, 0.0, LAM, row)[0]  # a constant row at 0
    exp32_ok = cpu.backward.exp32_ok  # the float64 code's float32 exp: the same border
    assert exp32_ok(-lim, s2, 16) and not exp32_ok(1.01 * lim, s2, 16)
