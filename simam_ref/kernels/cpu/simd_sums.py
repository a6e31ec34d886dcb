"""Float64 sums of float32 rows and columns, written as explicit LLVM vector code.

**Rows** (:func:`moments_f32`, :func:`moments_abs_f32`, :func:`sum_dot_f32`): a
loop over ``m`` values that LLVM vectorises itself pays for a trip count known only
at run time: a 32-element vector loop, a vector epilogue, a scalar remainder, each
with its own horizontal reduction (16 ns a 49-neuron row in L1 on the AVX-512
host, against 9 ns for the same loop with ``m`` a compile-time constant).  These
intrinsics emit the loop that the constant trip count gets: ``<8 x double>``
accumulators (two independent chains, 16 values an iteration), one more loop of
8-value chunks, then a last chunk read with ``llvm.masked.load`` (lanes past the
row are not read, so a row may end anywhere, page ends included) and one fixed
tree of horizontal additions.  They take C-contiguous float32 arrays (any number
of dimensions), an element offset ``start`` into their flat data and a length
``m``; the caller keeps ``start + m`` within every array.

**Columns** (:func:`column_moments_f32`, the channels-last statistics): a tile of
channels-last data keeps a float64 sum and sum of squares per channel; a loop over
the tile's neuron rows that LLVM vectorises loads and stores those accumulators at
every row, and from about a thousand channels (16 KiB of accumulators) they crowd
L1.  The intrinsic takes a block of rows and 32 channels and keeps their
accumulators in eight ``<8 x double>`` registers, loaded at the start of the block
and stored at its end (each channel's sums are still one running sum over its
rows in order, as in the loop it replaces); a chunk of fewer than 32 channels reads
and writes with masks.

The additions carry no ``reassoc`` flag, so LLVM keeps the order written here: the
sums depend on the values and the lengths alone, and are the same on AVX2 and
AVX-512 hosts (only ``contract`` is allowed, so both fuse a square and its addition
into an FMA; a host without FMA would round the square first).  Data arrays are
read with no alignment assumed (a user's float32 view may start at any byte).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["COLUMN_CHUNK", "column_moments_f32", "moments_abs_f32", "moments_f32",
           "sum_dot_f32"]

#: Lanes of an accumulator vector and independent accumulator chains (rows).
LANES = 8
CHAINS = 2
#: Channels of one :func:`column_moments_f32` call (four vectors of :data:`LANES`).
COLUMN_CHUNK = 4 * LANES

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F32 = ir.FloatType()
_F64 = ir.DoubleType()
_V32 = ir.VectorType(_F32, LANES)
_V64 = ir.VectorType(_F64, LANES)
_ZERO32 = ir.Constant(_V32, [0.0] * LANES)
_ZERO64 = ir.Constant(_V64, [0.0] * LANES)
_CONTRACT = ("contract",)


def _splat(builder: ir.IRBuilder, value: ir.Value, vty: ir.VectorType) -> ir.Value:
    """A vector of type ``vty`` with every lane ``value``."""
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def _hsum(builder: ir.IRBuilder, v: ir.Value) -> ir.Value:
    """The lanes of ``v`` added as a fixed tree: halves, then quarters, ..."""
    n = v.type.count
    while n > 1:
        h = n // 2
        lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h))))
        hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h, n))))
        v = builder.fadd(lo, hi)
        n = h
    return builder.extract_element(v, ir.Constant(_I32, 0))


def _counted_loop(builder, name, start, stop, step, inits):
    """Open a loop ``for i = start; i + step <= stop; i += step`` carrying ``inits``;
    the builder is left in the body.  Returns ``(i, phis, close)``: ``close(new)``
    feeds the carried values back and leaves the builder after the loop, where
    ``i`` and ``phis`` hold the final values."""
    pre = builder.block
    head = builder.append_basic_block(name + ".head")
    body = builder.append_basic_block(name + ".body")
    done = builder.append_basic_block(name + ".done")
    builder.branch(head)
    builder.position_at_end(head)
    i = builder.phi(_I64)
    i.add_incoming(start, pre)
    phis = []
    for v in inits:
        p = builder.phi(v.type)
        p.add_incoming(v, pre)
        phis.append(p)
    more = builder.icmp_signed("<=", builder.add(i, step), stop)  # none for stop < step
    builder.cbranch(more, body, done)
    builder.position_at_end(body)

    def close(new):
        i.add_incoming(builder.add(i, step), builder.block)
        for p, v in zip(phis, new):
            p.add_incoming(v, builder.block)
        builder.branch(head)
        builder.position_at_end(done)

    return i, phis, close


def _masked_load(builder, vty):
    """The ``llvm.masked.load`` function of vectors of type ``vty``."""
    name = "f32" if vty.element == _F32 else "f64"
    return cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(vty, [vty.as_pointer(), _I32, ir.VectorType(ir.IntType(1), LANES), vty]),
        f"llvm.masked.load.v{LANES}{name}.p0")


def _add_moments(builder, xv, x0d, s1, s2):
    """``(s1 + v, s2 + v**2)`` for the float32 vector ``xv`` and ``v = xv - x0d`` in
    float64 (the square and its addition may fuse into an FMA)."""
    v = builder.fsub(builder.fpext(xv, _V64), x0d)
    return [builder.fadd(s1, v),
            builder.fadd(s2, builder.fmul(v, v, flags=_CONTRACT), flags=_CONTRACT)]


def _lane_mask(builder, first, n):
    """Mask of the lanes ``first + j < n`` (``n`` an ``i64``; none when ``n <= first``)."""
    idx = ir.Constant(ir.VectorType(_I64, LANES), [first + j for j in range(LANES)])
    return builder.icmp_signed("<", idx, _splat(builder, n, ir.VectorType(_I64, LANES)))


def _row_sums(builder, ptrs, m, fills, inits, step):
    """Sums over ``m`` values of the float32 streams at ``ptrs``: ``step(builder,
    vectors, accs)`` returns the accumulators after one ``<8 x float>`` chunk of
    every stream.  :data:`CHAINS` chains of 16-value iterations, then a loop of
    chunks, then a masked chunk whose missing lanes read ``fills`` (a value per
    stream that adds nothing).  Returns the accumulator vectors."""
    lanes = ir.Constant(_I64, LANES)
    masked_load = _masked_load(builder, _V32)

    def chunk_ptr(p, i):
        return builder.bitcast(builder.gep(p, [i]), _V32.as_pointer())

    def load(i):
        return [builder.load(chunk_ptr(p, i), align=1) for p in ptrs]

    na = len(inits)
    i, phis, close = _counted_loop(builder, "rows.main", ir.Constant(_I64, 0), m,
                                   ir.Constant(_I64, LANES * CHAINS), list(inits) * CHAINS)
    new = []
    for c in range(CHAINS):
        off = builder.add(i, ir.Constant(_I64, c * LANES))
        new += step(builder, load(off), phis[c * na:(c + 1) * na])
    close(new)
    accs = [phis[k] for k in range(na)]
    for c in range(1, CHAINS):  # chains added in order (CHAINS is small)
        accs = [builder.fadd(a, phis[c * na + k]) for k, a in enumerate(accs)]
    j, phis, close = _counted_loop(builder, "rows.rest", i, m, lanes, accs)
    close(step(builder, load(j), phis))
    mask = _lane_mask(builder, 0, builder.sub(m, j))
    tail = [builder.call(masked_load, [chunk_ptr(p, j), ir.Constant(_I32, 1), mask, f])
            for p, f in zip(ptrs, fills)]
    return step(builder, tail, phis)


def _check_arrays(*arrays) -> bool:
    """Whether every typing argument is a C-contiguous float32 array."""
    return all(isinstance(a, types.Array) and a.dtype == types.float32 and a.layout == "C"
               for a in arrays)


def _check_ints(*values) -> bool:
    """Whether every typing argument is an integer."""
    return all(isinstance(v, types.Integer) for v in values)


def _intp_args(context, builder, signature, args, *ks):
    """The integer arguments ``ks`` cast to ``intp``."""
    return tuple(context.cast(builder, args[k], signature.args[k], types.intp) for k in ks)


def _data_at(context, builder, signature, args, k, start):
    """Pointer to element ``start`` (``intp``) of the flat data of array argument ``k``."""
    ary = context.make_array(signature.args[k])(context, builder, args[k])
    return builder.gep(ary.data, [start])


@intrinsic
def moments_f32(typingctx, x, start, m, x0):
    """``(sum(v), sum(v**2))`` in float64 of ``v = x[start:start+m] - x0`` (``x``
    float32 C-contiguous, flat indexing; ``x0`` float32, a value of the row: the
    lanes past the row read ``x0`` and add ``x0 - x0``, zero unless ``x0`` is not
    finite, when the row's own sums are NaN anyway)."""
    if not (_check_arrays(x) and _check_ints(start, m) and x0 == types.float32):
        return None
    sig = types.UniTuple(types.float64, 2)(x, start, m, x0)

    def codegen(context, builder, signature, args):
        start, m = _intp_args(context, builder, signature, args, 1, 2)
        ptr = _data_at(context, builder, signature, args, 0, start)
        x0f = _splat(builder, args[3], _V32)
        x0d = builder.fpext(x0f, _V64)

        def step(b, vs, accs):
            return _add_moments(b, vs[0], x0d, *accs)

        s1, s2 = _row_sums(builder, [ptr], m, [x0f], [_ZERO64, _ZERO64], step)
        return context.make_tuple(builder, signature.return_type,
                                  [_hsum(builder, s1), _hsum(builder, s2)])

    return sig, codegen


@intrinsic
def moments_abs_f32(typingctx, x, g, start, m, x0):
    """:func:`moments_f32` of ``x`` and, in the same loop, the float32
    ``sum(|g[start:start+m]|)``: ``(float64, float64, float32)``."""
    if not (_check_arrays(x, g) and _check_ints(start, m) and x0 == types.float32):
        return None
    sig = types.Tuple((types.float64, types.float64, types.float32))(x, g, start, m, x0)

    def codegen(context, builder, signature, args):
        start, m = _intp_args(context, builder, signature, args, 2, 3)
        px = _data_at(context, builder, signature, args, 0, start)
        pg = _data_at(context, builder, signature, args, 1, start)
        x0f = _splat(builder, args[4], _V32)
        x0d = builder.fpext(x0f, _V64)
        fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V32, [_V32]),
                                              f"llvm.fabs.v{LANES}f32")

        def step(b, vs, accs):
            return [*_add_moments(b, vs[0], x0d, accs[0], accs[1]),
                    b.fadd(accs[2], b.call(fabs, [vs[1]]))]

        s1, s2, sg = _row_sums(builder, [px, pg], m, [x0f, _ZERO32],
                               [_ZERO64, _ZERO64, _ZERO32], step)
        return context.make_tuple(builder, signature.return_type,
                                  [_hsum(builder, s1), _hsum(builder, s2), _hsum(builder, sg)])

    return sig, codegen


