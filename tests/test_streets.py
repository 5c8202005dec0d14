"""The street-aware method: blocks of the street network go whole to their BV."""

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from conftest import data, dev_roll, roll_rows, square_communes
from decoupage_bv import InputError, Params, build, sources
from decoupage_bv.cli import main
from decoupage_bv.evaluate import evaluate
from decoupage_bv.pipeline import tiling_errors
from decoupage_bv.streets import enclosures

X0, Y0 = 650000.0, 6860000.0


def test_enclosures_tile_the_commune():
    poly = shapely.box(0, 0, 100, 100)
    lines = np.array([shapely.LineString([(50, -10), (50, 110)]), shapely.LineString([(0, 30), (50, 30)]),
                      shapely.LineString([(70, 70), (90, 90)])])  # a dangle: no block
    faces = enclosures(poly, lines)
    assert len(faces) == 3 and abs(shapely.area(faces).sum() - 1e4) < 1e-6


def test_limits_follow_the_street_and_empty_blocks_go_to_their_neighbours():
    # streets at x = 500 and x = 950; BV 1 west (x <= 400), BV 2 east (x >= 700), nothing east of 950.
    # Voronoi would put the limit halfway (x = 550); blocks put it on the street, and the empty strip east
    # of x = 950 goes to BV 2, its only neighbour.
    import geopandas as gpd

    com = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
    rows = [("31001_1", "31001", X0 + x, Y0 + y) for x in (100, 200, 300, 400) for y in (200, 500, 800)]
    rows += [("31001_2", "31001", X0 + x, Y0 + y) for x in (700, 800, 900) for y in (200, 500, 800)]
    streets = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0 + x, Y0 - 10), (X0 + x, Y0 + 1010)])
                                         for x in (500, 950)], crs="EPSG:2154")
    r = build(roll_rows(rows), com, params=Params(method="streets", jobs=1), streets=streets)
    g = r.polygons.set_index("code_bv")
    assert abs(g.loc["0001"].geometry.area - 5e5) < 1e-3 and abs(g.loc["0002"].geometry.area - 5e5) < 1e-3
    assert r.report["method"] == "streets"
    v = build(roll_rows(rows), com, params=Params(method="voronoi", jobs=1))
    assert abs(v.polygons.set_index("code_bv").loc["0001"].geometry.area - 5.5e5) < 1e-3


def test_a_minority_address_keeps_its_bv_in_one_piece():
    # BV 2 has one address just west of the street: it keeps it (the roll says so), and stays one polygon
    import geopandas as gpd

    com = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
    rows = [("31001_1", "31001", X0 + x, Y0 + y) for x in (100, 200, 300, 400) for y in (200, 500, 800)]
    rows += [("31001_2", "31001", X0 + x, Y0 + y) for x in (600, 700, 800) for y in (200, 500, 800)]
    rows += [("31001_2", "31001", X0 + 480, Y0 + 500)]
    streets = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0 + 500, Y0 - 10), (X0 + 500, Y0 + 1010)])],
                               crs="EPSG:2154")
    r = build(roll_rows(rows), com, params=Params(method="streets", jobs=1), streets=streets)
    g = r.polygons.set_index("code_bv").to_crs(2154)
    assert g.loc["0002"].geometry.geom_type == "Polygon"
    assert g.loc["0002"].geometry.contains(shapely.Point(X0 + 480, Y0 + 500))


@pytest.fixture(scope="module")
def paris():
    roll = dev_roll("paris_dev", "count")
    test = np.random.default_rng(1).random(len(roll)) < 0.2
    return roll[~test], roll[test]


def test_paris_streets_beats_voronoi_and_tiles(paris):
    train, test = paris
    com = data("paris_dev", "communes.geojson")
    streets = data("paris_dev", "streets_voie.geojson")
    s = build(train, com, streets=streets)  # auto → streets
    assert s.report["method"] == "streets"
    units = sources.read_communes(com).rename(columns={"code": "unit"}).to_crs(2154)
    err = tiling_errors(s.polygons, units)
    assert err["gap"].max() < 1e-9 and err["overlap"].max() < 1e-9 and s.polygons.is_valid.all()
    v = build(train, com)
    assert v.report["method"] == "voronoi"
    off = data("paris_dev", "official.geojson")
    es, ev = evaluate(s.polygons, off, test_addresses=test), evaluate(v.polygons, off, test_addresses=test)
    assert es["area_agreement"] > ev["area_agreement"] and es["area_agreement"] > 0.95
    assert es["address_accuracy"] > ev["address_accuracy"] and es["address_accuracy"] > 0.955


def test_streets_method_needs_lines(tmp_path):
    with pytest.raises(InputError, match="needs street lines"):
        build(roll_rows([("31001_1", "31001", X0, Y0)]), square_communes([("31001", "A", X0, Y0, 10.0)]),
              params=Params(method="streets"))
    res = CliRunner().invoke(main, ["build", "--dept", "31", "--addresses", "x.csv", "--communes", "y.gpkg",
                                    "--method", "streets"])
    assert res.exit_code == 1 and "needs street lines" in res.output


def test_outvoted_bv_is_not_lost():
    import geopandas as gpd

    com = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
    rows = [("31001_1", "31001", X0 + x, Y0 + y) for x in (100, 200, 300, 400, 600, 700) for y in (200, 500, 800)]
    rows += [("31001_2", "31001", X0 + 650, Y0 + 500)]  # alone in the east block, outvoted 6 to 1
    streets = gpd.GeoDataFrame(geometry=[shapely.LineString([(X0 + 500, Y0 - 10), (X0 + 500, Y0 + 1010)])],
                               crs="EPSG:2154")
    r = build(roll_rows(rows), com, params=Params(method="streets", jobs=1), streets=streets)
    assert sorted(r.polygons["code_bv"]) == ["0001", "0002"] and r.report["bv_not_drawn"] == []
