"""The explicit vector sums of the float32 kernels (``kernels/cpu/simd_sums.py``).

Checked against NumPy float64 sums, against a NumPy replay of the documented
summation order (bit for bit: the order is fixed in the emitted code, so it cannot
depend on the host's vector width), for the masked last chunk never reading past
the row (a row that ends where an unreadable page begins), and for the column sums
touching only their channels.
"""

from __future__ import annotations

import mmap
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from simam_ref.kernels.cpu import simd_sums

LENGTHS = [*range(0, 41), 47, 48, 49, 63, 64, 65, 100, 196, 784, 3136]


@njit(cache=False)
def _moments(x, start, m, x0):
    return simd_sums.moments_f32(x, start, m, x0)


@njit(cache=False)
def _moments_abs(x, g, start, m, x0):
    return simd_sums.moments_abs_f32(x, g, start, m, x0)


@njit(cache=False)
def _sum_dot(a, b, start, m):
    return simd_sums.sum_dot_f32(a, b, start, m)


@njit(cache=False)
def _column_moments(xf, start, stride, rows, acc, c0, n):
    simd_sums.column_moments_f32(xf, start, stride, rows, acc, c0, n)


def _replay(streams: list[np.ndarray]) -> list:
    """The documented order in NumPy, one sum per stream: two chains of 8-lane
    vectors over 16 values an iteration, the chains added, then 8-value chunks, then
    a last chunk padded with zeros, then the lanes as a tree (halves, quarters, ...)."""
    lanes, chains = simd_sums.LANES, simd_sums.CHAINS
    m = len(streams[0])

    def chunk(s, lo):
        v = np.zeros(lanes, s.dtype)
        part = s[lo:lo + lanes]
        v[:len(part)] = part
        return v

    acc = [[np.zeros(lanes, s.dtype) for s in streams] for _ in range(chains)]
    i = 0
    while i + lanes * chains <= m:
        for c in range(chains):
            acc[c] = [a + chunk(s, i + c * lanes) for a, s in zip(acc[c], streams)]
        i += lanes * chains
    total = acc[0]
    for c in range(1, chains):
        total = [a + b for a, b in zip(total, acc[c])]
    while i + lanes <= m:
        total = [a + chunk(s, i) for a, s in zip(total, streams)]
        i += lanes
    total = [a + chunk(s, i) for a, s in zip(total, streams)]  # the masked chunk
    out = []
    for v in total:
        while len(v) > 1:
            v = v[:len(v) // 2] + v[len(v) // 2:]
        out.append(v[0])
    return out


def _wide(n: int, seed: int) -> np.ndarray:
    """float32 values of both signs whose exponents span 2**-30..2**30, so a float64
    sum of them rounds and its value depends on the order of the additions."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * 2.0 ** rng.integers(-30, 31, n)).astype(np.float32)


@pytest.mark.parametrize("m", LENGTHS)
@pytest.mark.parametrize("start", [0, 1, 5])
def test_row_sums_match_float64_sums(m, start):
    rng = np.random.default_rng(m * 7 + start)
    x = (rng.standard_normal(start + m + 9) * 3.0 + 100.0).astype(np.float32)
    g = rng.standard_normal(start + m + 9).astype(np.float32)
    x0 = x[start]
    v = x[start:start + m].astype(np.float64) - np.float64(x0)
    s1, s2 = _moments(x, start, m, x0)
    assert s1 == pytest.approx(v.sum(), rel=1e-14, abs=1e-12)
    assert s2 == pytest.approx((v * v).sum(), rel=1e-14, abs=1e-300)
    a1, a2, sg = _moments_abs(x, g, start, m, x0)
    assert (a1, a2) == (s1, s2)  # the same loop of x
    assert sg == pytest.approx(float(np.abs(g[start:start + m]).astype(np.float64).sum()),
                               rel=1e-5, abs=0.0)
    p1, p2 = _sum_dot(x, g, start, m)
    xr, gr = x[start:start + m].astype(np.float64), g[start:start + m].astype(np.float64)
    assert p1 == pytest.approx(xr.sum(), rel=1e-14)
    assert p2 == pytest.approx((xr * gr).sum(), rel=1e-12, abs=1e-10)


@pytest.mark.parametrize("m", LENGTHS)
def test_row_sums_follow_the_documented_order_bit_for_bit(m):
    """With ``x0 = 0`` every ``v`` is a float32 value, so ``v**2`` is exact in float64
    and the sums round only in their additions (as does every product of two float32
    values): the kernel's result must equal a replay of the documented order,
    whatever the vector width of the host."""
    x = _wide(m + 3, seed=m)[1:m + 1]
    g = _wide(m + 3, seed=1000 + m)[1:m + 1]
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    s1, s2 = _moments(x, 0, m, np.float32(0.0))
    assert [s1, s2] == _replay([x64, x64 * x64])  # exact squares: the FMA rounds as a sum
    a1, a2, sg = _moments_abs(x, g, 0, m, np.float32(0.0))
    assert [a1, a2] == [s1, s2]
    assert sg == _replay([np.abs(g)])[0]  # float32 additions
    assert list(_sum_dot(x, g, 0, m)) == _replay([x64, x64 * g64])  # exact products


def test_the_order_replay_can_tell_orders_apart():
    """The data of the order test is order-sensitive: the replay differs from a
    sequential float64 sum for most lengths (so an order change would show)."""
    differ = 0
    for m in LENGTHS:
        x64 = _wide(m + 3, seed=m)[1:m + 1].astype(np.float64)
        seq = 0.0
        for v in x64:
            seq += v
        differ += seq != _replay([x64])[0]
    assert differ >= len(LENGTHS) // 2


@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, 32])
@pytest.mark.parametrize("rows", [0, 1, 5, 16])
def test_column_moments_add_each_channels_sums(n, rows):
    """Channels ``c0 .. c0+n`` of ``rows`` rows of channels-last data (stride 45, a
    start inside a row) added to sums already in ``acc``; the channels around them
    and the spare rows of ``acc`` untouched."""
    rng = np.random.default_rng(100 * n + rows)
    stride, c0, first = 45, 3, 2
    xf = (rng.standard_normal((rows + 3) * stride) * 2.0 + 50.0).astype(np.float32)
    acc = rng.standard_normal((4, 40))
    before = acc.copy()
    _column_moments(xf, first * stride + c0, stride, rows, acc, c0, n)
    block = xf[first * stride:(first + rows) * stride].reshape(rows, stride)[:, c0:c0 + n]
    v = block.astype(np.float64) - before[0, c0:c0 + n]
    np.testing.assert_allclose(acc[1, c0:c0 + n], before[1, c0:c0 + n] + v.sum(axis=0),
                               rtol=1e-13, atol=1e-11)
    np.testing.assert_allclose(acc[2, c0:c0 + n], before[2, c0:c0 + n] + (v * v).sum(axis=0),
                               rtol=1e-13, atol=1e-11)
    keep = np.ones(40, bool)
    keep[c0:c0 + n] = False
    assert np.array_equal(acc[1:3, keep], before[1:3, keep])
    assert np.array_equal(acc[0], before[0]) and np.array_equal(acc[3], before[3])


@pytest.mark.parametrize("n", [5, 32])
def test_column_moments_follow_the_documented_order_bit_for_bit(n):
    """Each channel: the block's rows added in order onto the sums already in ``acc``,
    one running sum (``x0 = 0``: exact squares, as in the row test)."""
    rows, stride = 23, 37
    xf = _wide(rows * stride, seed=n)
    acc = np.zeros((3, 32))
    acc[1:, :n] = _wide(2 * n, seed=99 + n).reshape(2, n)
    expect = acc.copy()
    for r in xf.reshape(rows, stride)[:, :n].astype(np.float64):
        expect[1, :n] = expect[1, :n] + r
        expect[2, :n] = expect[2, :n] + r * r
    _column_moments(xf, 0, stride, rows, acc, 0, n)
    assert np.array_equal(acc, expect)


def test_row_sums_of_no_values_and_unaligned_data():
    """A length of 0 (or below) sums nothing; data starting at an odd byte is read as
    it is (no alignment is assumed)."""
    x = np.arange(1, 20, dtype=np.float32)
    for m in (0, -1, -17):
        assert _moments(x, 0, m, x[0]) == (0.0, 0.0)
        assert _sum_dot(x, x, 0, m) == (0.0, 0.0)
    raw = np.zeros(4 * 40 + 1, np.uint8)
    odd = raw[1:].view(np.float32)
    assert not odd.flags.aligned
    odd[:] = np.arange(40, dtype=np.float32) * np.float32(0.25)
    ref = odd[3:3 + 37].astype(np.float64)
    assert _sum_dot(odd, odd, 3, 37) == (ref.sum(), (ref * ref).sum())
    s1, s2 = _moments(odd, 3, 37, odd[3])
    assert (s1, s2) == ((ref - ref[0]).sum(), ((ref - ref[0]) ** 2).sum())


def test_row_sums_propagate_nan_and_inf():
    x = np.array([1.0, np.nan, 2.0], np.float32)
    assert all(np.isnan(_moments(x, 0, 3, x[0])))
    x = np.array([1.0, 2.0, np.inf], np.float32)
    assert _moments(x, 0, 3, x[0]) == (np.inf, np.inf)
    g = np.array([0.0, -np.inf, 1.0], np.float32)
    assert _moments_abs(x, g, 0, 3, x[0])[2] == np.inf


def test_row_sums_reject_arrays_they_cannot_read_flat():
    """Typing accepts C-contiguous float32 data arrays only (a strided or float64 array
    cannot be read as flat float32 data), and a C-contiguous 2-D float64 ``acc``."""
    with pytest.raises(Exception, match="(?i)typing|resolution|invalid"):
        _sum_dot(np.zeros(8), np.zeros(8), 0, 8)
    with pytest.raises(Exception, match="(?i)typing|resolution|invalid"):
        _sum_dot(np.zeros(16, np.float32)[::2], np.zeros(8, np.float32), 0, 8)
    with pytest.raises(Exception, match="(?i)typing|resolution|invalid"):
        _column_moments(np.zeros(8, np.float32), 0, 1, 1, np.zeros((3, 8), np.float32), 0, 1)


_GUARD_SCRIPT = textwrap.dedent("""
    import ctypes, mmap
    import numpy as np
    from numba import njit
    from simam_ref.kernels.cpu import simd_sums

    page = mmap.PAGESIZE
    buf = mmap.mmap(-1, 2 * page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(addr + page, page, 0) == 0  # PROT_NONE

    @njit(cache=False)
    def sums(x, g, m):
        a = simd_sums.moments_f32(x, x.shape[0] - m, m, x[x.shape[0] - m])
        b = simd_sums.moments_abs_f32(x, g, x.shape[0] - m, m, x[x.shape[0] - m])
        c = simd_sums.sum_dot_f32(x, g, x.shape[0] - m, m)
        return a[1] + b[1] + c[0]

    @njit(cache=False)
    def columns(x, n, acc):
        simd_sums.column_moments_f32(x, x.shape[0] - n, 7, 1, acc, 0, n)

    n = page // 4
    x = np.frombuffer(buf, np.float32, count=n, offset=0)  # ends at the guard page
    x[:] = 1.0
    for m in range(1, 40):
        assert sums(x, x, m) == m, m
    for k in range(1, simd_sums.COLUMN_CHUNK):  # the last row's chunk of k channels
        acc = np.zeros((3, simd_sums.COLUMN_CHUNK))
        acc[0] = 0.5
        columns(x, k, acc)
        assert np.all(acc[1, :k] == 0.5) and np.all(acc[1, k:] == 0.0), k
    print("ok")
""")


@pytest.mark.skipif(not hasattr(mmap, "PROT_READ") or sys.platform == "win32",
                    reason="needs mmap protection flags and mprotect (POSIX)")
def test_masked_last_chunk_does_not_read_past_the_row():
    """Rows that end where an unreadable page begins: a read past the row would
    kill the process (run in a child, so a fault fails this test alone)."""
    run = subprocess.run([sys.executable, "-c", _GUARD_SCRIPT], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
