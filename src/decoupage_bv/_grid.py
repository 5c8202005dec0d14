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
    owner, _, lowest = _nearest_by_group(q, a, d)
    out[owner] = lowest
    return out


def _nearest_by_group(q: np.ndarray, a: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of pairs ``(q, a)`` at distance *d*, grouped by *q* in ascending order (as :func:`box_pairs` gives
    them: no sort needed): each *q*, its least *d*, and of the *a* that near, the lowest."""
    new = np.r_[True, q[1:] != q[:-1]]
    start, group = np.flatnonzero(new), np.cumsum(new) - 1
    best = np.minimum.reduceat(d, start)
    hit = d == best[group]
    lowest = np.full(len(start), np.iinfo(np.int64).max)
    np.minimum.at(lowest, group[hit], a[hit])
    return q[start], best, lowest


def nearest_of_k(xy: np.ndarray, radius: float, k: int, accept, first: float = 16.0,
                 query: np.ndarray | None = None) -> np.ndarray:
    """Index of the nearest point of *xy* to each of its points that *accept* (``accept(i, j)``, on index
    arrays) takes, if it is among that point's *k* nearest (itself included) and at most *radius* away
    (which may be ``inf``); ``-1`` when none. Points equally near count by index. *query*: the indices of
    the points asked about (default: all). A k-nearest query without a tree (importing scipy.spatial costs
    a process 0.2 s), searched within *first* m, then twice as far for the points still open, up to
    *radius*: every point nearer than an answer is within the same reach."""
    todo = np.arange(len(xy)) if query is None else np.asarray(query, dtype=np.int64)
    out = np.full(len(todo), -1, dtype=np.int64)
    if not len(xy) or not len(todo):
        return out
    span = float(np.hypot(*np.ptp(xy, axis=0)))  # past it, every point is within reach
    left, reach = np.arange(len(todo)), min(float(first), radius)
    while len(left):
        found, full = _nearest_of_k(xy, todo[left], reach, k, accept)
        out[left] = found
        if reach >= radius or reach > span:
            break
        left = left[(found < 0) & ~full]
        reach = min(2 * reach, radius)
    return out


def _nearest_of_k(xy: np.ndarray, todo: np.ndarray, r: float, k: int, accept) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_of_k` of the points *todo* within *r*: the answer (``-1``), and whether the point
    already has *k* neighbours within *r* (none farther can be among its *k* nearest)."""
    found = np.full(len(todo), -1, dtype=np.int64)
    q, j = box_pairs(np.c_[xy[todo] - r, xy[todo] + r], xy)
    i = todo[q]
    dx, dy = xy[j, 0] - xy[i, 0], xy[j, 1] - xy[i, 1]
    d = np.sqrt(dx * dx + dy * dy)
    near = d <= r
    q, i, j, d = q[near], i[near], j[near], d[near]
    full = np.bincount(q, minlength=len(todo)) >= k
    ok = accept(i, j)
    if not ok.any():
        return found, full
    owner, best, pick = _nearest_by_group(q[ok], j[ok], d[ok])
    # its rank among all the point's neighbours: those nearer, and those as near with a lower index
    bd, bj = np.full(len(todo), np.inf), np.full(len(todo), -1, dtype=np.int64)
    bd[owner], bj[owner] = best, pick
    before = (d < bd[q]) | ((d == bd[q]) & (j < bj[q]))
    rank = np.bincount(q[before], minlength=len(todo))[owner]
    found[owner[rank < k]] = pick[rank < k]
    return found, full
