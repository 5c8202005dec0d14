"""Per commune: Voronoi cells of the seeds, clipped to the commune, dissolved by BV, fragments cleaned.

The result of :func:`tessellate_unit` tiles its commune: no gap, no overlap, valid polygons.
Communes are independent, so :func:`tessellate` runs them in parallel (the heaviest first).
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from .settings import Params


def voronoi_labels(polygon, xy: np.ndarray, labels: np.ndarray) -> dict:
    """Voronoi cells of *xy* dissolved by label and clipped to *polygon*: ``{label: geometry}``.

    Four far-away guard points make every configuration non-degenerate (one or two points, collinear
    points) and guarantee that the seeds' cells cover the polygon; their own cells are discarded.
    """
    uniq = np.unique(labels)
    if len(uniq) == 1:
        return {uniq[0]: polygon}
    pminx, pminy, pmaxx, pmaxy = shapely.bounds(polygon)
    minx, miny = min(xy[:, 0].min(), pminx), min(xy[:, 1].min(), pminy)
    maxx, maxy = max(xy[:, 0].max(), pmaxx), max(xy[:, 1].max(), pmaxy)
    span = max(maxx - minx, maxy - miny, 1.0)
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    far = 20 * span
    guards = np.array([[cx - far, cy - far], [cx + far, cy - far], [cx + far, cy + far], [cx - far, cy + far]])
    cells = shapely.voronoi_polygons(_multipoint(np.vstack([xy, guards])), ordered=True)
    cells = shapely.get_parts(cells)[: len(xy)]
    out = {}
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for idx in np.split(order, bounds):
        merged = shapely.coverage_union_all(cells[idx])
        out[labels[idx[0]]] = shapely.intersection(merged, polygon)
    return out


def _multipoint(xy: np.ndarray):
    """One MultiPoint of *xy* through WKB: ``shapely.multipoints`` makes a Point object per row first (5x slower)."""
    rec = np.empty(len(xy), dtype=[("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])
    rec["order"], rec["type"], rec["x"], rec["y"] = 1, 1, xy[:, 0], xy[:, 1]
    return shapely.from_wkb(struct.pack("<BII", 1, 4, len(xy)) + rec.tobytes())


def _polygon_parts(geom) -> list:
    return [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]


def clean_fragments(polygon, pieces: dict, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params) -> dict:
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
        own = np.flatnonzero(labels == lab)
        counted = np.zeros(len(own), dtype=bool)  # a point on an edge between two pieces counts once
        for i in idx:
            inside = shapely.intersects_xy(parts[i], xy[own, 0], xy[own, 1]) & ~counted
            addr[i] = weights[own[inside]].sum()
            counted |= inside
        total = addr[idx].sum()
        main = idx[np.lexsort((-area[idx], -addr[idx]))[0]]
        for i in idx:
            if i == main:
                continue
            few = addr[i] <= params.fragment_max_addresses or addr[i] <= params.fragment_max_share * total
            if few or area[i] < params.sliver_area:
                movable.append(i)
    if not movable:
        return pieces
    movable.sort(key=lambda i: (addr[i], area[i], str(owner[i]), parts[i].centroid.x, parts[i].centroid.y))
    for i in movable:
        near = tree.query(parts[i], predicate="dwithin", distance=1e-6)
        near = [j for j in near if j != i and owner[j] != owner[i]]
        if not near:
            continue
        ring = shapely.boundary(parts[i])
        shared = {}
        for j in near:
            shared[owner[j]] = shared.get(owner[j], 0.0) + shapely.length(
                shapely.intersection(ring, shapely.buffer(parts[j], 1e-6)))
        best = max(sorted(shared), key=lambda lab: shared[lab])
        if shared[best] > 0:
            owner[i] = best
    out = {}
    for lab in pieces:
        idx = np.flatnonzero(owner == lab)
        if len(idx):
            out[lab] = shapely.union_all(parts[idx]) if len(idx) > 1 else parts[idx[0]]
    return out


def _dedupe(xy: np.ndarray, labels: np.ndarray, grid: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """First point per *grid* cell (GEOS Voronoi rejects repeated coordinates); seeds come before guides."""
    _, first = np.unique(np.round(xy / grid).astype(np.int64), axis=0, return_index=True)
    first = np.sort(first)
    return xy[first], labels[first]


def _by_block(blocks: np.ndarray, xy: np.ndarray) -> list:
    """Indices of the points of *xy* in each block (a point on a shared edge counts in one block)."""
    if not len(xy):
        return [np.zeros(0, dtype=np.int64)] * len(blocks)
    pi, bi = STRtree(blocks).query(shapely.points(xy), predicate="intersects")
    first = np.unique(pi, return_index=True)[1]
    pi, bi = pi[first], bi[first]
    order = np.argsort(bi, kind="stable")
    return np.split(pi[order], np.searchsorted(bi[order], np.arange(1, len(blocks))))


def _fill_empty(blocks: np.ndarray, todo: list, geoms: list, owners: list, step: float = 2.0) -> list:
    """Split each block without addresses among the pieces along its outline (nearest stretch of outline).

    A block bordered only by other empty blocks waits for them; returns the blocks left undecided.
    """
    while todo:
        arr = np.array(geoms, dtype=object)
        own = np.array(owners)
        tree = STRtree(arr)
        left = []
        near = tree.query(blocks[todo], predicate="dwithin", distance=0.05)  # the pieces around each block
        near_labels = [set() for _ in todo]
        for t, g in zip(*near):
            near_labels[t].add(owners[g])
        for t, b in enumerate(todo):
            if len(near_labels[t]) == 1:  # one BV all around: no need to split
                lab = next(iter(near_labels[t]))
                geoms.append(blocks[b])
                owners.append(lab)
                continue
            if not near_labels[t]:
                left.append(b)
                continue
            ring = shapely.points(np.unique(shapely.get_coordinates(
                shapely.segmentize(shapely.boundary(blocks[b]), step)), axis=0))
            qi, gi = tree.query(ring, predicate="dwithin", distance=0.05)
            if not len(qi):
                left.append(b)
                continue
            dist = shapely.distance(ring[qi], arr[gi])
            order = np.lexsort((gi, dist, qi))
            qi, gi = qi[order], gi[order]
            first = np.unique(qi, return_index=True)[1]
            labs = own[gi[first]]
            if len(np.unique(labs)) == 1:
                geoms.append(blocks[b])
                owners.append(labs[0])
                continue
            for lab, g in voronoi_labels(blocks[b], shapely.get_coordinates(ring[qi[first]]), labs).items():
                geoms.append(g)
                owners.append(lab)
        if len(left) == len(todo):
            return left
        todo = left
    return []


def split_blocks(polygon, blocks: np.ndarray, xy: np.ndarray, labels: np.ndarray, guide_xy: np.ndarray | None = None,
                 guide_labels: np.ndarray | None = None) -> dict:
    """Tile *polygon*, cut into *blocks*, among the labels of *xy*: ``{label: geometry}``.

    A block with addresses is split by the Voronoi cells of its own addresses and guides (whole to its BV
    when it has one); a block without is split among the pieces around it. Shared edges are made
    identical (``coverage_clean``) before the pieces of each BV are merged, so that a BV spread over
    neighbouring blocks comes out in one piece.
    """
    rest = shapely.Polygon()
    if len(blocks) > 1 and abs(shapely.area(blocks).sum() - polygon.area) > 1e-9 * polygon.area:
        rest = shapely.difference(polygon, shapely.union_all(blocks))  # what the blocks leave out (rare)
    if not rest.is_empty:
        blocks = np.append(blocks, [p for p in _polygon_parts(rest) if p.area > 1e-6])
    if guide_xy is None or not len(guide_xy):
        guide_xy, guide_labels = np.zeros((0, 2)), np.zeros(0, dtype=labels.dtype)
    if len(blocks) == 1:  # the whole commune: every point is in it (those a little outside too)
        seeds_in, guides_in = [np.arange(len(xy))], [np.arange(len(guide_xy))]
    else:
        seeds_in, guides_in = _by_block(blocks, xy), _by_block(blocks, guide_xy)
    geoms, owners, todo = [], [], []
    for b, blk in enumerate(blocks):
        idx = seeds_in[b]
        if not len(idx):
            todo.append(b)
            continue
        labs = labels[idx]
        if (labs == labs[0]).all():
            geoms.append(blk)
            owners.append(labs[0])
            continue
        gidx = guides_in[b]
        pts, labs = _dedupe(np.vstack([xy[idx], guide_xy[gidx]]), np.concatenate([labs, guide_labels[gidx]]))
        for lab, g in voronoi_labels(blk, pts, labs).items():
            geoms.append(g)
            owners.append(lab)
    left = _fill_empty(blocks, todo, geoms, owners) if todo and geoms else todo
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
        geoms = shapely.coverage_clean(geoms)
    out = {}
    order = np.argsort(owners, kind="stable")
    for idx in np.split(order, np.flatnonzero(np.diff(owners[order])) + 1):
        out[owners[idx[0]]] = shapely.coverage_union_all(geoms[idx]) if len(idx) > 1 else geoms[idx[0]]
    return out


def tessellate_unit(polygon, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params = Params(), lines=None, guide_xy=None, guide_labels=None) -> dict:
    """Tessellate one commune polygon among the BV labels of its seeds: ``{label: polygon}``.

    With ``params.method == "streets"`` and street *lines*, the commune is first cut into the blocks of the
    street network (see :mod:`streets`), and BV limits follow streets wherever a block holds one BV.
    *guide_xy*/*guide_labels*: street-side guide points (:mod:`guides`).
    """
    if len(xy) == 0:
        return {}
    if len(np.unique(labels)) == 1:
        return {labels[0]: _tidy(polygon)}
    blocks = np.array([polygon], dtype=object)
    if params.method == "streets" and lines is not None and len(lines):
        from .streets import enclosures

        blocks = enclosures(polygon, lines)
    pieces = split_blocks(polygon, blocks, xy, labels, guide_xy, guide_labels)
    if len(pieces) > 1:
        pieces = clean_fragments(polygon, pieces, xy, labels, weights, params)
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


def _split_by_unit(df) -> dict:
    """Row positions of each unit, units in sorted order (numpy, not a pandas groupby per unit)."""
    codes, uniq = pd.factorize(df["unit"], sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(1, len(uniq)))
    return dict(zip(uniq, np.split(order, bounds)))


def _run(task):
    unit, polygon, xy, labels, weights, params, lines, gxy, glabels = task
    return unit, tessellate_unit(polygon, xy, labels, weights, params, lines, gxy, glabels)


def tessellate(units, seeds, params: Params = Params(), progress=None, lines=None, guides=None) -> dict:
    """Tessellate every unit: ``{unit: {bv: polygon}}``. Units without seeds are absent.

    *units* maps unit code → polygon; *seeds* is the DataFrame of :class:`points.Points`.
    *progress* is called with the number of units finished. *lines*: street lines (metric CRS) for the
    ``streets`` method. *guides*: DataFrame of guide points (``unit``, ``bv``, ``x``, ``y``).
    """
    tasks = []
    tree = STRtree(lines) if lines is not None and len(lines) else None
    xy, bv = seeds[["x", "y"]].to_numpy(dtype=float), seeds["bv"].to_numpy()
    weight = seeds["weight"].to_numpy(dtype=float)
    by_unit = _split_by_unit(guides) if guides is not None and len(guides) else {}
    gxy_all = guides[["x", "y"]].to_numpy(dtype=float) if by_unit else None
    gbv_all = guides["bv"].to_numpy() if by_unit else None
    for unit, idx in _split_by_unit(seeds).items():
        sub = None
        if tree is not None:
            # cut long lines to a margin around the commune: they still cross its outline, and node fast
            minx, miny, maxx, maxy = shapely.bounds(units[unit])
            sub = shapely.clip_by_rect(lines[tree.query(units[unit], predicate="intersects")],
                                       minx - 10, miny - 10, maxx + 10, maxy + 10)
            sub = sub[~shapely.is_empty(sub)]
        g = by_unit.get(unit)
        gxy, glabels = (None, None) if g is None else (gxy_all[g], gbv_all[g])
        tasks.append((unit, units[unit], xy[idx], bv[idx], weight[idx], params, sub, gxy, glabels))
    results = {}
    trivial = [t for t in tasks if (t[3] == t[3][0]).all()]  # one BV: the commune itself, no need for a worker
    tasks = sorted((t for t in tasks if not (t[3] == t[3][0]).all()), key=lambda t: -len(t[2]))
    jobs = max(1, min(params.jobs or os.cpu_count() or 1, len(tasks)))
    heavy = sum(len(t[2]) for t in tasks)
    if jobs == 1 or heavy < 20_000:
        for t in trivial + tasks:
            unit, res = _run(t)
            results[unit] = res
            if progress:
                progress(1)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            # one task at a time, heaviest first: the largest commune starts at once and the rest fills in
            running = pool.map(_run, tasks, chunksize=1)
            for t in trivial:
                unit, res = _run(t)
                results[unit] = res
                if progress:
                    progress(1)
            for unit, res in running:
                results[unit] = res
                if progress:
                    progress(1)
    return dict(sorted(results.items()))
