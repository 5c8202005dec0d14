"""Per commune: Voronoi cells of the seeds, clipped to the commune, dissolved by BV, fragments cleaned.

The result of :func:`tessellate_unit` tiles its commune: no gap, no overlap, valid polygons.
Communes are independent, so :func:`tessellate` runs them in parallel (the heaviest first).
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import struct
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from ._grid import box_pairs
from .guides import parse_addresses, street_axes, street_guides
from .points import rows_by_unit
from .settings import Params


def _hull_margins(params: Params) -> tuple:
    """``(margin below an area, that area (m²), margin above)``: when a block without addresses goes whole to
    the BV whose outline it rounds off (:func:`_rounding_owner`)."""
    return params.empty_block_hull_margin_small, params.empty_block_small_area, params.empty_block_hull_margin


HULL_MARGINS = _hull_margins(Params())


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
        geoms[bad] = [_tidy(g) for g in geoms[bad]]
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
        for group in _groups(si):
            polys[si[group[0]]] = shapely.Polygon(rings[shell[si[group[0]]]], list(rings[hole[hi[group]]]))
    code = ring_code[shell]
    groups = _groups(code)
    if len(groups) != n or len(code) == 0:
        return None
    return np.array([polys[g[0]] if len(g) == 1 else shapely.multipolygons(shapely.get_parts(polys[g]))
                     for g in groups], dtype=object), np.arange(n)


def _regions_from_cells(xy: np.ndarray, codes: np.ndarray, n: int):
    """:func:`_regions` through GEOS: the Voronoi cells of every point, dissolved by code."""
    cells = _cells(xy)
    return np.array([_union(cells[g]) for g in _groups(codes)[:n]], dtype=object), np.arange(n)


def _groups(keys: np.ndarray) -> list:
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
    cells = shapely.get_parts(shapely.voronoi_polygons(_multipoint(xy), ordered=True))
    if shapely.is_valid(cells).all():
        return cells
    jitter = np.random.default_rng(0).uniform(-1e-4, 1e-4, size=xy.shape)
    return shapely.make_valid(shapely.get_parts(shapely.voronoi_polygons(_multipoint(xy + jitter), ordered=True)))


def _main_part(parts: list, count: np.ndarray) -> int:
    """The piece a BV keeps: the one with most of its addresses, then the largest."""
    return max(range(len(parts)), key=lambda i: (count[i], parts[i].area))


def _is_fragment(n: float, total: float, params: Params) -> bool:
    """A detached piece holding this few of its BV's *total* addresses goes to a neighbour."""
    return n <= params.fragment_max_addresses or n <= params.fragment_max_share * total


