"""CUDA kernels (``backend="cuda"``): on a GPU, or under Numba's CUDA simulator.

``tests/conftest.py`` turns the simulator on when no NVIDIA GPU is present and, under
the simulator only, lowers the launch settings in :mod:`simam_ref.constants` (16
threads per block, groups of 4, its ``SIM_LAUNCH``): every simulated thread is a
Python thread, so shapes stay tiny.  The same tests run on a real GPU with the
production settings (warp-shuffle reductions); tests that depend on the small
settings apply the same ``SIM_LAUNCH`` there too with ``tiny_launch``.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import cancelling_rows, set_sim_launch
from oracles import exact, official

from simam_ref import constants, simam, simam_backward
from simam_ref.kernels import cuda as kcuda
from simam_ref.kernels.cuda import kernels as kkernels
from simam_ref.kernels.cuda import launch as klaunch
from simam_ref.kernels.cuda import layout as klayout
from simam_ref.kernels.cuda import runtime as kruntime
from simam_ref.kernels.cuda import streams as kstreams

if not kcuda.available():
    pytest.skip(f"CUDA backend unavailable: {kcuda.unavailable_reason()}", allow_module_level=True)

from numba import cuda  # noqa: E402  (after the availability check)

SIM = kcuda.simulator_enabled()
LAM = 1e-2
METHODS = ("paper", "exact")
DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=2e-6, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-14)}
SIG_HALF = 1.0 / (1.0 + math.exp(-0.5))


@pytest.fixture
def tiny_launch(monkeypatch):
    """conftest's ``SIM_LAUNCH`` (16 threads per block, groups of at least 4 threads, 2
    elements per thread) on a GPU too; under the simulator its autouse fixture has
    already set the same values."""
    set_sim_launch(monkeypatch)


# ------------------------------------------------------------- independent truth
def truth(x: np.ndarray, lam: float, method: str) -> np.ndarray:
    """Float64 forward of ``(N, C, H, W)`` input by an independent transcription."""
    return official(x, lam) if method == "paper" else exact(x, lam, axes=None)


def vjp_check(x: np.ndarray, g: np.ndarray, grad: np.ndarray, lam: float, method: str) -> None:
    """``<grad, v>`` against a central difference of ``<g, f(x + h v)>`` in float64."""
    rng = np.random.default_rng(7)
    v = rng.standard_normal(x.shape)
    h = 1e-5
    fd = (np.vdot(g, truth(x + h * v, lam, method)) - np.vdot(g, truth(x - h * v, lam, method)))
    np.testing.assert_allclose(np.vdot(grad, v), fd / (2 * h), rtol=1e-6)


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2.0 + 0.5).astype(dtype)


def to_host(a):
    return a.copy_to_host()


# --------------------------------------------------------------------- settings
def test_available_and_layout_choice(tiny_launch):
    assert kcuda.available() and kcuda.unavailable_reason() == ""
    _, tpb, group = kcuda.launch_config(6, 6)
    assert (tpb, group) == (16, 4)  # four tiny channels per block
    blocks, tpb, group = kcuda.launch_config(3, 40)
    assert (blocks, group) == (3, tpb)  # one block per channel


@pytest.mark.skipif(not SIM, reason="conftest lowers the settings under the simulator only")
def test_simulator_settings_come_from_conftest_into_constants():
    from conftest import SIM_LAUNCH

    assert {k: getattr(constants, k) for k in SIM_LAUNCH} == SIM_LAUNCH
    assert kcuda.launch_config(6, 6)[1:] == (16, 4)  # read from constants at the call


def test_threads_per_block_must_be_power_of_two(monkeypatch):
    monkeypatch.setattr(constants, "THREADS_PER_BLOCK", 24)
    with pytest.raises(ValueError, match="power of two"):
        kcuda.launch_config(4, 8)


# ------------------------------------------------------------------ NumPy input
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_forward_numpy_input(dtype, method):
    x = sample((2, 3, 2, 3), dtype)  # M = 6: four channels per block
    x_before = x.copy()
    y = simam(x, LAM, method=method, backend="cuda")
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_allclose(y, simam(x, LAM, method=method, backend="numpy"), **TOL[dtype])
    np.testing.assert_allclose(y, truth(x, LAM, method), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_backward_numpy_input(dtype, method):
    x = sample((1, 3, 2, 3), dtype, seed=1)
    g = sample((1, 3, 2, 3), dtype, seed=2)
    grad = simam_backward(x, g, LAM, method=method, backend="cuda")
    ref = simam_backward(x, g, LAM, method=method, backend="numpy")
    scale = np.abs(ref).max()
    np.testing.assert_allclose(grad, ref, rtol=TOL[dtype]["rtol"], atol=4e-7 * scale)
    if dtype == np.float64:
        vjp_check(x, g, grad, LAM, method)


@pytest.mark.parametrize("method", METHODS)
def test_block_per_channel_layout(tiny_launch, method):
    """M = 40 > 16 threads * 2: one whole block per channel."""
    assert kcuda.launch_config(2, 40)[2] == constants.THREADS_PER_BLOCK
    x = sample((1, 2, 5, 8), np.float64, seed=3)
    g = sample((1, 2, 5, 8), np.float64, seed=4)
    y = simam(x, LAM, method=method, backend="cuda")
    np.testing.assert_allclose(y, truth(x, LAM, method), **TOL[np.float64])
    grad = simam_backward(x, g, LAM, method=method, backend="cuda")
    np.testing.assert_allclose(grad, simam_backward(x, g, LAM, method=method, backend="numpy"),
                               rtol=1e-11, atol=1e-13)


def test_launches_split_at_max_blocks(tiny_launch, monkeypatch):
    """9 channels, 4 per block: 3 batches; at most 2 blocks a launch gives two launches."""
    launched = []
    real_launch = klaunch._launch

    def spy(kern, config, args):
        launched.append((config[0], args[-1]))
        real_launch(kern, config, args)

    monkeypatch.setattr(klaunch, "_launch", spy)
    monkeypatch.setattr(constants, "MAX_BLOCKS", 2)
    x = sample((3, 3, 1, 5), np.float32, seed=5)
    np.testing.assert_allclose(simam(x, LAM, backend="cuda"), official(x, LAM), **TOL[np.float32])
    assert launched == [(2, 0), (1, 2)]  # (blocks, first batch) of each launch
    launched.clear()
    g = sample((3, 3, 1, 5), np.float32, seed=6)
    np.testing.assert_allclose(simam_backward(x, g, LAM, backend="cuda"),
                               simam_backward(x, g, LAM, backend="numpy"), rtol=2e-6, atol=1e-6)
    assert launched == [(2, 0), (1, 2)]
    launched.clear()
    monkeypatch.setattr(constants, "MAX_BLOCKS", 1 << 20)
    np.testing.assert_allclose(simam_backward(x, g, LAM, backend="cuda"),
                               simam_backward(x, g, LAM, backend="numpy"), rtol=2e-6, atol=1e-6)
    assert launched == [(3, 0)]


def test_in_place_numpy():
    x = sample((2, 2, 3, 2), np.float32, seed=6)
    expected = official(x, LAM)
    out = simam(x, LAM, out=x, backend="cuda")
    assert out is x
    np.testing.assert_allclose(x, expected, **TOL[np.float32])


# ------------------------------------------------------------------ device input
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", METHODS)
def test_device_input_forward_and_backward(dtype, method):
    x = sample((1, 4, 2, 2), dtype, seed=8)
    g = sample((1, 4, 2, 2), dtype, seed=9)
    xd, gd = cuda.to_device(x), cuda.to_device(g)
    yd = simam(xd, LAM, method=method)  # backend="auto" picks CUDA for device input
    assert getattr(yd, "__cuda_ndarray__", False)  # a Numba device array
    np.testing.assert_allclose(to_host(yd), truth(x, LAM, method), **TOL[dtype])
    gradd = simam_backward(xd, gd, LAM, method=method, backend="cuda")
    ref = simam_backward(x, g, LAM, method=method, backend="numpy")
    np.testing.assert_allclose(to_host(gradd), ref, rtol=TOL[dtype]["rtol"],
                               atol=4e-7 * np.abs(ref).max())
    np.testing.assert_array_equal(to_host(xd), x)


def test_device_out_and_in_place():
    x = sample((2, 2, 2, 3), np.float32, seed=10)
    xd = cuda.to_device(x)
    out = cuda.device_array_like(xd)
    assert simam(xd, LAM, out=out, backend="cuda") is out
    np.testing.assert_allclose(to_host(out), official(x, LAM), **TOL[np.float32])
    assert simam(xd, LAM, out=xd) is xd
    np.testing.assert_allclose(to_host(xd), to_host(out), rtol=0, atol=0)


def test_device_backward_out_may_be_grad_out():
    x = sample((1, 3, 2, 2), np.float64, seed=11)
    g = sample((1, 3, 2, 2), np.float64, seed=12)
    xd, gd = cuda.to_device(x), cuda.to_device(g)
    assert simam_backward(xd, gd, LAM, out=gd) is gd
    np.testing.assert_allclose(to_host(gd), simam_backward(x, g, LAM, backend="numpy"),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", METHODS)
def test_non_trailing_axes(method):
    """Channels-last ``(N, H, W, C)``: gather into scratch, scatter into ``out``."""
    x = sample((2, 2, 3, 2), np.float64, seed=13)
    g = sample((2, 2, 3, 2), np.float64, seed=14)
    ref = simam(x, LAM, method=method, axes=(1, 2), backend="numpy")
    np.testing.assert_allclose(simam(x, LAM, method=method, axes=(1, 2), backend="cuda"), ref,
                               rtol=1e-12, atol=1e-14)
    xd = cuda.to_device(x)
    np.testing.assert_allclose(to_host(simam(xd, LAM, method=method, axes=(1, 2))), ref,
                               rtol=1e-12, atol=1e-14)
    assert simam(xd, LAM, method=method, axes=(1, 2), out=xd) is xd  # in place, gathered
    np.testing.assert_allclose(to_host(xd), ref, rtol=1e-12, atol=1e-14)
    gref = simam_backward(x, g, LAM, method=method, axes=(1, 2), backend="numpy")
    gd = simam_backward(cuda.to_device(x), cuda.to_device(g), LAM, method=method, axes=(1, 2))
    np.testing.assert_allclose(to_host(gd), gref, rtol=1e-11, atol=1e-13)


def test_split4_merges_axes_into_a_common_view():
    """NCHW rows, NHWC (channels-last) and a padded W each map to one (A, B, P, Q) view."""
    it = 4
    nchw = (60 * it, 20 * it, 5 * it, it)  # C-contiguous (2, 3, 4, 5)
    shape4, (st,) = kcuda.split4((2, 3, 4, 5), (2, 3), [nchw])
    assert shape4 == (1, 6, 1, 20) and st == (6 * 20 * it, 20 * it, 20 * it, it)
    nhwc = (4 * 5 * 3 * it, 5 * 3 * it, 3 * it, it)  # (N, H, W, C) memory, axes (1, 2)
    shape4, (st,) = kcuda.split4((2, 4, 5, 3), (1, 2), [nhwc])
    assert shape4 == (2, 3, 1, 20) and (st[0], st[1], st[3]) == (60 * it, it, 3 * it)
    # x contiguous, out channels-last: merged only where both are contiguous
    shape4, sts = kcuda.split4((2, 3, 4, 5), (2, 3), [nchw, (60 * it, it, 15 * it, 3 * it)])
    assert shape4 == (2, 3, 1, 20) and sts[1][3] == 3 * it
    padded = (3 * 4 * 8 * it, 4 * 8 * it, 8 * it, it)  # W = 5 of 8 allocated
    assert kcuda.split4((2, 3, 4, 5), (2, 3), [padded])[0] == (1, 6, 4, 5)
    five_d = (2 * 3 * 4 * 5 * 6, 3 * 4 * 5 * 6, 4 * 5 * 6, 5 * 6, 6)
    assert kcuda.split4((7, 2, 3, 4, 5), (1, 3), [tuple(v * it for v in five_d)]) is None


def test_channels_last_and_padded_views_run_in_place(monkeypatch):
    """No gather/scatter copy for channels-last or a padded spatial axis (strided kernel)."""
    def no_copy(*args, **kwargs):
        raise AssertionError("gathered into a contiguous copy")

    monkeypatch.setattr(klayout, "contiguous_rows", no_copy)
    x = sample((2, 3, 4, 3), np.float32, seed=15)  # (N, H, W, C), axes (1, 2)
    want = simam(x, LAM, axes=(1, 2), backend="numpy")
    xd = cuda.to_device(x)
    np.testing.assert_allclose(to_host(simam(xd, LAM, axes=(1, 2))), want, **TOL[np.float32])
    big = sample((1, 2, 3, 7), np.float64, seed=16)
    view = cuda.to_device(big)[:, :, :, :4]  # P = 3, Q = 4 with a row pitch of 7
    for method in METHODS:
        np.testing.assert_allclose(to_host(simam(view, LAM, method=method)),
                                   truth(big[..., :4], LAM, method), **TOL[np.float64])
        g = sample((1, 2, 3, 4), np.float64, seed=17)
        np.testing.assert_allclose(
            to_host(simam_backward(view, cuda.to_device(g), LAM, method=method)),
            simam_backward(big[..., :4], g, LAM, method=method, backend="numpy"),
            rtol=1e-11, atol=1e-13)


def test_layout_needing_more_than_two_dims_is_gathered():
    x = sample((2, 3, 2, 2, 3), np.float64, seed=18)  # axes (1, 3): others (0, 2, 4)
    want = simam(x, LAM, axes=(1, 3), backend="numpy")
    xd = cuda.to_device(x)
    np.testing.assert_allclose(to_host(simam(xd, LAM, axes=(1, 3))), want, rtol=1e-12,
                               atol=1e-14)
    assert simam(xd, LAM, axes=(1, 3), out=xd) is xd
    np.testing.assert_allclose(to_host(xd), want, rtol=1e-12, atol=1e-14)


def test_one_kernel_per_variant():
    kernels = {kcuda.kernel(kind, exact, lowp) for kind in ("forward", "backward")
               for exact in (False, True) for lowp in (False, True)}
    assert len(kernels) == 8
    assert kcuda.kernel("forward", True, False) is kcuda.kernel("forward", True, False)
    assert kcuda.use_shuffle() is (not SIM)


# --------------------------------------------------- register and streaming kernels
def reference_rows(x: np.ndarray, g: np.ndarray | None, lam: float, method: str) -> np.ndarray:
    """Float64 forward (or, with ``g``, backward) of ``simam_ref.reference`` over the
    trailing two axes of ``(N, C, H, W)`` input."""
    from simam_ref import reference

    x2 = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[2] * x.shape[3])
    out = np.empty_like(x2)
    if g is None:
        reference.forward_2d(x2, lam, method == "exact", out)
    else:
        g2 = np.asarray(g, dtype=np.float64).reshape(x2.shape)
        reference.backward_2d(x2, g2, lam, method == "exact", out)
    return out.reshape(x.shape)


def run_path(monkeypatch, regs_setting: int, fn, *args, **kwargs):
    """``fn(*args)`` with ``REGISTER_ELEMENTS = regs_setting``; also the ``regs`` of every
    kernel launched (0: the streaming kernel)."""
    seen = []
    real = kkernels.kernel

    def spy(*a, **k):
        seen.append(k.get("regs", 0))
        return real(*a, **k)

    monkeypatch.setattr(constants, "REGISTER_ELEMENTS", regs_setting)
    monkeypatch.setattr(kkernels, "kernel", spy)
    try:
        return fn(*args, **kwargs), seen
    finally:
        monkeypatch.setattr(kkernels, "kernel", real)


LOWP_TOL = {np.float16: dict(rtol=2e-3, atol=2e-3), np.float32: dict(rtol=2e-6, atol=1e-6),
            np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.mark.parametrize("dtype", (np.float16, np.float32, np.float64))
@pytest.mark.parametrize("method", METHODS)
def test_register_and_streaming_kernels_match_reference(tiny_launch, monkeypatch, dtype,
                                                        method):
    """Channels of M = 6 (groups of 4: 2 values a thread) and M = 40 (a block of 16: 3
    values a thread, padded to 4) through the register kernels and the streaming ones;
    both against the float64 reference, and bitwise equal to each other (same sums in
    the same order)."""
    for shape, k in (((1, 3, 2, 3), 2), ((1, 1, 5, 8), 4)):
        x = sample(shape, dtype, seed=23)
        g = sample(shape, dtype, seed=24)
        xd, gd = cuda.to_device(x), cuda.to_device(g)
        tol = LOWP_TOL[dtype]
        got = {}
        for setting in (4, 0):
            y, seen = run_path(monkeypatch, setting, simam, xd, LAM, method=method)
            assert seen == [k if setting else 0]
            grad, seen = run_path(monkeypatch, setting, simam_backward, xd, gd, LAM,
                                  method=method)
            assert seen == [k if setting else 0]
            got[setting] = to_host(y), to_host(grad)
            ref = reference_rows(x, None, LAM, method)
            np.testing.assert_allclose(got[setting][0].astype(np.float64), ref, **tol)
            gref = reference_rows(x, g, LAM, method)
            np.testing.assert_allclose(got[setting][1].astype(np.float64), gref,
                                       rtol=tol["rtol"], atol=tol["atol"] * np.abs(gref).max())
        if SIM:  # on hardware the compiler may contract the two paths differently
            np.testing.assert_array_equal(got[4][0], got[0][0])
            np.testing.assert_array_equal(got[4][1], got[0][1])
        np.testing.assert_array_equal(to_host(xd), x)


@pytest.mark.parametrize("method", METHODS)
def test_register_kernels_on_strided_views(tiny_launch, monkeypatch, method):
    """Two spatial dimensions with a row pitch (P = 3, Q = 4) and channels-last input,
    through the register kernels (2 and 4 values a thread)."""
    big = sample((1, 2, 3, 7), np.float64, seed=25)
    view = cuda.to_device(big)[:, :, :, :4]  # M = 12: a group of 8, 2 values a thread
    g = sample((1, 2, 3, 4), np.float64, seed=26)
    y, seen = run_path(monkeypatch, 4, simam, view, LAM, method=method)
    assert seen == [2]
    np.testing.assert_allclose(to_host(y), reference_rows(big[..., :4], None, LAM, method),
                               rtol=1e-12, atol=1e-13)
    grad, seen = run_path(monkeypatch, 4, simam_backward, view, cuda.to_device(g), LAM,
                          method=method)
    assert seen == [2]
    np.testing.assert_allclose(to_host(grad), reference_rows(big[..., :4], g, LAM, method),
                               rtol=1e-11, atol=1e-13)
    x = sample((2, 5, 8, 3), np.float32, seed=27)  # (N, H, W, C), M = 40: 3 a thread
    want = simam(x.astype(np.float64), LAM, method=method, axes=(1, 2), backend="numpy")
    y, seen = run_path(monkeypatch, 4, simam, cuda.to_device(x), LAM, method=method,
                       axes=(1, 2))
    assert seen == [4]
    np.testing.assert_allclose(to_host(y), want, rtol=2e-6, atol=1e-6)


def test_register_elements_choice(monkeypatch):
    monkeypatch.setattr(constants, "REGISTER_ELEMENTS", 4)
    assert [kcuda.register_elements(m, 32) for m in (2, 32, 33, 64, 65, 128, 129)] == \
        [1, 1, 2, 2, 4, 4, 0]
    monkeypatch.setattr(constants, "REGISTER_ELEMENTS", 0)
    assert kcuda.register_elements(2, 32) == 0
    with pytest.raises(ValueError, match="regs"):
        kcuda.kernel("forward", False, True, regs=-1)


# ----------------------------------------------- interface objects, torch, streams
class CAI:
    """A ``__cuda_array_interface__`` v3 exporter over simulated device (= host) memory."""

    def __init__(self, host: np.ndarray, readonly: bool = False, stream: int | None = None):
        self.host, self.shape, self.dtype = host, host.shape, host.dtype
        self.readonly, self.stream = readonly, stream

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.host.shape, "typestr": self.host.dtype.str,
                "data": (self.host.ctypes.data, self.readonly),
                "strides": self.host.strides, "version": 3, "stream": self.stream}


class FakeTorchTensor(CAI):
    """Behaves like a torch CUDA tensor at the interface: raises RuntimeError when it
    requires grad (as torch does), detaches to a plain view."""

    __module__ = "torch"
    is_cuda = True
    device = "cuda:0"

    def __init__(self, host: np.ndarray, requires_grad: bool):
        super().__init__(host)
        self.requires_grad = requires_grad

    @property
    def __cuda_array_interface__(self):
        if self.requires_grad:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that "
                               "requires grad.")
        return super().__cuda_array_interface__

    def detach(self):
        return FakeTorchTensor(self.host, False)


sim_only = pytest.mark.skipif(not SIM, reason="interface objects over host memory: simulator")


@sim_only
def test_requires_grad_tensor_is_read_detached_and_refused_as_out():
    from simam_ref.api import _is_device_array

    x = sample((1, 2, 2, 3), np.float32, seed=19)
    t = FakeTorchTensor(x.copy(), requires_grad=True)
    assert _is_device_array(t)
    np.testing.assert_allclose(to_host(simam(t, LAM)), official(x, LAM), **TOL[np.float32])
    g = FakeTorchTensor(np.ones_like(x), requires_grad=True)
    np.testing.assert_allclose(to_host(simam_backward(t, g, LAM)),
                               simam_backward(x, np.ones_like(x), LAM, backend="numpy"),
                               rtol=2e-6, atol=1e-6)
    with pytest.raises(ValueError, match="requires grad"):
        simam(cuda.to_device(x), LAM, out=FakeTorchTensor(np.empty_like(x), True))
    np.testing.assert_array_equal(t.host, x)


@sim_only
def test_read_only_export_refused_as_out_but_read_as_input():
    x = sample((1, 2, 2, 3), np.float64, seed=20)
    ro = CAI(x.copy(), readonly=True)
    np.testing.assert_allclose(to_host(simam(ro, LAM)), official(x, LAM), **TOL[np.float64])
    target = CAI(np.zeros_like(x), readonly=True)
    with pytest.raises(ValueError, match="read-only"):
        simam(cuda.to_device(x), LAM, out=target)
    assert not target.host.any()
    writable = CAI(np.zeros_like(x))
    assert simam(ro, LAM, out=writable) is writable
    np.testing.assert_allclose(writable.host, official(x, LAM), **TOL[np.float64])


class FakeCupyArray(CAI):
    """A CuPy-like array at the interface (v3, with the stream it was made on)."""

    __module__ = "cupy"

    @property
    def device(self):
        return contextlib.nullcontext()


def fake_framework(monkeypatch, name: str, current: int) -> list[int]:
    """Install a stand-in ``torch`` or ``cupy`` module whose ``empty_like`` records the
    current stream at allocation; return that record."""
    state, allocs = {"current": current}, []

    @contextlib.contextmanager
    def make_current(raw):
        before, state["current"] = state["current"], raw
        try:
            yield
        finally:
            state["current"] = before

    def empty_like(a):
        allocs.append(state["current"])
        return type(a)(np.full_like(a.host, np.nan), False) if name == "torch" else \
            FakeCupyArray(np.full_like(a.host, np.nan), stream=state["current"])

    if name == "torch":
        cuda_ns = SimpleNamespace(
            is_available=lambda: True,
            current_stream=lambda device=None: SimpleNamespace(cuda_stream=state["current"]),
            ExternalStream=lambda raw, device=None: SimpleNamespace(cuda_stream=raw),
            stream=lambda s: make_current(s.cuda_stream))
        mod = SimpleNamespace(Tensor=FakeTorchTensor, empty_like=empty_like, cuda=cuda_ns)
    else:
        cuda_ns = SimpleNamespace(
            get_current_stream=lambda: SimpleNamespace(ptr=state["current"]),
            ExternalStream=make_current)
        mod = SimpleNamespace(ndarray=FakeCupyArray, empty_like=empty_like, cuda=cuda_ns)
    monkeypatch.setitem(sys.modules, name, mod)
    return allocs


@sim_only
@pytest.mark.parametrize("name", ["torch", "cupy"])
def test_result_is_allocated_by_the_inputs_framework(monkeypatch, name):
    """Without ``out``: torch input gives a tensor from ``torch.empty_like``, CuPy input a
    CuPy array from ``cupy.empty_like``, allocated on the launch stream."""
    allocs = fake_framework(monkeypatch, name, current=777)
    x = sample((1, 2, 2, 3), np.float32, seed=28)
    g = sample((1, 2, 2, 3), np.float32, seed=29)

    def wrap(a, requires_grad=False):
        if name == "torch":
            return FakeTorchTensor(a.copy(), requires_grad)
        return FakeCupyArray(a.copy(), stream=777)

    kind = FakeTorchTensor if name == "torch" else FakeCupyArray
    y = simam(wrap(x, requires_grad=True), LAM)  # caller's current stream
    assert type(y) is kind and allocs == [777]
    assert not getattr(y, "requires_grad", False)
    np.testing.assert_allclose(y.host, official(x, LAM), **TOL[np.float32])
    grad = simam_backward(wrap(x), wrap(g), LAM, stream=SimpleNamespace(cuda_stream=888))
    assert type(grad) is kind and allocs == [777, 888]  # made current for the allocation
    np.testing.assert_allclose(grad.host, simam_backward(x, g, LAM, backend="numpy"),
                               rtol=2e-6, atol=1e-6)
    numba_in = simam(cuda.to_device(x), LAM)  # Numba input: a Numba device array
    assert getattr(numba_in, "__cuda_ndarray__", False) and allocs == [777, 888]
    other = simam(CAI(x.copy()), LAM)  # an unknown exporter: a Numba device array
    assert getattr(other, "__cuda_ndarray__", False)


def test_external_stream_wrappers_are_reused(monkeypatch):
    made = []

    def external_stream(handle):
        made.append(handle)
        return SimpleNamespace(handle=handle)

    monkeypatch.setattr(kruntime, "simulator_enabled", lambda: False)
    monkeypatch.setattr(kruntime.numba_cuda(), "external_stream", external_stream,
                        raising=False)
    monkeypatch.setattr(kstreams, "_EXTERNAL_STREAMS", {})
    first = kstreams.numba_stream(4242)
    assert kstreams.numba_stream(4242) is first and made == [4242]
    assert kstreams.numba_stream(4343) is not first and made == [4242, 4343]
    assert kstreams.numba_stream(0) == 0
    monkeypatch.setattr(kstreams, "_EXTERNAL_STREAMS_MAX", 2)
    kstreams.numba_stream(4444)  # full: cleared, then this one kept
    assert list(kstreams._EXTERNAL_STREAMS) == [4444]


def test_stream_handle_choice():
    class TorchStream:
        cuda_stream = 111

    class CupyStream:
        ptr = 222

    numba_stream = cuda.stream()
    assert kcuda.stream_handle(numba_stream) is numba_stream
    assert kcuda.stream_handle(TorchStream()) == 111
    assert kcuda.stream_handle(CupyStream()) == 222
    assert kcuda.stream_handle(333) == 333
    with pytest.raises(TypeError, match="stream must be"):
        kcuda.stream_handle("fast")
    with pytest.raises(TypeError, match="stream must be"):
        kcuda.stream_handle(True)
    host = np.zeros((1, 2, 2, 2))
    v3 = CAI(host, stream=444)
    assert kcuda.stream_handle(None, v3, v3.__cuda_array_interface__) == 444
    assert kcuda.stream_handle(7, v3, v3.__cuda_array_interface__) == 7  # explicit wins
    v2 = {"shape": (2,), "typestr": "<f8", "data": (0, False), "version": 2}
    assert kcuda.stream_handle(None, object(), v2) == 0  # no stream known: legacy default
    assert kcuda.stream_handle(None, cuda.to_device(host), None) == 0


@sim_only
def test_launch_goes_to_the_callers_stream(monkeypatch):
    launched, wrapped = [], []
    real_launch = klaunch._launch

    def spy(kern, config, args):
        launched.append(config[2])
        real_launch(kern, config, args)

    def fake_external(handle):
        stream = cuda.stream()
        wrapped.append((handle, stream))
        return stream

    monkeypatch.setattr(klaunch, "_launch", spy)
    monkeypatch.setattr(kstreams, "numba_stream",
                        lambda h: h if not isinstance(h, int) or h == 0 else fake_external(h))
    x = sample((1, 2, 2, 2), np.float64, seed=21)
    y = simam(CAI(x.copy(), stream=555), LAM)  # v3 interface: its stream
    assert wrapped[-1][0] == 555 and launched[-1] is wrapped[-1][1]
    np.testing.assert_allclose(to_host(y), official(x, LAM), **TOL[np.float64])
    mine = cuda.stream()
    simam_backward(cuda.to_device(x), cuda.to_device(x), LAM, stream=mine)  # explicit
    assert launched[-1] is mine
    simam(cuda.to_device(x), LAM, stream=666)  # raw handle
    assert wrapped[-1][0] == 666 and launched[-1] is wrapped[-1][1]
    simam(cuda.to_device(x), LAM)  # a plain Numba array: the default stream
    assert launched[-1] == 0


@pytest.mark.parametrize("backend", ["auto", "cpu", "numpy", "cuda"])
def test_stream_with_host_input_is_an_error(backend):
    x = sample((1, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="stream= applies to CUDA device arrays only"):
        simam(x, LAM, backend=backend, stream=1)
    with pytest.raises(ValueError, match="stream= applies to CUDA device arrays only"):
        simam_backward(x, x, LAM, backend=backend, stream=cuda.stream())


# ------------------------------------------------------------------------ errors
def test_device_errors():
    x = sample((1, 2, 2, 2), np.float32, seed=16)
    xd = cuda.to_device(x)
    with pytest.raises(ValueError, match="shape"):
        simam(xd, LAM, out=cuda.device_array((1, 2, 2, 3), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        simam(xd, LAM, out=cuda.device_array((1, 2, 2, 2), np.float64))
    with pytest.raises(TypeError, match="device array"):
        simam(xd, LAM, out=np.empty_like(x))
    with pytest.raises(TypeError, match="grad_out has dtype"):
        simam_backward(xd, cuda.to_device(x.astype(np.float64)), LAM)
    flat = cuda.to_device(np.arange(16, dtype=np.float32))
    xa, ob = flat[0:8].reshape(1, 2, 2, 2), flat[1:9].reshape(1, 2, 2, 2)
    with pytest.raises(ValueError, match="partly overlaps"):
        simam(xa, LAM, out=ob)
    reversed_view = xd[..., ::-1]
    if min(reversed_view.strides) < 0:  # Numba's own device slicing may not produce one
        with pytest.raises(ValueError, match="negative stride"):
            simam(reversed_view, LAM)


# ---------------------------------------------------------------------- numerics
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator computes with NumPy
def test_nonfinite_stays_in_its_channel():
    x = sample((1, 4, 2, 3), np.float64, seed=17)
    x[0, 1, 0, 0] = np.nan
    x[0, 2, 1, 2] = np.inf
    y = simam(x, LAM, backend="cuda")
    ref = simam(x, LAM, backend="numpy")
    np.testing.assert_allclose(y, ref, rtol=1e-12, equal_nan=True)
    assert np.isfinite(y[0, [0, 3]]).all()
    g = np.ones_like(x)
    grad = simam_backward(x, g, LAM, backend="cuda")
    assert np.isfinite(grad[0, [0, 3]]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_constant_and_extreme_channels():
    x = np.empty((1, 4, 2, 3))
    x[0, 0] = 3.0  # constant: gain sigmoid(1/2)
    x[0, 1] = np.linspace(-1e300, 1.7e308, 6).reshape(2, 3)  # sum(x) overflows
    x[0, 2] = np.linspace(1e-310, 9e-310, 6).reshape(2, 3)  # subnormal
    x[0, 3] = np.array([[1.0, -2.0, 3.0], [0.5, 1e-5, 2.0]]) * 1e200
    y = simam(x, 0.1, backend="cuda")
    np.testing.assert_allclose(y[0, 0], 3.0 * SIG_HALF, rtol=1e-15)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, simam(x, 0.1, backend="numpy"), rtol=1e-12, atol=0)
    for method in METHODS:
        g = np.linspace(-1.0, 1.0, x.size).reshape(x.shape)
        grad = simam_backward(x[:, 1:4], g[:, 1:4], 0.1, method=method, backend="cuda")
        ref = simam_backward(x[:, 1:4], g[:, 1:4], 0.1, method=method, backend="numpy")
        np.testing.assert_allclose(grad, ref, rtol=1e-10, atol=1e-12)


def test_float32_large_values_finite():
    x = sample((1, 2, 2, 3), np.float32, seed=18) * np.float32(1e37)
    y = simam(x, LAM, backend="cuda")
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, official(x.astype(np.float64) / 1e37, LAM / 1e74) * 1e37,
                               rtol=2e-6)


@pytest.mark.parametrize(("dtype", "a", "lam"), [(np.float32, 2.0**60, LAM),
                                                (np.float16, 2.0**10, 1e-38)])
def test_low_precision_exact_zero_leave_one_out_variance(dtype, a, lam, monkeypatch):
    """M = 2: each neuron's leave-one-out variance is exactly 0, so b = 4 lam is far below
    float32's range relative to the channel (z < 1e-30), E is astronomic, exp(-E) = 0;
    the float32 reciprocal of the low-precision path must keep the gradient finite
    (``F32_BW_MIN_M`` lowered so the backward of these 2-neuron rows runs in low precision)."""
    monkeypatch.setattr(constants, "F32_BW_MIN_M", 2)
    x = np.array([[[[0.0, a]], [[1.0, -a]]]], dtype=dtype)  # (1, 2, 1, 2)
    g = np.array([[[[0.5, -1.0]], [[2.0, 1.0]]]], dtype=dtype)
    grad = simam_backward(x, g, lam, method="exact", backend="cuda")
    ref = simam_backward(x.astype(np.float64), g.astype(np.float64), lam, method="exact",
                         backend="numpy")
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(grad.astype(np.float64), ref, rtol=1e-3, atol=0)
    y = simam(x, lam, method="exact", backend="cuda")
    np.testing.assert_allclose(y.astype(np.float64), x.astype(np.float64), rtol=1e-3)


def test_float16_device_input():
    x = sample((1, 2, 2, 3), np.float16, seed=19)
    y = to_host(simam(cuda.to_device(x), LAM))
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), official(x, LAM), rtol=2e-3, atol=1e-3)


# ------------------------------------------------------------- real GPU only
needs_gpu = pytest.mark.skipif(SIM, reason="needs a real CUDA GPU")


@needs_gpu
@pytest.mark.parametrize("shape", [(4, 8, 56, 56), (4, 64, 7, 7), (2, 16, 14, 14)])
@pytest.mark.parametrize("method", METHODS)
def test_production_settings_on_gpu(monkeypatch, shape, method):
    monkeypatch.setattr(constants, "THREADS_PER_BLOCK", 256)
    monkeypatch.setattr(constants, "GROUP_MIN", 32)
    monkeypatch.setattr(constants, "ELEMENTS_PER_THREAD", 8)
    x = sample(shape, np.float32, seed=20)
    g = sample(shape, np.float32, seed=21)
    xd, gd = cuda.to_device(x), cuda.to_device(g)
    ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
    np.testing.assert_allclose(to_host(simam(xd, LAM, method=method)), ref, rtol=1e-6,
                               atol=1e-7)
    gref = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM, method=method,
                          backend="numpy")
    np.testing.assert_allclose(to_host(simam_backward(xd, gd, LAM, method=method)), gref,
                               rtol=1e-5, atol=1e-6 * np.abs(gref).max())


@needs_gpu
def test_torch_cuda_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    x = torch.randn(2, 3, 5, 5, device="cuda", dtype=torch.float32)
    g = torch.randn_like(x)
    ref = simam(x.cpu().double().numpy(), LAM, backend="numpy")
    y = simam(x, LAM, backend="cuda")
    assert isinstance(y, torch.Tensor) and y.device == x.device  # torch's allocator
    np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-6, atol=1e-7)
    out = torch.empty_like(x)
    assert simam(x, LAM, out=out) is out
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-6, atol=1e-7)
    xt = x.permute(0, 2, 3, 1)  # non-contiguous NHWC view, spatial axes (1, 2)
    yt = simam(xt, LAM, axes=(1, 2))
    np.testing.assert_allclose(yt.cpu().numpy(), ref.transpose(0, 2, 3, 1), rtol=1e-6,
                               atol=1e-7)
    grad = simam_backward(x, g, LAM)
    gref = simam_backward(x.cpu().double().numpy(), g.cpu().double().numpy(), LAM,
                          backend="numpy")
    np.testing.assert_allclose(grad.cpu().numpy(), gref, rtol=1e-5,
                               atol=1e-6 * np.abs(gref).max())


@needs_gpu
def test_torch_side_stream_and_requires_grad():
    """The input is written late on a side stream; simam must run after it there."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    src = torch.randn(4, 16, 28, 28, device="cuda")
    ref = simam(src.cpu().double().numpy(), LAM, backend="numpy")
    side = torch.cuda.Stream()
    for explicit in (False, True):
        x = torch.zeros_like(src)
        torch.cuda.synchronize()
        with torch.cuda.stream(side):
            torch.cuda._sleep(20_000_000)
            x.copy_(src)
            if not explicit:
                y = simam(x, LAM)  # torch's current stream
        if explicit:
            y = simam(x, LAM, stream=side)
        side.synchronize()
        np.testing.assert_allclose(y.cpu().numpy(), ref, rtol=1e-6, atol=1e-7)
    xg = src.clone().requires_grad_(True)
    yg = simam(xg, LAM)
    assert not yg.requires_grad
    np.testing.assert_allclose(yg.cpu().numpy(), ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="requires grad"):
        simam(src, LAM, out=torch.empty_like(src).requires_grad_(True))


