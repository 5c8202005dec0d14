"""Blocks without addresses: split along their outline, or whole to the BV whose outline they round off
(blocks._fill_empty, _rounding_owner)."""

import numpy as np
import pytest
import shapely

from conftest import assert_tiles
from decoupage_bv.blocks import HullMargins, _large_regions, split_blocks
from decoupage_bv.streets import enclosures
from decoupage_bv.voronoi import voronoi_labels


def _grid(blocks_x, blocks_y, side=100.0):
    """A commune of blocks_x × blocks_y square blocks, ``{(i, j): block}``, and its outline."""
    cells = {(i, j): shapely.box(i * side, j * side, (i + 1) * side, (j + 1) * side)
             for i in range(blocks_x) for j in range(blocks_y)}
    return cells, shapely.box(0, 0, blocks_x * side, blocks_y * side)


def _addresses(cells, owner, side=100.0):
    """Four addresses along the facades of each block of *owner* (``{(i, j): bv}``)."""
    xy, labels = [], []
    for (i, j), bv in sorted(owner.items()):
        x0, y0 = i * side, j * side
        for dx, dy in ((0.1, 0.5), (0.9, 0.5), (0.5, 0.1), (0.5, 0.9)):
            xy.append((x0 + dx * side, y0 + dy * side))
            labels.append(bv)
    return np.array(xy, dtype=float), np.array(labels)


def _build(cells, outline, owner, margin):
    xy, labels = _addresses(cells, owner)
    blocks = np.array([cells[k] for k in sorted(cells)], dtype=object)
    return split_blocks(outline, blocks, xy, labels, hull_margins=HullMargins(margin, 1.0, margin))


def test_an_empty_block_in_a_bay_of_one_bv_goes_whole_to_it():
    # A holds the left column and the blocks above and below the empty middle one, which fills A's bay;
    # taken by B (the right column), it would stick out of B's outline: whole to A
    cells, outline = _grid(3, 3)
    owner = {(0, 0): "A", (0, 1): "A", (0, 2): "A", (1, 0): "A", (1, 2): "A",
             (2, 0): "B", (2, 1): "B", (2, 2): "B"}
    split = _build(cells, outline, owner, margin=0.0)
    whole = _build(cells, outline, owner, margin=1.25)
    for out in (split, whole):
        assert_tiles(out, outline)
    bay = cells[(1, 1)]
    # split along its outline, B gets the stretch nearest its side
    assert shapely.intersection(split["B"], bay).area > 0.2 * bay.area
    assert abs(shapely.intersection(whole["A"], bay).area - bay.area) < 1e-6
    assert shapely.intersection(whole["B"], bay).area < 1e-6
    assert shapely.get_num_geometries(whole["A"]) == 1 and shapely.get_num_geometries(whole["B"]) == 1


def test_a_long_thin_empty_block_is_split_even_in_a_bay():
    # the bay of the first test, but the empty middle block is a strip 8 m high (a median, a river stretch, a
    # rail cutting: 4πA/P² 0.22): it is shared by the BVs along it; 100 m high (0.79) it goes whole to A
    for height, whole in ((8.0, False), (100.0, True)):
        ys = [0.0, 100.0, 100.0 + height, 200.0 + height]
        cells = {(i, j): shapely.box(i * 100.0, ys[j], (i + 1) * 100.0, ys[j + 1]) for i in range(3) for j in range(3)}
        outline = shapely.box(0, 0, 300.0, ys[-1])
        owner = {(0, 0): "A", (0, 1): "A", (0, 2): "A", (1, 0): "A", (1, 2): "A",
                 (2, 0): "B", (2, 1): "B", (2, 2): "B"}
        xy = np.array([(x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)) for k, bv in sorted(owner.items())
                       for x0, y0, x1, y1 in [cells[k].bounds]
                       for fx, fy in ((0.1, 0.5), (0.9, 0.5), (0.5, 0.1), (0.5, 0.9))])
        labels = np.repeat([bv for _, bv in sorted(owner.items())], 4)
        blocks = np.array([cells[k] for k in sorted(cells)], dtype=object)
        out = split_blocks(outline, blocks, xy, labels)  # the default margins and roundness
        assert_tiles(out, outline)
        middle = cells[(1, 1)]
        # split along its outline, B takes the end of the strip that meets its side
        assert (abs(shapely.intersection(out["A"], middle).area - middle.area) < 1e-6) == whole
        assert (shapely.intersection(out["B"], middle).area > 10.0) == (not whole)


def test_an_empty_block_between_two_bvs_alike_is_split():
    # one row: A | empty | B, symmetric: neither hull is rounded off by taking it, so the split stands
    cells, outline = _grid(3, 1)
    owner = {(0, 0): "A", (2, 0): "B"}
    out = _build(cells, outline, owner, margin=1.25)
    assert_tiles(out, outline)
    middle = cells[(1, 0)]
    for bv in ("A", "B"):
        assert abs(shapely.intersection(out[bv], middle).area - middle.area / 2) < 1.0
    assert out == _build(cells, outline, owner, margin=0.0)


