"""Street-side guides: parsing address labels, guide points, and what they change on real and hand-made rolls."""

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest
import shapely

from conftest import data, dev_roll, roll_rows, square_communes
from decoupage_bv import Params, build
from decoupage_bv.evaluate import evaluate, outline_leak
from decoupage_bv.guides import parse_addresses, street_guides
from decoupage_bv.tessellation import tessellate_unit

X0, Y0 = 650000.0, 6860000.0


def test_parse_addresses():
    n, s = parse_addresses(["33t Avenue Duquesne 75007 Paris", "16 QUAI FRANCOIS MITTERRAND 75001 Paris",
                            "12 bis rue de l'Église 94000 Créteil", "Rue sans numéro 75001 Paris", "", None,
                            "5 75001 Paris", "7 B Allée des Pins", "33t Avenue Duquesne 75007 Paris"])
    assert list(n) == [33, 16, 12, -1, -1, -1, -1, 7, 33]
    assert list(s) == ["AVENUE DUQUESNE", "QUAI FRANCOIS MITTERRAND", "RUE DE L EGLISE", "", "", "", "",
                       "ALLEE DES PINS", "AVENUE DUQUESNE"]


def _guides(rows, **params):
    unit, bv, x, y, adr = zip(*rows)
    return street_guides(np.array(unit, dtype=object), np.array(bv), np.array(x, float), np.array(y, float),
                         np.array(adr, dtype=object), Params(**params))


def test_guides_follow_one_street_side_and_split_where_the_bv_changes():
    rows = [("u", 1, 0.0, 0.0, "2 Rue A"), ("u", 1, 40.0, 0.0, "4 Rue A"), ("u", 2, 80.0, 0.0, "6 Rue A"),
            ("u", 3, 20.0, 10.0, "3 Rue A"),  # odd side: never joined to the even side
            ("u", 3, 20.0, 500.0, "5 Rue A")]  # too far from no. 3
    g = _guides(rows, guide_extension=0.0)
    assert set(g["bv"]) == {1, 2} and (g["y"] == 0).all()
    assert g.loc[g["x"] < 40, "bv"].eq(1).all() and ((g["x"] > 0) & (g["x"] < 40)).sum() == 9
    between = g[(g["x"] > 40) & (g["x"] < 80)]
    assert between.loc[between["x"] < 60, "bv"].eq(1).all() and between.loc[between["x"] > 60, "bv"].eq(2).all()
    # past the ends of the range, away from the neighbour
    g = _guides(rows, guide_extension=8.0)
    ends = g[(g["x"] < 0) | (g["x"] > 80)]
    assert sorted(ends["x"].round(6)) == [-8.0, -4.0, 84.0, 88.0]
    assert ends.loc[ends["x"] < 0, "bv"].eq(1).all() and ends.loc[ends["x"] > 80, "bv"].eq(2).all()


def test_range_is_carried_on_only_while_its_bv_holds_the_nearest_address():
    # no. 2-6 of BV 1 end at x = 40; BV 2's corner address (an unnumbered place) stands at x = 63
    rows = [("u", 1, 0.0, 0.0, "2 Rue A"), ("u", 1, 20.0, 0.0, "4 Rue A"), ("u", 1, 40.0, 0.0, "6 Rue A"),
            ("u", 2, 63.0, 0.0, "Place B")]
    ends = _guides(rows, guide_extension=24.0)
    past = ends[ends["x"] > 40]
    assert sorted(past["x"].round(6)) == [44.0, 48.0]  # at 52, BV 2's address is nearer: it stops
    assert (past["bv"] == 1).all()
    before = ends[ends["x"] < 0]
    assert sorted(before["x"].round(6)) == [-24.0, -20.0, -16.0, -12.0, -8.0, -4.0]  # nobody else that way


def test_guides_need_two_numbered_addresses():
    assert _guides([("u", 1, 0.0, 0.0, "Rue A")]).empty
    assert _guides([("u", 1, 0.0, 0.0, "2 Rue A"), ("u", 1, 30.0, 0.0, "Place B")]).empty