@needs_gpu
@pytest.mark.parametrize("shape", [(2, 64, 7, 7), (2, 8, 28, 28)])
def test_tree_and_shuffle_reductions_agree_on_gpu(monkeypatch, shape):
    x = sample(shape, np.float32, seed=22)
    xd = cuda.to_device(x)
    got = {}
    for shuffle in (True, False):
        monkeypatch.setattr(constants, "WARP_SHUFFLE", shuffle)
        got[shuffle] = to_host(simam(xd, LAM, method="exact"))
    ref = simam(x.astype(np.float64), LAM, method="exact", backend="numpy")
    for y in got.values():
        np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-7)


# --------------------------------------------------------------- benchmark smoke
@pytest.mark.skipif(not SIM, reason="the GPU check runs this for real on a GPU")
def test_gpu_check_smoke(tmp_path, capsys):
    import runpy

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    if not script.exists():
        pytest.skip("benchmarks/gpu_check.py not present")
    mod = runpy.run_path(str(script))
    out = tmp_path / "r.json"
    assert mod["main"](["--smoke", "--json", str(out)]) == 0
    assert out.exists() and "simam" in capsys.readouterr().out
    assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


#: Three 3-neuron rows (and gradients) whose float32-exp backward on the simulator is
#: off by 2.6e-6, 3.8e-6 and 4.5e-6 of each row's largest gradient.
_SHORT_X = [[299.75372314453125, 299.9737548828125, 300.0303649902344],
            [299.8724670410156, 300.1355895996094, 299.72119140625],
            [300.1311950683594, 300.0044250488281, 299.88323974609375]]
