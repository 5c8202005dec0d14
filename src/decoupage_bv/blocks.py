"""The blocks of a commune (faces of its street lines, or of the street axes drawn from its addresses) split
among its BVs: a block of one BV whole to it, a mixed block by the Voronoi regions of its addresses and
street-side guides with straight limits in its core, a block without addresses along its outline or whole
to the BV whose outline it rounds off (README, Method, step 4).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import shapely
from shapely import STRtree

from ._geometry import multipoint, polygon_parts, segment_distance, tidy, tidy_all, union_of_tiles
from ._grid import box_pairs
from .settings import Params
from .voronoi import dedupe, groups_of, voronoi_labels, voronoi_labels_many


class HullMargins(NamedTuple):
    """When a block without addresses goes whole to the BV whose outline it rounds off (:func:`_rounding_owner`)."""

    small_margin: float  # below small_area (m²)
    small_area: float
    margin: float  # at small_area and above; both ≤ 0: always split
    min_roundness: float = 0.0  # 4πA/P² below which a block is always split (0: any shape)


def hull_margins(params: Params) -> HullMargins:
    """The :class:`HullMargins` of *params*."""
    return HullMargins(params.empty_block_hull_margin_small, params.empty_block_small_area,
                       params.empty_block_hull_margin, params.empty_block_min_roundness)


HULL_MARGINS = hull_margins(Params())


def _block_pairs(blocks: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(point, block)`` of each point of *xy* inside a block, sorted by point (a point on a shared edge
    counts in the lowest block)."""
    bi, pi = box_pairs(shapely.bounds(blocks), xy)
    shapely.prepare(blocks)
    inside = shapely.intersects_xy(blocks[bi], xy[pi, 0], xy[pi, 1])
    bi, pi = bi[inside], pi[inside]
    order = np.lexsort((bi, pi))
    pi, bi = pi[order], bi[order]
    first = np.ones(len(pi), dtype=bool)  # (none when no point is inside a block)
    first[1:] = pi[1:] != pi[:-1]
    return pi[first], bi[first]


def block_of(blocks: np.ndarray, xy: np.ndarray, missing: int) -> np.ndarray:
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
                    across: float = np.inf, relabel: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Guides relabelled where the two addresses they join lie in different blocks: official ranges change
    at a cross street far more often than midway along a block (on the real list, an address sharing its
    block with one only of its two same-side neighbours of different BVs is in that one's BV 98.7 % of the
    time, bench/). A guide in the block of one end takes that end's BV; elsewhere it keeps its own (with
    *relabel*). The guides carried past a range's end go at most *across* m from it outside the block of
    that end.

    *ends*: ``(xy, bv, lo, hi)``, the addresses guides are laid from and, for each guide, the two it was laid
    between (:func:`guides.street_guides`); optionally a fifth item, the block of each address (``-1``
    outside every block), when the caller has located them. Returns ``(guide_xy, guide_labels, through)``,
    *through* true of the guides between two numbers of one BV in other blocks than their own (a range
    passing through that block, see :func:`split_blocks`; with *relabel* only).
    """
    axy, abv, lo, hi = ends[:4]
    if not len(guide_xy) or len(blocks) < 2:
        return guide_xy, guide_labels, np.zeros(len(guide_xy), dtype=bool)
    single = lo == hi  # carried past the end of a range
    block = ends[4] if len(ends) > 4 else None
    if block is None:  # of each address (a few per guide pair: located once)
        block = np.full(len(axy), -1, dtype=np.int64)
        used = np.unique(np.r_[lo, hi])
        block[used] = block_of(blocks, axy[used], -1)
    cross = np.flatnonzero((block[lo] != block[hi]) & ~single) if relabel else np.zeros(0, dtype=np.int64)
    labels = guide_labels.copy()
    through = np.zeros(len(guide_xy), dtype=bool)
    if len(cross):
        # -2 outside every block: a guide there matches no address, not even one outside too
        own = block_of(blocks, guide_xy[cross], -2)
        at_lo, at_hi = own == block[lo[cross]], own == block[hi[cross]]
        labels[cross[at_lo]] = abv[lo[cross[at_lo]]]
        labels[cross[at_hi]] = abv[hi[cross[at_hi]]]
        through[cross] = ~at_lo & ~at_hi & (own >= 0) & (abv[lo[cross]] == abv[hi[cross]])
    far = np.flatnonzero(single)
    far = far[np.hypot(*(guide_xy[far] - axy[lo[far]]).T) > across + 1e-6]
    if not len(far):
        return guide_xy, labels, through
    keep = np.ones(len(guide_xy), dtype=bool)
    keep[far] = block_of(blocks, guide_xy[far], -2) == block[lo[far]]
    return guide_xy[keep], labels[keep], through[keep]


def _fill_empty(blocks: np.ndarray, todo: list, geoms: list, owners: list, step: float,
                hull_margins: HullMargins = HULL_MARGINS, pair_share: float = Params.empty_block_pair_share) -> list:
    """Split each block without addresses among the pieces along its outline (nearest stretch of outline;
    between the two BVs holding most of it, :func:`_main_pair_samples`), or give it whole to the BV whose
    outline it rounds off (:func:`_rounding_owner`).

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
                split.append((blocks[b], *_main_pair_samples(ring_xy, labs, pair_share)))
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