def test_guides_keep_an_address_with_its_street_side():
    # Rue A (even numbers, BV 1) with 40 m between known numbers; Rue B (BV 2) behind it, 14 m away.
    # Nos. 4, 8, … of Rue A are not in the roll: plain Voronoi gives their spot to Rue B, guides to Rue A.
    com = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
    rows = [("31001_1", "31001", X0 + 100 + 40 * k, Y0 + 500, "housenumber", 0.95, 1, f"{2 + 4 * k} Rue A")
            for k in range(10)]
    rows += [("31001_2", "31001", X0 + 120 + 40 * k, Y0 + 514, "housenumber", 0.95, 1, f"{1 + 4 * k} Rue B")
             for k in range(10)]
    roll = roll_rows([r[:7] for r in rows]).assign(address=[r[7] for r in rows])
    left_out = [shapely.Point(X0 + 120 + 40 * k, Y0 + 503) for k in range(9)]
    with_guides = build(roll, com, params=Params(jobs=1)).polygons.set_index("code_bv").to_crs(2154)
    without = build(roll, com, params=Params(jobs=1, guides=False)).polygons.set_index("code_bv").to_crs(2154)
    assert all(with_guides.loc["0001"].geometry.contains(p) for p in left_out)
    assert not any(without.loc["0001"].geometry.contains(p) for p in left_out)
    assert with_guides.geometry.geom_type.eq("Polygon").all()


@pytest.fixture(scope="module")
def paris2012():
    roll = dev_roll("paris2012_dev", "count", "address", "electors")
    test = np.random.default_rng(2).random(len(roll)) < 0.2
    return roll[~test], roll[test]


def test_real_list_guides_and_streets_beat_plain_voronoi(paris2012):
    """The real 2012 list (labels from the list, not the map): each step must pay on every measure."""
    train, test = paris2012
    com, off = data("paris2012_dev", "communes.geojson"), data("paris2012_dev", "official.geojson")
    plain = evaluate(build(train.drop(columns="address"), com).polygons, off, test_addresses=test)
    guided = evaluate(build(train, com).polygons, off, test_addresses=test)
    streets = evaluate(build(train, com, streets=data("paris_dev", "streets_voie.geojson")).polygons, off,
                       test_addresses=test)
    assert plain["elector_accuracy"] < 0.935 and guided["elector_accuracy"] > plain["elector_accuracy"] + 0.015
    assert streets["elector_accuracy"] > 0.96 and streets["area_agreement"] > 0.9
    assert streets["area_agreement"] > guided["area_agreement"] > plain["area_agreement"]
    assert streets["multipart_share"] < 0.05 and guided["multipart_share"] < 0.05


def test_outline_leak_check():
    for name in ("paris_dev", "paris2012_dev"):
        off = data(name, "official.geojson")
        honest = outline_leak(data(name, "communes.geojson"), off)
        assert len(honest) == 10 and honest["interior_limit_share"].max() < 0.01
        assert (honest["pieces"] == 1).all()
        # the raw union of the official polygons falls apart along BV limits: the check must see it
        raw = gpd.read_file(off).dissolve("code_insee", as_index=False).rename(columns={"code_insee": "code"})
        leaky = outline_leak(raw, off)
        assert leaky["interior_limit_share"].min() > 0.5


def test_arrow_and_python_parsers_agree_on_ascii_labels():
    from decoupage_bv.guides import _parse_ascii, _parse_python

    rng = np.random.default_rng(0)
    pieces = list("0123456789  ,bisterquaBISTERQUXzZ\t\x1c\x0b-_'.") + ["bis", "ter", "quater", "quinquies", "75001",
                                                                     "1234567", " Rue", " Paris", "\n"]
    labels = ["33t Avenue Duquesne 75007 Paris", "12 bis, rue X 75001", "12b-Rue", "123456 Rue 75001 Paris", "",
              "  7 ,, Quai  ", "7 Rue 7500 Paris", "7 Rue A75001 Paris", "1 Rue 75001Paris", "QUAI 12"]
    labels += ["".join(rng.choice(pieces, rng.integers(0, 12))) for _ in range(20_000)]
    labels = np.array(labels, dtype=object)
    py, arrow = _parse_python(labels), _parse_ascii(labels)
    assert (py[0] == arrow[0]).all() and (py[1] == arrow[1]).all()
    assert py[0][:4].tolist() == [33, 12, 12, 12345]
    assert py[1][:4].tolist() == ["Avenue Duquesne", "rue X", "-Rue", "6 Rue"]


