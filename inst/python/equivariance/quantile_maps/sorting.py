"""Exact mode's kernel: the ranks of each group through sorts of integer keys.

The ranks of a group come from sorting integer keys that order like the floats (on CPU
with one thread: 1-D radix sorts of blocks of rows, see :func:`_map_blocks`; else one
sort per row); the target's values at the plotting positions are scattered to the
elements' positions, runs of ties get their mean, and the transport derivative is
estimated from order statistics (see :func:`_sorted_slopes`).
"""

from __future__ import annotations

import torch

from .functional import _cap, _Slope

# Exact mode sorts integer keys instead of the floats themselves. A float's bits read as
# a signed integer, with the magnitude bits of negative numbers flipped, give an integer
# ordered exactly like the float (NaN aside: +NaN sorts above +inf, -NaN below -inf).
# -0.0 and +0.0 would get different keys, so 0.0 is added first (-0.0 + 0.0 = +0.0)
# and the two zeros stay ties. Why: integer comparisons need no NaN handling, so an
# integer sort is faster than a float sort (about 30% on the CPUs we measured), and a
# float32 key fits in the low half of an int64 whose high half holds the row, so that
# many groups are ordered by one 1-D sort, which PyTorch runs as a radix sort on CPU
# (on blocks of rows, see _BLOCK_KEYS: 2.5x faster here than sorting each row of
# floats) and on GPU. The keys are compared for ties and decoded back into the sorted
# values only where needed.
_KEY_DTYPES = {torch.float32: torch.int32, torch.float64: torch.int64}
# PyTorch sorts a 1-D integer tensor with fbgemm's radix sort when it was built with
# fbgemm and OpenMP (x86 builds); elsewhere a 1-D sort of all groups would be a
# comparison sort of rows * n keys, slower than one sort per row.
_CPU_RADIX_SORT = ("fbgemm" in torch.backends.quantized.supported_engines
                   and torch.backends.openmp.is_available())


# On CPU the rows are sorted a block at a time, about this many keys per 1-D sort. The
# block's keys, indices and the radix sort's scratch copies (about 2 MB) stay in cache,
# so that each radix pass reads cache instead of memory, and the keys of at most 256
# rows of a block need at most 40 bits: 5 radix passes of 8 bits, where one sort of 512
# rows needs 6 passes over 100 MB and slows down with every other process that uses
# the memory bus. Blocks of 8 to 64 rows of 6272 keys ran alike, 1.8x faster than one
# sort of all the rows. Rows of 2**16 keys or more are sorted one at a time (4 passes).
# 1-D sorts of fewer than 32768 keys (torch's grain size) are comparison sorts: still
# right, and only small inputs or the last block of a large one are that small.
_BLOCK_KEYS = 2**16
_MAX_BLOCK_ROWS = 256


def _one_sort(device: torch.device) -> bool:
    """Whether 1-D sorts of the packed keys of many rows are fast on ``device``.

    On GPU they are; on CPU only with fbgemm's radix sort and one torch thread. With
    more threads each radix sort is an OpenMP team with a barrier per pass, so the many
    small sorts of the blocks wait on each other's threads, and on a machine busy with
    other work (threads outnumbering cores) a call took seconds; there the sort of each
    row (one parallel loop over the rows, like an argsort) is used instead.
    """
    if device.type != "cpu":
        return device.type == "cuda"
    return _CPU_RADIX_SORT and torch.get_num_threads() == 1


