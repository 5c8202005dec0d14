"""Detached pieces of a BV: strays handed out, pieces joined to their BV through the gap between them
(or along the limits between BVs), and the fragments left handed to a neighbour.

Official BVs are in one piece, so the land between two groups of a BV's addresses belongs to it unless
another BV's addresses say otherwise (README, Method, steps 6–7). :func:`tessellation.tessellate_unit`
calls :func:`clean_fragments` (strays), :func:`join_pieces`, then :func:`clean_fragments` again.
"""

from __future__ import annotations

import heapq

import numpy as np
import shapely
from shapely import STRtree

from ._geometry import multipoint, polygon_parts, segment_distance, tidy
from .settings import Params

#: Straight lines tried to join a piece to its main piece before the way along the limits (:func:`_bridges`).
STRAIGHT_TRIES = 6


def _main_part(parts: list, count: np.ndarray) -> int:
    """The piece a BV keeps: the one with most of its addresses, then the largest."""
    return max(range(len(parts)), key=lambda i: (count[i], parts[i].area))


def _is_fragment(points: float, n: float, total: float, params: Params) -> bool:
    """A detached piece holding this few points (``fragment_max_points``), or this small a share of its BV's
    *total* addresses (*n*, ``fragment_max_share``), goes to a neighbour."""
    return points <= params.fragment_max_points or n <= params.fragment_max_share * total


