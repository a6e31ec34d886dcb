"""Every array a NumPy user holds: read-only, foreign byte order, masked; threads.

Each case runs on every backend (``auto``, ``cpu``, ``numpy`` and ``cuda``, the last
under Numba's simulator without a GPU), forward and backward, and for the CPU
kernel on both its channel path and its within-channel split path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc

import numba
import numpy as np
import pytest
from test_validation import errors_on_all_backends

from simam_ref import constants, reference, simam, simam_backward
from simam_ref.kernels import cpu, cuda

BACKENDS = ["auto", "cpu", "numpy", "cuda"]
SHAPE = (2, 3, 8, 8)  # 6 channels of M = 64


def _x(dtype=np.float32, shape=SHAPE, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.fixture(params=["channel", "split"])
def path(request, monkeypatch):
    """The CPU kernel's path for :data:`SHAPE` (small blocks make it split)."""
    if request.param == "split":
        monkeypatch.setattr(constants, "SPLIT_MIN_M", 16)
        monkeypatch.setattr(constants, "BLOCK", 16)
    channels, m = SHAPE[0] * SHAPE[1], SHAPE[2] * SHAPE[3]
    assert cpu.use_split(channels, m) == (request.param == "split")
    return request.param


def _backend_cases() -> list:
    """(backend, path) pairs: the split path exists only in the CPU kernel."""
    return [pytest.param(backend, p, id=f"{backend}-{p}") for backend in BACKENDS
            for p in (("channel", "split") if backend in ("auto", "cpu") else ("channel",))]


# ------------------------------------------------------------------- read-only
def _flag(a, tmp_path):
    r = a.copy()
    r.flags.writeable = False
    return r


def _memmap(a, tmp_path):
    fn = tmp_path / f"x{a.dtype}{id(a)}.bin"
    a.tofile(fn)
    return np.memmap(fn, dtype=a.dtype, mode="r", shape=a.shape)


def _frombuffer(a, tmp_path):
    return np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)


def _broadcast_same_shape(a, tmp_path):
    return np.broadcast_to(a, a.shape)  # a read-only, C-contiguous view


READ_ONLY = [_flag, _memmap, _frombuffer, _broadcast_same_shape]
RO_IDS = ["writeable-false", "memmap-r", "frombuffer", "broadcast_to"]


