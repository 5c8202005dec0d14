"""Straight limits across the core of a mixed block, away from its streets (blocks._straight_cut)."""

import numpy as np
import shapely

from conftest import assert_tiles
from decoupage_bv import Params
from decoupage_bv.blocks import _straight_cut, split_blocks
from decoupage_bv.voronoi import voronoi_labels

BLOCK = shapely.box(0, 0, 120, 80)


def _facade(x0, x1, y, step=4.0):
    x = np.arange(x0, x1 + 1e-9, step)
    return np.c_[x, np.full(len(x), y)]


def _cut(xy, labels, depth=20.0):
    regions = voronoi_labels(BLOCK, xy, labels)
    return regions, _straight_cut(BLOCK, regions, xy, labels, depth)


GRID = np.c_[[a.ravel() for a in np.meshgrid(np.arange(0.5, 120, 1.0), np.arange(0.5, 80, 1.0))]].T
CORE = GRID[shapely.distance(shapely.points(GRID), BLOCK.exterior) > 20.0]  # farther than the depth of 20 m


def _side(g, p, q):
    """Signed distance of *g* to the line through *p* and *q* (positive on the left going from *p* to *q*)."""
    d = (q - p) / np.hypot(*(q - p))
    return (g - p) @ np.array([-d[1], d[0]])


def _widest_margin(a, b):
    """Ends of the line of widest margin between *a* and *b*: the bisector of the closest points of their hulls."""
    hull_a, hull_b = shapely.convex_hull(shapely.multipoints(a)), shapely.convex_hull(shapely.multipoints(b))
    p, q = shapely.get_coordinates(shapely.shortest_line(hull_a, hull_b))
    m, d = (p + q) / 2, q - p
    return m, m + np.array([-d[1], d[0]])


# A fronts the top street up to x = 44 and the bottom street up to x = 76; B both from x = 84
A = np.r_[_facade(4, 44, 76), _facade(4, 76, 4)]
B = np.r_[_facade(84, 116, 76), _facade(84, 116, 4)]
CHORD = np.array([80.0, 0.0]), np.array([64.0, 80.0])  # where each street's range changes BV; A on its left


def test_limit_runs_between_the_places_where_the_bv_changes_along_the_outline():
    # the official kind of limit runs straight from where the top street's range changes BV (x = 64,
    # halfway between 44 and 84) to where the bottom one's does (80)
    xy, labels = np.r_[A, B], np.array([1] * len(A) + [2] * len(B))
    regions, out = _cut(xy, labels)
    assert_tiles(out, BLOCK)
    assert shapely.intersects_xy(out[1], *A.T).all() and shapely.intersects_xy(out[2], *B.T).all()
    side = _side(CORE, *CHORD)
    clear = np.abs(side) > 3.0  # the outline is sampled every 4 m
    in_a = shapely.intersects_xy(out[1], *CORE[clear].T)
    assert clear.sum() > 1000 and (in_a == (side[clear] > 0)).all()
    # not the line of widest margin between the two BVs' addresses (x = 80: the bisector of their two
    # nearest, (76, 4) and (84, 4)), nor the Voronoi split
    p, q = _widest_margin(A, B)
    widest_a = (_side(CORE[clear], p, q) > 0) == (_side(np.array([[4.0, 40.0]]), p, q)[0] > 0)
    assert (widest_a != in_a).sum() > 150
    assert (shapely.intersects_xy(regions[1], *CORE[clear].T) != in_a).sum() > 50
    # near the streets, where the addresses are, the Voronoi split stays
    near = shapely.difference(BLOCK, shapely.buffer(BLOCK, -19.0))
    for lab in (1, 2):
        assert shapely.symmetric_difference(shapely.intersection(regions[lab], near),
                                            shapely.intersection(out[lab], near)).area < 1e-6


