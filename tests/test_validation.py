"""Bad input: one test per rule, the same error and message on every backend."""

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

from simam_ref import simam, simam_backward

BACKENDS = ["numpy", "cpu", "cuda"]


def errors_on_all_backends(exc_type, match, call):
    """Run ``call(backend)`` on each backend; all must raise the same error and message."""
    messages = set()
    for backend in BACKENDS:
        with pytest.raises(exc_type, match=match) as info:
            call(backend)
        messages.add(str(info.value))
    assert len(messages) == 1, messages
    return messages.pop()


X = np.ones((2, 3, 4, 5), dtype=np.float32)


def test_fewer_than_two_neurons():
    msg = errors_on_all_backends(ValueError, "at least 2 neurons",
                                 lambda b: simam(np.ones((2, 3, 1, 1)), backend=b))
    assert "M = 1" in msg


@pytest.mark.parametrize("lam", [0.0, -1e-4, float("nan"), float("inf"), -np.inf])
def test_lam_not_finite_or_not_positive(lam):
    msg = errors_on_all_backends(ValueError, "lam must be finite and > 0",
                                 lambda b: simam(X, lam, backend=b))
    assert repr(lam) in msg


@pytest.mark.parametrize("lam", ["0.1", None, 1j, True])
def test_lam_not_a_real_number(lam):
    errors_on_all_backends(TypeError, "lam must be a real number",
                           lambda b: simam(X, lam, backend=b))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_non_floating_dtype(dtype):
    msg = errors_on_all_backends(TypeError, "non-floating dtype",
                                 lambda b: simam(np.ones((1, 2, 3, 3), dtype=dtype), backend=b))
    assert str(np.dtype(dtype)) in msg


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_dtype(dtype):
    errors_on_all_backends(TypeError, "complex dtype",
                           lambda b: simam(np.ones((1, 2, 3, 3), dtype=dtype), backend=b))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4)])
def test_empty_array(shape):
    msg = errors_on_all_backends(ValueError, "empty", lambda b: simam(np.ones(shape), backend=b))
    assert str(shape) in msg


@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_ndim_below_three_with_default_axes(shape):
    errors_on_all_backends(ValueError, r"ndim >= 3",
                           lambda b: simam(np.ones(shape), backend=b))


def test_ndim_below_three_works_with_axes():
    x = np.arange(10.0).reshape(2, 5)
    np.testing.assert_allclose(simam(x, axes=1, backend="numpy"),
                               simam(x[None], axes=2, backend="numpy")[0])


def test_duplicate_axes():
    errors_on_all_backends(ValueError, "duplicate", lambda b: simam(X, axes=(2, -2), backend=b))


@pytest.mark.parametrize("axes", [(4,), (-5,), 7])
def test_axes_out_of_range(axes):
    errors_on_all_backends(ValueError, "out of range", lambda b: simam(X, axes=axes, backend=b))


def test_axes_empty_or_not_integers():
    errors_on_all_backends(ValueError, "at least one axis", lambda b: simam(X, axes=(), backend=b))
    errors_on_all_backends(TypeError, "integers", lambda b: simam(X, axes=(2.0,), backend=b))


def test_out_wrong_shape():
    msg = errors_on_all_backends(ValueError, "out has shape",
                                 lambda b: simam(X, out=np.empty((2, 3, 5, 4), np.float32),
                                                 backend=b))
    assert "(2, 3, 5, 4)" in msg


def test_out_wrong_dtype():
    errors_on_all_backends(TypeError, "out has dtype float64",
                           lambda b: simam(X, out=np.empty(X.shape), backend=b))


def test_out_partly_overlapping_input():
    buf = np.ones(2 * 3 * 4 * 5 + 1, dtype=np.float32)
    x = buf[:-1].reshape(X.shape)
    out = buf[1:].reshape(X.shape)
    errors_on_all_backends(ValueError, "partly overlaps", lambda b: simam(x, out=out, backend=b))


def test_out_read_only():
    out = np.empty_like(X)
    out.flags.writeable = False
    errors_on_all_backends(ValueError, "read-only", lambda b: simam(X, out=out, backend=b))


def test_grad_out_wrong_shape():
    errors_on_all_backends(ValueError, "grad_out has shape",
                           lambda b: simam_backward(X, np.ones((2, 3, 4)), backend=b))


