"""Sketch mode's kernel: a histogram in a squashed coordinate instead of a sort."""

from __future__ import annotations

import torch

from .functional import _cap
from .sorting import _KEY_DTYPES, _float_keys, _key_values

# Sketch mode: size of the strided pilot subsample that sets each group's scale.
_PILOT = 64
# Sketch mode: the gradient averages the map's slope over this many cells each side.
_SLOPE_CELLS = 2
# Sketch mode: rows are processed in blocks of about this many elements (on CPU), so
# that the scratch buffers of a block stay in the cache between passes.
_BLOCK = 2**19
# Sketch mode: a dtype twice as wide, so that a (value, value) pair is one element.
_PAIR_DTYPES = {torch.float32: torch.float64, torch.float16: torch.float32,
                torch.bfloat16: torch.float32}


def _scratch(workspace: dict | None, name: str, like: torch.Tensor,
             dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised buffer shaped like ``like``, reused from ``workspace`` if possible.

    The workspace keeps one flat buffer per name, as large as the largest request, so
    that blocks of different sizes share it.
    """
    dtype = like.dtype if dtype is None else dtype
    if workspace is None or like.device.type != "cpu":
        return torch.empty(like.shape, dtype=dtype, device=like.device)
    numel = like.numel()
    buf = workspace.get(name)
    if buf is None or buf.dtype != dtype or buf.numel() < numel:
        buf = workspace[name] = torch.empty(numel, dtype=dtype, device=like.device)
    return buf[:numel].view(like.shape)


def _sketch(x: torch.Tensor, target_table: torch.Tensor, bins: int, need_slope: bool,
            workspace: dict | None = None):
    """Piecewise-linear map of each row through an exact histogram (sketch mode).

    Each row is squashed into (0, 1) by ``u = (1 + z / (1 + |z|)) / 2`` with
    ``z = (x - median) / scale`` (computed as ``d / (scale + |d|)``, ``d = x - median``;
    median and quartiles of a strided pilot subsample of ``_PILOT`` values); this
    heavy-tailed squash spreads Gaussian, uniform and Cauchy data over (0, 1) without
    near-empty extremes. ``u`` is binned into ``bins`` equal cells, the cells are
    counted exactly (no sort), and the CDF at each cell edge (midpoint convention) is
    mapped through ``Q``. The output is linear in ``u`` inside a cell, so it is monotone
    and equal inputs give equal outputs; the error is bounded by the mass of one cell.

    Cost: about a dozen elementwise passes and no sort of the full rows: the squash and
    binning, one ``bincount``, ONE gather of each element's (edge value, rise) pair
    and, with ``need_slope``, one gather of its slope; everything else works on
    (rows, bins + 1) tables. Rows are independent, so on CPU they are processed in a
    few blocks of about ``_BLOCK`` elements, whose scratch buffers stay in the cache
    between passes.

    Args:
        x: rows to map, shape (rows, n).
        target_table: ``Q`` at the edge CDF values ``clamp(k / n, 0.5 / n, 1 - 0.5 / n)``
            for k = 0..n (a cell edge has k elements below it), in ``x``'s dtype.
        bins: number of cells.
        need_slope: also return dy/dx, the slope of the map averaged over
            ``2 * _SLOPE_CELLS + 1`` cells (see :func:`_window_spans`).
        workspace: a dict in which scratch buffers are kept between calls (on CPU,
            where fresh large allocations are slow), or None.

    Returns:
        ``(y, slope or None, (below, median, scale))`` with ``below`` (rows, bins + 1)
        the number of elements below each cell edge.
    """
    rows, n = x.shape
    dtype, device = x.dtype, x.device
    med, scale = _pilot_location_scale(x)
    width = bins + 1
    y = torch.empty_like(x)
    below = torch.empty(rows, width, dtype=torch.int64, device=device)
    slope = per_cell = span = None
    if need_slope:
        slope = torch.empty_like(x)
        per_cell = torch.zeros(rows, width, dtype=dtype, device=device)
        span = _window_spans(bins, dtype, device)
    blocks = 1 if device.type != "cpu" else max(1, round(rows * n / _BLOCK))
    step = -(-rows // blocks)
    idx_dtype = torch.int32 if step * width < 2**31 else torch.int64
    offsets = torch.arange(0, step * width, width, dtype=idx_dtype, device=device).unsqueeze(1)
    for r0 in range(0, rows, step):
        part = slice(r0, min(rows, r0 + step))
        _sketch_block(x[part], med[part], scale[part], target_table, bins, offsets, workspace,
                      y[part], below[part], None if slope is None else slope[part],
                      None if per_cell is None else per_cell[part], span)
    return y, slope, (below, med, scale)


def _pilot_location_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's median and scale (interquartile range, else half the range, else 1),
    ``(rows, 1)`` each, from a strided pilot subsample of about ``_PILOT`` values."""
    n = x.shape[1]
    # the pilot's order statistics, sorted through integer keys (see _SortedRows)
    sample = x[:, :: max(1, n // _PILOT)]
    key_float = x.dtype if x.dtype in _KEY_DTYPES else torch.float32
    pilot_keys, _ = torch.sort(_float_keys(sample.to(key_float)), dim=-1)
    m = pilot_keys.shape[1]
    cols = [0, m // 4, m // 2, (3 * m) // 4, m - 1]
    order = _key_values(pilot_keys[:, cols], key_float).to(x.dtype)  # (rows, 5)
    med = order[:, 2:3]
    scale = order[:, 3:4] - order[:, 1:2]
    # heavy ties can make the quartiles equal: fall back to the range, then to 1
    scale = torch.where(scale > 0, scale, 0.5 * (order[:, 4:5] - order[:, 0:1]))
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return med, scale


def _window_spans(bins: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor | None:
    """Widths, in units of the scale, of the slope windows that avoid the outer edges.

    dT/dx is a secant over a window of ``2 * _SLOPE_CELLS + 1`` cells: the rise of the
    map across the window over the window's width in x (cell edges in x are known:
    ``x = median + scale * v / (1 - |v|)`` at ``v = 2 j / bins - 1``). A window rather
    than a single cell, because a cell's rise is proportional to its count and elements
    sit more often in fuller cells, which would bias the gradient upwards by about
    ``1 / (elements per cell)``. Windows touching the infinite outer edges (cells
    ``j < w + 1`` and ``j >= bins - w - 1``, ``w = _SLOPE_CELLS``) get slope 0, and
    None is returned when every window does.
    """
    w = _SLOPE_CELLS
    if bins <= 2 * w + 2:
        return None
    v = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64, device=device)
    edge_z = (v / (1.0 - v.abs())).to(dtype)  # -inf and inf at the ends
    return edge_z[2 * w + 2: bins] - edge_z[1: bins - 2 * w - 1]


def _sketch_block(x: torch.Tensor, med: torch.Tensor, scale: torch.Tensor,
                  target_table: torch.Tensor, bins: int, offsets: torch.Tensor,
                  workspace: dict | None, y: torch.Tensor, below: torch.Tensor,
                  slope: torch.Tensor | None, per_cell: torch.Tensor | None,
                  span: torch.Tensor | None) -> None:
    """:func:`_sketch` on a block of rows, writing into ``y``, ``below``, ``slope`` and
    ``per_cell`` (slices of the full results; ``per_cell`` zero-filled)."""
    rows, n = x.shape
    dtype, device = x.dtype, x.device
    # Few block-size buffers, reused in place (fresh allocations cost page faults). The
    # second buffer is twice as large because it later receives the gathered pairs.
    pair_dtype = _PAIR_DTYPES.get(dtype)
    # z / (1 + |z|) = d / (scale + |d|) with d = x - median: three elementwise passes,
    # each with at most one per-row operand (PyTorch vectorizes those)
    d = torch.sub(x, med, out=_scratch(workspace, "z", x))
    if pair_dtype is not None:
        wide = _scratch(workspace, "wide", x.reshape(-1), pair_dtype).view(dtype).view(2, rows, n)
        t = wide[0]
    else:
        t = _scratch(workspace, "t", x)
    torch.abs(d, out=t).add_(scale)
    # one cheap reduction finds NaN (and inf, which would make d / (scale + |d|) NaN)
    if not bool(torch.isfinite(t.sum())):
        if bool(torch.isnan(x).any()):
            raise ValueError("`input` contains NaN; quantile maps need ordered values")
        big = min(1e30, torch.finfo(dtype).max / 4)  # |d| + scale stays finite
        d.clamp_(-big, big)
        torch.abs(d, out=t).add_(scale)
    half = 0.5 * bins
    # u * bins (into d's buffer), strictly below `bins` so that truncation gives a cell
    # in [0, bins - 1]
    ub = torch.addcdiv(torch.tensor(half, dtype=dtype, device=device), d, t,
                       value=half * (1.0 - 1e-6), out=d)
    # flat cell ids index both the counts and the (rows, bins + 1) edge tables; int32
    # (half the memory traffic of int64) whenever the ids fit
    width = bins + 1
    cell = _scratch(workspace, "cell", x, offsets.dtype).copy_(ub)  # truncates: ub >= 0
    frac = ub.frac_().view(-1)
    cell += offsets[:rows]
    cell = cell.view(-1)
    counts = torch.bincount(cell, minlength=rows * width).view(rows, width)
    torch.cumsum(counts, dim=1, out=below).sub_(counts)  # elements left of each edge
    # Q at the CDF of each cell edge (halfway between the neighbouring plotting
    # positions), read from the table of Q at k / n
    edge_y = target_table.index_select(0, below.view(-1)).view(rows, width)
    # y = edge_y[cell] + frac * rise[cell], the two table values fetched by ONE gather:
    # each (edge value, rise) pair is viewed as a single element of twice the width
    table = torch.empty(rows, width, 2, dtype=dtype, device=device)
    table[:, :, 0] = edge_y
    torch.sub(edge_y[:, 1:], edge_y[:, :-1], out=table[:, :bins, 1])
    table[:, bins, 1] = 0.0
    table = table.view(rows * width, 2)
    if pair_dtype is not None:
        got = torch.index_select(table.view(pair_dtype).view(-1), 0, cell,
                                 out=wide.view(pair_dtype).view(-1)).view(dtype).view(-1, 2)
        torch.addcmul(got[:, 0], got[:, 1], frac, out=y.view(-1))
    else:
        torch.addcmul(table[:, 0].index_select(0, cell), table[:, 1].index_select(0, cell),
                      frac, out=y.view(-1))
    if slope is not None:
        if span is not None:  # the windows' rise over their width (see _sketch)
            w = _SLOPE_CELLS
            rise = edge_y[:, 2 * w + 2: bins] - edge_y[:, 1: bins - 2 * w - 1]
            # a scale too small for the quotient (subnormal or float16 data) gives the
            # dtype's largest finite slope, not inf
            # (and a product that underflows to 0 is raised to the smallest normal
            # number, so that an empty window gives 0, not 0 / 0)
            width_x = (scale * span).clamp_min_(torch.finfo(dtype).tiny)
            _cap(torch.div(rise, width_x, out=per_cell[:, w + 1: bins - w - 1]))
        torch.index_select(per_cell.view(-1), 0, cell, out=slope.view(-1))


def _sketch_quantiles(edge_p: torch.Tensor, med: torch.Tensor, scale: torch.Tensor,
                      levels: torch.Tensor) -> torch.Tensor:
    """Invert the sketch's piecewise-linear CDF at ``levels``: (rows, K) quantiles."""
    rows, edges = edge_p.shape
    bins = edges - 1
    lv = levels.to(edge_p.dtype).expand(rows, -1).contiguous()
    j = (torch.searchsorted(edge_p.contiguous(), lv, right=True) - 1).clamp(0, bins - 1)
    p0 = edge_p.gather(1, j)
    p1 = edge_p.gather(1, j + 1)
    frac = torch.where(p1 > p0, (lv - p0) / (p1 - p0).clamp_min(1e-30), torch.zeros_like(lv))
    v = (2.0 * (j + frac.clamp(0, 1)) / bins - 1.0).clamp(-1 + 1e-6, 1 - 1e-6)
    return med + scale * v / (1.0 - v.abs())