def test_limit_is_the_widest_margin_line_where_that_chord_would_take_an_address():
    # an address of A deep in the yard, on B's side of the chord between the changes but outside B's hull
    a = np.r_[A, [[78.0, 40.0]]]
    xy, labels = np.r_[a, B], np.array([1] * len(a) + [2] * len(B))
    assert _side(np.array([[78.0, 40.0]]), *CHORD)[0] < -5
    _, out = _cut(xy, labels)
    assert_tiles(out, BLOCK)
    assert shapely.intersects_xy(out[1], *a.T).all() and shapely.intersects_xy(out[2], *B.T).all()
    p, q = _widest_margin(a, B)
    side = _side(CORE, p, q)
    a_positive = _side(np.array([[4.0, 40.0]]), p, q)[0] > 0
    clear = np.abs(side) > 1e-6
    in_a = shapely.intersects_xy(out[1], *CORE[clear].T)
    assert clear.sum() > 1000 and (in_a == ((side[clear] > 0) == a_positive)).all()


def test_overlapping_hulls_or_guide_only_bv_leave_the_voronoi_split():
    a = np.r_[_facade(4, 60, 76), _facade(60, 116, 4)]
    b = np.r_[_facade(64, 116, 76), _facade(4, 56, 4)]
    xy, labels = np.r_[a, b], np.array([1] * len(a) + [2] * len(b))
    regions, out = _cut(xy, labels)
    assert out is regions
    # BV 3 has guide points in the block but no address: nothing to separate it by
    seeds = np.r_[_facade(4, 44, 76), _facade(76, 116, 76), [[60, 4]]]
    seed_labels = np.array([1] * 11 + [2] * 11 + [3])
    regions = voronoi_labels(BLOCK, seeds, seed_labels)
    assert _straight_cut(BLOCK, regions, seeds[:-1], seed_labels[:-1], 20.0) is regions
    # a block too thin to have a core
    thin = shapely.box(0, 0, 120, 30)
    regions = voronoi_labels(thin, np.array([[10.0, 2], [110, 2]]), np.array([1, 2]))
    assert _straight_cut(thin, regions, np.array([[10.0, 2], [110, 2]]), np.array([1, 2]), 20.0) is regions


def test_three_bvs_tile_the_block_and_keep_their_addresses():
    a, b, c = _facade(4, 36, 76), _facade(60, 116, 76), _facade(4, 116, 4, step=8.0)
    xy, labels = np.r_[a, b, c], np.array([1] * len(a) + [2] * len(b) + [3] * len(c))
    regions, out = _cut(xy, labels, depth=10.0)
    assert_tiles(out, BLOCK)
    for lab, pts in ((1, a), (2, b), (3, c)):
        assert shapely.intersects_xy(out[lab], *pts.T).all()
    assert out is not regions


def _two_blocks():
    """Two blocks side by side: the left one shared by A and B, the right one all B's."""
    blocks = np.array([shapely.box(0, 0, 120, 80), shapely.box(120, 0, 240, 80)], dtype=object)
    a = np.r_[_facade(4, 44, 76), _facade(4, 76, 4)]
    b = np.r_[_facade(68, 116, 76), _facade(96, 116, 4), _facade(124, 236, 40)]
    return shapely.box(0, 0, 240, 80), blocks, np.r_[a, b], np.array([1] * len(a) + [2] * len(b))


def test_split_blocks_straightens_mixed_blocks_only_when_asked():
    outline, blocks, xy, labels = _two_blocks()
    straight = split_blocks(outline, blocks, xy, labels, cut_depth=20.0)
    voronoi = split_blocks(outline, blocks, xy, labels, cut_depth=0.0)
    for out in (straight, voronoi):
        assert_tiles(out, outline, exact=True)
        assert shapely.get_num_geometries(out[2]) == 1  # the whole right block joins B's part of the left one
    assert shapely.symmetric_difference(straight[1], voronoi[1]).area > 50
    # a commune that is one block (method voronoi) has no street axes for an outline: no straight cut
    left, lxy, llab = blocks[:1], xy[xy[:, 0] < 120], labels[xy[:, 0] < 120]
    one = split_blocks(left[0], left, lxy, llab, cut_depth=20.0)
    assert all(shapely.equals(one[lab], voronoi_labels(left[0], lxy, llab)[lab]) for lab in (1, 2))
    assert Params().straight_cut_depth > 0