@pytest.mark.parametrize("make", READ_ONLY, ids=RO_IDS)
@pytest.mark.parametrize("backend, path", _backend_cases(), indirect=["path"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_input_forward(make, backend, path, dtype, tmp_path):
    x = _x(dtype)
    ro = make(x, tmp_path)
    assert not ro.flags.writeable
    got = simam(ro, backend=backend)
    np.testing.assert_array_equal(got, simam(x, backend=backend))
    assert got.flags.writeable and got.dtype == dtype


@pytest.mark.parametrize("make", READ_ONLY, ids=RO_IDS)
@pytest.mark.parametrize("backend, path", _backend_cases(), indirect=["path"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_input_backward(make, backend, path, dtype, tmp_path):
    x, g = _x(dtype), _x(dtype, seed=1)
    want = simam_backward(x, g, backend=backend)
    ro_x, ro_g = make(x, tmp_path), make(g, tmp_path)
    np.testing.assert_array_equal(simam_backward(ro_x, ro_g, backend=backend), want)
    if dtype == np.float32:  # one read-only, one not (each is a new kernel compilation)
        np.testing.assert_array_equal(simam_backward(x, ro_g, backend=backend), want)
        np.testing.assert_array_equal(simam_backward(ro_x, g, backend=backend), want)


@pytest.mark.parametrize("backend, path", _backend_cases(), indirect=["path"])
def test_read_only_grad_out_in_place_into_x(backend, path):
    """``out=x`` with a read-only ``grad_out``: only ``x`` is written."""
    x, g = _x(), _x(seed=1)
    want = simam_backward(x, g, backend=backend)
    g.flags.writeable = False
    assert simam_backward(x, g, out=x, backend=backend) is x
    np.testing.assert_array_equal(x, want)


@pytest.mark.parametrize("backend, path", _backend_cases(), indirect=["path"])
def test_true_broadcast_input(backend, path):
    """A stride-0 broadcast is read-only and not contiguous: it works (via a copy)."""
    x = _x()
    b = np.broadcast_to(x[:1], x.shape)
    np.testing.assert_array_equal(simam(b, backend=backend),
                                  simam(np.ascontiguousarray(b), backend=backend))
    np.testing.assert_array_equal(simam_backward(b, b, backend=backend),
                                  simam_backward(b.copy(), b.copy(), backend=backend))


_MODULES = {"auto": cpu, "cpu": cpu, "numpy": reference, "cuda": cuda}


@pytest.mark.parametrize("make", READ_ONLY, ids=RO_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_read_only_input_reaches_the_backend_without_a_copy(make, backend, monkeypatch,
                                                             tmp_path):
    """The api hands a read-only C-contiguous input to the backend as a view."""
    mod = _MODULES[backend]
    seen = {}
    fwd, bwd = mod.forward_2d, mod.backward_2d

    def spy_fwd(x2, lam, exact, out2):
        seen["x2"] = x2
        fwd(x2, lam, exact, out2)

    def spy_bwd(x2, g2, lam, exact, out2):
        seen["x2"], seen["g2"] = x2, g2
        bwd(x2, g2, lam, exact, out2)

    monkeypatch.setattr(mod, "forward_2d", spy_fwd)
    monkeypatch.setattr(mod, "backward_2d", spy_bwd)
    ro_x, ro_g = make(_x(), tmp_path), make(_x(seed=1), tmp_path)
    simam(ro_x, backend=backend)
    assert np.shares_memory(seen.pop("x2"), ro_x)
    simam_backward(ro_x, ro_g, backend=backend)
    assert np.shares_memory(seen["x2"], ro_x) and np.shares_memory(seen["g2"], ro_g)


@pytest.mark.parametrize("kind", ["forward", "backward"])
@pytest.mark.parametrize("path", ["channel", "split"], indirect=True)
def test_cpu_kernel_copies_nothing_for_read_only_input(kind, path, monkeypatch):
    """Peak allocation (NumPy's and the kernel's) with ``out=`` given is far below one
    input's size.  The kernels' scratch is per running thread (the grouped float32
    backward's: about 12 bytes a neuron of a group, 111 KiB for the ``FLAT_BW_ELEMS``
    neurons of a group of an input this small), so two threads run here, on 2 MiB
    inputs (the split path: 256 KiB, 16 channels)."""
    shape = (2, 8, 64, 64) if path == "split" else (16, 8, 64, 64)
    x, g = _x(shape=shape), _x(shape=shape, seed=1)
    if path == "split":  # the fixture set a small SPLIT_MIN_M for SHAPE; M here is larger
        monkeypatch.setattr(constants, "BLOCK", 1024)  # few partial sums
        monkeypatch.setattr(constants, "SPLIT_MAX_CHANNELS", 17)
        assert cpu.use_split(16, 64 * 64)
    x.flags.writeable = False
    g.flags.writeable = False
    out = np.empty_like(x)

    def call():
        if kind == "forward":
            simam(x, out=out, backend="cpu")
        else:
            simam_backward(x, g, out=out, backend="cpu")

    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        call()  # compile outside the measurement
        tracemalloc.start()
        try:
            call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        numba.set_num_threads(before)
    assert peak < x.nbytes // 4, f"{peak} bytes allocated for a {x.nbytes}-byte input"


# ----------------------------------------------------------------- byte order
_SWAPPED = {np.dtype(d): np.dtype(d).newbyteorder("S") for d in (np.float16, np.float32,
                                                                  np.float64)}


@pytest.mark.parametrize("backend, path", _backend_cases(), indirect=["path"])
@pytest.mark.parametrize("native", [np.float16, np.float32, np.float64])
def test_non_native_byte_order(backend, path, native):
    """Big-endian input (on a little-endian host; generally: swapped) gives the same
    numbers as native input, in native byte order."""
    native = np.dtype(native)
    swapped = _SWAPPED[native]
    assert not swapped.isnative
    x, g = _x(native), _x(native, seed=1)
    xs, gs = x.astype(swapped), g.astype(swapped)
    got = simam(xs, backend=backend)
    assert got.dtype == native and got.dtype.isnative
    np.testing.assert_array_equal(got, simam(x, backend=backend))
    want_b = simam_backward(x, g, backend=backend)
    for a, b in ((xs, gs), (x, gs), (xs, g)):
        got_b = simam_backward(a, b, backend=backend)
        assert got_b.dtype == native
        np.testing.assert_array_equal(got_b, want_b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_native_out_and_in_place(backend):
    x = _x()
    want = simam(x, backend=backend)
    out = np.empty(x.shape, _SWAPPED[x.dtype])
    assert simam(x.astype(out.dtype), out=out, backend=backend) is out
    np.testing.assert_array_equal(out, want)
    buf = x.astype(out.dtype)
    assert simam(buf, out=buf, backend=backend) is buf
    np.testing.assert_array_equal(buf, want)
    with pytest.raises(TypeError, match="out has dtype >?f8|out has dtype float64"):
        simam(x, out=np.empty(x.shape, _SWAPPED[np.dtype(np.float64)]), backend=backend)


# --------------------------------------------------------------------- masked
def _masked(a):
    return np.ma.masked_array(a, mask=a > 1.0)


@pytest.mark.parametrize("name", ["x", "grad_out", "out"])
def test_masked_arrays_refused(name):
    x = _x()
    args = {"x": x, "grad_out": x.copy(), "out": np.empty_like(x)}
    args[name] = _masked(args[name])
    match = (rf"{name} is a numpy\.ma\.MaskedArray, whose mask SimAM would ignore; pass "
             rf"{name}\.filled\(value\) .* or {name}\.data")
    if name != "grad_out":
        errors_on_all_backends(
            TypeError, match, lambda b: simam(args["x"], out=args["out"], backend=b)
        )
    errors_on_all_backends(
        TypeError,
        match,
        lambda b: simam_backward(args["x"], args["grad_out"], out=args["out"], backend=b),
    )


def test_masked_array_ways_out_work():
    xm = _masked(_x())
    np.testing.assert_array_equal(simam(xm.data), simam(np.asarray(xm.data)))
    assert simam(xm.filled(0.0)).shape == xm.shape


# -------------------------------------------------------------------- threads
_THREADS_SCRIPT = textwrap.dedent("""
    import threading
    import numba
    import numpy as np
    from simam_ref import simam, simam_backward
    from simam_ref import constants
    from simam_ref.kernels import cpu

    constants.SPLIT_MIN_M, constants.BLOCK = 64, 16  # (1, 2, 16, 16) takes the split path
    rng = np.random.default_rng(0)
    cases = [rng.standard_normal(s).astype(d) for s, d in [
        ((4, 8, 16, 16), np.float32), ((4, 8, 16, 16), np.float64),
        ((1, 2, 16, 16), np.float32), ((1, 2, 16, 16), np.float64)]]
    assert [cpu.use_split(x.shape[0] * x.shape[1], 256) for x in cases] == [0, 0, 1, 1]
    nhwc = np.ascontiguousarray(cases[0].transpose(0, 2, 3, 1))  # channels-last, axes=(1, 2)
    results, errors = {}, []

    def work(i):
        try:
            for k in range(15):
                backend = ("cpu", "auto")[(i + k) % 2]
                for j, x in enumerate(cases):
                    results[i, k, j] = (simam(x, backend=backend),
                                        simam_backward(x, x[::-1].copy(), backend=backend))
                results[i, k, -1] = (simam(nhwc, axes=(1, 2), backend=backend),
                                     simam_backward(nhwc, nhwc, axes=(1, 2), backend=backend))
        except BaseException as exc:
            errors.append(repr(exc))

    # no warm-up: the first calls race to start the threading layer too
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = 0
    want = [(simam(x, backend="cpu"), simam_backward(x, x[::-1].copy(), backend="cpu"))
            for x in cases]
    want.append((simam(nhwc, axes=(1, 2)), simam_backward(nhwc, nhwc, axes=(1, 2))))
    for (i, k, j), (rf, rb) in results.items():
        bad += not (np.array_equal(rf, want[j][0]) and np.array_equal(rb, want[j][1]))
    print("layer", numba.threading_layer(), "results", len(results), "bad", bad,
          "errors", errors[:1])
""")


def test_concurrent_calls_on_the_workqueue_layer():
    """Calls from 8 Python threads at once: Numba's ``workqueue`` layer aborts the
    process on concurrent parallel launches unless the api serialises them."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-1500:]}"
    assert "layer workqueue results 600 bad 0 errors []" in proc.stdout, proc.stdout


def test_kernel_lock_only_where_the_layer_needs_it():
    """On ``omp``/``tbb`` calls run concurrently (no lock); on ``workqueue`` they take
    turns."""
    import numba

    from simam_ref import backends

    simam(_x(), backend="cpu")  # a parallel launch: the layer is now known
    assert backends._needs_kernel_lock() == (numba.threading_layer() == "workqueue")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_channels_last(backend, dtype):
    """A read-only ``(N, H, W, C)`` array with ``axes=(1, 2)``: same numbers as the
    channels-first call."""
    x, g = _x(dtype), _x(dtype, seed=1)
    nhwc = [np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, g)]
    for a in nhwc:
        a.flags.writeable = False
    y = simam(nhwc[0], axes=(1, 2), backend=backend)
    gx = simam_backward(*nhwc, axes=(1, 2), backend=backend)
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-13}
    np.testing.assert_allclose(y, simam(x, backend=backend).transpose(0, 2, 3, 1), **tol)
    np.testing.assert_allclose(gx, simam_backward(x, g, backend=backend).transpose(0, 2, 3, 1),
                               **tol)