def test_bv_changes_at_the_cross_street_between_two_numbers():
    # rue A runs along y = 0 and a cross street along x = 30; on rue A's odd side, no. 5 (BV 1, x = 20) and
    # no. 7 (BV 2, x = 100) lie on either side of the cross street, so guides half and half between them
    # would carry BV 1 past it, to x = 60. No. 2 rue du Nord (BV 1) makes the north-east block mixed.
    square = shapely.box(-50, -60, 150, 60)
    lines = np.array([shapely.LineString([(-60, 0), (160, 0)]), shapely.LineString([(30, -70), (30, 70)])])
    rows = [("u", 1, -40.0, 8.0, "1 Rue A"), ("u", 1, -20.0, 8.0, "3 Rue A"), ("u", 1, 20.0, 8.0, "5 Rue A"),
            ("u", 2, 100.0, 8.0, "7 Rue A"), ("u", 2, 120.0, 8.0, "9 Rue A"), ("u", 1, 40.0, 52.0, "2 Rue du Nord"),
            ("u", 1, -20.0, -8.0, "2 Rue A"), ("u", 1, 100.0, -8.0, "4 Rue A")]
    xy = np.array([(r[2], r[3]) for r in rows])
    labels = np.array([r[1] for r in rows])
    g = _guides(rows)
    gxy, glab = g[["x", "y"]].to_numpy(), g["bv"].to_numpy()
    ends = (xy, labels, g["lo"].to_numpy(), g["hi"].to_numpy())
    assert ((glab == 1) & (gxy[:, 0] > 30) & (gxy[:, 1] == 8)).any()  # laid midway, past the cross street

    def bv_at(params, x, y):
        out = tessellate_unit(square, xy, labels, np.ones(len(xy)), params, lines, gxy, glab, ends)
        assert abs(sum(p.area for p in out.values()) - square.area) < 1e-6
        return [lab for lab, p in out.items() if shapely.intersects_xy(p, x, y)]

    # a facade of rue A just past the cross street: BV 2 with the rule, BV 1 from the midway guides without
    assert bv_at(Params(method="streets", jobs=1), 40.0, 8.0) == [2]
    assert bv_at(Params(method="streets", jobs=1, guide_blocks=False), 40.0, 8.0) == [1]


def _bv_at(square, lines, rows):
    """``bv_at(params, x, y)``: the BVs whose polygons hold (x, y) once *square* is tessellated among *rows*
    with *lines* and their guides (checking that the polygons tile it)."""
    xy = np.array([(r[2], r[3]) for r in rows])
    labels = np.array([r[1] for r in rows])
    g = _guides(rows)
    gxy, glab = g[["x", "y"]].to_numpy(), g["bv"].to_numpy()
    ends = (xy, labels, g["lo"].to_numpy(), g["hi"].to_numpy())

    def bv_at(params, x, y):
        out = tessellate_unit(square, xy, labels, np.ones(len(xy)), params, lines, gxy, glab, ends)
        assert abs(sum(p.area for p in out.values()) - square.area) < 1e-6
        return [lab for lab, p in out.items() if shapely.intersects_xy(p, x, y)]

    return bv_at


