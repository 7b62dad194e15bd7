"""Exact mode's kernel: one sort per group through integer keys.

The ranks of a group come from sorting integer keys that order like the floats; the
target's values at the plotting positions are scattered to the elements' positions,
runs of ties get their mean, and the transport derivative is estimated from order
statistics (see :func:`_sorted_slopes`).
"""

from __future__ import annotations

import copy
from typing import Optional

import torch

from .functional import _cap, _Slope

# exact mode: one sort per group


# Exact mode sorts integer keys instead of the floats themselves. A float's bits read as
# a signed integer, with the magnitude bits of negative numbers flipped, give an integer
# ordered exactly like the float (NaN aside: +NaN sorts above +inf, -NaN below -inf).
# -0.0 and +0.0 would get different keys, so 0.0 is added first (-0.0 + 0.0 = +0.0)
# and the two zeros stay ties. Why: integer comparisons need no NaN handling, so an
# integer sort is faster than a float sort (about 30% on the CPUs we measured), and a
# float32 key fits in the low half of an int64 whose high half holds the row, so that
# all groups are ordered by ONE 1-D sort, which PyTorch runs as a radix sort on CPU
# (about 2x faster here than sorting each row of floats) and on GPU. The keys are
# compared for ties and decoded back into the sorted values only where needed.
_KEY_DTYPES = {torch.float32: torch.int32, torch.float64: torch.int64}
# PyTorch sorts a 1-D integer tensor with fbgemm's radix sort when it was built with
# fbgemm and OpenMP (x86 builds); elsewhere a 1-D sort of all groups would be a
# comparison sort of rows * n keys, slower than one sort per row.
_CPU_RADIX_SORT = ("fbgemm" in torch.backends.quantized.supported_engines
                   and torch.backends.openmp.is_available())


def _one_sort(device: torch.device) -> bool:
    """Whether one 1-D sort of all the groups is fast on ``device`` (a radix sort)."""
    return _CPU_RADIX_SORT if device.type == "cpu" else device.type == "cuda"


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


class _SortedRows:
    """Each row of ``x`` (rows, n) sorted through integer keys.

    Attributes:
        keys: (rows, n) sorted keys. For float32 (and narrower) inputs, where a 1-D
            sort is a radix sort (see :func:`_one_sort`), they are the int64 keys
            ``row * 2**32 + key`` of ONE 1-D sort over all rows, so that keys of
            different rows never compare equal; otherwise each row's keys, sorted per
            row.
        idx: the sort's indices: flat positions (rows * n,) after the 1-D sort
            (``flat``), else (rows, n) positions within each row.
        flat: whether the 1-D sort was used.
    """

    def __init__(self, x: torch.Tensor) -> None:
        rows, n = x.shape
        self.shape, self.dtype = (rows, n), x.dtype
        self.key_float = x.dtype if x.dtype in _KEY_DTYPES else torch.float32
        keys = _float_keys(x if x.dtype == self.key_float else x.to(self.key_float))
        self.flat = self.key_float == torch.float32 and _one_sort(x.device)
        if self.flat:
            base = torch.arange(rows, dtype=torch.int64, device=x.device).mul_(2**32)
            self.base = base.unsqueeze(1)
            packed = keys.to(torch.int64).add_(self.base)
            del keys
            sk, self.idx = torch.sort(packed.view(-1))
            del packed
            self.keys = sk.view(rows, n)
        else:
            self.keys, self.idx = torch.sort(keys, dim=-1)

    def key_values(self, keys: torch.Tensor) -> torch.Tensor:
        """The values (in the input's dtype) of ``keys``, columns of :attr:`keys`."""
        k = (keys - self.base).to(torch.int32) if self.flat else keys
        v = _key_values(k, self.key_float)
        return v if v.dtype == self.dtype else v.to(self.dtype)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """The sorted rows of ``x`` (the tensor that was sorted)."""
        if self.flat:  # a gather is cheaper than decoding the int64 keys
            return x.reshape(-1).index_select(0, self.idx).view(self.shape)
        return self.key_values(self.keys)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """A new (rows, n) tensor holding ``values`` (n,) or (rows, n), given in sorted
        order, at the elements' positions."""
        rows, n = self.shape
        if self.flat:
            src = values.expand(rows, n).reshape(-1)  # a copy only if values is (n,)
            out = torch.empty(rows * n, dtype=values.dtype, device=values.device)
            return out.scatter_(0, self.idx, src).view(rows, n)
        out = torch.empty(self.shape, dtype=values.dtype, device=values.device)
        return out.scatter_(-1, self.idx, values.expand(rows, n))

    def average_ties(self, y: torch.Tensor, qvals: torch.Tensor) -> bool:
        """Give each run of equal inputs the mean of its target values, in ``y``.

        The check is one comparison pass over the sorted keys; only the tied elements
        (usually few) do more work. Returns whether there were ties.
        """
        n = self.shape[1]
        if self.flat:
            k = self.keys.view(-1)
            at = (k[1:] == k[:-1]).nonzero().squeeze(1)  # flat p: p and p + 1 are tied
        else:
            rc = (self.keys[:, 1:] == self.keys[:, :-1]).nonzero()
            at = rc[:, 0] * n + rc[:, 1]
        if at.numel() == 0:
            return False
        members = torch.unique(torch.cat([at, at + 1]))  # sorted flat positions
        # a member starts a new run unless it is tied to the previous position
        run = torch.cumsum(~torch.isin(members - 1, at), 0) - 1
        values = qvals[members % n]
        sums = torch.zeros(int(run[-1]) + 1, dtype=values.dtype, device=values.device)
        sums.index_add_(0, run, values)
        counts = torch.bincount(run, minlength=sums.numel()).to(values.dtype)
        mean = (sums / counts)[run]
        if self.flat:
            y.view(-1)[self.idx[members]] = mean
        else:
            r = members // n
            y[r, self.idx[r, members % n]] = mean
        return True


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
    span = s[:, -1:] - s[:, :1]
    overall = torch.where(span > 0, (qvals[-1] - qvals[0]) / span, torch.zeros_like(span))
    return _cap(torch.where(spread > 0, dq / spread, overall))