def _large_regions(blocks: np.ndarray, todo: list, min_area: float) -> set:
    """The blocks of *todo* (blocks without addresses) that belong to a stretch of them, touching one
    another, of at least *min_area* m² in all: a wood cut by its roads.

    Such a stretch is decided block by block from its edge inwards, each block by the pieces already around
    it, so that the BVs at its corners take ever more of it; a wood goes to the BVs along it as plain
    Voronoi shares it instead (bench/RESULTS.md).
    """
    if not todo or not np.isfinite(min_area) or shapely.area(blocks[todo]).sum() < min_area:
        return set()
    arr = blocks[todo]
    a, b = STRtree(arr).query(arr, predicate="dwithin", distance=0.05)
    group = np.arange(len(todo))
    while True:  # each block takes the lowest group among its neighbours until none changes
        low = group.copy()
        np.minimum.at(low, a, group[b])
        low = low[low]
        if (low == group).all():
            break
        group = low
    area = np.bincount(group, weights=shapely.area(arr), minlength=len(todo))
    return {todo[k] for k in np.flatnonzero(area[group] >= min_area)}


def _round_enough(area, length, least: float):
    """Whether a shape of *area* and outline *length* has a roundness 4πA/P² of at least *least* (1 for a
    disc, about 0.79 for a square, 0.3 for a rectangle eight times as long as wide): long thin blocks (a
    stretch of river, a rail cutting, a strip along a street) are shared by the BVs along them."""
    return 4 * np.pi * area >= least * length ** 2


