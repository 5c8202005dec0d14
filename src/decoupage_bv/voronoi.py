"""Voronoi regions of labelled points, dissolved by label and clipped to a polygon.

The regions come straight from a Delaunay triangulation (startinpy, robust predicates): the limit between two
labels is made of the Voronoi edges dual to the Delaunay edges between their points, chained into rings by
sorting alone; no cell is built and none dissolved. GEOS's cells remain the fallback should the rings fail a
check (README, Method, step 4).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import STRtree

from ._geometry import multipoint, tidy, union_of_tiles


def voronoi_labels(polygon, xy: np.ndarray, labels: np.ndarray) -> dict:
    """Voronoi cells of *xy* dissolved by label and clipped to *polygon*: ``{label: geometry}``."""
    return voronoi_labels_many([(polygon, xy, labels)])[0]


def voronoi_labels_many(items: list) -> list:
    """:func:`voronoi_labels` of each ``(polygon, xy, labels)`` of *items*, from one diagram.

    Each item is moved to a place of its own (:func:`_pack`), far enough from the others that its own
    points own the whole of its polygon: the cells inside it are those of its own diagram, and one call
    replaces hundreds of small ones. Four far-away guard points make every configuration non-degenerate
    (one or two points, collinear points) and guarantee that the regions cover each polygon. The diagram is
    computed around a local origin (Lambert-93 metres are millions). The regions come straight from the
    Delaunay triangulation (:func:`_regions`); should they fail its checks or not cover each polygon once,
    from GEOS's Voronoi cells, dissolved (:func:`_regions_from_cells`).
    """
    out = [None] * len(items)
    todo = []
    for k, (polygon, xy, labels) in enumerate(items):
        if (labels == labels[0]).all():
            out[k] = {labels[0]: polygon}
        else:
            todo.append(k)
    if not todo:
        return out
    b = shapely.bounds(np.array([items[k][0] for k in todo], dtype=object))
    lo = np.array([np.minimum(items[k][1].min(axis=0), b[i, :2]) for i, k in enumerate(todo)])
    hi = np.array([np.maximum(items[k][1].max(axis=0), b[i, 2:]) for i, k in enumerate(todo)])
    shift = _pack(lo, hi)  # packed = real + shift
    pts = np.vstack([items[k][1] + shift[i] for i, k in enumerate(todo)])
    plo, phi = pts.min(axis=0), pts.max(axis=0)
    mid = (plo + phi) / 2
    far = 20 * max(*(phi - plo), 1.0)
    guards = np.array([[-far, -far], [far, -far], [far, far], [-far, far]])
    codes, uniques, base = [], [], 0
    for k in todo:  # one code per (item, label): points of two items never count as the same BV
        uniq, inverse = np.unique(items[k][2], return_inverse=True)
        codes.append(inverse + base)
        uniques.append(uniq)
        base += len(uniq)
    allxy = np.vstack([pts - mid, guards])
    allcodes = np.concatenate(codes + [np.arange(base, base + 4)])
    item_of = np.repeat(np.arange(len(todo)), [len(u) for u in uniques])
    polygons = np.array([items[k][0] for k in todo], dtype=object)
    for regions in (_regions, _regions_from_cells):
        found = regions(allxy, allcodes, base)
        if found is None:
            continue
        geoms, code = found
        # back to real coordinates before the cut by the polygon: its outline keeps its exact vertices
        coords = shapely.get_coordinates(geoms)
        coords += np.repeat(mid - shift[item_of[code]], shapely.get_num_coordinates(geoms), axis=0)
        geoms = shapely.set_coordinates(geoms, coords)
        # mended where a ring touches itself (four cells meeting at one point), or where two vertices a hair
        # apart near the diagram's origin meet in metres of millions
        bad = ~shapely.is_valid(geoms)
        geoms[bad] = [tidy(g) for g in geoms[bad]]
        try:
            pieces = shapely.intersection(geoms, polygons[item_of[code]])
        except shapely.errors.GEOSException:
            if regions is _regions:
                continue
            raise
        if regions is _regions_from_cells or _covers(pieces, item_of[code], polygons):
            break
    label_of = np.concatenate(uniques)
    for k in todo:
        out[k] = {}
    for c, piece in zip(code, pieces):
        out[todo[item_of[c]]][label_of[c]] = piece
    return out


def _covers(pieces: np.ndarray, item: np.ndarray, polygons: np.ndarray) -> bool:
    """Whether the pieces of each polygon add up to its area (no region missing, none counted twice)."""
    total = np.bincount(item, weights=shapely.area(pieces), minlength=len(polygons))
    area = shapely.area(polygons)
    return bool((np.abs(total - area) <= 1e-7 * np.maximum(area, 1.0)).all())


def _regions(xy: np.ndarray, codes: np.ndarray, n: int):
    """Regions of codes ``0 … n-1`` (each the union of the Voronoi cells of its points) from the Delaunay
    triangulation: ``(geometries, codes)``, one geometry per code, not yet checked for validity; ``None`` when
    a check fails.

    The limit between two regions is made of the Voronoi edges dual to the Delaunay edges between their
    points: each joins the circumcentres of the edge's two triangles. Oriented with its region on the left,
    each edge leaves a triangle that the region's next edge enters, so the rings chain by sorting alone
    (counter-clockwise: a region's outline; clockwise: a hole, another region inside it). No cell is built
    and none dissolved. Points of codes ``n`` and above (the guards) only bound the others.
    """
    tri = _triangles(xy)
    if tri is None:
        return None
    m, npts = len(tri), len(xy)
    a, b, c = xy[tri[:, 0]], xy[tri[:, 1]], xy[tri[:, 2]]
    bx, by, cx, cy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1], c[:, 0] - a[:, 0], c[:, 1] - a[:, 1]
    d = 2 * (bx * cy - by * cx)
    b2, c2 = bx * bx + by * by, cx * cx + cy * cy
    centre = np.c_[a[:, 0] + (cy * b2 - by * c2) / d, a[:, 1] + (bx * c2 - cx * b2) / d]
    if not np.isfinite(centre).all():
        return None
    clockwise = d < 0  # startinpy's triangles are counter-clockwise; should one not be
    tri[clockwise] = tri[clockwise][:, ::-1]
    # directed edges u → v of the counter-clockwise triangles: triangle e // 3 lies left of edge e; those
    # between codes are the limits, each met once from either side
    u, v = tri.ravel(), tri[:, [1, 2, 0]].ravel()
    between = np.flatnonzero(codes[u] != codes[v])
    key = u[between] * npts + v[between]
    by_key = np.argsort(key)
    cut = between[codes[u[between]] < n]
    twin = _lookup(key[by_key], v[cut] * npts + u[cut])
    if twin is None:
        return None
    # the limit edge dual to u → v, u's region on its left: from the triangle right of u → v to the left one
    start, end, code = between[by_key[twin]] // 3, cut // 3, codes[u[cut]]
    leaving = code * m + start
    by_start = np.argsort(leaving)
    if (np.diff(leaving[by_start]) == 0).any():
        return None
    following = _lookup(leaving[by_start], code * m + end)
    if following is None:
        return None
    ring, rank = _cycles(by_start[following])
    order = np.lexsort((rank, ring))
    ring, ring_xy = ring[order], centre[start[order]]
    first = np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]])
    ring_code = code[order][first]
    after = np.arange(1, len(ring_xy) + 1)
    after[np.r_[first[1:], len(ring_xy)] - 1] = first
    area = np.add.reduceat(ring_xy[:, 0] * ring_xy[after, 1] - ring_xy[after, 0] * ring_xy[:, 1], first) / 2
    rings = shapely.linearrings(ring_xy, indices=np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(ring_xy)])))
    shell, hole = np.flatnonzero(area > 0), np.flatnonzero(area < 0)
    polys = shapely.polygons(rings[shell])
    if len(hole):
        # each hole goes to the smallest outline of its region around it
        inside = shapely.point_on_surface(shapely.polygons(rings[hole]))
        hi, si = STRtree(polys).query(inside, predicate="within")
        ok = (ring_code[shell[si]] == ring_code[hole[hi]]) & (area[shell[si]] > -area[hole[hi]])
        hi, si = hi[ok], si[ok]
        pick = np.lexsort((area[shell[si]], hi))
        hi, si = hi[pick], si[pick]
        nearest = np.r_[True, hi[1:] != hi[:-1]]
        hi, si = hi[nearest], si[nearest]
        if len(hi) != len(hole):
            return None
        for group in groups_of(si):
            polys[si[group[0]]] = shapely.Polygon(rings[shell[si[group[0]]]], list(rings[hole[hi[group]]]))
    code = ring_code[shell]
    groups = groups_of(code)
    if len(groups) != n or len(code) == 0:
        return None
    return np.array([polys[g[0]] if len(g) == 1 else shapely.multipolygons(shapely.get_parts(polys[g]))
                     for g in groups], dtype=object), np.arange(n)


def _regions_from_cells(xy: np.ndarray, codes: np.ndarray, n: int):
    """:func:`_regions` through GEOS: the Voronoi cells of every point, dissolved by code."""
    cells = _cells(xy)
    return np.array([union_of_tiles(cells[g]) for g in groups_of(codes)[:n]], dtype=object), np.arange(n)


def groups_of(keys: np.ndarray) -> list:
    """Positions of *keys* grouped by value: groups in the keys' order, positions ascending in each."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    return np.split(order, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray | None:
    """Positions of *keys* in *sorted_keys*; ``None`` when one is missing."""
    if not len(sorted_keys):
        return None if len(keys) else np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return at if (sorted_keys[at] == keys).all() else None


def _cycles(following: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each element of the permutation *following*: its cycle (named by its smallest element) and its
    rank along the cycle from that element. Pointer jumping: a few whole-array steps, no Python loop."""
    n = len(following)
    steps = int(np.ceil(np.log2(max(n, 2)))) + 1
    cycle, jump = np.arange(n), following.copy()
    for _ in range(steps):
        cycle, jump = np.minimum(cycle, cycle[jump]), jump[jump]
    root = cycle == np.arange(n)
    back = np.empty(n, dtype=np.int64)
    back[following] = np.arange(n)
    back[root] = np.flatnonzero(root)  # each cycle cut open before its smallest element
    rank = (~root).astype(np.int64)
    for _ in range(steps):
        rank, back = rank + rank[back], back[back]
    return cycle, rank


def _triangles(xy: np.ndarray) -> np.ndarray | None:
    """Delaunay triangles of *xy* (point indices); ``None`` when the triangulation merges
    two points or has no triangle. startinpy (robust predicates) walks from the last point inserted, so the
    points go in along a Morton curve."""
    import startinpy

    order = _morton(xy)
    dt = startinpy.DT()
    dt.snap_tolerance = 1e-9
    dt.insert(np.c_[xy[order], np.zeros(len(xy))])
    if dt.number_of_vertices() != len(xy) or dt.number_of_triangles() == 0:
        return None
    return order[np.asarray(dt.triangles, dtype=np.int64) - 1]  # startinpy's vertex 0 is the point at infinity


def _morton(xy: np.ndarray) -> np.ndarray:
    """Order of *xy* along a Z-order curve (31 bits per axis: far guard points leave the rest fine cells)."""
    q = ((xy - xy.min(axis=0)) * ((2**31 - 1) / max(float(np.ptp(xy, axis=0).max()), 1e-9))).astype(np.uint64)
    key = np.zeros(len(xy), dtype=np.uint64)
    for axis in (0, 1):
        v = q[:, axis]
        for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F),
                            (2, 0x3333333333333333), (1, 0x5555555555555555)):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        key |= v << np.uint64(axis)
    return np.argsort(key, kind="stable")


def _pack(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Shifts that lay the boxes ``[lo, hi]`` out in rows, every two at least as far apart as the larger
    one's diagonal (+1 m): a point of a box is then nearer to any point of its own box than to any of
    another. Largest first, rows about as wide as the whole is high."""
    span = hi - lo
    size = np.hypot(span[:, 0], span[:, 1]) + 1.0
    width = max(float(np.sqrt(((span + size[:, None]).prod(axis=1)).sum())), 1.0)
    shift = np.zeros_like(lo)
    x = y = row = 0.0
    for k in np.argsort(-size, kind="stable"):
        if x > 0 and x + span[k, 0] > width:
            x, y, row = 0.0, y + row, 0.0
        shift[k] = (x - lo[k, 0], y - lo[k, 1])
        x += span[k, 0] + size[k]
        row = max(row, span[k, 1] + size[k])
    return shift


def _cells(xy: np.ndarray) -> np.ndarray:
    """GEOS's Voronoi cells of *xy*, in order; should GEOS return an invalid cell, the points are moved by a
    fixed sub-millimetre jitter and the diagram computed again."""
    cells = shapely.get_parts(shapely.voronoi_polygons(multipoint(xy), ordered=True))
    if shapely.is_valid(cells).all():
        return cells
    jitter = np.random.default_rng(0).uniform(-1e-4, 1e-4, size=xy.shape)
    return shapely.make_valid(shapely.get_parts(shapely.voronoi_polygons(multipoint(xy + jitter), ordered=True)))


def dedupe(xy: np.ndarray, labels: np.ndarray, grid: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """First point per *grid* cell (GEOS Voronoi rejects repeated coordinates); seeds come before guides."""
    if not len(xy):
        return xy, labels
    cell = np.round(xy / grid).astype(np.int64)
    cell -= cell.min(axis=0)
    span = int(cell[:, 1].max()) + 1
    if (int(cell[:, 0].max()) + 1) * span < 2**62:  # one integer per cell: a 1-D unique is faster
        _, first = np.unique(cell[:, 0] * span + cell[:, 1], return_index=True)
    else:
        _, first = np.unique(cell, axis=0, return_index=True)
    first = np.sort(first)
    return xy[first], labels[first]