def test_a_range_passing_through_a_block_of_another_bv_keeps_its_facade():
    # rue A along y = 0, cross streets along x = 30 and x = 90. On rue A's odd side, no. 1 (x = 10) and no. 9
    # (x = 110) are BV 1; nos. 3 to 7, facing the middle block, are not in the roll (left out). That block's
    # only addresses are BV 2's, on rue du Nord behind: without the rule it goes whole to BV 2, with it the
    # range of BV 1 passing through keeps its facade
    square = shapely.box(-50, -60, 150, 60)
    lines = np.array([shapely.LineString([(-60, 0), (160, 0)]), shapely.LineString([(30, -70), (30, 70)]),
                      shapely.LineString([(90, -70), (90, 70)])])
    rows = [("u", 1, 10.0, 8.0, "1 Rue A"), ("u", 1, 110.0, 8.0, "9 Rue A"), ("u", 2, 50.0, 45.0, "2 Rue du Nord"),
            ("u", 2, 70.0, 45.0, "4 Rue du Nord"), ("u", 1, 10.0, -8.0, "2 Rue A"), ("u", 1, 110.0, -8.0, "4 Rue A")]
    bv_at = _bv_at(square, lines, rows)

    on = Params(method="streets", jobs=1)
    assert bv_at(on, 60.0, 8.0) == [1]  # the facade of nos. 3 to 7
    assert bv_at(on, 60.0, 40.0) == [2]  # the back of the block, with rue du Nord
    assert bv_at(Params(method="streets", jobs=1, guide_through_blocks=False), 60.0, 8.0) == [2]
    # the range takes the facade only, at most guide_through_depth from its guides: midway to rue du Nord by
    # default (y = 26.5), 5 m past the guides (y = 13) when that is the depth
    assert bv_at(on, 60.0, 20.0) == [1]
    assert bv_at(Params(method="streets", jobs=1, guide_through_depth=5.0), 60.0, 20.0) == [2]
    assert bv_at(Params(method="streets", jobs=1, guide_through_depth=5.0), 60.0, 8.0) == [1]


def test_a_range_along_a_yard_of_other_bvs_keeps_its_facade_only():
    # rue A along y = 0, cross streets along x = 0 and x = 200; north of rue A between them, a yard 240 m deep
    # whose addresses are BV 2's (rue du Nord, along its far edge) and BV 3's (rue B, along its east edge).
    # BV 1's nos. 1 and 9 of rue A lie in the blocks west and east of the yard; its nos. 3 to 7 face the yard
    # and are not in the roll. Their range's Voronoi region would take the yard's south half; with the rule
    # the range keeps its facade, and the block's own BVs share the rest.
    square = shapely.box(-100, -60, 300, 250)
    lines = np.array([shapely.LineString([(-110, 0), (310, 0)]), shapely.LineString([(0, -70), (0, 260)]),
                      shapely.LineString([(200, -70), (200, 260)])])
    rows = [("u", 1, -20.0, 8.0, "1 Rue A"), ("u", 1, 220.0, 8.0, "9 Rue A"), ("u", 1, -20.0, -8.0, "2 Rue A"),
            ("u", 1, 220.0, -8.0, "4 Rue A"), ("u", 2, 60.0, 240.0, "2 Rue du Nord"),
            ("u", 2, 100.0, 240.0, "4 Rue du Nord"), ("u", 2, 140.0, 240.0, "6 Rue du Nord"),
            ("u", 3, 192.0, 120.0, "1 Rue B"), ("u", 3, 192.0, 160.0, "3 Rue B")]
    bv_at = _bv_at(square, lines, rows)

    on = Params(method="streets", jobs=1)
    off = replace(on, guide_only_facades=False)
    assert bv_at(on, 100.0, 10.0) == bv_at(off, 100.0, 10.0) == [1]  # the facade of nos. 3 to 7
    assert bv_at(off, 100.0, 60.0) == [1]  # without the rule, the yard's south half
    assert bv_at(on, 100.0, 60.0) != [1]  # with it, no more than guide_through_depth from the guides
    assert bv_at(on, 100.0, 60.0) in ([2], [3])
    assert bv_at(replace(on, guide_through_depth=5.0), 100.0, 20.0) != [1]
    assert bv_at(on, 100.0, 20.0) == [1]


