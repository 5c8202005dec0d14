"""Numpy spatial joins through a grid of cells: no Point objects, no tree, no Python loop."""

from __future__ import annotations

import numpy as np


def box_pairs(bounds: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(box, point)`` index pairs of the points of *xy* inside each box of *bounds* (edges included).

    A numpy join through a grid of cells about a box wide: no Point objects, no tree, no Python loop.
    """
    finite = np.isfinite(bounds).all(axis=1)
    span = np.maximum(bounds[finite, 2:] - bounds[finite, :2], 0.0)
    if not finite.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    origin = xy.min(axis=0)
    size = max(float(np.median(span)), 1.0)
    while True:  # a few large boxes among small ones must not span millions of cells
        cells = ((np.floor(span / size) + 2).prod(axis=1)).sum()
        if cells <= 4 * (len(xy) + len(bounds)):
            break
        size *= 2
    cxy = np.floor((xy - origin) / size).astype(np.int64)
    ncols, nrows = int(cxy[:, 0].max()) + 1, int(cxy[:, 1].max()) + 1
    pcell = cxy[:, 0] * nrows + cxy[:, 1]
    porder = np.argsort(pcell, kind="stable")
    psorted = pcell[porder]
    top = np.array([ncols - 1, nrows - 1])
    box = np.flatnonzero(finite)
    lo = np.clip(np.floor((bounds[box, :2] - origin) / size).astype(np.int64), 0, top)
    hi = np.clip(np.floor((bounds[box, 2:] - origin) / size).astype(np.int64), -1, top)
    nx, ny = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0), np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    n = nx * ny
    which = np.repeat(np.arange(len(box)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    cell = (lo[which, 0] + k // ny[which]) * nrows + lo[which, 1] + k % ny[which]
    start = np.searchsorted(psorted, cell, "left")
    m = np.searchsorted(psorted, cell, "right") - start
    which = np.repeat(which, m)
    pt = porder[np.arange(int(m.sum())) - np.repeat(np.cumsum(m) - m, m) + np.repeat(start, m)]
    box = box[which]
    x, y = xy[pt, 0], xy[pt, 1]
    inside = (x >= bounds[box, 0]) & (x <= bounds[box, 2]) & (y >= bounds[box, 1]) & (y <= bounds[box, 3])
    return box[inside], pt[inside]


def nearest_within(points: np.ndarray, xy: np.ndarray, radius: np.ndarray, first: float | None = None) -> np.ndarray:
    """Index in *xy* of the nearest point to each of *points* within its *radius* (``-1`` when none); of
    points equally near, the first. With *first*, searched within *first* m first, then within twice as
    far for the points with none that near, and so on up to *radius*: the same answer, at the cost of a
    small radius where points are dense."""
    r = np.broadcast_to(np.asarray(radius, dtype=float), (len(points),))
    if first is None:
        return _nearest_within(points, xy, r)
    out = np.full(len(points), -1, dtype=np.int64)
    todo, reach = np.arange(len(points)), float(first)
    while len(todo):
        out[todo] = _nearest_within(points[todo], xy, np.minimum(r[todo], reach))
        todo = todo[(out[todo] < 0) & (r[todo] > reach)]
        reach *= 2
    return out


def _nearest_within(points: np.ndarray, xy: np.ndarray, r: np.ndarray) -> np.ndarray:
    out = np.full(len(points), -1, dtype=np.int64)
    if not len(points) or not len(xy):
        return out
    q, a = box_pairs(np.c_[points - r[:, None], points + r[:, None]], xy)
    dx, dy = xy[a, 0] - points[q, 0], xy[a, 1] - points[q, 1]
    d = dx * dx + dy * dy
    ok = d <= r[q] * r[q]
    q, a, d = q[ok], a[ok], d[ok]
    if not len(q):
        return out
    # box_pairs gives each box's pairs together, boxes in ascending order: groups without a sort
    start = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    best = np.minimum.reduceat(d, start)
    group = np.cumsum(np.r_[True, q[1:] != q[:-1]]) - 1
    hit = np.flatnonzero(d == best[group])
    a_hit, g_hit = a[hit], group[hit]
    lowest = np.full(len(start), np.iinfo(np.int64).max)
    np.minimum.at(lowest, g_hit, a_hit)
    out[q[start]] = lowest
    return out
