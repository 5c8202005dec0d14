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


def test_limit_is_the_widest_margin_line_in_the_core_of_the_block():
    # A fronts the top street on the left and the bottom street further right than B's top start: the
    # Voronoi limit bends in the middle of the block, the official kind runs straight
    a = np.r_[_facade(4, 44, 76), _facade(4, 76, 4)]
    b = np.r_[_facade(68, 116, 76), _facade(96, 116, 4)]
    xy, labels = np.r_[a, b], np.array([1] * len(a) + [2] * len(b))
    regions, out = _cut(xy, labels)
    assert_tiles(out, BLOCK)
    assert shapely.intersects_xy(out[1], *a.T).all() and shapely.intersects_xy(out[2], *b.T).all()
    # the widest margin: the bisector of the closest points of the hulls, (44, 76)-(76, 4) and (68, 76)-(96, 4)
    hull_a, hull_b = shapely.convex_hull(shapely.multipoints(a)), shapely.convex_hull(shapely.multipoints(b))
    p, q = shapely.get_coordinates(shapely.shortest_line(hull_a, hull_b))
    # every place farther than 20 m from the block's outline lies on its BV's side of that line
    gx, gy = np.meshgrid(np.arange(0.5, 120, 1.0), np.arange(0.5, 80, 1.0))
    g = np.c_[gx.ravel(), gy.ravel()]
    far = shapely.distance(shapely.points(g), BLOCK.exterior) > 20.0
    side = (g[far] - (p + q) / 2) @ (q - p)
    clear = np.abs(side) > 1e-6
    assert clear.sum() > 200
    in_a = shapely.intersects_xy(out[1], *g[far][clear].T)
    assert (in_a == (side[clear] < 0)).all()
    assert (shapely.intersects_xy(regions[1], *g[far][clear].T) != in_a).sum() > 50  # Voronoi bent there
    # near the streets, where the addresses are, the Voronoi split stays
    near = shapely.difference(BLOCK, shapely.buffer(BLOCK, -19.0))
    for lab in (1, 2):
        assert shapely.symmetric_difference(shapely.intersection(regions[lab], near),
                                            shapely.intersection(out[lab], near)).area < 1e-6


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
