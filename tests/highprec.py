"""High-precision (mpmath) SimAM, straight from the definitions, for small arrays.

Independent of the project's numerics: no scaling, no moment tricks, no
leave-one-out identities — the exact method loops over the other neurons.
"""

import mpmath
import numpy as np

mpmath.mp.dps = 60


def _gain(e_inv):
    return 1 / (1 + mpmath.exp(-e_inv))


def channel_forward(values, lam, method):
    xs = [mpmath.mpf(float(v)) for v in values]
    m = len(xs)
    lam = mpmath.mpf(lam)
    out = []
    if method == "paper":
        mu = mpmath.fsum(xs) / m
        v = mpmath.fsum((x - mu) ** 2 for x in xs) / (m - 1)
        for x in xs:
            out.append(x * _gain((x - mu) ** 2 / (4 * (v + lam)) + mpmath.mpf(1) / 2))
    else:
        for t, x in enumerate(xs):
            others = xs[:t] + xs[t + 1:]
            mu_t = mpmath.fsum(others) / (m - 1)
            var_t = mpmath.fsum((o - mu_t) ** 2 for o in others) / (m - 1)
            out.append(x * _gain((x - mu_t) ** 2 / (4 * (var_t + lam)) + mpmath.mpf(1) / 2))
    return out


def forward(x, lam, method="paper", axes=None):
    """``simam`` in 60-digit arithmetic, returned as float64 (any spatial ``axes``)."""
    x = np.asarray(x)
    axes = tuple(range(2, x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    others = tuple(a for a in range(x.ndim) if a not in axes)
    xt = np.moveaxis(x, axes, range(len(others), x.ndim))
    rows = xt.reshape(-1, int(np.prod([x.shape[a] for a in axes])))
    y = np.array([[float(v) for v in channel_forward(r, lam, method)] for r in rows])
    return np.moveaxis(y.reshape(xt.shape), range(len(others), x.ndim), axes)
