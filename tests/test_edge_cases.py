"""Hand-made cases: degenerate point sets, special codes, bad rows."""

import gzip
import json
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from conftest import roll_rows, square_communes
from decoupage_bv import InputError, Params, build
from decoupage_bv.cli import main
from decoupage_bv.pipeline import tiling_errors
from decoupage_bv import voronoi
from decoupage_bv.blocks import _by_block
from decoupage_bv.tessellation import tessellate_unit
from decoupage_bv.voronoi import voronoi_labels_many

X0, Y0 = 650000.0, 6860000.0
ONE = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
P1 = Params(jobs=1)


def _tiles(result):
    units = ONE.rename(columns={"code": "unit"}).to_crs(result.report["crs"])
    err = tiling_errors(result.polygons, units)
    assert err["gap"].max() < 1e-9 and err["overlap"].max() < 1e-9
    assert result.polygons.is_valid.all()


def test_collinear_points_split_in_strips():
    rows = [(f"31001_{1 + (i >= 3)}", "31001", X0 + 100 + 150 * i, Y0 + 500) for i in range(6)]
    r = build(roll_rows(rows), ONE, params=P1)
    g = r.polygons.set_index("code_bv")
    assert list(g.index) == ["0001", "0002"]
    assert abs(g.area.sum() - 1e6) < 1e-3
    # the cut is the perpendicular bisector between the 3rd and 4th points: x = X0 + 475
    assert abs(g.loc["0001"].geometry.bounds[2] - (X0 + 475)) < 0.01
    _tiles(r)


def test_blocks_in_one_diagram_equal_their_own_diagrams():
    # a big block with collinear points, a small one beside it, a block of one label, a 2-point block:
    # one GEOS diagram for all gives each the cells of its own diagram
    rng = np.random.default_rng(1)
    items = [(shapely.box(X0, Y0, X0 + 2000, Y0 + 300), np.c_[X0 + np.arange(10, 2000, 40.0), np.full(50, Y0 + 150)],
              np.repeat([1, 2], 25)),
             (shapely.box(X0 + 2000, Y0, X0 + 2030, Y0 + 20), np.c_[X0 + 2000 + rng.uniform(0, 30, 9),
                                                                    Y0 + rng.uniform(0, 20, 9)], np.arange(9) % 3),
             (shapely.box(X0, Y0 + 300, X0 + 50, Y0 + 350), np.array([[X0 + 10, Y0 + 310.0]]), np.array([4])),
             (shapely.box(X0 + 60, Y0 + 300, X0 + 160, Y0 + 350), np.array([[X0 + 70, Y0 + 320.0],
                                                                             [X0 + 150, Y0 + 330.0]]), np.array([5, 6]))]
    together = voronoi_labels_many(items)
    for item, got in zip(items, together):
        alone = voronoi_labels_many([item])[0]
        assert sorted(got) == sorted(alone) == sorted(set(item[2].tolist()))
        for lab in got:
            assert shapely.symmetric_difference(got[lab], alone[lab]).area < 1e-6
        assert abs(sum(g.area for g in got.values()) - item[0].area) < 1e-6
    # the cut of the big block is the bisector between its 25th and 26th points (x = 970 and 1010)
    assert abs(shapely.bounds(together[0][1])[2] - (X0 + 990)) < 1e-6


def _same_regions(got: dict, expect: dict, polygon) -> None:
    assert sorted(got) == sorted(expect)
    for lab in got:
        assert shapely.symmetric_difference(got[lab], expect[lab]).area < 1e-6
    assert abs(sum(g.area for g in got.values()) - polygon.area) < 1e-6


def _from_cells_only(monkeypatch):
    monkeypatch.setattr(voronoi, "_regions", lambda xy, codes, n: None)