def test_a_failed_straight_cut_leaves_the_voronoi_split(monkeypatch):
    from decoupage_bv import blocks as module

    def fail(*args):
        raise shapely.errors.GEOSException("TopologyException: side location conflict")

    outline, blocks, xy, labels = _two_blocks()
    voronoi = split_blocks(outline, blocks, xy, labels, cut_depth=0.0)
    cut = split_blocks(outline, blocks, xy, labels, cut_depth=20.0)
    assert not all(shapely.equals(cut[lab], voronoi[lab]) for lab in (1, 2))
    # blocks of two BVs are cut together; when that fails, block by block, with the same result
    monkeypatch.setattr(module, "_straight_cut_pairs", fail)
    out = split_blocks(outline, blocks, xy, labels, cut_depth=20.0)
    assert all(shapely.equals(out[lab], cut[lab]) for lab in (1, 2))
    # and where a block's own cut fails, its Voronoi split stays
    monkeypatch.setattr(module, "_straight_cut", fail)
    out = split_blocks(outline, blocks, xy, labels, cut_depth=20.0)
    assert all(shapely.equals(out[lab], voronoi[lab]) for lab in (1, 2))


def test_the_chord_can_be_turned_off():
    # Params.straight_cut_chord = False: the lines of widest margin, in both the batched and the single path
    outline = shapely.box(0, 0, 240, 80)
    blocks = np.array([BLOCK, shapely.box(120, 0, 240, 80)], dtype=object)
    right = _facade(124, 236, 40)
    xy, labels = np.r_[A, B, right], np.array([1] * len(A) + [2] * (len(B) + len(right)))
    chord = split_blocks(outline, blocks, xy, labels, cut_depth=20.0)
    widest = split_blocks(outline, blocks, xy, labels, cut_depth=20.0, chord=False)
    regions = voronoi_labels(BLOCK, np.r_[A, B], labels[:len(A) + len(B)])
    single = _straight_cut(BLOCK, regions, np.r_[A, B], labels[:len(A) + len(B)], 20.0, chord=False)
    side = _side(CORE, *_widest_margin(A, B))
    clear = np.abs(side) > 1e-6
    a_positive = _side(np.array([[4.0, 40.0]]), *_widest_margin(A, B))[0] > 0
    for out in (widest, single):
        assert (shapely.intersects_xy(out[1], *CORE[clear].T) == ((side[clear] > 0) == a_positive)).all()
    assert shapely.symmetric_difference(chord[1], widest[1]).area > 200


YARD = shapely.box(0, 0, 200, 120)


def _yard(extra_c=()):
    """A yard: A's long facade on top, B's along most of the bottom, C's few addresses at its bottom left."""
    a, b = _facade(4, 196, 116), _facade(40, 196, 4)
    c = np.r_[_facade(4, 24, 4), np.array(extra_c, dtype=float).reshape(-1, 2)]
    return np.r_[a, b, c], np.array([1] * len(a) + [2] * len(b) + [3] * len(c))


def test_three_bvs_the_core_goes_to_the_two_that_hold_most_of_the_outline():
    xy, labels = _yard()
    regions = voronoi_labels(YARD, xy, labels)
    out = _straight_cut(YARD, regions, xy, labels, 20.0)
    old = _straight_cut(YARD, regions, xy, labels, 20.0, main_pair=False)
    for res in (out, old):
        assert_tiles(res, YARD)
        for lab in (1, 2, 3):
            assert shapely.intersects_xy(res[lab], *xy[labels == lab].T).all()
    core = shapely.buffer(YARD, -20.0, quad_segs=4)
    # C keeps its stretch along the streets, and no wedge of the yard behind it, as the lines of widest
    # margin between every two gave it
    assert shapely.intersection(out[3], core).area < 1e-6
    assert shapely.intersection(old[3], core).area > 100
    assert shapely.equals(shapely.difference(out[3], core), shapely.difference(regions[3], core))
    # A and B split the core along the line between the places where one gives way to the other along the
    # outline: across the yard, about y = 53 on its left side and y = 60 on its right
    edge = shapely.get_coordinates(shapely.segmentize(core.exterior, 1.0))
    top, bottom = edge[edge[:, 1] > 70], edge[edge[:, 1] < 45]
    assert shapely.intersects_xy(out[1], *top.T).all() and shapely.intersects_xy(out[2], *bottom.T).all()