_SHORT_G = [[0.3046349883079529, 0.6174443364143372, 0.5028448104858398],
            [2.632347345352173, 0.49026358127593994, 1.1464247703552246],
            [-0.6848824620246887, 0.5147367715835571, -0.6502749919891357]]


@pytest.mark.parametrize("min_m", [2, 16])
def test_short_far_off_rows_backward_runs_in_float64(monkeypatch, min_m):
    """float32 rows shorter than ``constants.F32_BW_MIN_M`` (16 here, the default 2
    turns it off) take the backward in float64; these rows, whose gradient float32
    ``exp`` could not resolve (off by 2.6e-6 to 4.5e-6 of each row's largest gradient
    with the threshold at 2 and no offset check), lie a thousand standard deviations
    off 0, so the offset check (``constants.BW_OFFSET_LIM``) sends them to float64
    at any threshold."""
    monkeypatch.setattr(constants, "F32_BW_MIN_M", min_m)
    x = np.array(_SHORT_X, np.float32).reshape(1, 3, 1, 3)
    g = np.array(_SHORT_G, np.float32).reshape(1, 3, 1, 3)
    grad = simam_backward(x, g, 1e-4, backend="cuda")
    ref = simam_backward(x.astype(np.float64), g.astype(np.float64), 1e-4, backend="numpy")
    err = np.max(np.abs(grad - ref) / np.max(np.abs(ref), axis=-1, keepdims=True))
    assert err <= 1e-7


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("m", "outliers", "offset"), [(32, 19, 6.93), (16, 10, 6.93),
                                                       (32, 19, 4.9), (8, 6, 4.5)])