def _block_rows(rows: int, n: int, device: torch.device) -> int:
    """How many rows of ``n`` keys each 1-D sort takes (all of them on GPU)."""
    if device.type != "cpu":
        return max(rows, 1)
    return max(1, min(rows, _MAX_BLOCK_ROWS, -(-_BLOCK_KEYS // n)))


def _float_keys(x: torch.Tensor) -> torch.Tensor:
    """Integers ordered like the values of ``x`` (float32 or float64), -0.0 equal to +0.0."""
    itype = _KEY_DTYPES[x.dtype]
    info = torch.iinfo(itype)
    b = torch.add(x, 0.0).view(itype)  # -0.0 + 0.0 = +0.0
    k = torch.bitwise_right_shift(b, info.bits - 1)  # 0 for x >= 0, -1 (all ones) below
    return k.bitwise_and_(info.max).bitwise_xor_(b)  # flip the magnitude bits below 0


def _key_values(k: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The floats of ``dtype`` whose keys are ``k`` (the key map is its own inverse)."""
    info = torch.iinfo(k.dtype)
    b = torch.bitwise_right_shift(k, info.bits - 1).bitwise_and_(info.max).bitwise_xor_(k)
    return b.view(dtype)


def _sorted_slopes(s: torch.Tensor, qvals: torch.Tensor, dq: torch.Tensor, h: int,
                   ties: bool) -> torch.Tensor:
    """d T / d x at each order statistic: (Q(p[j+h]) - Q(p[j-h])) / (s[j+h] - s[j-h]).

    ``dq`` holds the numerators (cached per group size). Indices are clipped to
    [0, n - 1]; without ties every denominator is positive. A spread too small for the
    quotient to fit the dtype (subnormal inputs such as ``[0, 1e-40]`` in float32, or
    float16 inputs of standard deviation 1e-5) gives the dtype's largest finite value
    instead of ``inf`` (see :func:`~.functional._cap`).
    """
    rows, n = s.shape
    if n == 1:
        return torch.zeros_like(s)
    if n > 2 * h:
        spread = torch.empty_like(s)
        torch.sub(s[:, 2 * h:], s[:, : n - 2 * h], out=spread[:, h: n - h])
        torch.sub(s[:, h: 2 * h], s[:, :1], out=spread[:, :h])
        torch.sub(s[:, -1:], s[:, n - 2 * h: n - h], out=spread[:, n - h:])
    else:
        padded = torch.cat([s[:, :1].expand(rows, h), s, s[:, -1:].expand(rows, h)], dim=1)
        spread = padded[:, 2 * h:] - padded[:, :n]
    if not ties:
        return _cap(torch.div(dq, spread, out=spread))
    # zero spread inside a long run of ties: use the group's overall slope instead
    # (only rows with a run of at least min(n, h + 1) equal values can have one, see
    # :func:`_long_run`)
    span = s[:, -1:] - s[:, :1]
    overall = torch.where(span > 0, (qvals[-1] - qvals[0]) / span, torch.zeros_like(span))
    return _cap(torch.where(spread > 0, dq / spread, overall))

def _long_run(n: int, h: int) -> int:
    """The shortest run of equal values that can give a zero spread in
    :func:`_sorted_slopes` (its ``s[j + h]`` and ``s[j - h]``, clipped to the row, equal):
    without such a run, the slopes need no tie handling."""
    return min(n, h + 1)


def _tie_means(at: torch.Tensor, n: int, qvals: torch.Tensor):
    """The runs of ties given by ``at`` (flat positions p whose successor p + 1 holds an
    equal key, within a row of ``n``), as ``(members, means, longest)``: every member's
    sorted flat position, the mean of the target values ``qvals`` over its run, and the
    longest run's length."""
    members = torch.unique(torch.cat([at, at + 1]))  # sorted flat positions
    # a member starts a new run unless it is tied to the previous position
    run = torch.cumsum(~torch.isin(members - 1, at), 0) - 1
    values = qvals[members % n]
    sums = torch.zeros(int(run[-1]) + 1, dtype=values.dtype, device=values.device)
    sums.index_add_(0, run, values)
    counts = torch.bincount(run, minlength=sums.numel())
    return members, (sums / counts.to(values.dtype))[run], int(counts.max())


def _level_columns(n: int, levels: torch.Tensor | None, positions: str):
    """Sorted columns to read: the first and last (NaN check) and, with ``levels``, the
    order statistics either side of each level's quantile: ``(columns, weights)``, the
    columns ``[0, n - 1, lo..., hi...]`` and the interpolation weights (or None)."""
    ends = torch.tensor([0, n - 1], device=None if levels is None else levels.device)
    if levels is None:
        return ends, None
    at = levels * n - 0.5 if positions == "midpoint" else levels * (n - 1)
    at = at.clamp(0, n - 1)
    lo = at.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    return torch.cat([ends, lo, hi]), at - lo


class _Sorted:
    """What the sorts of exact mode leave for the rest of the map.

    Attributes:
        picked: (rows, m) the sorted values (in the key's float dtype) at the columns of
            :func:`_level_columns`.
        ties: per block of rows (one block for one sort per row), whether it has a run of
            equal values long enough for the slopes to need tie handling (see
            :func:`_long_run`).
        idx: the sort's indices (None where no backward pass needs them): (rows * n,)
            flat positions after the 1-D sorts of blocks, else (rows, n) positions
            within each row.
    """

    def __init__(self, picked: torch.Tensor, ties: list[bool], idx: torch.Tensor | None) -> None:
        self.picked, self.ties, self.idx = picked, ties, idx


def _map_blocks(x: torch.Tensor, qvals: torch.Tensor, cols: torch.Tensor, long_run: int,
                keep_idx: bool) -> tuple[torch.Tensor, _Sorted]:
    """Exact mode through 1-D sorts of packed int64 keys, one block of rows at a time.

    Row j of a block gets the keys ``j * 2**32 + 2**31 + key``, in ``[j * 2**32,
    (j + 1) * 2**32)``: the rows of a block keep apart, every key is non-negative (no
    sign pass in the radix sort) and a block of at most 256 rows needs at most 40 bits.
    Everything a block needs (its keys, indices, the target values scattered to the
    elements, its ties, the picked columns) is done while the block is in cache.

    Returns:
        ``(y, sorted)``: the mapped rows and a :class:`_Sorted` whose ``idx`` holds the
        flat positions when ``keep_idx``.
    """
    rows, n = x.shape
    block = _block_rows(rows, n, x.device)
    local = torch.arange(block, dtype=torch.int64, device=x.device).mul_(2**32).add_(2**31)
    local = local.unsqueeze(1)
    qtile = qvals.repeat(block)  # the target values of a block, in sorted order
    y = torch.empty(rows * n, dtype=qvals.dtype, device=x.device)
    idx = torch.empty(rows * n, dtype=torch.int64, device=x.device) if keep_idx else None
    scratch_k = torch.empty(block * n, dtype=torch.int64, device=x.device)
    scratch_i = None if keep_idx else torch.empty_like(scratch_k)
    picked = torch.empty(rows, cols.numel(), dtype=torch.int64, device=x.device)
    ties = []
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        xb = x[r0:r1] if x.dtype == torch.float32 else x[r0:r1].float()
        packed = _float_keys(xb).to(torch.int64).add_(local[: r1 - r0])
        m = packed.numel()
        k = scratch_k[:m]
        i = idx[r0 * n: r1 * n] if keep_idx else scratch_i[:m]
        torch.sort(packed.view(-1), out=(k, i))
        yb = y[r0 * n: r1 * n]
        yb.scatter_(0, i, qtile[:m])
        tied = k[1:] == k[:-1]  # rows of a block never share a key
        ties.append(False)
        if bool(tied.any()):
            members, means, longest = _tie_means(tied.nonzero().squeeze(1), n, qvals)
            yb[i[members]] = means
            ties[-1] = longest >= long_run
        torch.sub(k.view(-1, n)[:, cols], local[: r1 - r0], out=picked[r0:r1])
        if keep_idx and r0:
            i.add_(r0 * n)
    picked = _key_values(picked.to(torch.int32), torch.float32)
    return y.view(rows, n), _Sorted(picked, ties, idx)


def _map_rows(x: torch.Tensor, qvals: torch.Tensor, cols: torch.Tensor, long_run: int,
              keep: bool) -> tuple[torch.Tensor, _Sorted]:
    """Exact mode through one sort of integer keys per row (float64 inputs, and devices
    without a fast 1-D sort, see :func:`_one_sort`). Returns as :func:`_map_blocks`, with
    ``idx`` only when ``keep``."""
    rows, n = x.shape
    key_float = x.dtype if x.dtype in _KEY_DTYPES else torch.float32
    keys, idx = torch.sort(_float_keys(x.to(key_float)), dim=-1)
    y = torch.empty((rows, n), dtype=qvals.dtype, device=x.device)
    y.scatter_(-1, idx, qvals.expand(rows, n))
    rc = (keys[:, 1:] == keys[:, :-1]).nonzero()  # (row, column): column + 1 is tied
    ties = [False]
    if rc.shape[0] > 0:
        members, means, longest = _tie_means(rc[:, 0] * n + rc[:, 1], n, qvals)
        r = members // n
        y[r, idx[r, members % n]] = means
        ties[0] = longest >= long_run
    picked = _key_values(keys[:, cols], key_float)
    return y, _Sorted(picked, ties, idx if keep else None)


def _exact(x: torch.Tensor, qvals: torch.Tensor, dq: torch.Tensor, h: int,
           levels: torch.Tensor | None, positions: str, need_slope: bool):
    """Map each row of ``x`` (rows, n) onto the sorted target values ``qvals``.

    The ranks come from sorting integer keys that order like the floats: 1-D sorts of
    blocks of rows (:func:`_map_blocks`) where those are radix sorts, else one sort per
    row (:func:`_map_rows`). The target values (cached per n) are scattered to the
    elements' positions, runs of ties given their mean.

    Returns:
        ``(y, slope or None, quantiles or None)``: the mapped rows, a :class:`_Slope`
        computing the transport derivative from the sorted values (only in the
        backward pass), and each row's quantiles at ``levels``.
    """
    rows, n = x.shape
    cols, weights = _level_columns(n, levels, positions)
    cols = cols.to(x.device)
    flat = x.dtype != torch.float64 and _one_sort(x.device)
    mapper = _map_blocks if flat else _map_rows
    y, srt = mapper(x, qvals, cols, _long_run(n, h), need_slope)
    # NaN sorts below -inf or above +inf, so the end columns find any NaN in the group
    if bool(torch.isnan(srt.picked[:, :2]).any()):
        raise ValueError("`input` contains NaN; quantile maps need ordered values")
    quantiles = None
    if levels is not None:
        k = levels.numel()
        lo, hi = srt.picked[:, 2: 2 + k].to(x.dtype), srt.picked[:, 2 + k:].to(x.dtype)
        quantiles = torch.lerp(lo, hi, weights.to(device=x.device, dtype=x.dtype))
    slope = None
    if need_slope:
        ties = srt.ties
        if flat:  # the sorted values are gathered from the input itself, by blocks
            block = _block_rows(rows, n, x.device)

            def get(first: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
                flat_x = first.reshape(-1)
                out = torch.empty_like(flat_x)
                for b, r0 in enumerate(range(0, rows, block)):
                    i = idx[r0 * n: min(rows, r0 + block) * n]
                    s = flat_x.index_select(0, i).view(-1, n)
                    out.scatter_(0, i, _sorted_slopes(s, qvals, dq, h, ties[b]).view(-1))
                return out.view(rows, n)

            slope = _Slope(get, (x, srt.idx), fresh=True)
        else:
            def get(first: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
                slopes = _sorted_slopes(first.gather(-1, idx), qvals, dq, h, ties[0])
                return torch.empty_like(slopes).scatter_(-1, idx, slopes)

            slope = _Slope(get, (x, srt.idx), fresh=True)
    return y, slope, quantiles