def test_three_bvs_another_bv_in_the_core_leaves_the_lines_between_every_two():
    xy, labels = _yard(extra_c=[(30.0, 40.0)])
    regions = voronoi_labels(YARD, xy, labels)
    out = _straight_cut(YARD, regions, xy, labels, 20.0)
    old = _straight_cut(YARD, regions, xy, labels, 20.0, main_pair=False)
    assert all(shapely.equals(out[lab], old[lab]) for lab in (1, 2, 3))


def test_blocks_of_three_bvs_have_their_own_depth():
    # C has an address 22.5 m inside the yard: in the core from 20 m, which then falls back to the lines
    # between every two (a wedge of the yard for C), not in the core from 25 m, which goes to A and B
    xy, labels = _yard(extra_c=[(30.0, 22.5)])
    outline = shapely.box(0, 0, 400, 120)
    blocks = np.array([YARD, shapely.box(200, 0, 400, 120)], dtype=object)
    right = _facade(204, 396, 4)
    xy, labels = np.r_[xy, right], np.r_[labels, [2] * len(right)]
    core = shapely.buffer(YARD, -25.0, quad_segs=4)
    wedge = {}
    for three in (20.0, 25.0):
        out = split_blocks(outline, blocks, xy, labels, cut_depth=20.0, cut_depth_three=three)
        assert_tiles(out, outline)
        assert all(shapely.intersects_xy(out[lab], *xy[labels == lab].T).all() for lab in (1, 2, 3))
        wedge[three] = shapely.intersection(out[3], core).area
    assert wedge[20.0] > 100 and wedge[25.0] < 1e-6
    assert Params().straight_cut_depth_three > Params().straight_cut_depth


def test_a_long_thin_block_of_three_bvs_is_shared_by_the_bvs_along_it():
    # the yard stretched into a strip six times as long as it is wide (4πA/P² 0.39, a rail corridor, the
    # side of an esplanade): its core is not given to the two main BVs but split by the lines between every
    # two, as a long thin block without addresses is shared by the BVs along it
    strip = shapely.box(0, 0, 480, 80)
    a, b, c = _facade(4, 476, 76), _facade(40, 476, 4), _facade(4, 24, 4)
    xy, labels = np.r_[a, b, c], np.array([1] * len(a) + [2] * len(b) + [3] * len(c))
    regions = voronoi_labels(strip, xy, labels)
    out = _straight_cut(strip, regions, xy, labels, 20.0)
    pair = _straight_cut(strip, regions, xy, labels, 20.0, main_pair_roundness=0.0)
    every_two = _straight_cut(strip, regions, xy, labels, 20.0, main_pair=False)
    assert 0.3 < 4 * np.pi * strip.area / strip.length ** 2 < Params().straight_cut_main_pair_min_roundness
    assert all(shapely.equals(out[lab], every_two[lab]) for lab in (1, 2, 3))
    core = shapely.buffer(strip, -20.0, quad_segs=4)
    assert shapely.intersection(pair[3], core).area < 1e-6 < shapely.intersection(out[3], core).area


def test_nearest_address_along_a_large_outline_is_the_same_from_the_tree():
    """A large block (samples × addresses over a million) takes the tree, a small one the matrix: the same
    nearest address for every sample, and of two equally near the first."""
    from decoupage_bv.blocks import _nearest_on_outline

    rng = np.random.default_rng(3)
    block = shapely.box(0, 0, 3000, 2000)  # 2,500 samples every 4 m
    xy = rng.uniform([5, 5], [2995, 1995], size=(900, 2))
    ring, origin, nearest = _nearest_on_outline(block, xy)
    assert len(ring) * len(xy) > 1_000_000
    d = ((ring[:, None, :] - (xy - origin)[None, :, :]) ** 2).sum(axis=2)
    assert (nearest == d.argmin(axis=1)).all()
    # two addresses at the same distance from a sample: the first wins, with the tree as with the matrix
    twins = np.vstack([xy, [[1500.0, 1.0], [1500.0, 1.0]], [[1496.0, 1.0]]])  # the others ≥ 5 m away
    for pts in (twins, twins[-3:]):
        ring, origin, nearest = _nearest_on_outline(block, pts)
        at = np.flatnonzero((np.abs(ring + origin - [1500.0, 0.0]) < 1e-6).all(axis=1))
        assert len(at) == 1 and nearest[at[0]] == len(pts) - 3