def test_regions_from_the_triangulation_equal_dissolved_voronoi_cells(monkeypatch):
    # BVs as the nearest of 8 centres, with addresses of other BVs inside (holes, islands in islands)
    rng = np.random.default_rng(3)
    xy = np.c_[X0 + rng.uniform(0, 3000, 4000), Y0 + rng.uniform(0, 2000, 4000)]
    centres = np.c_[X0 + rng.uniform(0, 3000, 8), Y0 + rng.uniform(0, 2000, 8)]
    labels = np.argmin(np.hypot(xy[:, None, 0] - centres[:, 0], xy[:, None, 1] - centres[:, 1]), axis=1)
    labels[rng.choice(4000, 40, replace=False)] = rng.integers(0, 8, 40)
    poly = shapely.box(X0 - 10, Y0 - 10, X0 + 3010, Y0 + 2010)
    calls = []
    monkeypatch.setattr(voronoi, "_regions_from_cells", lambda *a: calls.append(a))
    fast = voronoi_labels_many([(poly, xy, labels)])[0]
    assert not calls  # no fallback
    assert shapely.get_num_interior_rings(shapely.get_parts(list(fast.values()))).sum() > 0
    monkeypatch.undo()
    _from_cells_only(monkeypatch)
    _same_regions(fast, voronoi_labels_many([(poly, xy, labels)])[0], poly)