def _exact(x: torch.Tensor, qvals: torch.Tensor, dq: torch.Tensor, h: int,
           levels: Optional[torch.Tensor], positions: str, need_slope: bool):
    """Map each row of ``x`` (rows, n) onto the sorted target values ``qvals``.

    One sort (through integer keys, see :class:`_SortedRows`) gives the ranks; the
    target values (cached per n) are scattered to the elements' positions, with runs of
    ties given their mean.

    Returns:
        ``(y, slope or None, quantiles or None)``: the mapped rows, a :class:`_Slope`
        computing the transport derivative from the sorted values (only in the
        backward pass), and each row's quantiles at ``levels``.
    """
    srt = _SortedRows(x)
    # NaN sorts below -inf or above +inf, so the end columns find any NaN in the group
    if bool(torch.isnan(srt.key_values(srt.keys[:, [0, -1]])).any()):
        raise ValueError("`input` contains NaN; quantile maps need ordered values")
    quantiles = None if levels is None else _sorted_quantiles(srt, levels, positions)
    y = srt.scatter(qvals)
    ties = srt.average_ties(y, qvals)
    slope = None
    if need_slope:
        # only what the backward pass needs is saved: the indices, and the input
        # (flat) or the sorted keys, to read the sorted values from
        first = x if srt.flat else srt.keys

        def get(first: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            saved = copy.copy(srt)  # srt itself keeps no full-size tensor
            saved.idx = idx
            if not saved.flat:
                saved.keys = first
            s = saved.values(first)
            return saved.scatter(_sorted_slopes(s, qvals, dq, h, ties))

        slope = _Slope(get, (first, srt.idx), fresh=True)
    srt.keys = srt.idx = None  # only the autograd context keeps them
    return y, slope, quantiles


def _sorted_quantiles(srt: _SortedRows, levels: torch.Tensor, positions: str) -> torch.Tensor:
    """Quantiles of each sorted row at ``levels`` (linear between order statistics)."""
    n = srt.shape[-1]
    if positions == "midpoint":
        at = levels * n - 0.5
    else:
        at = levels * (n - 1)
    at = at.clamp(0, n - 1)
    lo = at.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (at - lo).to(srt.dtype)
    return torch.lerp(srt.key_values(srt.keys[:, lo]), srt.key_values(srt.keys[:, hi]), w)