def test_backward_of_rows_whose_terms_cancel_is_accurate(m, outliers, offset, method):
    """Rows whose bulk sits where ``go g`` and ``q alpha`` cancel (:func:`conftest.
    cancelling_rows`): the float32 ``exp`` and sigmoid left up to 5e-5 of a row's
    largest gradient (simulator, the paper method at 32 neurons, 6.93 standard
    deviations off 0: the case that fails without the check); channels beyond
    ``constants.BW_OFFSET_LIM`` now take the float64 element math.  The other cases
    (16 neurons at 6.93, within the limit at 4.9, the exact method's short rows,
    which keep float64: ``constants.F32_BW_EXACT_MIN_M``) stay within 2e-6 either
    way on the simulator, whose float32 rounding is exact; on a GPU they check the
    float32 reciprocals' ``div.approx`` too."""
    nc = 8
    x, g = cancelling_rows(nc, m, outliers, offset, seed=m)
    x4, g4 = x.reshape(1, nc, m, 1), g.reshape(1, nc, m, 1)
    grad = simam_backward(x4, g4, 1e-4, method=method, backend="cuda")
    ref = simam_backward(x4.astype(np.float64), g4.astype(np.float64), 1e-4, method=method,
                         backend="numpy")
    scale = np.max(np.abs(ref), axis=2, keepdims=True)
    assert np.max(np.abs(grad - ref) / scale) < 2e-6