def test_regions_on_a_lattice_where_four_cells_meet(monkeypatch):
    # a regular grid: every four neighbours are cocircular; checkered labels meet at single points
    gx, gy = np.meshgrid(np.arange(20.0), np.arange(20.0))
    xy = np.c_[X0 + 10 * gx.ravel(), Y0 + 10 * gy.ravel()]
    labels = ((gx.ravel() // 5) % 2 + 2 * ((gy.ravel() // 5) % 2)).astype(int)
    labels[(gx.ravel() >= 8) & (gx.ravel() < 12) & (gy.ravel() >= 8) & (gy.ravel() < 12)] = \
        ((gx.ravel() + gy.ravel()) % 2)[(gx.ravel() >= 8) & (gx.ravel() < 12) & (gy.ravel() >= 8) & (gy.ravel() < 12)]
    poly = shapely.box(X0 - 5, Y0 - 5, X0 + 195, Y0 + 195)
    got = voronoi_labels_many([(poly, xy, labels)])[0]
    assert all(g.is_valid for g in got.values())
    _from_cells_only(monkeypatch)
    _same_regions(got, voronoi_labels_many([(poly, xy, labels)])[0], poly)


def test_regions_stay_valid_back_in_lambert93_metres():
    # eight empty grid blocks of a synthetic département (a 250 m street grid), outlines sampled every 6 m, each
    # point of one of two BVs ('-': no piece beside it): near the diagram's origin every region was valid; moved
    # back to metres of millions, two vertices a hair apart met and GEOS refused the cut (seen in bench france)
    x0, y0 = 1122035.1182348428, 6119613.768668733
    blocks = [[(-2000, 1250), (-1750, 1250), (-1750, 1000), (-2000, 1000)],
              [(1500, -1000), (1250, -1000), (1250, -750), (1500, -750)],
              [(2250, -1000), (2401.646005, -1000), (2316.424504, -1020.725955), (2250, -1077.097706)],
              [(750, -250), (500, -250), (500, 0), (750, 0)],
              [(250, 0), (0, 0), (0, 250), (250, 250)],
              [(500, 0), (250, 0), (250, 250), (500, 250)],
              [(-1250, 500), (-1500, 500), (-1500, 750), (-1250, 750)],
              [(-1500, 750), (-1750, 750), (-1750, 1000), (-1500, 1000)]]
    marks = ["a" * 43 + "-" * 41 + "a" * 39 + "bbbb" + "a" * 41, "b" * 118 + "a" * 8 + "b" * 42,
             "b" + "a" * 26 + "-" * 29 + "b" * 13, "b" * 85 + "a" * 83, "b" + "a" * 41 + "bbbb" + "a" * 81 + "-" * 41,
             "b" * 43 + "-" * 41 + "a" + "-" * 41 + "a" * 42, "b" * 85 + "a" * 41 + "b" * 42,
             "b" * 58 + "a" * 27 + "-" * 41 + "a" * 42]
    items = []
    for i, (corners, mark) in enumerate(zip(blocks, marks)):
        block = shapely.Polygon([(x0 + dx, y0 + dy) for dx, dy in corners])
        ring = shapely.get_coordinates(shapely.segmentize(shapely.boundary(block), 6.0))[:-1]
        assert len(ring) == len(mark)
        keep = np.array([m != "-" for m in mark])
        xy, labels = ring[keep], np.array([2 * i + (m == "b") for m in mark if m != "-"])
        order = np.lexsort((xy[:, 1], xy[:, 0]))
        items.append((block, xy[order], labels[order]))
    for (block, _, labels), got in zip(items, voronoi_labels_many(items)):
        assert sorted(got) == sorted(set(labels.tolist()))
        assert all(g.is_valid for g in got.values())
        assert abs(sum(g.area for g in got.values()) - block.area) < 1e-6


def test_regions_that_do_not_cover_their_polygon_go_to_geos(monkeypatch):
    rng = np.random.default_rng(0)
    pts = np.c_[X0 + rng.uniform(0, 100, 40), Y0 + rng.uniform(0, 100, 40)]
    poly = shapely.box(X0 - 1, Y0 - 1, X0 + 101, Y0 + 101)
    labels = np.arange(40) % 3
    good = voronoi_labels_many([(poly, pts, labels)])[0]
    regions = voronoi._regions

    def overlapping(xy, codes, n):  # one region grown over its neighbours
        geoms, code = regions(xy, codes, n)
        geoms[0] = shapely.convex_hull(shapely.union_all(geoms))
        return geoms, code

    monkeypatch.setattr(voronoi, "_regions", overlapping)
    _same_regions(voronoi_labels_many([(poly, pts, labels)])[0], good, poly)
    # points closer than startinpy's tolerance: no triangulation of ours (callers keep points 5 cm apart)
    pts[1] = pts[0] + 1e-11
    assert voronoi._triangles(pts - pts.mean(axis=0)) is None


def test_cycles_of_a_permutation():
    following = np.array([3, 0, 4, 1, 2, 5])  # 0 → 3 → 1 → 0, 2 → 4 → 2, 5 → 5
    cycle, rank = voronoi._cycles(following)
    assert cycle.tolist() == [0, 0, 2, 0, 2, 5]
    assert rank.tolist() == [0, 2, 0, 1, 1, 0]


def test_points_by_block_match_a_point_in_polygon_test():
    # small blocks, a large one among them, one beyond the points, an empty one, a point on a shared corner
    rng = np.random.default_rng(3)
    small = [shapely.box(x, y, x + 10, y + 10) for x in range(0, 200, 10) for y in range(0, 100, 10)]
    blocks = np.array(small + [shapely.box(0, 100, 5000, 3000), shapely.box(9000, 9000, 9010, 9010),
                               shapely.Polygon(), shapely.Polygon([(0, 0), (30, 0), (0, 30)])], dtype=object)
    xy = np.vstack([rng.uniform([0, 0], [5000, 3000], (3000, 2)), [[10.0, 10.0], [9005.0, 9005.0]]])
    got = _by_block(blocks, xy)
    expect = [[] for _ in blocks]
    for i, (x, y) in enumerate(xy):
        hit = [b for b, blk in enumerate(blocks) if blk.intersects(shapely.Point(x, y))]
        if hit:
            expect[hit[0]].append(i)  # a point on a shared edge counts in the lowest block
    assert [list(g) for g in got] == expect
    assert 3000 in got[0] and list(got[len(small) + 1]) == [3001] and sum(map(len, got)) > 2800


def test_two_points_and_identical_points():
    pts = np.array([[X0 + 250, Y0 + 500], [X0 + 750, Y0 + 500]])
    poly = shapely.box(X0, Y0, X0 + 1000, Y0 + 1000)
    out = tessellate_unit(poly, pts, np.array([0, 1]), np.ones(2))
    assert abs(out[0].area - 5e5) < 1e-6 and abs(out[1].area - 5e5) < 1e-6
    # all points of one BV at one location: the whole commune
    out = tessellate_unit(poly, np.repeat(pts[:1], 5, axis=0), np.zeros(5, dtype=int), np.ones(5))
    assert out[0].equals(poly)


def test_duplicates_one_seed_per_location_most_addresses_wins():
    rows = [("31001_1", "31001", X0 + 200, Y0 + 200, "housenumber", 0.9, 1),
            ("31001_2", "31001", X0 + 200, Y0 + 200, "housenumber", 0.9, 5),  # same spot, more addresses
            ("31001_2", "31001", X0 + 800, Y0 + 800, "housenumber", 0.9, 1),
            ("31001_1", "31001", X0 + 200, Y0 + 800, "housenumber", 0.9, 1),
            ("31001_1", "31001", X0 + 200, Y0 + 800, "housenumber", 0.9, 1)]  # same BV twice: one seed
    r = build(roll_rows(rows), ONE, params=P1)
    g = r.polygons.set_index("code_bv")
    assert r.report["rows_dropped"] == {"co_located_with_other_bv": 1}
    assert g.loc["0002", "n_points"] == 2 and g.loc["0001", "n_points"] == 1
    assert g.loc["0001", "n_adresses"] == 3
    assert g.loc["0002"].geometry.contains(shapely.Point(X0 + 200, Y0 + 200))
    # shuffling rows does not change the result
    r2 = build(roll_rows(rows[::-1]), ONE, params=P1)
    assert r2.polygons.geometry.equals(r.polygons.geometry)


def test_bv_whose_only_location_is_shared_keeps_it():
    rows = [("31001_1", "31001", X0 + 200, Y0 + 200, "housenumber", 0.9, 9),
            ("31001_1", "31001", X0 + 800, Y0 + 800, "housenumber", 0.9, 1),
            ("31001_2", "31001", X0 + 200, Y0 + 200, "housenumber", 0.9, 1)]
    r = build(roll_rows(rows), ONE, params=P1)
    assert r.polygons["code_bv"].tolist() == ["0001", "0002"]
    assert r.report["bv_not_drawn"] == []


def test_a_point_far_from_its_bv_among_another_bv_is_an_outlier():
    big = square_communes([("31001", "Alpha", X0, Y0, 6000.0)])
    rows = [(f"31001_{b}", "31001", X0 + x0 + 40 * i, Y0 + 3000 + 40 * j)
            for b, x0 in ((1, 500), (2, 4500)) for i in range(10) for j in range(10)]
    stray = ("31001_1", "31001", X0 + 4700, Y0 + 3200)  # 3.8 km from its BV, 20 m from BV 2's addresses
    alone = ("31001_1", "31001", X0 + 2000, Y0 + 5800)  # far from its BV, but nearer to it than to BV 2
    r = build(roll_rows(rows + [stray, alone]), big, params=P1)
    assert r.report["rows_dropped"] == {"bv_outlier": 1}
    g = r.polygons.set_index("code_bv").to_crs(r.report["crs"])
    assert g.loc["0002"].geometry.contains(shapely.Point(X0 + 4700, Y0 + 3200))
    assert g.loc["0001"].geometry.contains(shapely.Point(X0 + 2000, Y0 + 5800))
    assert g.loc["0001", "n_points"] == 101 and g.loc["0001", "n_adresses"] == 102  # not a seed, still counted


def test_one_address_gets_the_whole_commune():
    r = build(roll_rows([("31001_1", "31001", X0 + 10, Y0 + 10)]), ONE, params=P1)
    assert len(r.polygons) == 1 and r.polygons["quality"].iloc[0] == "whole_commune"
    assert abs(r.polygons.area.iloc[0] - 1e6) < 1e-3


def test_commune_without_usable_address_and_bv_without_address():
    two = square_communes([("31001", "Alpha", X0, Y0, 1000.0), ("31002", "Beta", X0 + 1000, Y0, 1000.0)])
    rows = [("31001_1", "31001", X0 + 100, Y0 + 100), ("31001_2", "31001", X0 + 900, Y0 + 900),
            ("31001_3", "31001", X0 + 500, Y0 + 500, "municipality", 0.9, 4),
            ("31002_1", "31002", X0 + 1500, Y0 + 500, "municipality", 0.9, 1),
            ("31002_2", "31002", X0 + 1500, Y0 + 500, "municipality", 0.9, 1)]
    r = build(roll_rows(rows), two, params=P1)
    g = r.polygons
    beta = g[g["code_insee"] == "31002"]
    assert len(beta) == 1 and beta["quality"].iloc[0] == "no_usable_address" and beta["code_bv"].isna().all()
    nd = {(d["code_insee"], d["code_bv"]): d["reason"] for d in r.report["bv_not_drawn"]}
    assert set(nd) == {("31001", "0003"), ("31002", "0001"), ("31002", "0002")}
    assert "weak_geocoding_type: 4" not in nd[("31001", "0003")]  # counted in rows, not addresses
    assert "weak_geocoding_type: 1" in nd[("31001", "0003")]


def test_overseas_crs_reunion():
    # Saint-Denis de La Réunion, UTM 40S
    reu = square_communes([("97411", "Saint-Denis", 338000.0, 7690000.0, 2000.0)], crs="EPSG:2975")
    rows = [("97411_1", "97411", 338500.0, 7690500.0, "housenumber", 0.9, 1),
            ("97411_2", "97411", 339500.0, 7691500.0, "housenumber", 0.9, 1)]
    r = build(roll_rows(rows, crs="EPSG:2975"), reu, dept="974", params=P1)
    assert r.report["crs"] == "EPSG:2975" and r.polygons.crs.to_epsg() == 2975
    assert abs(r.polygons.area.sum() - 4e6) < 1.0


def test_corsica_codes():
    cors = square_communes([("2A004", "Ajaccio", 1175000.0, 6100000.0, 1000.0),
                            ("2B033", "Bastia", 1220000.0, 6190000.0, 1000.0)])
    rows = [("2A004_1", "2A004", 1175200.0, 6100200.0), ("2A004_2", "2A004", 1175800.0, 6100800.0),
            ("2B033_1", "2B033", 1220500.0, 6190500.0)]
    r = build(roll_rows(rows), cors, dept="2A", params=P1)
    assert set(r.polygons["id_bv"]) == {"2A004_0001", "2A004_0002"}
    assert r.report["rows_dropped"] == {}
    assert r.report["inputs"]["addresses"]["rows_other_departements"] == 1


def test_raw_ids_like_the_national_file():
    rows = [("04079_1 - 1", "31001", X0 + 100, Y0 + 100), ("04079_1 - 2", "31001", X0 + 900, Y0 + 100),
            ("31001_B-1", "31001", X0 + 500, Y0 + 900)]
    r = build(roll_rows(rows), ONE, params=P1)
    g = r.polygons.set_index("id_brut_bv_reu")
    assert g.loc["04079_1 - 1", "code_bv"] == "0011" and g.loc["31001_B-1", "code_bv"] == "00B1"
    assert g["id_bv"].is_unique and "code_bv_alphanumeric" in g.loc["31001_B-1", "quality"]
    assert r.report["notes"] == {"bv_id_prefix_differs_from_commune": 2}


def _write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return str(p)


def test_bad_rows_are_counted_latin1_semicolon(tmp_path):
    com = tmp_path / "c.geojson"
    square_communes([("31001", "Éauze", X0, Y0, 1000.0)]).to_file(com)
    r0 = roll_rows([("31001_1", "31001", X0 + 100, Y0 + 100), ("31001_2", "31001", X0 + 900, Y0 + 900)])
    lon, lat = r0["lon"].tolist(), r0["lat"].tolist()
    text = ("id_brut_bv_reu;code_commune_ref;longitude;latitude;geo_type;geo_score;nb_adresses;libellé\n"
            f"31001_1;31001;{lon[0].replace('.', ',')};{lat[0].replace('.', ',')};housenumber;0,9;2;é\n"
            f"31001_2;31001;{lon[1]};{lat[1]};housenumber;0.9;1;è\n"
            "31001_2;31001;;;housenumber;0.9;1;x\n"             # missing coordinates
            "31001_2;31001;abc;45;housenumber;0.9;1;x\n"        # unparsable coordinates
            "31001_1;31999;1.0;43.0;housenumber;0.9;1;x\n"      # unknown commune
            ";31001;1.0;43.0;housenumber;0.9;1;x\n"             # missing BV id
            "31001_1;31001;1.0;43.0;housenumber;0.1;1;x\n")     # low score
    path = _write(tmp_path, "roll.csv", text, "latin-1")
    r = build(path, str(com), dept="31", params=P1)
    assert r.report["rows_dropped"] == {"missing_coordinates": 2, "unknown_commune": 1,
                                        "missing_or_malformed_bv_id": 1, "low_geocoding_score": 1}
    assert r.report["unknown_communes"][0]["commune"] == "31999"
    assert len(r.polygons) == 2


@pytest.mark.parametrize("body, missing", [
    ("75101_1,75101,2.3,48.8,,0.9,1\n75101_2,75101,2.4,48.9,housenumber,,2\n", 1),  # empty fields are missing
    ('"75101_1",75101,2.3,48.8,"",0.9,1\n\n75101_2,75101,2.4,48.9,street,0.5,1\n', 1),  # quotes, a blank line
    ("75101_1,75101,2.3,48.8,street,0.9,1\n" * 3 + '75101_2,75101,2.4,48.9,"a\nb",0.9,1\n', 0),  # line break
    ("75101_1,75101,2.3,48.8,street,0.9,1\n75101_2,75101,2.4\n", 1),  # a short row
])
def test_arrow_and_pandas_read_a_roll_alike(tmp_path, monkeypatch, body, missing):
    """Arrow reads the roll; where it gives up, even after some rows, pandas takes over without repeating
    or losing a row, and both read the same values."""
    from decoupage_bv import sources

    path = _write(tmp_path, "roll.csv", "id_brut_bv_reu,code_commune_ref,longitude,latitude,geo_type,geo_score,"
                  "nb_adresses\n" + body)
    fast = sources.read_roll(path).rows
    arrow = sources._arrow_chunks

    def refuse(*args):
        raise ValueError("Arrow refuses")
        yield

    def two_rows_then_refuse(*args):
        yield next(arrow(*args)).iloc[:2]
        raise ValueError("Arrow refuses")

    for reader in (refuse, two_rows_then_refuse):
        for rows in (250_000, 1):  # pandas' chunks longer than what Arrow handed out, or skipped whole
            monkeypatch.setattr(sources, "_arrow_chunks", reader)
            monkeypatch.setattr(sources, "_CHUNK_ROWS", rows)
            slow = sources.read_roll(path).rows
            assert slow.fillna("?").values.tolist() == fast.fillna("?").values.tolist()
    assert len(fast) == 2 + 2 * body.startswith("75101_1,75101,2.3,48.8,street,0.9,1\n" * 3)
    assert fast["geo_type"].isna().sum() == missing


def test_gzip_roll_filtered_by_dept(tmp_path):
    r0 = roll_rows([("31001_1", "31001", X0 + 100, Y0 + 100), ("31001_2", "31001", X0 + 900, Y0 + 900),
                    ("29039_1", "29039", X0, Y0)])
    p = tmp_path / "roll.csv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        r0.rename(columns={"bv": "id_brut_bv_reu", "commune": "code_commune_ref"}).to_csv(fh, index=False)
    r = build(str(p), ONE, dept="31", params=P1)
    assert r.report["inputs"]["addresses"]["rows_other_departements"] == 1 and len(r.polygons) == 2


def test_parquet_roll(tmp_path):
    r0 = roll_rows([("31001_1", "31001", X0 + 100, Y0 + 100), ("31001_2", "31001", X0 + 900, Y0 + 900)])
    p = tmp_path / "roll.parquet"
    r0.rename(columns={"bv": "id_brut_bv_reu", "commune": "code_commune_ref", "lon": "longitude",
                       "lat": "latitude", "count": "nb_adresses"}).to_parquet(p)
    r = build(str(p), ONE, dept="31", params=P1)
    assert len(r.polygons) == 2


def test_missing_column_is_one_line_error(tmp_path):
    path = _write(tmp_path, "roll.csv", "id_brut_bv_reu,code_commune_ref,latitude\n31001_1,31001,43\n")
    with pytest.raises(InputError, match=r"roll.csv: no lon column"):
        build(path, ONE)
    com = tmp_path / "c.geojson"
    ONE.to_file(com)
    res = CliRunner().invoke(main, ["build", "--dept", "31", "--addresses", path, "--communes", str(com),
                                    "-o", str(tmp_path / "o.gpkg")])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no lon column" in lines[0]
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["build", "--dept", "20", "--addresses", path, "--communes", str(com)])
    assert res.exit_code == 1 and "2A" in res.output


def test_communes_without_code_column(tmp_path):
    p = tmp_path / "c.geojson"
    ONE.rename(columns={"code": "identifiant"}).to_file(p)
    with pytest.raises(InputError, match="no INSEE code column"):
        build(roll_rows([("31001_1", "31001", X0, Y0)]), str(p))


def test_an_infinite_setting_keeps_the_report_strict_json():
    # JSON has no infinity: an infinite setting (never split a wood as plain Voronoi) is written "inf"
    rows = [(f"31001_{1 + (i >= 3)}", "31001", X0 + 100 + 150 * i, Y0 + 500) for i in range(6)]
    r = build(roll_rows(rows), ONE, params=Params(jobs=1, empty_region_voronoi_area=float("inf")))
    text = json.dumps(r.report, allow_nan=False)
    assert json.loads(text)["parameters"]["empty_region_voronoi_area"] == "inf"


def test_settings_out_of_range_are_one_line_errors(tmp_path):
    # a negative depth widened the block instead of shrinking it, silently; a share above 1 means nothing
    for kw, words in (({"straight_cut_depth": -5.0}, "straight_cut_depth = -5.0: must be at least 0"),
                      ({"leftover_max_share": 2.0}, "leftover_max_share = 2.0: must be at least 0 and at most 1"),
                      ({"guide_step": 0.0}, "guide_step = 0.0: must be above 0"),
                      ({"min_score": float("nan")}, "min_score = nan"),
                      ({"join_min_width": 30.0}, "join_max_width = 20.0: must be at least join_min_width")):
        with pytest.raises(InputError, match=re.escape(words)):
            Params(**kw)
    Params(empty_region_voronoi_area=float("inf"), join_cut_off_share=1.5, jobs=0)
    com = tmp_path / "c.geojson"
    ONE.to_file(com)
    roll = _write(tmp_path, "roll.csv", "id_brut_bv_reu,code_commune_ref,longitude,latitude\n31001_1,31001,1.4,43.6\n")
    for option in (["--straight-cut-depth", "-5"], ["--leftover-max-share", "2"], ["--jobs", "-1"]):
        res = CliRunner().invoke(main, ["build", "--dept", "31", "--addresses", roll, "--communes", str(com),
                                        *option, "-o", str(tmp_path / "o.gpkg")])
        assert res.exit_code == 2 and option[0] in res.output and "Traceback" not in res.output
        assert not (tmp_path / "o.gpkg").exists()


def _parameters_with(tmp_path, options: list) -> dict:
    """The report's parameters of a CLI build of two addresses in ONE with *options*."""
    com = tmp_path / "c.geojson"
    ONE.to_file(com)
    pts = gpd.GeoSeries(gpd.points_from_xy([X0 + 300, X0 + 700], [Y0 + 300, Y0 + 700]), crs=2154).to_crs(4326)
    roll = _write(tmp_path, "roll.csv", "id_brut_bv_reu,code_commune_ref,longitude,latitude\n" + "".join(
        f"31001_{k},31001,{p.x:.6f},{p.y:.6f}\n" for k, p in enumerate(pts, 1)))
    out = tmp_path / f"o{abs(hash(tuple(options)))}.gpkg"
    res = CliRunner().invoke(main, ["build", "--dept", "31", "--addresses", roll, "--communes", str(com),
                                    *options, "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return json.loads(out.with_suffix(".report.json").read_text())["parameters"]


def test_a_renamed_option_is_still_taken(tmp_path):
    # --fragment-max-addresses became --fragment-max-points when fragments were counted in points: both
    # set the same parameter, recorded in the report under its new name
    for option in ("--fragment-max-points", "--fragment-max-addresses"):
        parameters = _parameters_with(tmp_path, [option, "3"])
        assert parameters["fragment_max_points"] == 3 and "fragment_max_addresses" not in parameters


def test_no_rejoin_is_recorded_in_the_report(tmp_path):
    assert _parameters_with(tmp_path, [])["join_rejoin_strips"] == 2
    assert _parameters_with(tmp_path, ["--no-rejoin"])["join_rejoin_strips"] == 0