def _part_counts(parts: list, xy: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weight (addresses) and number of the points of *xy* in each part, a point on an edge between two parts
    counted once: strays and fragments are counted in points (one row of the roll however many addresses
    it stands for), the piece a BV keeps in addresses."""
    counted = np.zeros(len(xy), dtype=bool)
    weight, points = np.zeros(len(parts)), np.zeros(len(parts))
    for i, part in enumerate(parts):
        inside = shapely.intersects_xy(part, xy[:, 0], xy[:, 1]) & ~counted
        weight[i], points[i] = weights[inside].sum(), inside.sum()
        counted |= inside
    return weight, points


def _own_counts(parts: list, xy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weight of the points of *xy* in each part (:func:`_part_counts`)."""
    return _part_counts(parts, xy, weights)[0]


class _ByX:
    """Points sorted by x, so that those in a rectangle are found by bisection: the other BVs' addresses,
    looked up for every strip and every way along the limits."""

    def __init__(self, xy: np.ndarray, by_x: bool = False):  # *by_x*: *xy* sorted already
        self.xy = xy if by_x else xy[np.argsort(xy[:, 0], kind="stable")]
        self.x = np.ascontiguousarray(self.xy[:, 0])

    def in_box(self, lo, hi) -> np.ndarray:
        """The points inside the rectangle from *lo* to *hi* (edges included), by x."""
        sub = self.xy[np.searchsorted(self.x, lo[0], "left"):np.searchsorted(self.x, hi[0], "right")]
        return sub[(sub[:, 1] >= lo[1]) & (sub[:, 1] <= hi[1])]

    def in_boxes(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(box, point's xy)`` for each point inside each rectangle from *lo* to *hi* (rows; edges
        included): the points of each box's x range, by bisection, then its y range."""
        a = np.searchsorted(self.x, lo[:, 0], "left")
        n = np.searchsorted(self.x, hi[:, 0], "right") - a
        box = np.repeat(np.arange(len(lo)), n)
        xy = self.xy[np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(a, n)]
        inside = (xy[:, 1] >= lo[box, 1]) & (xy[:, 1] <= hi[box, 1])
        return box[inside], xy[inside]


def _clearance(line, points: _ByX, within: float = np.inf) -> float:
    """Distance from *line* to the nearest of *points* (inf when there is none); points farther than
    *within* may be left out (inf when none is nearer)."""
    if shapely.get_num_coordinates(line) > 2:
        x0, y0, x1, y1 = shapely.bounds(line)
        near = points.in_box((x0 - within, y0 - within), (x1 + within, y1 + within))
        return float(shapely.distance(line, multipoint(near))) if len(near) else np.inf
    a, b = shapely.get_coordinates(line)[[0, -1]]
    xy = points.in_box(np.minimum(a, b) - within, np.maximum(a, b) + within) if np.isfinite(within) else points.xy
    if not len(xy):
        return np.inf
    return float(segment_distance(a[None], (b - a)[None], xy).min())


def join_pieces(polygon, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                params: Params, passes: int = 3, refusals: dict | None = None) -> dict:
    """Join each detached piece of a BV to its main piece through the gap between them.

    Official BVs are in one piece, so the land between two groups of a BV's addresses belongs to it unless
    another BV's addresses say otherwise. The strip taken follows the shortest line between the pieces (or,
    when that fails, one of a few other short lines, see :func:`_bridges`, then the shortest way along the
    limits between BVs, see :func:`_limit_path`), at most ``join_max_gap`` long;
    it is as wide as the line's clearance from other BVs' addresses (``join_min_width`` to
    ``join_max_width``), so it takes none of them, and it is refused when a BV it crosses would fall into
    more pieces that are more than strays than it was in (a piece cut off goes to a neighbour,
    as in :func:`clean_fragments`, and its addresses with it). BVs are joined in turn; a piece refused that
    is more than a fragment (a fragment is handed out in any case) is tried again, up to *passes* times in
    all, once a BV that refused its strips has changed: a later BV's join can open the way. A piece still
    refused may then be joined by a strip that cuts another BV whose cut-off pieces can be joined back to it
    (:func:`_rejoin`).

    *refusals*, when given, receives the pieces refused, ``{(BV, piece's WKB): ({each BV that refused a
    strip, the joined BV itself included: hash of its WKB then}, piece)}``, for :func:`detached_reasons`.
    """
    if params.join_max_gap <= 0 or len(pieces) < 2:
        return pieces
    before = pieces
    pieces, changed = dict(pieces), False
    refused: dict = {} if refusals is None else refusals
    had: dict = {}  # BV → (its geometry, its detached pieces then): a BV that a strip does not change keeps them
    # (BV, piece's WKB) no strip joined → (the BVs that refused its strips, as they were then, the piece)
    for k in range(passes):
        joined_any = False
        for lab in sorted(pieces):
            joined_any |= _join_bv(polygon, pieces, lab, xy, labels, weights, params, refused, had,
                                   fragments=k == 0)
        if not joined_any:
            break
        changed = True
    if changed:
        pieces = _settled(polygon, before, pieces, xy, labels, weights, params)
    if params.join_rejoin_strips:
        settled, pieces, rejoined = pieces, dict(pieces), False
        for lab in sorted(pieces):
            rejoined |= _rejoin(polygon, pieces, lab, xy, labels, weights, params, refused)
        if rejoined:
            pieces = _settled(polygon, settled, pieces, xy, labels, weights, params)
    return pieces


def _settled(polygon, before: dict, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
             params: Params) -> dict:
    """*pieces* once strips were cut from several of them, one overlay at a time: their shared edges made
    identical again, among the pieces changed since *before* and those around them (the others' edges are
    as they were), and the strays and fragments left handed out (:func:`clean_fragments`)."""
    labs = sorted(pieces)
    geoms = np.array([pieces[lab] for lab in labs], dtype=object)
    moved = np.array([pieces[lab] is not before[lab] for lab in labs])
    near = np.zeros(len(labs), dtype=bool)
    near[STRtree(geoms).query(geoms[moved], predicate="dwithin", distance=1e-6)[1]] = True
    geoms[near] = [tidy(g) for g in shapely.coverage_clean(geoms[near])]
    return clean_fragments(polygon, dict(zip(labs, geoms)), xy, labels, weights, params)


def _join_bv(polygon, pieces: dict, lab, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
             params: Params, refused: dict, had: dict | None = None, fragments: bool = True,
             tried: set | None = None, back: bool = False) -> bool:
    """Join the detached pieces of BV *lab* to its main piece where a strip can (:func:`join_pieces`),
    updating *pieces* in place; whether one was joined. *refused*: the pieces refused before, with the BVs
    that refused their strips (:func:`_take`; hashes of their WKB); one is not tried again while those stay
    as they were.
    Without *fragments*, only pieces that are more than fragments are tried (a fragment goes to a
    neighbour anyway, and keeps the BV whole). *tried*: the WKB of pieces not to try. With *back* (pieces
    another BV's strip cut off, :func:`_rejoin`), it stops at the first piece more than a stray that no strip
    joins, and tries the shortest straight line only before the limits: the others cross that strip too."""
    own = labels == lab
    others = None  # the other BVs' addresses, once a piece needs joining
    tried = set() if tried is None else tried
    joined_any = False
    while True:
        nearest = _nearest_piece(pieces[lab], xy[own], weights[own], params, tried, fragments)
        if nearest is None:
            break
        parts, main, i, (count, points) = nearest
        key = (lab, parts[i].wkb)
        if key in refused and all(hash(pieces[b].wkb) == h for b, h in refused[key][0].items()):
            continue  # refused before, and none of the BVs that refused its strips has changed since
        others = _ByX(xy[~own]) if others is None else others
        blocked = {lab}
        straight = 1 if back else STRAIGHT_TRIES
        for line, widest in _lines_to_main(pieces, parts[i], parts[main], others, params, straight):
            strip = _strip(polygon, line, others, params, widest)
            if strip is None:
                continue
            joined = _take(pieces, lab, strip, xy, labels, weights, params, blocked,
                           allowance=params.join_cut_off_share * count[i], had=had)
            if joined is not None:
                pieces.update(joined)
                joined_any = True
                break
        else:
            refused[key] = ({b: hash(pieces[b].wkb) for b in blocked}, parts[i])
            if back and points[i] > params.stray_max_points:
                break
    return joined_any


def _nearest_piece(geom, xy: np.ndarray, weights: np.ndarray, params: Params, tried: set, fragments: bool):
    """The detached piece of a BV (*geom*, its points *xy*) to join next: ``(parts, main part, piece,
    parts' counts)``, the piece nearest the main part within ``join_max_gap`` whose WKB is not in *tried*
    (added to it), fragments too or not; ``None`` when there is none."""
    parts = polygon_parts(geom)
    if len(parts) < 2:
        return None
    count, points = _part_counts(parts, xy, weights)
    main = _main_part(parts, count)
    gaps = sorted((shapely.distance(parts[i], parts[main]), i) for i in range(len(parts))
                  if i != main and (fragments or not _is_fragment(points[i], count[i], count.sum(), params)))
    todo = [i for d, i in gaps if d <= params.join_max_gap and parts[i].wkb not in tried]
    if not todo:
        return None
    tried.add(parts[todo[0]].wkb)
    return parts, main, todo[0], (count, points)


def _rejoin(polygon, pieces: dict, lab, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
            params: Params, refused: dict) -> bool:
    """Join the detached pieces of BV *lab* that no strip could join without cutting another BV, by a strip
    that cuts them, when each piece it cuts off those BVs can in turn be joined back to its own BV (its
    strips cutting none); updates *pieces* in place; whether one was joined. Of each piece's strips
    (:func:`_lines_to_main`), the first ``join_rejoin_strips`` that cut a BV are tried.

    A street of one BV running through another's land, from the list, leaves one of the two in pieces
    whichever way the land goes; when the other can go round (along its own limits, or through a third
    BV), both come out whole, and no address changes BV but the strays a strip may cut off, as in any join
    (README, Method, step 7).
    """
    own = labels == lab
    others = None  # the other BVs' addresses, once a piece needs joining
    tried: set = set()
    joined_any = False
    while True:
        nearest = _nearest_piece(pieces[lab], xy[own], weights[own], params, tried, fragments=False)
        if nearest is None:
            break
        parts, main, i, (count, points) = nearest
        detached = _detached(parts, xy[own], weights[own], params, (count, points))
        others, tries = _ByX(xy[~own]) if others is None else others, 0
        for line, widest in _lines_to_main(pieces, parts[i], parts[main], others, params):
            strip = _strip(polygon, line, others, params, widest)
            if strip is None:
                continue
            cut: list = []
            out = _take(pieces, lab, strip, xy, labels, weights, params, cutting=cut)
            if out is None or not cut:
                continue  # refused for another reason, or a strip the joins took or refused already
            tries += 1
            whole, notes = True, {}  # the pieces of the BVs cut that stay refused, should this strip be taken
            for other, was in cut:
                # the pieces it had before stay as they were: only those the strip cut off are tried
                _join_bv(polygon, out, other, xy, labels, weights, params, notes, fragments=True,
                         tried={p.wkb for p in polygon_parts(pieces[other])}, back=True)
                o = labels == other
                if _detached(polygon_parts(out[other]), xy[o], weights[o], params) > was:
                    whole = False
                    break
            if whole and _detached(polygon_parts(out[lab]), xy[own], weights[own], params) < detached:
                pieces.update(out)
                refused.update(notes)
                joined_any = True
                break
            if tries == params.join_rejoin_strips:
                break  # as many strips that cut a BV tried as allowed: the next is not worth its overlays
    return joined_any


def detached_reasons(pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray, params: Params,
                     refusals: dict) -> dict:
    """Why each BV in several pieces keeps them: ``{BV: [(addresses, gap in m, reason, other BVs)]}``, one
    item per detached piece, the most addresses first.

    Reasons: ``island`` (a part of the commune that no other BV touches: an island), ``far`` (farther from
    its main piece than ``join_max_gap``), ``cuts`` (every strip would have cut the *other BVs* into pieces
    holding their addresses: the roll gives this piece to its BV among theirs), ``narrow`` (no strip clear
    of other BVs' addresses), ``unjoined`` (no strip tried: a piece that a later step left). *refusals*: as
    :func:`join_pieces` fills them.
    """
    out = {}
    labs = sorted(pieces, key=str)
    geoms = np.array([pieces[lab] for lab in labs], dtype=object)
    several = [lab for lab, n in zip(labs, shapely.get_num_geometries(geoms)) if n > 1]
    tree = STRtree(geoms) if several else None
    for lab in several:
        parts = polygon_parts(pieces[lab])
        if len(parts) < 2:
            continue
        own = labels == lab
        count = _own_counts(parts, xy[own], weights[own])
        main = _main_part(parts, count)
        mine = [(p, blocked) for (b, _), (blocked, p) in refusals.items() if b == lab]
        items = []
        for i in sorted(range(len(parts)), key=lambda i: (-count[i], -parts[i].area)):
            if i == main:
                continue
            gap = float(shapely.distance(parts[i], parts[main]))
            others: list = []
            hit = [blocked for p, blocked in mine if shapely.intersects(p, parts[i].representative_point())]
            if all(labs[j] == lab for j in tree.query(parts[i], predicate="intersects")):
                reason = "island"
            elif gap > params.join_max_gap:
                reason = "far"
            elif hit:
                others = sorted({b for blocked in hit for b in blocked if b != lab}, key=str)
                reason = "cuts" if others else "narrow"
            else:
                reason = "unjoined"
            items.append((round(float(count[i])), round(gap, 1), reason, others))
        out[lab] = items
    return out


def _bridges(part, main, max_gap: float, tries: int = STRAIGHT_TRIES, step: float = 10.0) -> list:
    """Lines that could join *part* to *main*: the shortest, then from other points of *part*'s outline
    (at least *step* apart), shortest first, up to *max_gap* long."""
    lines = [shapely.shortest_line(part, main)]
    if tries <= 1:
        return lines
    ring = shapely.get_coordinates(shapely.segmentize(shapely.get_exterior_ring(part), step))
    pts = shapely.points(ring)
    # *main* within *max_gap* of *part*'s box: the same distances up to *max_gap*, farther ones stay farther
    x0, y0, x1, y1 = shapely.bounds(part)
    near = _clipped(main, (x0 - max_gap, y0 - max_gap, x1 + max_gap, y1 + max_gap))
    # *part*'s outline lies outside *main*: its distance to *main* is its distance to the outline, without
    # a point-in-polygon test
    d = np.full(len(pts), np.inf) if near.is_empty else shapely.distance(pts, shapely.boundary(near))
    order = np.lexsort((ring[:, 1], ring[:, 0], d))
    free = np.ones(len(ring), dtype=bool)  # not within *step* of a point already chosen
    c = shapely.get_coordinates(lines[0])[0]
    while True:
        free &= np.hypot(ring[:, 0] - c[0], ring[:, 1] - c[1]) >= step
        left = order[free[order]]
        if len(lines) >= tries or not len(left) or d[left[0]] > max_gap:
            return lines
        c = ring[left[0]]
        lines.append(shapely.shortest_line(pts[left[0]], main))


def _lines_to_main(pieces: dict, part, main, others: _ByX, params: Params, straight: int = STRAIGHT_TRIES):
    """``(line, widest strip)``: the *straight* lines of :func:`_bridges`, then, once they are all refused,
    the shortest way along the limits between BVs (:func:`_limit_path`), as wide as it can be, then at the
    narrowest (a wide strip along a limit can still cut a thin BV beside it)."""
    for line in _bridges(part, main, params.join_max_gap, straight):
        yield line, params.join_max_width
    path = _limit_path(pieces, part, main, others, params)
    if path is not None:
        yield path, params.join_max_width
        yield path, params.join_min_width


def _limit_path(pieces: dict, part, main, others: _ByX, params: Params):
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
    # segments: consecutive vertices of one outline; a way at most *reach* long has every point q with
    # d(q, part) + d(q, main) <= reach (boxes: a bound), in columns (10 k segments, a few ms in rows)
    x, y = np.ascontiguousarray(coords[:, 0]), np.ascontiguousarray(coords[:, 1])
    mx, my, half = (x[:-1] + x[1:]) / 2, (y[:-1] + y[1:]) / 2, np.hypot(x[1:] - x[:-1], y[1:] - y[:-1]) / 2
    step = np.flatnonzero((index[1:] == index[:-1]) & (
        _box_distance(mx, my, box[0]) + _box_distance(mx, my, box[1]) - 2 * half <= reach))
    keys, node = np.unique(_coord_keys(np.r_[coords[step], coords[step + 1]]), return_inverse=True)
    tail, head = node[:len(step)], node[len(step):]
    a, b = np.minimum(tail, head), np.maximum(tail, head)
    once = np.sort(np.unique(a * len(keys) + b, return_index=True)[1])  # a shared edge once
    p, q, tail, head = coords[step[once]], coords[step[once] + 1], tail[once], head[once]
    if len(p):  # drop the limits too close to another BV's address for a strip
        w = params.join_min_width
        near = others.in_box(np.minimum(p, q).min(axis=0) - w, np.maximum(p, q).max(axis=0) + w)
        clear = _segment_clearance(p, q, _ByX(near, by_x=True), w)
        p, q, tail, head = p[clear], q[clear], tail[clear], head[clear]
    start, end = _nodes_of(part, keys), _nodes_of(main, keys)
    # (a vertex of both is in *keys*: the outlines' segments from it are within reach)
    if not len(p) or not len(start) or not len(end) or len(np.intersect1d(start, end)):
        return None  # no way, or the pieces touch
    # Dijkstra from every node of *part*'s outline to the first node of *main*'s (a few thousand edges)
    length = np.hypot(*(q - p).T)
    # each node's neighbours in the order of its edges (as lists appended edge by edge would hold them),
    # in flat arrays: a Python graph of a few thousand edges cost more than the search
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


def _segment_clearance(p: np.ndarray, q: np.ndarray, points: _ByX, width: float) -> np.ndarray:
    """Whether each segment *p*–*q* is farther than *width* from every one of *points*: the points in each
    segment's box, then the exact distance of each pair (no geometry objects)."""
    seg, xy = points.in_boxes(np.minimum(p, q) - width, np.maximum(p, q) + width)
    clear = np.ones(len(p), dtype=bool)
    clear[seg[segment_distance(p[seg], q[seg] - p[seg], xy) <= width]] = False
    return clear


def _coord_keys(coords: np.ndarray) -> np.ndarray:
    """One sortable value per vertex, equal for the same vertex: ``x + 1j * y``, rounded to the µm."""
    return np.round(coords[:, 0], 6) + 1j * np.round(coords[:, 1], 6)


def _nodes_of(geom, keys: np.ndarray) -> np.ndarray:
    """Indices in the sorted *keys* (:func:`_coord_keys`) of the vertices of *geom*."""
    k = _coord_keys(shapely.get_coordinates(geom))
    i = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
    return np.unique(i[keys[i] == k])


def _box_distance(x: np.ndarray, y: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Distance from each point (*x*, *y*) to the rectangle *box* (``minx, miny, maxx, maxy``)."""
    dx = np.maximum(np.maximum(box[0] - x, x - box[2]), 0)
    dy = np.maximum(np.maximum(box[1] - y, y - box[3]), 0)
    return np.hypot(dx, dy)


def _strip(polygon, line, others: _ByX, params: Params, widest: float):
    """The strip of land along *line*, as wide as its clearance from the points *others*, at most *widest*;
    ``None`` when narrower than ``join_min_width``."""
    width = min(_clearance(line, others, within=widest), widest)
    if width < params.join_min_width:
        return None
    strip = shapely.intersection(shapely.buffer(line, width / 2), polygon)
    return None if strip.is_empty else strip


def _take(pieces: dict, lab, strip, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray, params: Params,
          blocked: set | None = None, allowance: float = 0.0, had: dict | None = None, cutting: list | None = None):
    """Give *strip* to *lab*, taking it from the BVs it covers; ``None`` when that would leave one of them in
    more pieces that are more than strays than it was in already (:func:`_detached`: a piece cut
    off is handed out by :func:`clean_fragments`, and its addresses with it), unless the pieces it cuts off
    hold, all together, at most *allowance* addresses (``join_cut_off_share`` of the joined piece's): those
    go at once to the neighbour sharing their longest border. *blocked*, when given, receives the BV that
    refused the strip (*lab* itself when the strip joins nothing). *had*, when given, keeps each BV's count
    of detached pieces from one strip to the next while the BV stays as it was (:func:`_remembered`).
    *cutting*, when given, receives instead ``(BV, its detached pieces before)`` for each BV the strip cuts
    into more pieces, which keeps them (:func:`_rejoin`)."""
    out = dict(pieces)
    gained = [pieces[lab]]
    cut, spent = [], 0.0  # the pieces cut off other BVs, handed out once the strip is taken
    for other, g in pieces.items():
        if other == lab or not shapely.intersects(g, strip):
            continue
        rest = tidy(shapely.difference(g, strip))
        if rest.is_empty:
            return _refused(blocked, other)
        parts = polygon_parts(rest)
        if len(parts) > 1:  # (a strip can cut a BV in two and take one of its fragments whole)
            own = labels == other
            own_xy, own_w = xy[own], weights[own]
            before = polygon_parts(g)
            counts = _part_counts(parts, own_xy, own_w)
            now = _detached(parts, own_xy, own_w, params, counts)
            was = _remembered(had, other, g, _detached, before, own_xy, own_w, params)
            if now > was and cutting is not None:
                cutting.append((other, was))
            elif now > was:
                if allowance <= 0:
                    return _refused(blocked, other)
                off = _cut_off(parts, counts, before, own_xy, own_w, params)
                spent += sum(w for _, w in off)
                if not off or spent > allowance:
                    return _refused(blocked, other)
                cut += [(other, p) for p, _ in off]
                rest = tidy(shapely.union_all([p for p in parts if not any(p is q for q, _ in off)]))
        gained.append(shapely.intersection(g, strip))
        out[other] = rest
    merged = tidy(shapely.union_all(gained))
    if len(polygon_parts(merged)) >= len(polygon_parts(pieces[lab])):
        return _refused(blocked, lab)
    out[lab] = merged
    for other, part in cut:
        _hand_out(out, other, part)
    return out


def _cut_off(parts: list, counts: tuple, before: list, xy: np.ndarray, weights: np.ndarray, params: Params) -> list:
    """``(part, addresses)`` of the *parts* of a BV (*counts*: their :func:`_part_counts`) that a strip cut
    off its main piece and that are more than a stray (those already detached before, in *before*, are not
    counted; *xy*, *weights*: the BV's points)."""
    count, points = counts
    main = _main_part(parts, count)
    was = before[_main_part(before, _own_counts(before, xy, weights))]
    return [(parts[i], float(count[i])) for i in range(len(parts)) if i != main
            and points[i] > params.stray_max_points and shapely.area(shapely.intersection(parts[i], was)) > 0]


def _hand_out(pieces: dict, lab, part) -> None:
    """Give *part* (cut off BV *lab*) to the BV sharing its longest border, in place (borders within 1 µm:
    the strip's overlays can leave shared edges a hair apart)."""
    ring = shapely.boundary(part)
    shared = {o: shapely.length(shapely.intersection(ring, shapely.buffer(_around(g, ring), 1e-6)))
              for o, g in pieces.items() if o != lab and shapely.intersects(g, part)}
    if not shared:
        pieces[lab] = tidy(shapely.union(pieces[lab], part))  # nowhere else to go: it stays
        return
    best = max(sorted(shared), key=lambda o: shared[o])
    pieces[best] = tidy(shapely.union(pieces[best], part))


def _clipped(geom, box):
    """*geom* cut to the rectangle *box* (``minx, miny, maxx, maxy``); *geom* itself when GEOS fails to."""
    try:
        return shapely.clip_by_rect(geom, *box)
    except shapely.errors.GEOSException:  # GEOS can fail to rebuild a near-degenerate ring
        return geom


def _around(geom, ring):
    """*geom* cut to the surroundings of *ring* (1 m around its box): buffering or intersecting a whole BV
    costs more than the rest."""
    x0, y0, x1, y1 = shapely.bounds(ring)
    return _clipped(geom, (x0 - 1, y0 - 1, x1 + 1, y1 + 1))


def _remembered(cache: dict | None, key, geom, compute, *args):
    """``compute(*args)``, a fact about *geom*, kept in *cache* under *key* for as long as *geom* is the
    same object."""
    if cache is None:
        return compute(*args)
    hit = cache.get(key)
    if hit is None or hit[0] is not geom:
        hit = cache[key] = (geom, compute(*args))
    return hit[1]


def _refused(blocked: set | None, lab) -> None:
    if blocked is not None:
        blocked.add(lab)
    return None


def _detached(parts: list, xy: np.ndarray, weights: np.ndarray, params: Params, counts: tuple | None = None) -> int:
    """How many of a BV's *parts* (its points *xy*) are detached pieces that are more than a stray
    (``stray_max_points``): a strip that cuts such a piece off the BV hands its addresses to another.
    *counts*: :func:`_part_counts` of *parts*, when the caller has them."""
    if len(parts) < 2:
        return 0
    count, points = _part_counts(parts, xy, weights) if counts is None else counts
    main = _main_part(parts, count)
    return sum(points[i] > params.stray_max_points for i in range(len(parts)) if i != main)


def clean_fragments(polygon, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params, passes: int = 3) -> dict:
    """Give each detached piece of a BV that is a stray (at most ``stray_max_points`` points) or a fragment
    (:func:`_is_fragment`) to the neighbour sharing its longest border.

    A BV keeps its piece with the most addresses (then the largest). Pieces below ``sliver_area`` always
    move. A piece with no neighbour in the commune (an island) stays where Voronoi put it.
    """
    parts, owner = [], []
    for lab in sorted(pieces):
        for p in polygon_parts(pieces[lab]):
            parts.append(p)
            owner.append(lab)
    if len(parts) <= len(pieces):
        return pieces
    parts = np.array(parts, dtype=object)
    owner = np.array(owner, dtype=labels.dtype)
    area = shapely.area(parts)
    tree = STRtree(parts)
    addr, points = np.zeros(len(parts)), np.zeros(len(parts))
    movable = []
    for lab in pieces:
        idx = np.flatnonzero(owner == lab)
        if len(idx) < 2:
            continue
        own = labels == lab
        addr[idx], points[idx] = _part_counts(list(parts[idx]), xy[own], weights[own])
        total = addr[idx].sum()
        main = idx[_main_part(list(parts[idx]), addr[idx])]
        for i in idx:
            if i == main:
                continue
            few = points[i] <= params.stray_max_points or _is_fragment(points[i], addr[i], total, params)
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
        shared = {}
        for j in near:
            shared[owner[j]] = shared.get(owner[j], 0.0) + shapely.length(
                shapely.intersection(ring, shapely.boundary(_around(parts[j], ring))))
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