@intrinsic
def sum_dot_f32(typingctx, a, b, start, m):
    """``(sum(a[k]), sum(a[k] b[k]))`` over ``start <= k < start + m`` in float64
    (``a``, ``b`` float32 C-contiguous, flat indexing): a product of two float32
    values is exact in float64, so the second sum rounds only its additions."""
    if not (_check_arrays(a, b) and _check_ints(start, m)):
        return None
    sig = types.UniTuple(types.float64, 2)(a, b, start, m)

    def codegen(context, builder, signature, args):
        start, m = _intp_args(context, builder, signature, args, 2, 3)
        pa = _data_at(context, builder, signature, args, 0, start)
        pb = _data_at(context, builder, signature, args, 1, start)

        def step(bl, vs, accs):
            va = bl.fpext(vs[0], _V64)
            ab = bl.fmul(va, bl.fpext(vs[1], _V64), flags=_CONTRACT)  # exact: an FMA or not
            return [bl.fadd(accs[0], va), bl.fadd(accs[1], ab, flags=_CONTRACT)]

        s1, s2 = _row_sums(builder, [pa, pb], m, [_ZERO32, _ZERO32], [_ZERO64, _ZERO64],
                           step)
        return context.make_tuple(builder, signature.return_type,
                                  [_hsum(builder, s1), _hsum(builder, s2)])

    return sig, codegen