def test_a_small_empty_block_goes_whole_on_less_evidence():
    # A: the two top blocks and the bottom left one; B: the right column. Taking the empty bottom middle block
    # grows B's hull by exactly one block area more than A's (a margin of 1.0): under a hectare the block goes
    # whole to A (margin 0.75), at a hectare it is split (margin 1.25)
    owner = {(0, 0): "A", (0, 1): "A", (1, 1): "A", (2, 0): "B", (2, 1): "B"}
    for side, whole in ((50.0, True), (100.0, False)):
        cells, outline = _grid(3, 2, side)
        xy, labels = _addresses(cells, owner, side)
        blocks = np.array([cells[k] for k in sorted(cells)], dtype=object)
        out = split_blocks(outline, blocks, xy, labels)  # the default margins
        assert_tiles(out, outline)
        bay = cells[(1, 0)]
        assert (abs(shapely.intersection(out["A"], bay).area - bay.area) < 1e-6) == whole
        assert (shapely.intersection(out["B"], bay).area > 0.1 * bay.area) == (not whole)


def test_the_choice_does_not_depend_on_the_order_of_the_bvs():
    cells, outline = _grid(3, 3)
    owner = {(0, 0): "A", (0, 1): "A", (0, 2): "A", (1, 0): "A", (1, 2): "A",
             (2, 0): "B", (2, 1): "B", (2, 2): "B"}
    swapped = {k: {"A": "B", "B": "A"}[v] for k, v in owner.items()}
    a, b = _build(cells, outline, owner, 1.25), _build(cells, outline, swapped, 1.25)
    assert shapely.equals(a["A"], b["B"]) and shapely.equals(a["B"], b["A"])


def test_the_champs_elysees_gardens_go_whole_to_the_bv_they_round_off():
    # Paris 8e, real 2012 list: the gardens between the avenue des Champs-Élysées and the avenue Gabriel hold
    # no elector; the official map gives them to BV 0017, whose outline they round off, though 0017 holds
    # only a few percent of their outline. Split along their outline, most went to BV 0010
    import geopandas as gpd
    from conftest import data, dev_roll

    from decoupage_bv import Params, build
    from decoupage_bv.evaluate import evaluate

    roll = dev_roll("paris2012_dev", "address")
    train = roll[roll["commune"] == "75108"]
    com = gpd.read_file(data("paris2012_dev", "communes.geojson"))
    streets = gpd.read_file(data("paris_dev", "streets_voie.geojson"))
    official = gpd.read_file(data("paris2012_dev", "official.geojson"))
    official = official[official["code_insee"] == "75108"]
    garden = gpd.GeoSeries.from_xy([2.31799], [48.86600], crs=4326).to_crs(2154).iloc[0]

    def built(margin):
        params = Params(jobs=1, method="streets", empty_block_hull_margin=margin, empty_block_hull_margin_small=margin)
        g = build(train, com, params=params, streets=streets).polygons
        here = g.to_crs(2154)
        return evaluate(g, official)["area_agreement"], set(here.loc[here.contains(garden), "code_bv"])

    area, bv = built(Params.empty_block_hull_margin)
    assert bv == {"0017"}
    split_area, split_bv = built(0.0)
    assert split_bv == {"0010"}
    assert area > split_area + 0.008  # 0.9219 → 0.9331


def test_split_empty_blocks_from_the_command_line(tmp_path):
    # the same 8e from its REU-shaped file: --split-empty-blocks turns the rule off, and the report says so
    import json

    import geopandas as gpd
    import pandas as pd
    from click.testing import CliRunner
    from conftest import data

    from decoupage_bv.cli import main
    from decoupage_bv.outputs import report_path

    roll = pd.read_csv(data("paris2012_dev", "roll.csv"), dtype=str)
    path = tmp_path / "roll_75108.csv"
    roll[roll["code_commune_ref"] == "75108"].to_csv(path, index=False)
    garden = gpd.GeoSeries.from_xy([2.31799], [48.86600], crs=4326)
    found = {}
    for flag in ([], ["--split-empty-blocks"]):
        out = tmp_path / f"bv{len(flag)}.gpkg"
        res = CliRunner().invoke(main, ["build", "--dept", "75", "--addresses", str(path), "--communes",
                                        data("paris2012_dev", "communes.geojson"), "--streets",
                                        data("paris_dev", "streets_voie.geojson"), *flag, "-o", str(out),
                                        "-q", "-j", "1"])
        assert res.exit_code == 0, res.output
        report = json.loads(open(report_path(str(out))).read())["parameters"]
        g = gpd.read_file(out)
        found[bool(flag)] = (set(g.loc[g.contains(garden.to_crs(g.crs).iloc[0]), "code_bv"]),
                             report["empty_block_hull_margin"], report["empty_block_hull_margin_small"])
    assert found[False] == ({"0017"}, 1.25, 0.75)
    assert found[True] == ({"0010"}, 0.0, 0.0)