def _main_pair_samples(xy: np.ndarray, labels: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """The samples of an empty block's outline (*xy*, their BVs' *labels*) of the two BVs that hold most of
    it, when three BVs or more hold some and the others at most *share* of it; else all of them.

    Official maps give most of such a block to one BV, and seldom any to a third: a BV along a short stretch
    of a garden's outline takes no wedge of it (cross-validated, bench/).
    """
    held, count = np.unique(labels, return_counts=True)
    main = np.argsort(-count, kind="stable")[:2]
    if len(held) < 3 or 1 - count[main].sum() / count.sum() > share:
        return xy, labels
    keep = np.isin(labels, held[main])
    return xy[keep], labels[keep]


def _rounding_owner(blocks: np.ndarray, contested: list, geoms: np.ndarray, owners: np.ndarray,
                    margins: HullMargins = HULL_MARGINS) -> list:
    """For each ``(block, outline points, their BVs)`` of *contested*, the BV that takes the block whole, or
    ``None`` to split it.

    Official maps give a block without addresses (a garden, a yard, a stretch of river) whole to one BV, most
    often the one whose outline it rounds off: the BV whose convex hull grows least, beyond the block's own
    area, by taking it (below zero when the block fills a bay of that BV). The block goes whole to it when
    the next BV's hull would grow by more than a margin times the block's area beyond that; else the split
    along the outline stands (cross-validated, bench/). A long thin block (its 4πA/P² below the least
    roundness: a stretch of river, a rail cutting, a median strip) is always split: it is shared by the BVs
    along it (:class:`HullMargins`).
    """
    small_margin, small_area, margin, roundness = margins
    out = [None] * len(contested)
    if margin <= 0 and small_margin <= 0:
        return out
    area = np.array([blocks[b].area for b, _, _ in contested])
    length = np.array([blocks[b].length for b, _, _ in contested])
    judged = np.flatnonzero((area > 0) & _round_enough(area, length, roundness))
    if not len(judged):
        return out
    labs = [np.unique(contested[i][2]) for i in judged]
    needed = np.unique(np.concatenate(labs))
    mine = np.flatnonzero(np.isin(owners, needed))
    xy, part = shapely.get_coordinates(shapely.convex_hull(geoms[mine]), return_index=True)
    which = np.searchsorted(needed, owners[mine][part])
    by_label = np.argsort(which, kind="stable")
    hulls = shapely.convex_hull(shapely.multipoints(xy[by_label], indices=which[by_label]))
    hull_xy = dict(zip(needed, (shapely.get_coordinates(h) for h in hulls)))
    hull_area = dict(zip(needed, shapely.area(hulls)))
    block_xy = [shapely.get_coordinates(blocks[contested[i][0]]) for i in judged]
    both = [np.vstack([hull_xy[lab], bxy]) for bxy, ls in zip(block_xy, labs) for lab in ls]
    grown = shapely.area(shapely.convex_hull(shapely.multipoints(
        np.vstack(both), indices=np.repeat(np.arange(len(both)), [len(c) for c in both]))))
    k = 0
    for i, ls in zip(judged, labs):
        growth = grown[k:k + len(ls)] - np.array([hull_area[lab] for lab in ls]) - area[i]
        k += len(ls)
        order = np.lexsort((np.arange(len(ls)), growth))
        m = small_margin if area[i] < small_area else margin
        if m > 0 and growth[order[1]] - growth[order[0]] > m * area[i]:
            out[i] = ls[order[0]]
    return out


def _straight_cut(block, regions: dict, xy: np.ndarray, labels: np.ndarray, depth: float,
                  chord: bool = True, main_pair: bool = True,
                  main_pair_roundness: float = Params.straight_cut_main_pair_min_roundness) -> dict:
    """*regions* of a mixed block, with straight limits inside it, deeper than *depth* from its outline.

    Official limits cross a block straight, from one street to another, where Voronoi cells between two
    BVs' facades wander with the depth of each building. Between two BVs whose addresses (*xy*, *labels*)
    a straight line separates (their convex hulls are apart), the limit in the block's core, farther than
    *depth* from its outline (the street axes), is the line joining the two places where the BV changes
    along the outline (:func:`_chord`; with *chord*), or, where that line would leave an address on the
    other side, the line of widest margin (the perpendicular bisector of the shortest segment between the
    hulls); nearer, along the streets where addresses are, the Voronoi split stays. With three BVs or
    more, the core goes to the two that hold most of the block's outline, split by the line between them
    as for two, when no other BV has an address in it and the block is not long and thin, its 4πA/P² at
    least *main_pair_roundness*: a strip is shared by the BVs along it (:func:`_main_pair_cut`; with
    *main_pair*). Else a place of the core goes to the BV on whose side of the lines of widest margin it
    lies against every other, and where there is none, the Voronoi split stays. No address changes BV
    (each lies on its own side of every line). Unchanged when two BVs' hulls overlap or a BV of *regions*
    has no address in the block (guides only).
    """
    labs = sorted(regions)
    hulls = []
    for lab in labs:
        own = xy[labels == lab]
        if not len(own):
            return regions
        hulls.append(shapely.convex_hull(multipoint(own)))
    hulls = np.array(hulls, dtype=object)
    core = shapely.buffer(block, -depth, quad_segs=4)
    if core.is_empty or core.area < 1.0:
        return regions
    if main_pair and len(labs) > 2 and _round_enough(block.area, block.length, main_pair_roundness):
        cut = _main_pair_cut(block, regions, xy, labels, core, dict(zip(labs, hulls)), chord)
        if cut is not None:
            return cut
    first, second = np.triu_indices(len(labs), 1)
    if shapely.intersects(hulls[first], hulls[second]).any():
        return regions
    box = shapely.bounds(core)
    ends = shapely.get_coordinates(shapely.shortest_line(hulls[first], hulls[second])).reshape(-1, 2, 2)
    line = _chord(block, xy[labels == labs[0]], xy[labels == labs[1]]) if chord and len(labs) == 2 else None
    if line is not None:
        ends[0] = line
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
    return {lab: tidy(shapely.union(shapely.difference(regions[lab], taken), area))
            for lab, area in zip(labs, won)}


def _main_pair_cut(block, regions: dict, xy: np.ndarray, labels: np.ndarray, core, hulls: dict,
                   chord: bool = True) -> dict | None:
    """*regions* of a block of three BVs or more with its *core* given to the two BVs that hold most of its
    outline (each sample of the outline taking the BV of its nearest address), split by the line between
    them (:func:`_chord`, or the line of widest margin between their *hulls*); the others keep what they
    hold along the streets. ``None`` when another BV has an address in the core, or no line separates the
    two.

    In a yard or a large block, official limits cross between the BVs of its long facades; a BV with a
    few addresses on a short stretch of its outline holds them, not a wedge of the yard behind.
    """
    labs = sorted(regions)
    _, _, nearest = _nearest_on_outline(block, xy)
    held = np.array([(labels[nearest] == lab).sum() for lab in labs])
    a, b = (labs[i] for i in np.argsort(-held, kind="stable")[:2])
    others = ~np.isin(labels, [a, b])
    if shapely.intersects_xy(core, xy[others, 0], xy[others, 1]).any():
        return None
    line = _chord(block, xy[labels == a], xy[labels == b]) if chord else None
    if line is None:
        if shapely.intersects(hulls[a], hulls[b]):
            return None
        line = shapely.get_coordinates(shapely.shortest_line(hulls[a], hulls[b]))
    side = _half_plane(shapely.bounds(core), *line)  # a's side
    if side is None:
        return None
    out = {lab: tidy(shapely.difference(regions[lab], core)) for lab in labs}
    out[a] = tidy(shapely.union(out[a], shapely.intersection(core, side)))
    out[b] = tidy(shapely.union(out[b], shapely.difference(core, side)))
    return out


def _nearest_on_outline(block, xy: np.ndarray, step: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(samples, origin, nearest)``: *block*'s outline sampled every *step* m, less ``origin`` (its first
    sample: small numbers for squared distances as |r|² - 2r·a + |a|², and for :func:`_chord`), and the
    index of the point of *xy* nearest each sample (the first of those equally near)."""
    ring = shapely.get_coordinates(shapely.segmentize(shapely.get_exterior_ring(block), step))[:-1]
    origin = ring[0]
    ring, xy = ring - origin, xy - origin
    if len(ring) * len(xy) <= 1_000_000:
        d = (ring * ring).sum(axis=1)[:, None] - 2 * ring @ xy.T + (xy * xy).sum(axis=1)
        return ring, origin, d.argmin(axis=1)
    # a tree, not a samples × points matrix: a large block of a suburb has thousands of each
    sample, point = STRtree(shapely.points(xy)).query_nearest(shapely.points(ring), all_matches=True)
    nearest = np.full(len(ring), np.iinfo(np.int64).max)
    np.minimum.at(nearest, sample, point)
    return ring, origin, nearest


def _chord(block, own0: np.ndarray, own1: np.ndarray, step: float = 4.0) -> np.ndarray | None:
    """``(p, q)``, *p* on the side of *own0*, whose perpendicular bisector is the chord of *block* between the
    two places where the BV changes along its outline (sampled every *step* m, each sample taking the BV of
    its nearest address); ``None`` unless the outline holds one stretch of each BV and the chord leaves each
    BV's addresses on its own side.

    Official limits cross a block from the place where one street's range changes BV to the place where
    another's does; the line of widest margin between the two BVs' addresses follows their two nearest
    addresses instead, and turns with them (a yard with a few addresses along its edges).
    """
    ring, origin, nearest = _nearest_on_outline(block, np.vstack([own0, own1]), step)
    own0, own1 = own0 - origin, own1 - origin
    second = nearest >= len(own0)
    change = np.flatnonzero(second != np.roll(second, -1))
    if len(change) != 2:
        return None
    ends = (ring[change] + ring[(change + 1) % len(ring)]) / 2
    along = ends[1] - ends[0]
    length = float(np.hypot(*along))
    if length < 1.0:
        return None
    normal = np.array([-along[1], along[0]]) / length
    side0, side1 = (own0 - ends[0]) @ normal, (own1 - ends[0]) @ normal
    if (side0 < 0).all() and (side1 > 0).all():
        normal = -normal
    elif not ((side0 > 0).all() and (side1 < 0).all()):
        return None
    mid = ends.mean(axis=0) + origin
    return np.array([mid + normal, mid - normal])


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


def _straight_cuts(items: list, depth: float, chord: bool = True, main_pair: bool = True,
                   depth_three: float | None = None,
                   main_pair_roundness: float = Params.straight_cut_main_pair_min_roundness) -> list:
    """:func:`_straight_cut` of each ``(block, regions, xy, labels)`` of *items*, each left as it is where the
    cut fails; blocks of three BVs or more beyond *depth_three* (*depth* when ``None``). Blocks of two BVs,
    most of them, go through each step together: the same GEOS calls, made on arrays, without a Python
    round per block."""
    depth_three = depth if depth_three is None else depth_three
    out = [regions for _, regions, _, _ in items]
    batch, hull0, hull1 = [], [], []
    for k, (block, regions, xy, labels) in enumerate(items):
        if len(regions) != 2:
            try:
                out[k] = _straight_cut(block, regions, xy, labels, depth_three, chord, main_pair,
                                       main_pair_roundness)
            except shapely.errors.GEOSException:  # a refinement: the Voronoi split stands without it
                pass
            continue
        first, second = sorted(regions)
        own0, own1 = xy[labels == first], xy[labels == second]
        if len(own0) and len(own1):
            batch.append(k)
            hull0.append(multipoint(own0))
            hull1.append(multipoint(own1))
    if not batch:
        return out
    try:
        cut = _straight_cut_pairs([items[k] for k in batch], np.array(hull0, dtype=object),
                                  np.array(hull1, dtype=object), depth, chord)
    except shapely.errors.GEOSException:  # one block's failure: block by block, as above
        cut = {}
        for i, k in enumerate(batch):
            try:
                cut[i] = _straight_cut(*items[k], depth, chord)
            except shapely.errors.GEOSException:
                pass
    for i, regions in cut.items():
        out[batch[i]] = regions
    return out


def _straight_cut_pairs(items: list, points0: np.ndarray, points1: np.ndarray, depth: float,
                        chord: bool = True) -> dict:
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
    for j, i in enumerate(apart if chord else ()):
        block, regions, xy, labels = items[i]
        first, second = sorted(regions)
        line = _chord(block, xy[labels == first], xy[labels == second])
        if line is not None:
            ends[j] = line
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
    return {int(i): {lab[0]: tidy(a), lab[1]: tidy(b)} for i, lab, a, b in zip(apart, labs, new0, new1)}


def split_blocks(polygon, blocks: np.ndarray, xy: np.ndarray, labels: np.ndarray, guide_xy: np.ndarray | None = None,
                 guide_labels: np.ndarray | None = None, empty_step: float = Params.empty_block_step,
                 cut_depth: float = Params.straight_cut_depth, hull_margins: HullMargins = HULL_MARGINS,
                 chord: bool = Params.straight_cut_chord, main_pair: bool = Params.straight_cut_main_pair,
                 empty_pair_share: float = Params.empty_block_pair_share,
                 cut_depth_three: float = Params.straight_cut_depth_three,
                 wood_area: float = Params.empty_region_voronoi_area,
                 main_pair_roundness: float = Params.straight_cut_main_pair_min_roundness,
                 guide_through: np.ndarray | None = None, through_depth: float = Params.guide_through_depth,
                 guide_only_facades: bool = Params.guide_only_facades) -> dict:
    """Tile *polygon*, cut into *blocks*, among the labels of *xy*: ``{label: geometry}``.

    A block with addresses is split by the Voronoi cells of its own addresses and guides (whole to its BV
    when it has one, unless a range of another BV passes through it: guides flagged in *guide_through*,
    :func:`guides_by_block`, whose BV then takes at most *through_depth* m from its guides; with
    *guide_only_facades*, so does any BV there by its guides only, :func:`_guide_only_facades`), with
    straight limits in its core beyond *cut_depth* from its outline where straight lines separate its BVs
    (:func:`_straight_cut`, with *chord* and *main_pair*, the latter in blocks at least *main_pair_roundness*
    round; beyond *cut_depth_three* in blocks of three BVs or more; blocks of street lines only: a commune
    that is one block has no street axes for an outline). A block without is
    split among the pieces around it (between the two main ones, *empty_pair_share*), or given whole to the
    BV whose outline it rounds off (*hull_margins*, :func:`_rounding_owner`), unless it belongs to a stretch
    of such blocks of at least *wood_area* m² (a wood cut by its roads), split as plain Voronoi splits it
    (:func:`_large_regions`). Shared edges are made identical (``coverage_clean``) before the pieces of each
    BV are merged, so that a BV spread over neighbouring blocks comes out in one piece.
    """
    rest = shapely.Polygon()
    if len(blocks) > 1 and abs(shapely.area(blocks).sum() - polygon.area) > 1e-9 * polygon.area:
        rest = shapely.difference(polygon, shapely.union_all(blocks))  # what the blocks leave out (rare)
    if not rest.is_empty:
        blocks = np.append(blocks, [p for p in polygon_parts(rest) if p.area > 1e-6])
    if guide_xy is None or not len(guide_xy):
        guide_xy, guide_labels = np.zeros((0, 2)), np.zeros(0, dtype=labels.dtype)
    seeds_in = [np.arange(len(xy))] if len(blocks) == 1 else _by_block(blocks, xy)
    passing = [set() for _ in blocks]  # the BVs whose ranges pass through each block
    if guide_through is not None and guide_through.any() and len(blocks) > 1:
        through = np.flatnonzero(guide_through)
        passing = [set(guide_labels[through[g]].tolist()) for g in _by_block(blocks, guide_xy[through])]
    geoms, owners, todo, mixed_blocks = [], [], [], []
    for b, blk in enumerate(blocks):
        idx = seeds_in[b]
        if not len(idx):
            todo.append(b)
        elif (labels[idx] == labels[idx[0]]).all() and not passing[b] - {labels[idx[0]]}:
            geoms.append(blk)
            owners.append(labels[idx[0]])
        else:  # (a block of one BV's addresses is here only when a range of another passes through it)
            mixed_blocks.append(b)
    # guides matter in mixed blocks only (the whole commune when it is one block, with those a little outside)
    guides_in = [np.arange(len(guide_xy))] if len(blocks) == 1 else _by_block(blocks[mixed_blocks], guide_xy)
    mixed = [(blocks[b], *dedupe(np.vstack([xy[seeds_in[b]], guide_xy[g]]),
                                  np.concatenate([labels[seeds_in[b]], guide_labels[g]])))
             for b, g in zip(mixed_blocks, guides_in)]
    split = voronoi_labels_many(mixed)
    facades = {}  # mixed blocks where a BV is there by its guides only: position → those BVs' facades
    if len(blocks) > 1:
        split, facades = _guide_only_facades(mixed, split, [seeds_in[b] for b in mixed_blocks], labels, guide_xy,
                                             guide_labels, guides_in, through_depth, guide_only_facades)
    if cut_depth > 0 and len(blocks) > 1:
        cut = [k for k, res in enumerate(split) if len(res) > 1]
        done = _straight_cuts([(blocks[mixed_blocks[k]], split[k], xy[seeds_in[mixed_blocks[k]]],
                                labels[seeds_in[mixed_blocks[k]]]) for k in cut], cut_depth, chord, main_pair,
                               cut_depth_three, main_pair_roundness)
        for k, res in zip(cut, done):
            split[k] = res
    for k, zones in facades.items():
        split[k] = _carved(split[k], zones)
    for res in split:
        for lab, g in res.items():
            geoms.append(g)
            owners.append(lab)
    wood = _large_regions(blocks, todo, wood_area)
    todo = [b for b in todo if b not in wood]
    left = (_fill_empty(blocks, todo, geoms, owners, empty_step, hull_margins, empty_pair_share)
            if todo and geoms else todo)
    left = sorted([*left, *wood])
    if left:  # a wood, or no block with addresses around: plain Voronoi of every address
        base = voronoi_labels(polygon, *dedupe(xy, labels))
        labs, regions = list(base), np.array(list(base.values()), dtype=object)
        b, r = STRtree(regions).query(blocks[left], predicate="intersects")
        order = np.lexsort((r, b))
        b, r = b[order], r[order]
        pieces = shapely.intersection(blocks[np.array(left)[b]], regions[r])
        for piece, k in zip(pieces, r):
            if not piece.is_empty and piece.area > 0:
                geoms.append(piece)
                owners.append(labs[k])
    geoms = tidy_all(np.array(geoms, dtype=object))
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
    for idx in groups_of(owners):
        out[owners[idx[0]]] = union_of_tiles(geoms[idx]) if len(idx) > 1 else geoms[idx[0]]
    return out


def _guide_only_facades(mixed: list, split: list, seeds_in: list, labels: np.ndarray, guide_xy: np.ndarray,
                        guide_labels: np.ndarray, guides_in: list, depth: float,
                        several: bool = True) -> tuple[list, dict]:
    """*split* (the Voronoi regions of the *mixed* blocks; *seeds_in*, *guides_in*: their addresses and
    guides) where a block holds a BV by its guides only: that BV's region cut to within *depth* m of its
    guides (its facade), and the block re-split among its own BVs (the Voronoi regions of their addresses
    and guides; whole when it has one); ``(split, {position: {BV: facade}})``, the facades to carve out of
    the new regions once their limits are straightened (:func:`_carved`). Without *several*, only in blocks
    of one BV's addresses (a range passing through).

    A range whose numbers lie in other blocks faces this one: along a yard or through a block of another
    BV, its Voronoi region would take the block's interior from the BVs whose addresses are there."""
    zones, again = {}, []
    for k, res in enumerate(split):
        own = np.unique(labels[seeds_in[k]])
        only = [lab for lab in res if lab not in own]
        if not only or (len(own) > 1 and not several):
            continue
        g = guides_in[k]
        zones[k] = {}
        for lab in only:
            near = shapely.buffer(multipoint(guide_xy[g][guide_labels[g] == lab]), depth)
            facade = tidy(shapely.intersection(res[lab], near))
            if not facade.is_empty:
                zones[k][lab] = facade
        block, pts, labs = mixed[k]
        keep = np.isin(labs, own)
        again.append((block, pts[keep], labs[keep]))
    split = list(split)
    for k, res in zip(zones, voronoi_labels_many(again)):
        split[k] = res
    return split, zones


def _carved(regions: dict, zones: dict) -> dict:
    """*regions* less the *zones* (``{BV: area}``, inside them), each zone to its BV."""
    if not zones:
        return regions
    taken = shapely.union_all(list(zones.values()))
    out = {lab: tidy(shapely.difference(g, taken)) if shapely.intersects(g, taken) else g
           for lab, g in regions.items()}
    out = {lab: g for lab, g in out.items() if not g.is_empty}
    out.update(zones)
    return out


def edge_directions(blocks: np.ndarray, block: np.ndarray, xy: np.ndarray) -> np.ndarray:
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
    dist = segment_distance(coords[k], d, xy[pts[pi]])
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