def test_grad_out_non_floating():
    errors_on_all_backends(TypeError, "grad_out must have a real floating dtype",
                           lambda b: simam_backward(X, np.ones(X.shape, int), backend=b))


def test_unknown_method():
    errors_on_all_backends(ValueError, "method must be one of",
                           lambda b: simam(X, method="official", backend=b))


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of .* got 'gpu'"):
        simam(X, backend="gpu")


def test_cuda_backend_without_gpu_or_simulator(monkeypatch):
    from simam_ref.kernels import cuda

    monkeypatch.setattr(cuda, "available", lambda: False)
    with pytest.raises(ValueError, match="backend='cuda' is not available"):
        simam(X, backend="cuda")


def test_in_place_on_every_backend():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5))
    want = simam(x, backend="numpy")
    for backend in BACKENDS:
        buf = x.copy()
        assert simam(buf, out=buf, backend=backend) is buf
        np.testing.assert_allclose(buf, want, rtol=1e-12)


# ------------------------------------------------- messages that name the culprit
@pytest.mark.parametrize("axes, name", [(2.0, "float 2.0"), ("23", "str '23'"),
                                        (np.float64(3), "got float64 ")])
def test_axes_not_an_int_or_sequence(axes, name):
    msg = errors_on_all_backends(TypeError, "axes must be an int or a sequence of ints",
                                 lambda b: simam(X, axes=axes, backend=b))
    assert name in msg


def test_axes_zero_d_array_and_numpy_ints_accepted():
    want = simam(X, axes=(2, 3), backend="numpy")
    for backend in BACKENDS:
        np.testing.assert_allclose(simam(X, axes=np.array([2, 3]), backend=backend), want,
                                   rtol=1e-6)
        np.testing.assert_allclose(simam(X[:, :, 0], axes=np.array(2), backend=backend),
                                   simam(X[:, :, 0], axes=2, backend="numpy"), rtol=1e-6)


@pytest.mark.parametrize("lam", [10**400, Fraction(10**400, 3), Decimal("1e400")])
def test_lam_overflowing_float64(lam):
    msg = errors_on_all_backends(ValueError, "lam must be finite and > 0, got .* overflows float64",
                                 lambda b: simam(X, lam, backend=b))
    assert repr(lam)[:12] in msg
    assert len(msg) < 200  # a 400-digit value is abbreviated


@pytest.mark.parametrize("lam", [Fraction(1, 10**400), Decimal("1e-400")])
def test_lam_positive_but_underflowing_float64(lam):
    msg = errors_on_all_backends(ValueError, "positive but underflows float64",
                                 lambda b: simam(X, lam, backend=b))
    assert repr(lam)[:12] in msg


@pytest.mark.parametrize("lam", [-10**400, Fraction(-1, 10**400), Decimal("-Infinity")])
def test_lam_huge_or_tiny_negative(lam):
    msg = errors_on_all_backends(ValueError, "lam must be finite and > 0",
                                 lambda b: simam(X, lam, backend=b))
    assert "flows" not in msg


@pytest.mark.parametrize("lam", [np.array(0.1), np.array(0.1, np.float32), Fraction(1, 10),
                                 Decimal("0.1"), np.float32(0.1)])
def test_lam_zero_d_array_and_other_reals_accepted(lam):
    for backend in BACKENDS:
        np.testing.assert_array_equal(simam(X, lam, backend=backend),
                                      simam(X, float(lam), backend=backend))
        np.testing.assert_array_equal(simam_backward(X, X, lam, backend=backend),
                                      simam_backward(X, X, float(lam), backend=backend))


@pytest.mark.parametrize("lam", [np.array([0.1]), np.array([[0.1]]), np.array(True)])
def test_lam_array_not_a_scalar(lam):
    errors_on_all_backends(TypeError, r"lam must be a real number \(or a 0-d array\), got",
                           lambda b: simam(X, lam, backend=b))


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8,
                    reason="longdouble is float64 on this platform")
def test_longdouble_input_named():
    ld = np.dtype(np.longdouble)
    msg = errors_on_all_backends(TypeError, r"x has dtype float(96|128) \(longdouble\), which "
                                 r"is not supported; cast it to float64",
                                 lambda b: simam(X.astype(ld), backend=b))
    assert str(ld) in msg
    errors_on_all_backends(TypeError, r"grad_out has dtype .* \(longdouble\)",
                           lambda b: simam_backward(X, X.astype(ld), backend=b))