def test_a_range_is_carried_towards_the_corner_of_its_block():
    # rue A along y = 0, its odd side (BV 1) ending with no. 5 at x = 40; a cross street along x = 120 whose
    # west side (BV 2) starts at y = 20. The north-west block holds both BVs. Past no. 5, BV 1 still holds
    # the nearest address up to x = 76: with street lines, its range is carried that far (the block's
    # guides), where 24 m (the carry without street lines) would stop at x = 64.
    from decoupage_bv.tessellation import _run

    square = shapely.box(-50, -60, 200, 100)
    lines = np.array([shapely.LineString([(-60, 0), (210, 0)]), shapely.LineString([(120, -70), (120, 110)])])
    rows = [("u", 1, 0.0, 8.0, "1 Rue A"), ("u", 1, 20.0, 8.0, "3 Rue A"), ("u", 1, 40.0, 8.0, "5 Rue A"),
            ("u", 2, 112.0, 20.0, "1 Rue B"), ("u", 2, 112.0, 40.0, "3 Rue B"), ("u", 2, 112.0, 60.0, "5 Rue B"),
            ("u", 1, 20.0, -8.0, "2 Rue A"), ("u", 2, 160.0, -8.0, "4 Rue A")]
    xy = np.array([(r[2], r[3]) for r in rows])
    labels = np.array([r[1] for r in rows])
    guide_rows = (labels, xy[:, 0], xy[:, 1], np.array([r[4] for r in rows], dtype=object))

    def bv_at(params, x, y, with_lines=True):
        task = ("u", square, xy, labels, np.ones(len(xy)), params, lines if with_lines else None, guide_rows)
        out = _run(task)[1]
        assert abs(sum(p.area for p in out.values()) - square.area) < 1e-6
        return [lab for lab, p in out.items() if shapely.intersects_xy(p, x, y)]

    p = Params(method="streets", jobs=1, straight_cut_depth=0.0)
    assert bv_at(p, 90.0, 8.0) == [1]
    assert bv_at(replace(p, guide_block_extension=24.0), 90.0, 8.0) == [2]
    # past the corner the range stops: the cross street's facade stays BV 2's
    assert bv_at(p, 112.0, 10.0) == [2]


def test_a_carried_range_follows_the_street_not_its_last_two_numbers():
    from decoupage_bv.blocks import edge_directions

    # a block 100 × 60 m: a point near its south edge has the street along x, then the one along y
    block = np.array([shapely.box(0, 0, 100, 60)])
    d = edge_directions(block, np.array([0, 0, 1]), np.array([[40.0, 6.0], [96.0, 30.0], [5.0, 5.0]]))
    assert np.allclose(np.abs(d[0]), [1, 0, 0, 1]) and np.allclose(np.abs(d[1]), [0, 1, 1, 0])
    assert np.isnan(d[2]).all()  # a point outside every block
    # no. 3 lies 6 m deeper than no. 1: the numbers point into the block, the street runs along x
    rows = [("u", 1, 0.0, 8.0, "1 Rue A"), ("u", 1, 20.0, 14.0, "3 Rue A")]
    unit, bv, x, y, adr = (np.array(v, dtype=object if i in (0, 4) else None) for i, v in enumerate(zip(*rows)))
    p = Params(guide_extension=24.0)
    east = lambda i: np.tile([1.0, 0.0, 0.0, 1.0], (len(i), 1))  # noqa: E731
    sloped = street_guides(unit, bv, x.astype(float), y.astype(float), adr, p, farther=np.ones(2, bool), reach=48.0)
    level = street_guides(unit, bv, x.astype(float), y.astype(float), adr, p, farther=np.ones(2, bool), reach=48.0,
                          along=east)
    past = lambda g: g[(g["lo"] == g["hi"]) & (g["x"] > 20)]  # noqa: E731
    assert len(past(sloped)) == len(past(level)) == 12
    assert past(sloped)["y"].max() > 25 and np.allclose(past(level)["y"], 14.0)
    # and back past no. 1, away from no. 3 (no. 1 is the other end)
    assert np.allclose(level[(level["lo"] == level["hi"]) & (level["x"] < 0)]["y"], 8.0)