@intrinsic
def column_moments_f32(typingctx, xf, start, stride, rows, acc, c0, n):
    """Add to the sums of channels ``c0 <= c < c0 + n`` (``n <= COLUMN_CHUNK``) those
    of ``v = x - x0`` over ``rows`` rows of channels-last data: channel ``c0 + j`` of
    row ``i`` is ``xf[start + i stride + j]`` (``xf`` flat float32, C-contiguous).
    ``acc`` is a C-contiguous float64 array ``(>= 3, w)``: row 0 holds each channel's
    ``x0``, rows 1 and 2 the sums of ``v`` and ``v**2``, which are loaded, added to
    row by row in order in registers, and stored back."""
    if not (_check_arrays(xf) and xf.ndim == 1 and isinstance(acc, types.Array)
            and acc.dtype == types.float64 and acc.layout == "C" and acc.ndim == 2
            and _check_ints(start, stride, rows, c0, n)):
        return None
    sig = types.void(xf, start, stride, rows, acc, c0, n)

    def codegen(context, builder, signature, args):
        start, stride, rows, c0, n = _intp_args(context, builder, signature, args, 1, 2, 3, 5, 6)
        xp = _data_at(context, builder, signature, args, 0, start)
        ary = context.make_array(signature.args[4])(context, builder, args[4])
        width = cgutils.unpack_tuple(builder, ary.shape)[1]
        arow = [builder.gep(ary.data, [builder.add(builder.mul(ir.Constant(_I64, r), width), c0)])
                for r in range(3)]
        nvec = COLUMN_CHUNK // LANES
        masks = [_lane_mask(builder, k * LANES, n) for k in range(nvec)]
        load32, load64 = _masked_load(builder, _V32), _masked_load(builder, _V64)
        store64 = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [_V64, _V64.as_pointer(), _I32, masks[0].type]),
            f"llvm.masked.store.v{LANES}f64.p0")
        align1, align64 = ir.Constant(_I32, 1), ir.Constant(_I32, 8)

        def vec_at(p, k, vty):
            return builder.bitcast(builder.gep(p, [ir.Constant(_I64, k * LANES)]),
                                   vty.as_pointer())

        def acc_at(r, k):
            return builder.call(load64, [vec_at(arow[r], k, _V64), align64, masks[k], _ZERO64])

        x0 = [acc_at(0, k) for k in range(nvec)]
        sums = [acc_at(r, k) for k in range(nvec) for r in (1, 2)]
        full = builder.icmp_unsigned("==", n, ir.Constant(_I64, COLUMN_CHUNK))
        with builder.if_else(full) as (whole, part):
            for masked, branch in ((False, whole), (True, part)):
                with branch:  # one loop with plain loads, its twin with masked ones
                    i, phis, close = _counted_loop(builder, "colsums", ir.Constant(_I64, 0),
                                                   rows, ir.Constant(_I64, 1), sums)
                    rp = builder.gep(xp, [builder.mul(i, stride)])
                    new = []
                    for k in range(nvec):
                        p = vec_at(rp, k, _V32)
                        xv = (builder.call(load32, [p, align1, masks[k], _ZERO32]) if masked
                              else builder.load(p, align=1))
                        new += _add_moments(builder, xv, x0[k], phis[2 * k], phis[2 * k + 1])
                    close(new)
                    for k in range(nvec):
                        for r in (1, 2):
                            p = vec_at(arow[r], k, _V64)
                            if masked:
                                builder.call(store64, [phis[2 * k + r - 1], p, align64, masks[k]])
                            else:
                                builder.store(phis[2 * k + r - 1], p, align=8)
        return context.get_dummy_value()

    return sig, codegen