def _own_counts(parts: list, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight of the points of *xy* in each part (a point on an edge between two parts counts once)."""
    counted = np.zeros(len(xy), dtype=bool)
    out = np.zeros(len(parts))
    for i, part in enumerate(parts):
        inside = shapely.intersects_xy(part, xy[:, 0], xy[:, 1]) & ~counted
        out[i] = weights[inside].sum()
        counted |= inside
    return out


def _clearance(line, xy: np.ndarray, within: float = np.inf) -> float:
    """Distance from *line* to the nearest point of *xy* (inf when there is none); for a polyline, points
    farther than *within* may be left out (inf when none is nearer)."""
    if shapely.get_num_coordinates(line) > 2:
        x0, y0, x1, y1 = shapely.bounds(line)
        near = _in_box(xy, (x0 - within, y0 - within), (x1 + within, y1 + within))
        return float(shapely.distance(line, _multipoint(near))) if len(near) else np.inf
    if not len(xy):
        return np.inf
    a, b = shapely.get_coordinates(line)[[0, -1]]
    return float(_segment_distance(a[None], (b - a)[None], xy).min())


def _segment_distance(a: np.ndarray, d: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Distance from each point of *p* to the segment from *a* to *a* + *d* (row by row, or one segment
    for all when *a* and *d* have one row)."""
    t = np.clip(((p - a) * d).sum(axis=1) / np.maximum((d * d).sum(axis=1), 1e-12), 0, 1)
    return np.hypot(*(p - a - t[:, None] * d).T)


def join_pieces(polygon, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                params: Params, passes: int = 3) -> dict:
    """Join each detached piece of a BV to its main piece through the gap between them.

    Official BVs are in one piece, so the land between two groups of a BV's addresses belongs to it unless
    another BV's addresses say otherwise. The strip taken follows the shortest line between the pieces (or,
    when that fails, one of a few other short lines, see :func:`_bridges`, then the shortest way along the
    limits between BVs, see :func:`_limit_path`), at most ``join_max_gap`` long;
    it is as wide as the line's clearance from other BVs' addresses (``join_min_width`` to
    ``join_max_width``), so it takes none of them, and it is refused when a BV it crosses would fall into
    more pieces holding more than a stray's addresses than it was in (a piece cut off goes to a neighbour,
    as in :func:`clean_fragments`, and its addresses with it). BVs are joined in turn; a piece refused that
    is more than a fragment (a fragment is handed out in any case) is tried again, up to *passes* times in
    all, once a BV that refused its strips has changed: a later BV's join can open the way.
    """
    if params.join_max_gap <= 0 or len(pieces) < 2:
        return pieces
    before = pieces
    pieces, changed = dict(pieces), False
    refused: dict = {}  # (BV, piece) no strip joined → the BVs that refused its strips, as they were then
    for k in range(passes):
        joined_any = False
        for lab in sorted(pieces):
            joined_any |= _join_bv(polygon, pieces, lab, xy, labels, weights, params, refused, fragments=k == 0)
        if not joined_any:
            break
        changed = True
    if not changed:
        return pieces
    # strips were cut from several pieces one overlay at a time: make their shared edges identical again,
    # among the pieces they changed and those around them (the others' edges are as they were)
    labs = sorted(pieces)
    geoms = np.array([pieces[lab] for lab in labs], dtype=object)
    moved = np.array([pieces[lab] is not before[lab] for lab in labs])
    near = np.zeros(len(labs), dtype=bool)
    near[STRtree(geoms).query(geoms[moved], predicate="dwithin", distance=1e-6)[1]] = True
    geoms[near] = [_tidy(g) for g in shapely.coverage_clean(geoms[near])]
    pieces = dict(zip(labs, geoms))
    return clean_fragments(polygon, pieces, xy, labels, weights, params)


def _join_bv(polygon, pieces: dict, lab, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
             params: Params, refused: dict, fragments: bool = True) -> bool:
    """Join the detached pieces of BV *lab* to its main piece where a strip can (:func:`join_pieces`),
    updating *pieces* in place; whether one was joined. *refused*: the pieces refused before, with the BVs
    that refused their strips (:func:`_take`; hashes of their WKB); one is not tried again while those stay
    as they were.
    Without *fragments*, only pieces that are more than fragments are tried (a fragment goes to a
    neighbour anyway, and keeps the BV whole)."""
    own = labels == lab
    others = None  # the other BVs' addresses, once a piece needs joining
    tried: set = set()
    joined_any = False
    while True:
        parts = _polygon_parts(pieces[lab])
        if len(parts) < 2:
            break
        count = _own_counts(parts, xy[own], weights[own])
        main = _main_part(parts, count)
        gaps = sorted((shapely.distance(parts[i], parts[main]), i) for i in range(len(parts))
                      if i != main and (fragments or not _is_fragment(count[i], count.sum(), params)))
        todo = [(d, i) for d, i in gaps if d <= params.join_max_gap and parts[i].wkb not in tried]
        if not todo:
            break
        i = todo[0][1]
        key = (lab, parts[i].wkb)
        tried.add(key[1])
        if key in refused and all(hash(pieces[b].wkb) == h for b, h in refused[key].items()):
            continue  # refused before, and none of the BVs that refused its strips has changed since
        others = xy[~own] if others is None else others
        blocked = {lab}
        for line, widest in _lines_to_main(pieces, parts[i], parts[main], others, params):
            strip = _strip(polygon, line, others, params, widest)
            if strip is None:
                continue
            joined = _take(pieces, lab, strip, xy, labels, weights, params, blocked)
            if joined is not None:
                pieces.update(joined)
                joined_any = True
                break
        else:
            refused[key] = {b: hash(pieces[b].wkb) for b in blocked}
    return joined_any


def _bridges(part, main, max_gap: float, tries: int = 6, step: float = 10.0) -> list:
    """Lines that could join *part* to *main*: the shortest, then from other points of *part*'s outline
    (at least *step* apart), shortest first, up to *max_gap* long."""
    lines = [shapely.shortest_line(part, main)]
    ring = shapely.get_coordinates(shapely.segmentize(shapely.get_exterior_ring(part), step))
    pts = shapely.points(ring)
    d = shapely.distance(pts, main)
    chosen = [shapely.get_coordinates(lines[0])[0]]
    for k in np.lexsort((ring[:, 1], ring[:, 0], d)):
        if len(lines) >= tries or d[k] > max_gap:
            break
        if min(np.hypot(*(ring[k] - c)) for c in chosen) < step:
            continue
        chosen.append(ring[k])
        lines.append(shapely.shortest_line(pts[k], main))
    return lines


def _lines_to_main(pieces: dict, part, main, others: np.ndarray, params: Params):
    """``(line, widest strip)``: the straight lines of :func:`_bridges`, then, once they are all refused, the
    shortest way along the limits between BVs (:func:`_limit_path`), as wide as it can be, then at the
    narrowest (a wide strip along a limit can still cut a thin BV beside it)."""
    for line in _bridges(part, main, params.join_max_gap):
        yield line, params.join_max_width
    path = _limit_path(pieces, part, main, others, params)
    if path is not None:
        yield path, params.join_max_width
        yield path, params.join_min_width


def _limit_path(pieces: dict, part, main, others: np.ndarray, params: Params):
    """The shortest way from *part* to *main* along the limits between pieces (and the outline), at most
    ``join_max_gap`` long and ``join_min_width`` clear of the points *others* (``None`` when there is none).

    A strip along it takes a sliver of the BVs on either side and cuts none of them, where a straight strip
    across a BV cuts it in two.
    """
    box = shapely.bounds(np.array([part, main], dtype=object))
    reach = params.join_max_gap
    x0, y0 = box[:, :2].min(axis=0) - reach
    x1, y1 = box[:, 2:].max(axis=0) + reach
    geoms = np.array(list(pieces.values()), dtype=object)
    geoms = geoms[shapely.intersects(geoms, shapely.box(x0, y0, x1, y1))]
    # the pieces tile the commune with identical shared edges: their outlines are already noded
    coords, index = shapely.get_coordinates(shapely.boundary(geoms), return_index=True)
    keys, node = np.unique(_coord_keys(coords), return_inverse=True)
    step = np.flatnonzero(index[1:] == index[:-1])  # segments: consecutive vertices of one outline
    a, b = np.minimum(node[step], node[step + 1]), np.maximum(node[step], node[step + 1])
    step = step[np.sort(np.unique(a * len(keys) + b, return_index=True)[1])]  # a shared edge once
    # a way at most *reach* long has every point q with d(q, part) + d(q, main) <= reach (boxes: a bound)
    mid, half = (coords[step] + coords[step + 1]) / 2, np.hypot(*(coords[step + 1] - coords[step]).T) / 2
    step = step[_box_distance(mid, box[0]) + _box_distance(mid, box[1]) - 2 * half <= reach]
    if len(step):  # drop the limits too close to another BV's address for a strip
        ends = np.r_[coords[step], coords[step + 1]]
        near = _in_box(others, ends.min(axis=0) - params.join_min_width, ends.max(axis=0) + params.join_min_width)
        if len(near):
            step = step[_segment_clearance(coords[step], coords[step + 1], near, params.join_min_width)]
    start, end = _nodes_of(part, keys), _nodes_of(main, keys)
    if not len(step) or not len(start) or not len(end):
        return None
    # Dijkstra from every node of *part*'s outline to the first node of *main*'s (a few thousand edges)
    length = np.hypot(*(coords[step + 1] - coords[step]).T)
    # each node's neighbours in the order of its edges (as lists appended edge by edge would hold them),
    # in flat arrays: a Python graph of a few thousand edges cost more than the search
    tail, head = node[step], node[step + 1]
    src, dst = np.c_[tail, head].ravel(), np.c_[head, tail].ravel()
    order = np.argsort(src, kind="stable")
    first = np.searchsorted(src[order], np.arange(len(keys) + 1)).tolist()
    nbr, nbr_w = dst[order].tolist(), np.repeat(length, 2)[order].tolist()
    goal = set(end.tolist())
    dist = {u: 0.0 for u in start.tolist()}
    prev: dict = {}
    heap = [(0.0, u) for u in sorted(dist)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        if u in goal:
            if d == 0:
                return None  # the pieces touch
            path = [u]
            while path[-1] in prev:
                path.append(prev[path[-1]])
            k = keys[path[::-1]]
            return shapely.LineString(np.c_[k.real, k.imag])
        a, b = first[u], first[u + 1]
        for v, w in zip(nbr[a:b], nbr_w[a:b]):
            if d + w <= reach and d + w < dist.get(v, np.inf):
                dist[v], prev[v] = d + w, u
                heapq.heappush(heap, (d + w, v))
    return None


def _segment_clearance(p: np.ndarray, q: np.ndarray, xy: np.ndarray, width: float) -> np.ndarray:
    """Whether each segment *p*–*q* is farther than *width* from every point of *xy*: a grid join of the
    segments' boxes with the points, then the exact distance of each pair (no geometry objects)."""
    lo, hi = np.minimum(p, q) - width, np.maximum(p, q) + width
    seg, pt = box_pairs(np.c_[lo, hi], xy)
    clear = np.ones(len(p), dtype=bool)
    clear[seg[_segment_distance(p[seg], q[seg] - p[seg], xy[pt]) <= width]] = False
    return clear


def _coord_keys(coords: np.ndarray) -> np.ndarray:
    """One sortable value per vertex, equal for the same vertex: ``x + 1j * y``, rounded to the µm."""
    return np.round(coords[:, 0], 6) + 1j * np.round(coords[:, 1], 6)


def _nodes_of(geom, keys: np.ndarray) -> np.ndarray:
    """Indices in the sorted *keys* (:func:`_coord_keys`) of the vertices of *geom*."""
    k = _coord_keys(shapely.get_coordinates(geom))
    i = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
    return np.unique(i[keys[i] == k])


def _in_box(xy: np.ndarray, lo, hi) -> np.ndarray:
    """The points of *xy* inside the rectangle from *lo* to *hi* (edges included)."""
    return xy[((xy >= lo) & (xy <= hi)).all(axis=1)]


def _box_distance(xy: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Distance from each point of *xy* to the rectangle *box* (``minx, miny, maxx, maxy``)."""
    dx = np.maximum(np.maximum(box[0] - xy[:, 0], xy[:, 0] - box[2]), 0)
    dy = np.maximum(np.maximum(box[1] - xy[:, 1], xy[:, 1] - box[3]), 0)
    return np.hypot(dx, dy)


def _strip(polygon, line, others: np.ndarray, params: Params, widest: float):
    """The strip of land along *line*, as wide as its clearance from the points *others*, at most *widest*;
    ``None`` when narrower than ``join_min_width``."""
    width = min(_clearance(line, others, within=widest), widest)
    if width < params.join_min_width:
        return None
    strip = shapely.intersection(shapely.buffer(line, width / 2), polygon)
    return None if strip.is_empty else strip


def _take(pieces: dict, lab, strip, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray, params: Params,
          blocked: set | None = None):
    """Give *strip* to *lab*, taking it from the BVs it covers; ``None`` when that would leave one of them in
    more pieces holding more than a stray's addresses than it was in already (:func:`_detached`: a piece cut
    off is handed out by :func:`clean_fragments`, and its addresses with it). *blocked*, when given, receives
    the BV that refused the strip (*lab* itself when the strip joins nothing)."""
    out = dict(pieces)
    gained = [pieces[lab]]
    for other, g in pieces.items():
        if other == lab or not shapely.intersects(g, strip):
            continue
        rest = _tidy(shapely.difference(g, strip))
        if rest.is_empty:
            return _refused(blocked, other)
        parts = _polygon_parts(rest)
        if len(parts) > 1:  # (a strip can cut a BV in two and take one of its fragments whole)
            own = labels == other
            now, had = (_detached(p, xy[own], weights[own], params) for p in (parts, _polygon_parts(g)))
            if now > had:
                return _refused(blocked, other)
        gained.append(shapely.intersection(g, strip))
        out[other] = rest
    merged = _tidy(shapely.union_all(gained))
    if len(_polygon_parts(merged)) >= len(_polygon_parts(pieces[lab])):
        return _refused(blocked, lab)
    out[lab] = merged
    return out


def _refused(blocked: set | None, lab) -> None:
    if blocked is not None:
        blocked.add(lab)
    return None


def _detached(parts: list, xy: np.ndarray, weights: np.ndarray, params: Params) -> int:
    """How many of a BV's *parts* (its points *xy*) are detached pieces holding more than a stray's addresses
    (``stray_max_addresses``): a strip that cuts such a piece off the BV hands its addresses to another."""
    if len(parts) < 2:
        return 0
    count = _own_counts(parts, xy, weights)
    main = _main_part(parts, count)
    return sum(count[i] > params.stray_max_addresses for i in range(len(parts)) if i != main)


def _multipoint(xy: np.ndarray):
    """One MultiPoint of *xy* through WKB: ``shapely.multipoints`` makes a Point object per row first (5x slower)."""
    rec = np.empty(len(xy), dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    rec["order"], rec["type"], rec["x"], rec["y"] = 1, 1, xy[:, 0], xy[:, 1]
    return shapely.from_wkb(struct.pack("<BII", 1, 4, len(xy)) + rec.tobytes())


def _union(geoms: np.ndarray):
    """Union of pieces that tile: ``coverage_union_all`` (fast), or ``union_all`` when GEOS finds their
    shared edges not exactly noded (it refuses them rather than guess)."""
    try:
        return shapely.coverage_union_all(geoms)
    except shapely.errors.GEOSException:
        return shapely.union_all(geoms)


def _polygon_parts(geom) -> list:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]


def clean_fragments(polygon, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params, passes: int = 3) -> dict:
    """Give each detached piece of a BV that holds few addresses to the neighbour sharing its longest border.

    A BV keeps its piece with the most addresses (then the largest). Pieces below ``sliver_area`` always
    move. A piece with no neighbour in the commune (an island) stays where Voronoi put it.
    """
    parts, owner = [], []
    for lab in sorted(pieces):
        for p in _polygon_parts(pieces[lab]):
            parts.append(p)
            owner.append(lab)
    if len(parts) <= len(pieces):
        return pieces
    parts = np.array(parts, dtype=object)
    owner = np.array(owner, dtype=labels.dtype)
    area = shapely.area(parts)
    tree = STRtree(parts)
    addr = np.zeros(len(parts))
    movable = []
    for lab in pieces:
        idx = np.flatnonzero(owner == lab)
        if len(idx) < 2:
            continue
        own = labels == lab
        addr[idx] = _own_counts(list(parts[idx]), xy[own], weights[own])
        total = addr[idx].sum()
        main = idx[_main_part(list(parts[idx]), addr[idx])]
        for i in idx:
            if i == main:
                continue
            few = _is_fragment(addr[i], total, params)
            if few or area[i] < params.sliver_area:
                movable.append(i)
    if not movable:
        return pieces
    movable.sort(key=lambda i: (addr[i], area[i], str(owner[i]), parts[i].centroid.x, parts[i].centroid.y))
    moved = False
    for i in movable:
        near = tree.query(parts[i], predicate="intersects")
        near = [j for j in near if j != i and owner[j] != owner[i]]
        if not near:
            continue
        ring = shapely.boundary(parts[i])
        x0, y0, x1, y1 = shapely.bounds(ring)
        shared = {}
        for j in near:
            # the neighbour cut to the piece's surroundings first: buffering a whole BV costs more than the rest
            try:
                near_j = shapely.clip_by_rect(parts[j], x0 - 1, y0 - 1, x1 + 1, y1 + 1)
            except shapely.errors.GEOSException:  # GEOS can fail to rebuild a near-degenerate ring
                near_j = parts[j]
            shared[owner[j]] = shared.get(owner[j], 0.0) + shapely.length(
                shapely.intersection(ring, shapely.boundary(near_j)))
        best = max(sorted(shared), key=lambda lab: shared[lab])
        if shared[best] > 0:
            owner[i] = best
            moved = True
    out = {}
    for lab in pieces:
        idx = np.flatnonzero(owner == lab)
        if len(idx):
            out[lab] = shapely.union_all(parts[idx]) if len(idx) > 1 else parts[idx[0]]
    # a piece given to a neighbour's piece that moves on in turn is left detached: again, a few times
    return clean_fragments(polygon, out, xy, labels, weights, params, passes - 1) if moved and passes > 1 else out


def _dedupe(xy: np.ndarray, labels: np.ndarray, grid: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
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


def _block_pairs(blocks: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(point, block)`` of each point of *xy* inside a block, sorted by point (a point on a shared edge
    counts in the lowest block)."""
    bi, pi = box_pairs(shapely.bounds(blocks), xy)
    shapely.prepare(blocks)
    inside = shapely.intersects_xy(blocks[bi], xy[pi, 0], xy[pi, 1])
    bi, pi = bi[inside], pi[inside]
    order = np.lexsort((bi, pi))
    pi, bi = pi[order], bi[order]
    first = np.r_[True, pi[1:] != pi[:-1]]
    return pi[first], bi[first]


def _block_of(blocks: np.ndarray, xy: np.ndarray, missing: int) -> np.ndarray:
    """The block of each point of *xy* (the lowest on a shared edge), *missing* outside every block."""
    out = np.full(len(xy), missing, dtype=np.int64)
    pi, bi = _block_pairs(blocks, xy)
    out[pi] = bi
    return out


def _by_block(blocks: np.ndarray, xy: np.ndarray) -> list:
    """Indices of the points of *xy* in each block (a point on a shared edge counts in the lowest block)."""
    if not len(xy):
        return [np.zeros(0, dtype=np.int64)] * len(blocks)
    pi, bi = _block_pairs(blocks, xy)
    order = np.argsort(bi, kind="stable")
    return np.split(pi[order], np.searchsorted(bi[order], np.arange(1, len(blocks))))


def guides_by_block(blocks: np.ndarray, guide_xy: np.ndarray, guide_labels: np.ndarray, ends: tuple,
                    across: float = np.inf, relabel: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Guides relabelled where the two addresses they join lie in different blocks: official ranges change
    at a cross street far more often than midway along a block (on the real list, an address sharing its
    block with one only of its two same-side neighbours of different BVs is in that one's BV 98.7 % of the
    time, bench/). A guide in the block of one end takes that end's BV; elsewhere it keeps its own (with
    *relabel*). The guides carried past a range's end go at most *across* m from it outside the block of
    that end.

    *ends*: ``(xy, bv, lo, hi)``, the addresses guides are laid from and, for each guide, the two it was laid
    between (:func:`guides.street_guides`); optionally a fifth item, the block of each address (``-1``
    outside every block), when the caller has located them. Returns ``(guide_xy, guide_labels)``.
    """
    axy, abv, lo, hi = ends[:4]
    if not len(guide_xy) or len(blocks) < 2:
        return guide_xy, guide_labels
    single = lo == hi  # carried past the end of a range
    block = ends[4] if len(ends) > 4 else None
    if block is None:  # of each address (a few per guide pair: located once)
        block = np.full(len(axy), -1, dtype=np.int64)
        used = np.unique(np.r_[lo, hi])
        block[used] = _block_of(blocks, axy[used], -1)
    cross = np.flatnonzero((block[lo] != block[hi]) & ~single) if relabel else np.zeros(0, dtype=np.int64)
    labels = guide_labels.copy()
    if len(cross):
        # -2 outside every block: a guide there matches no address, not even one outside too
        own = _block_of(blocks, guide_xy[cross], -2)
        at_lo, at_hi = own == block[lo[cross]], own == block[hi[cross]]
        labels[cross[at_lo]] = abv[lo[cross[at_lo]]]
        labels[cross[at_hi]] = abv[hi[cross[at_hi]]]
    far = np.flatnonzero(single)
    far = far[np.hypot(*(guide_xy[far] - axy[lo[far]]).T) > across + 1e-6]
    if not len(far):
        return guide_xy, labels
    keep = np.ones(len(guide_xy), dtype=bool)
    keep[far] = _block_of(blocks, guide_xy[far], -2) == block[lo[far]]
    return guide_xy[keep], labels[keep]


def _fill_empty(blocks: np.ndarray, todo: list, geoms: list, owners: list, step: float,
                hull_margins: tuple = HULL_MARGINS) -> list:
    """Split each block without addresses among the pieces along its outline (nearest stretch of outline),
    or give it whole to the BV whose outline it rounds off (:func:`_rounding_owner`).

    A block bordered only by other empty blocks waits for them; returns the blocks left undecided.
    """
    while todo:
        arr = np.array(geoms, dtype=object)
        own = np.array(owners)
        tree = STRtree(arr)
        near = tree.query(blocks[todo], predicate="dwithin", distance=0.05)  # the pieces around each block
        near_labels = [set() for _ in todo]
        for t, g in zip(*near):
            near_labels[t].add(owners[g])
        # the outline of every block with several BVs around, sampled; each point takes its nearest piece's BV
        several = [t for t in range(len(todo)) if len(near_labels[t]) > 1]
        coords, which = shapely.get_coordinates(shapely.segmentize(shapely.boundary(blocks[[todo[t] for t in several]]),
                                                                   step), return_index=True)
        order = np.lexsort((coords[:, 1], coords[:, 0], which))  # by block, then x, then y
        coords, which = coords[order], which[order]
        fresh = np.ones(len(coords), dtype=bool)
        fresh[1:] = (which[1:] != which[:-1]) | (coords[1:] != coords[:-1]).any(axis=1)
        coords, which = coords[fresh], which[fresh]
        ring = shapely.points(coords)
        qi, gi = tree.query(ring, predicate="dwithin", distance=0.05)
        order = np.lexsort((gi, shapely.distance(ring[qi], arr[gi]), qi))
        qi, gi = qi[order], gi[order]
        first = np.ones(len(qi), dtype=bool)
        first[1:] = qi[1:] != qi[:-1]
        qi, lab_of = qi[first], own[gi[first]]
        bounds = np.searchsorted(which[qi], np.arange(len(several) + 1))
        left, split, contested = [], [], []
        for t, b in enumerate(todo):
            if len(near_labels[t]) == 1:  # one BV all around: no need to split
                geoms.append(blocks[b])
                owners.append(next(iter(near_labels[t])))
                continue
            if not near_labels[t]:
                left.append(b)
                continue
            k = np.searchsorted(several, t)
            mine = slice(bounds[k], bounds[k + 1])
            labs = lab_of[mine]
            if not len(labs):
                left.append(b)
            elif (labs == labs[0]).all():
                geoms.append(blocks[b])
                owners.append(labs[0])
            else:
                contested.append((b, coords[qi[mine]], labs))
        whole = _rounding_owner(blocks, contested, arr, own, hull_margins)
        for (b, ring_xy, labs), lab in zip(contested, whole):
            if lab is None:
                split.append((blocks[b], ring_xy, labs))
            else:
                geoms.append(blocks[b])
                owners.append(lab)
        for res in voronoi_labels_many(split):
            for lab, g in res.items():
                geoms.append(g)
                owners.append(lab)
        if len(left) == len(todo):
            return left
        todo = left
    return []


def _rounding_owner(blocks: np.ndarray, contested: list, geoms: np.ndarray, owners: np.ndarray,
                    margins: tuple = HULL_MARGINS) -> list:
    """For each ``(block, outline points, their BVs)`` of *contested*, the BV that takes the block whole, or
    ``None`` to split it.

    Official maps give a block without addresses (a garden, a yard, a stretch of river) whole to one BV, most
    often the one whose outline it rounds off: the BV whose convex hull grows least, beyond the block's own
    area, by taking it (below zero when the block fills a bay of that BV). The block goes whole to it when
    the next BV's hull would grow by more than a margin times the block's area beyond that; else the split
    along the outline stands (cross-validated, bench/). *margins*: ``(margin below an area, that area (m²),
    margin above)``; a margin ≤ 0: always split.
    """
    small_margin, small_area, margin = margins
    if (margin <= 0 and small_margin <= 0) or not contested:
        return [None] * len(contested)
    labs = [np.unique(ring_labels) for _, _, ring_labels in contested]
    needed = np.unique(np.concatenate(labs))
    mine = np.flatnonzero(np.isin(owners, needed))
    xy, part = shapely.get_coordinates(shapely.convex_hull(geoms[mine]), return_index=True)
    which = np.searchsorted(needed, owners[mine][part])
    order = np.argsort(which, kind="stable")
    hulls = shapely.convex_hull(shapely.multipoints(xy[order], indices=which[order]))
    hull_xy = dict(zip(needed, (shapely.get_coordinates(h) for h in hulls)))
    hull_area = dict(zip(needed, shapely.area(hulls)))
    block_xy = [shapely.get_coordinates(blocks[b]) for b, _, _ in contested]
    both = [np.vstack([hull_xy[lab], bxy]) for bxy, ls in zip(block_xy, labs) for lab in ls]
    grown = shapely.area(shapely.convex_hull(shapely.multipoints(
        np.vstack(both), indices=np.repeat(np.arange(len(both)), [len(c) for c in both]))))
    out, k = [], 0
    for (b, _, _), ls in zip(contested, labs):
        area = blocks[b].area
        growth = grown[k:k + len(ls)] - np.array([hull_area[lab] for lab in ls]) - area
        k += len(ls)
        order = np.lexsort((np.arange(len(ls)), growth))
        m = small_margin if area < small_area else margin
        out.append(ls[order[0]] if m > 0 and area > 0 and growth[order[1]] - growth[order[0]] > m * area else None)
    return out


def _straight_cut(block, regions: dict, xy: np.ndarray, labels: np.ndarray, depth: float) -> dict:
    """*regions* of a mixed block, with straight limits inside it, deeper than *depth* from its outline.

    Official limits cross a block straight, from one street to another, where Voronoi cells between two
    BVs' facades wander with the depth of each building. Between two BVs whose addresses (*xy*, *labels*)
    a straight line separates (their convex hulls are apart), the limit is the line of widest margin (the
    perpendicular bisector of the shortest segment between the hulls) in the block's core, farther than
    *depth* from its outline (the street axes); nearer, along the streets where addresses are, the Voronoi
    split stays. With three BVs or more, a place of the core goes to the BV on whose side of the lines it
    lies against every other; where there is none, the Voronoi split stays. No address changes BV (each
    lies on its own side of every line). Unchanged when two BVs' hulls overlap or a BV of *regions* has
    no address in the block (guides only).
    """
    labs = sorted(regions)
    hulls = []
    for lab in labs:
        own = xy[labels == lab]
        if not len(own):
            return regions
        hulls.append(shapely.convex_hull(_multipoint(own)))
    hulls = np.array(hulls, dtype=object)
    first, second = np.triu_indices(len(labs), 1)
    if shapely.intersects(hulls[first], hulls[second]).any():
        return regions
    core = shapely.buffer(block, -depth, quad_segs=4)
    if core.is_empty or core.area < 1.0:
        return regions
    box = shapely.bounds(core)
    ends = shapely.get_coordinates(shapely.shortest_line(hulls[first], hulls[second])).reshape(-1, 2, 2)
    sides = [_half_plane(box, p, q) for p, q in ends]  # the first BV's side of the line between each pair
    if any(side is None for side in sides):
        return regions
    won = []
    for i in range(len(labs)):
        area = core
        for k, (a, b) in enumerate(zip(first, second)):
            if a == i:
                area = shapely.intersection(area, sides[k])
            elif b == i:
                area = shapely.difference(area, sides[k])
        won.append(area)
    taken = core if len(labs) == 2 else shapely.union_all(won)
    return {lab: _tidy(shapely.union(shapely.difference(regions[lab], taken), area))
            for lab, area in zip(labs, won)}


def _half_plane(box, p: np.ndarray, q: np.ndarray):
    """The side of *p* of the perpendicular bisector of *p*–*q*, as a rectangle covering *box*
    (``minx, miny, maxx, maxy``); ``None`` when *p* and *q* are one point."""
    x0, y0, x1, y1 = box
    box_mid, span = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), float(np.hypot(x1 - x0, y1 - y0)) + 1.0
    normal, mid = q - p, (p + q) / 2
    length = float(np.hypot(*normal))
    if length < 1e-6:
        return None
    normal, along = normal / length, np.array([-normal[1], normal[0]]) / length
    foot = mid + ((box_mid - mid) @ along) * along  # the line's point nearest the box's centre
    size = span + abs(float((box_mid - mid) @ normal))
    return shapely.Polygon([foot + along * span, foot + along * span - normal * size,
                            foot - along * span - normal * size, foot - along * span])


def _straight_cuts(items: list, depth: float) -> list:
    """:func:`_straight_cut` of each ``(block, regions, xy, labels)`` of *items*, each left as it is where the
    cut fails. Blocks of two BVs, most of them, go through each step together: the same GEOS calls, made
    on arrays, without a Python round per block."""
    out = [regions for _, regions, _, _ in items]
    batch, hull0, hull1 = [], [], []
    for k, (block, regions, xy, labels) in enumerate(items):
        if len(regions) != 2:
            try:
                out[k] = _straight_cut(block, regions, xy, labels, depth)
            except shapely.errors.GEOSException:  # a refinement: the Voronoi split stands without it
                pass
            continue
        first, second = sorted(regions)
        own0, own1 = xy[labels == first], xy[labels == second]
        if len(own0) and len(own1):
            batch.append(k)
            hull0.append(_multipoint(own0))
            hull1.append(_multipoint(own1))
    if not batch:
        return out
    try:
        cut = _straight_cut_pairs([items[k] for k in batch], np.array(hull0, dtype=object),
                                  np.array(hull1, dtype=object), depth)
    except shapely.errors.GEOSException:  # one block's failure: block by block, as above
        cut = {}
        for i, k in enumerate(batch):
            try:
                cut[i] = _straight_cut(*items[k], depth)
            except shapely.errors.GEOSException:
                pass
    for i, regions in cut.items():
        out[batch[i]] = regions
    return out


def _straight_cut_pairs(items: list, points0: np.ndarray, points1: np.ndarray, depth: float) -> dict:
    """:func:`_straight_cut` of blocks of two BVs, with the addresses of each as MultiPoints: ``{position in
    items: regions}`` for the blocks it changes."""
    hulls0, hulls1 = shapely.convex_hull(points0), shapely.convex_hull(points1)
    apart = np.flatnonzero(~shapely.intersects(hulls0, hulls1))
    core = shapely.buffer(np.array([items[i][0] for i in apart], dtype=object), -depth, quad_segs=4)
    deep = ~shapely.is_empty(core)
    deep[deep] = shapely.area(core[deep]) >= 1.0
    apart, core = apart[deep], core[deep]
    if not len(apart):
        return {}
    ends = shapely.get_coordinates(shapely.shortest_line(hulls0[apart], hulls1[apart])).reshape(-1, 2, 2)
    sides = np.array([_half_plane(box, p, q) for box, (p, q) in zip(shapely.bounds(core), ends)], dtype=object)
    keep = np.array([side is not None for side in sides], dtype=bool)
    apart, core, sides = apart[keep], core[keep], sides[keep]
    if not len(apart):
        return {}
    labs = [sorted(items[i][1]) for i in apart]
    region0 = np.array([items[i][1][lab[0]] for i, lab in zip(apart, labs)], dtype=object)
    region1 = np.array([items[i][1][lab[1]] for i, lab in zip(apart, labs)], dtype=object)
    new0 = shapely.union(shapely.difference(region0, core), shapely.intersection(core, sides))
    new1 = shapely.union(shapely.difference(region1, core), shapely.difference(core, sides))
    return {int(i): {lab[0]: _tidy(a), lab[1]: _tidy(b)} for i, lab, a, b in zip(apart, labs, new0, new1)}


def split_blocks(polygon, blocks: np.ndarray, xy: np.ndarray, labels: np.ndarray, guide_xy: np.ndarray | None = None,
                 guide_labels: np.ndarray | None = None, empty_step: float = Params.empty_block_step,
                 cut_depth: float = Params.straight_cut_depth, hull_margins: tuple = HULL_MARGINS) -> dict:
    """Tile *polygon*, cut into *blocks*, among the labels of *xy*: ``{label: geometry}``.

    A block with addresses is split by the Voronoi cells of its own addresses and guides (whole to its BV
    when it has one), with straight limits in its core beyond *cut_depth* from its outline where straight
    lines separate its BVs (:func:`_straight_cut`; blocks of street lines only: a commune that is one block
    has no street axes for an outline); a block without is split among the pieces around it, or given whole
    to the BV whose outline it rounds off (*hull_margins*, :func:`_rounding_owner`). Shared edges
    are made identical (``coverage_clean``) before the pieces of each BV are merged, so that a BV spread
    over neighbouring blocks comes out in one piece.
    """
    rest = shapely.Polygon()
    if len(blocks) > 1 and abs(shapely.area(blocks).sum() - polygon.area) > 1e-9 * polygon.area:
        rest = shapely.difference(polygon, shapely.union_all(blocks))  # what the blocks leave out (rare)
    if not rest.is_empty:
        blocks = np.append(blocks, [p for p in _polygon_parts(rest) if p.area > 1e-6])
    if guide_xy is None or not len(guide_xy):
        guide_xy, guide_labels = np.zeros((0, 2)), np.zeros(0, dtype=labels.dtype)
    seeds_in = [np.arange(len(xy))] if len(blocks) == 1 else _by_block(blocks, xy)
    geoms, owners, todo, mixed_blocks = [], [], [], []
    for b, blk in enumerate(blocks):
        idx = seeds_in[b]
        if not len(idx):
            todo.append(b)
        elif (labels[idx] == labels[idx[0]]).all():
            geoms.append(blk)
            owners.append(labels[idx[0]])
        else:
            mixed_blocks.append(b)
    # guides matter in mixed blocks only (the whole commune when it is one block, with those a little outside)
    guides_in = [np.arange(len(guide_xy))] if len(blocks) == 1 else _by_block(blocks[mixed_blocks], guide_xy)
    mixed = [(blocks[b], *_dedupe(np.vstack([xy[seeds_in[b]], guide_xy[g]]),
                                  np.concatenate([labels[seeds_in[b]], guide_labels[g]])))
             for b, g in zip(mixed_blocks, guides_in)]
    split = voronoi_labels_many(mixed)
    if cut_depth > 0 and len(blocks) > 1:
        cut = [k for k, res in enumerate(split) if len(res) > 1]
        done = _straight_cuts([(blocks[mixed_blocks[k]], split[k], xy[seeds_in[mixed_blocks[k]]],
                                labels[seeds_in[mixed_blocks[k]]]) for k in cut], cut_depth)
        for k, res in zip(cut, done):
            split[k] = res
    for res in split:
        for lab, g in res.items():
            geoms.append(g)
            owners.append(lab)
    left = _fill_empty(blocks, todo, geoms, owners, empty_step, hull_margins) if todo and geoms else todo
    if left:  # no block with addresses around: plain Voronoi of every address
        base = voronoi_labels(polygon, *_dedupe(xy, labels))
        for b in left:
            for lab, g in base.items():
                piece = shapely.intersection(blocks[b], g)
                if not piece.is_empty and piece.area > 0:
                    geoms.append(piece)
                    owners.append(lab)
    geoms = _tidy_all(np.array(geoms, dtype=object))
    owners = np.array(owners)
    keep = ~shapely.is_empty(geoms)
    geoms, owners = geoms[keep], owners[keep]
    if len(blocks) > 1:  # the cells of one Voronoi diagram already share their edges exactly
        # only cut pieces add vertices to a shared edge: clean them and the blocks around them (whole blocks
        # share their edges exactly, being faces of one set of lines)
        whole = np.isin(np.array([id(g) for g in geoms]), np.array([id(b) for b in blocks]))
        if not whole.all():
            cut = np.flatnonzero(~whole)
            near = np.unique(np.r_[cut, STRtree(geoms).query(geoms[cut], predicate="intersects")[1]])
            geoms[near] = shapely.coverage_clean(geoms[near])
    out = {}
    for idx in _groups(owners):
        out[owners[idx[0]]] = _union(geoms[idx]) if len(idx) > 1 else geoms[idx[0]]
    return out


def tessellate_unit(polygon, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params = Params(), lines=None, guide_xy=None, guide_labels=None,
                    guide_ends=None, blocks=None) -> dict:
    """Tessellate one commune polygon among the BV labels of its seeds: ``{label: polygon}``.

    With ``params.method == "streets"`` and street *lines*, the commune is first cut into the blocks of the
    street network (see :mod:`streets`), and BV limits follow streets wherever a block holds one BV.
    *guide_xy*/*guide_labels*: street-side guide points (:mod:`guides`); *guide_ends*, the addresses each
    was laid between (:func:`guides_by_block`). *blocks*: ``streets.enclosures(polygon, lines)``, when the
    caller has them already.
    """
    if len(xy) == 0:
        return {}
    if len(np.unique(labels)) == 1:
        return {labels[0]: _tidy(polygon)}
    if params.method == "streets" and lines is not None and len(lines):
        from .streets import enclosures

        blocks = enclosures(polygon, lines) if blocks is None else blocks
    else:
        blocks = np.array([polygon], dtype=object)
    if guide_ends is not None and guide_xy is not None:
        guide_xy, guide_labels = guides_by_block(blocks, guide_xy, guide_labels, guide_ends,
                                                 params.guide_extension_across, params.guide_blocks)
    pieces = split_blocks(polygon, blocks, xy, labels, guide_xy, guide_labels, params.empty_block_step,
                          params.straight_cut_depth, _hull_margins(params))
    strays = replace(params, fragment_max_addresses=params.stray_max_addresses, fragment_max_share=0.0)
    if guide_xy is None or not len(guide_xy):
        params = replace(strays, leftover_max_share=0.0)
    if len(pieces) > 1:
        # strays go first; with guides, larger pieces are joined to their BV when they can be, before the
        # fragments and leftovers among them are handed out
        pieces = clean_fragments(polygon, pieces, xy, labels, weights, strays)
        pieces = join_pieces(polygon, pieces, xy, labels, weights, params)
        pieces = clean_fragments(polygon, pieces, xy, labels, weights, replace(
            params, fragment_max_share=max(params.fragment_max_share, params.leftover_max_share)))
    return {lab: _tidy(g) for lab, g in pieces.items() if not g.is_empty}


def _tidy(geom):
    """Valid polygonal geometry: drop the lines and points that clipping can leave."""
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = _polygon_parts(geom)
    if not parts:
        return shapely.Polygon()
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _tidy_all(geoms: np.ndarray) -> np.ndarray:
    """:func:`_tidy` over an array; valid polygons, nearly all of them, pass through untouched."""
    fine = shapely.is_valid(geoms) & (shapely.get_type_id(geoms) == 3) & ~shapely.is_empty(geoms)
    out = geoms.copy()
    for i in np.flatnonzero(~fine):
        out[i] = _tidy(geoms[i])
    return out


def _edge_directions(blocks: np.ndarray, block: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """For each point of *xy* in its *block*: the unit direction of the nearest edge of that block (a street
    axis), then that of the nearest edge more than 45° off it (the other street, at a corner); NaN where
    there is none. ``(n, 4)``."""
    out = np.full((len(xy), 4), np.nan)
    pts = np.flatnonzero((block >= 0) & (block < len(blocks)))
    if not len(pts):
        return out
    coords, ring = shapely.get_coordinates(shapely.boundary(blocks), return_index=True)
    seg = np.flatnonzero(ring[1:] == ring[:-1])  # segment k: coords[k] → coords[k + 1], of block ring[k]
    sblock = ring[seg]
    order = np.argsort(sblock, kind="stable")
    seg, sblock = seg[order], sblock[order]
    start = np.searchsorted(sblock, np.arange(len(blocks)))
    count = np.searchsorted(sblock, np.arange(len(blocks)), side="right") - start
    b = block[pts]
    n = count[b]
    pi = np.repeat(np.arange(len(pts)), n)
    k = seg[np.repeat(start[b], n) + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)]
    d = coords[k + 1] - coords[k]
    dist = _segment_distance(coords[k], d, xy[pts[pi]])
    u = d / np.maximum(np.hypot(*d.T), 1e-12)[:, None]
    grp = np.cumsum(np.r_[True, pi[1:] != pi[:-1]]) - 1
    best = _nearest_of_each(dist, grp)
    out[pts[pi[best]], :2] = u[best]
    # the nearest edge across that one (more than 45° from it): the other street at a corner
    other = np.abs((u * u[best][grp]).sum(axis=1)) < np.cos(np.pi / 4)
    pi2, grp2, d2, u2 = pi[other], grp[other], dist[other], u[other]
    if len(pi2):
        b2 = _nearest_of_each(d2, grp2)
        out[pts[pi2[b2]], 2:] = u2[b2]
    return out


def _nearest_of_each(dist: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Index of the smallest *dist* of each *group* (the first of equals), groups in ascending order."""
    o = np.lexsort((dist, group))
    return o[np.r_[True, group[o][1:] != group[o][:-1]]]


def _run(task):
    """``(unit, {bv: polygon}, (guide points laid, street axes drawn))``: one commune, its street-side guides
    laid here, in the worker (they belong to one commune each, and a commune of one BV needs none), and,
    where it has no street lines, its street axes drawn from its addresses (:func:`guides.street_axes`)."""
    unit, polygon, xy, labels, weights, params, lines, rows = task
    gxy = glabels = ends = blocks = None
    axes = 0
    if rows is not None and not (labels == labels[0]).all():
        parsed = parse_addresses(rows[3])
        axy = np.c_[rows[1], rows[2]]
        block = farther = pure_block = along = None
        if params.method == "streets" and lines is not None and len(lines):
            from .streets import enclosures

            # the ranges that end in a block of several BVs are carried on within it (the guides decide
            # nothing in a block of one BV)
            blocks = enclosures(polygon, lines)
            if len(blocks) > 1:
                block = _block_of(blocks, axy, -1)
                bvs = pd.DataFrame({"block": block, "bv": rows[0]}).groupby("block")["bv"].nunique()
                mixed = np.zeros(len(blocks), dtype=bool)
                inside = bvs.index.to_numpy() >= 0
                mixed[bvs.index[inside]] = bvs.to_numpy()[inside] > 1
                farther = (block >= 0) & mixed[block]
                pure_block = np.where(farther | (block < 0), -1, block)
                if params.guide_along_streets:
                    def along(i):
                        return _edge_directions(blocks, block[i], axy[i])
        guides = street_guides(np.zeros(len(rows[0]), dtype=np.int64), *rows, params, parsed, farther,
                               params.guide_block_extension, pure_block, along)
        gxy, glabels = guides[["x", "y"]].to_numpy(dtype=float), guides["bv"].to_numpy()
        ends = (axy, rows[0], guides["lo"].to_numpy(), guides["hi"].to_numpy(), block)
        if params.address_axes and (lines is None or not len(lines)):
            drawn = street_axes(*rows[1:], params, parsed)
            if len(drawn):
                lines, axes, params = drawn, len(drawn), replace(params, method="streets")
    pieces = tessellate_unit(polygon, xy, labels, weights, params, lines, gxy, glabels, ends, blocks)
    return unit, pieces, (0 if glabels is None else len(glabels), axes)


_INHERITED: list | None = None  # the tasks of :func:`tessellate`, in a forked worker


def _inherit(tasks) -> None:
    global _INHERITED
    _INHERITED = tasks


def _run_inherited(k: int):
    return _run(_INHERITED[k])


def tessellate(units, seeds, params: Params = Params(), progress=None, lines=None, guide_rows=None,
               stats: dict | None = None) -> dict:
    """Tessellate every unit: ``{unit: {bv: polygon}}``. Units without seeds are absent.

    *units* maps unit code → polygon; *seeds* is the DataFrame of :class:`points.Points`.
    *progress* is called with the number of units finished. *lines*: street lines (metric CRS) for the
    ``streets`` method. *guide_rows*: the addresses street-side guides are laid from (``unit``, ``bv``,
    ``x``, ``y``, ``address``; :attr:`points.Points.guide_rows`). *stats*, when given, receives
    ``guide_points``, the number of guide points laid, and ``address_axes``, the number of street axes drawn
    from the addresses of communes without street lines.
    """
    tasks = []
    tree = STRtree(lines) if lines is not None and len(lines) else None
    xy, bv = seeds[["x", "y"]].to_numpy(dtype=float), seeds["bv"].to_numpy()
    weight = seeds["weight"].to_numpy(dtype=float)
    by_unit = rows_by_unit(guide_rows) if guide_rows is not None and len(guide_rows) else {}
    if by_unit:
        row_arrays = (guide_rows["bv"].to_numpy(), guide_rows["x"].to_numpy(dtype=float),
                      guide_rows["y"].to_numpy(dtype=float), guide_rows["address"].to_numpy())
    for unit, idx in rows_by_unit(seeds).items():
        sub = None
        if tree is not None:
            # cut long lines to a margin around the commune: they still cross its outline, and node fast
            minx, miny, maxx, maxy = shapely.bounds(units[unit])
            sub = shapely.clip_by_rect(lines[tree.query(units[unit], predicate="intersects")],
                                       minx - 10, miny - 10, maxx + 10, maxy + 10)
            sub = sub[~shapely.is_empty(sub)]
        g = by_unit.get(unit)
        rows = None if g is None else tuple(a[g] for a in row_arrays)
        tasks.append((unit, units[unit], xy[idx], bv[idx], weight[idx], params, sub, rows))
    results, guide_points, axes = {}, 0, 0

    def collect(done):
        nonlocal guide_points, axes
        unit, res, (laid, drawn) = done
        results[unit] = res
        guide_points += laid
        axes += drawn
        if progress:
            progress(1)

    one_bv = [bool((t[3] == t[3][0]).all()) for t in tasks]  # the commune itself: no need for a worker
    trivial = [t for t, one in zip(tasks, one_bv) if one]
    # heaviest first; the cost of a commune follows its number of BVs far more than its number of
    # addresses (Paris arrondissements: r = 0.93 against 0.46)
    tasks = sorted((t for t, one in zip(tasks, one_bv) if not one), key=lambda t: (-len(np.unique(t[3])), -len(t[2])))
    jobs = max(1, min(params.jobs or os.cpu_count() or 1, len(tasks)))
    heavy = sum(len(t[2]) for t in tasks)
    if jobs == 1 or heavy < 20_000:
        for t in trivial + tasks:
            collect(_run(t))
    else:
        # forked workers inherit the tasks and take them by number (pickling them costs as much as a
        # small commune's tessellation); elsewhere each task travels to its worker
        fork = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork") if fork else None
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_inherit,
                                 initargs=(tasks if fork else None,)) as pool:
            # one task at a time, heaviest first: the largest commune starts at once and the rest fills in
            running = pool.map(_run_inherited if fork else _run, range(len(tasks)) if fork else tasks,
                               chunksize=1)
            for t in trivial:
                collect(_run(t))
            for done in running:
                collect(done)
    if stats is not None:
        stats["guide_points"] = guide_points
        stats["address_axes"] = axes
    return dict(sorted(results.items()))
