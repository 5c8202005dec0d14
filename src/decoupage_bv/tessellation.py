"""Per commune: its BVs' polygons from its seeds, blocks and guides, then detached pieces joined or handed out.

:func:`tessellate_unit` chains :mod:`blocks` (the commune's blocks split among its BVs, by the Voronoi
regions of :mod:`voronoi`) and :mod:`joins` (strays, joins, fragments); its result tiles its commune: no
gap, no overlap, valid polygons. Communes are independent, so :func:`tessellate` runs them in parallel
(the heaviest first), each worker laying its commune's street-side guides (:mod:`guides`).
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd
import shapely
from shapely import STRtree

from ._geometry import tidy
from .blocks import block_of, edge_directions, hull_margins, guides_by_block, split_blocks
from .guides import parse_addresses, street_axes, street_guides
from .joins import clean_fragments, detached_reasons, join_pieces
from .points import rows_by_unit
from .settings import Params


def tessellate_unit(polygon, xy: np.ndarray, labels: np.ndarray, weights: np.ndarray,
                    params: Params = Params(), lines=None, guide_xy=None, guide_labels=None,
                    guide_ends=None, blocks=None, detached: dict | None = None) -> dict:
    """Tessellate one commune polygon among the BV labels of its seeds: ``{label: polygon}``.

    With ``params.method == "streets"`` and street *lines*, the commune is first cut into the blocks of the
    street network (see :mod:`streets`), and BV limits follow streets wherever a block holds one BV.
    *guide_xy*/*guide_labels*: street-side guide points (:mod:`guides`); *guide_ends*, the addresses each
    was laid between (:func:`guides_by_block`). *blocks*: ``streets.enclosures(polygon, lines)``, when the
    caller has them already. *detached*, when given, receives why each BV left in several pieces keeps
    them (:func:`joins.detached_reasons`).
    """
    if len(xy) == 0:
        return {}
    if len(np.unique(labels)) == 1:
        pieces = {labels[0]: tidy(polygon)}
        if detached is not None:  # a commune of islands
            detached.update(detached_reasons(pieces, xy, labels, weights, params, {}))
        return pieces
    if params.method == "streets" and lines is not None and len(lines):
        from .streets import enclosures

        blocks = enclosures(polygon, lines) if blocks is None else blocks
    else:
        blocks = np.array([polygon], dtype=object)
    through = None
    if guide_ends is not None and guide_xy is not None:
        guide_xy, guide_labels, through = guides_by_block(blocks, guide_xy, guide_labels, guide_ends,
                                                          params.guide_extension_across, params.guide_blocks)
    pieces = split_blocks(polygon, blocks, xy, labels, guide_xy, guide_labels,
                          empty_step=params.empty_block_step, cut_depth=params.straight_cut_depth,
                          hull_margins=hull_margins(params), chord=params.straight_cut_chord,
                          main_pair=params.straight_cut_main_pair, empty_pair_share=params.empty_block_pair_share,
                          cut_depth_three=params.straight_cut_depth_three,
                          wood_area=params.empty_region_voronoi_area,
                          main_pair_roundness=params.straight_cut_main_pair_min_roundness,
                          guide_through=through if params.guide_through_blocks else None,
                          through_depth=params.guide_through_depth,
                          guide_only_facades=params.guide_only_facades)
    strays = replace(params, fragment_max_points=0, fragment_max_share=0.0)  # strays only (clean_fragments)
    if guide_xy is None or not len(guide_xy):
        params = replace(strays, leftover_max_share=0.0, join_cut_off_share=0.0,
                         fragment_max_points=params.fragment_max_points_unguided)
    refusals: dict = {}
    if len(pieces) > 1:
        # strays go first; with guides, larger pieces are joined to their BV when they can be, before the
        # fragments and leftovers among them are handed out
        pieces = clean_fragments(polygon, pieces, xy, labels, weights, strays)
        pieces = join_pieces(polygon, pieces, xy, labels, weights, params, refusals=refusals)
        params = replace(params, fragment_max_share=max(params.fragment_max_share, params.leftover_max_share))
        pieces = clean_fragments(polygon, pieces, xy, labels, weights, params)
    pieces = {lab: tidy(g) for lab, g in pieces.items() if not g.is_empty}
    if detached is not None:
        detached.update(detached_reasons(pieces, xy, labels, weights, params, refusals))
    return pieces


def _run(task):
    """``(unit, {bv: polygon}, (guide points laid, street axes drawn), {bv: why it is in pieces})``: one
    commune (:func:`tessellate_unit`), its street-side guides laid here, in the worker (they belong to one
    commune each, and a commune of one BV needs none), and, where it has no street lines, its street axes
    drawn from its addresses (:func:`guides.street_axes`)."""
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
                block = block_of(blocks, axy, -1)
                bvs = pd.DataFrame({"block": block, "bv": rows[0]}).groupby("block")["bv"].nunique()
                mixed = np.zeros(len(blocks), dtype=bool)
                inside = bvs.index.to_numpy() >= 0
                mixed[bvs.index[inside]] = bvs.to_numpy()[inside] > 1
                farther = (block >= 0) & mixed[block]
                pure_block = np.where(farther | (block < 0), -1, block)
                if params.guide_along_streets:
                    def along(i):
                        return edge_directions(blocks, block[i], axy[i])
        guides = street_guides(np.zeros(len(rows[0]), dtype=np.int64), *rows, params, parsed, farther,
                               params.guide_block_extension, pure_block, along)
        gxy, glabels = guides[["x", "y"]].to_numpy(dtype=float), guides["bv"].to_numpy()
        ends = (axy, rows[0], guides["lo"].to_numpy(), guides["hi"].to_numpy(), block)
        if params.address_axes and (lines is None or not len(lines)):
            drawn = street_axes(*rows[1:], params, parsed)
            if len(drawn):
                # their blocks are rougher than street lines': the straight limits stay lines of widest margin,
                # and a block's shape does not tell a strip from a yard (bench/)
                lines, axes = drawn, len(drawn)
                params = replace(params, method="streets", straight_cut_chord=False,
                                 straight_cut_main_pair_min_roundness=0.0)
    detached: dict = {}
    pieces = tessellate_unit(polygon, xy, labels, weights, params, lines, gxy, glabels, ends, blocks, detached)
    return unit, pieces, (0 if glabels is None else len(glabels), axes), detached


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
    ``guide_points``, the number of guide points laid, ``address_axes``, the number of street axes drawn
    from the addresses of communes without street lines, and ``detached``, ``{unit: {bv: why}}`` for the
    BVs left in several pieces (:func:`joins.detached_reasons`).
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
    results, guide_points, axes, detached = {}, 0, 0, {}

    def collect(done):
        nonlocal guide_points, axes
        unit, res, (laid, drawn), why = done
        results[unit] = res
        if why:
            detached[unit] = why
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
        stats["detached"] = dict(sorted(detached.items()))
    return dict(sorted(results.items()))