def test_an_empty_block_split_goes_to_the_two_bvs_holding_most_of_its_outline():
    # a garden two blocks wide in the middle: A along its top and left sides (half its outline), B along
    # its bottom (a third), C along its right side only (a sixth); the hull rule is off (always split)
    cells, outline = _grid(4, 3)
    garden = shapely.union(cells.pop((1, 1)), cells.pop((2, 1)))
    owner = {(0, 0): "A", (0, 1): "A", (0, 2): "A", (1, 2): "A", (2, 2): "A", (3, 2): "A",
             (1, 0): "B", (2, 0): "B", (3, 0): "B", (3, 1): "C"}
    xy, labels = _addresses(cells, owner)
    blocks = np.array([cells[k] for k in sorted(cells)] + [garden], dtype=object)

    def build(share):
        out = split_blocks(outline, blocks, xy, labels, hull_margins=HullMargins(0.0, 1.0, 0.0),
                           empty_pair_share=share)
        assert_tiles(out, outline)
        return {bv: shapely.intersection(g, garden).area for bv, g in out.items()}

    # the others hold at most 0.3 of the outline: A and B share the garden, C takes none of it
    paired = build(0.3)
    assert paired["C"] < 1e-6 and paired["A"] > paired["B"] > 1000
    # not when they may hold less than C does (0.1), nor with the rule off (0): C takes its wedge
    for share in (0.1, 0.0):
        assert build(share)["C"] > 1000


def _town_and_wood():
    """A town of six BVs in bands along its west side (two addresses every 15 m on each of its streets) and a
    wood of 520 ha east of it, cut into blocks by winding roads: its blocks, its addresses, the wood."""
    rng = np.random.default_rng(1)
    height, width, town = 2400.0, 3000.0, 800.0
    xy, labels = [], []
    for y in np.arange(50.0, height, 100.0):
        for x in np.arange(10.0, town, 15.0):
            for off in (-8.0, 8.0):
                xy.append((x, y + off))
                labels.append(f"BV{min(int((y + off) // 400), 5)}")
    lines = [shapely.LineString([(0, y), (town + 50, y)]) for y in np.arange(50.0, height, 100.0)]
    lines += [shapely.LineString([(x, 0), (x, height)]) for x in np.arange(100.0, town + 60, 200.0)]
    for x in np.arange(town + 300, width, 350.0):
        lines.append(shapely.LineString([(x + rng.normal(0, 60), y) for y in np.linspace(0, height, 8)]))
    for y in np.arange(200.0, height, 420.0):
        lines.append(shapely.LineString([(town + 50 + d, y + rng.normal(0, 60))
                                         for d in np.linspace(0, width - town - 50, 8)]))
    outline = shapely.box(0, 0, width, height)
    blocks = enclosures(outline, np.array(lines, dtype=object))
    return outline, blocks, np.array(xy), np.array(labels), shapely.box(town + 50, 0, width, height)


def test_a_wood_is_shared_as_plain_voronoi_shares_it():
    # decided block by block from its edge inwards, the wood went unevenly to the BVs along it (one of them
    # got less than half the share of another); as one stretch of empty blocks over 100 ha, it is shared as
    # plain Voronoi shares it
    outline, blocks, xy, labels, wood = _town_and_wood()
    plain = voronoi_labels(outline, xy, labels)

    def shares(out):
        return {k: shapely.intersection(g, wood).area / wood.area for k, g in sorted(out.items())}

    out = split_blocks(outline, blocks, xy, labels)
    assert_tiles(out, outline)
    assert shares(out) == pytest.approx(shares(plain), abs=1e-6)
    cascade = shares(split_blocks(outline, blocks, xy, labels, wood_area=np.inf))
    assert min(cascade.values()) < 0.6 * max(cascade.values())
    # a garden (the same town, the wood's area under the threshold) is still decided block by block
    garden = shares(split_blocks(outline, blocks, xy, labels, wood_area=wood.area + 1))
    assert garden == pytest.approx(cascade)


def test_stretches_of_empty_blocks_are_found_whole():
    # random empty cells of a 30 × 30 grid of 1 ha blocks (snakes, rings, lone cells): a block is in a wood
    # exactly when the union of the empty blocks it touches, step by step, reaches the area
    rng = np.random.default_rng(3)
    cells, _ = _grid(30, 30)
    keys = sorted(cells)
    blocks = np.array([cells[k] for k in keys], dtype=object)
    todo = [i for i in range(len(keys)) if rng.random() < 0.55]
    for area in (5e4, 2e5, 1e6):
        got = _large_regions(blocks, todo, area)
        parts = shapely.get_parts(shapely.union_all(shapely.buffer(blocks[todo], 0.01)))
        big = shapely.union_all(parts[shapely.area(parts) >= area])
        expect = {b for b in todo if shapely.intersects(big, blocks[b].centroid)}
        assert got == expect and 0 < len(got) < len(todo)
    assert _large_regions(blocks, todo, np.inf) == set()
