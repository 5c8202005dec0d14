"""Street axes drawn from the addresses alone (odd and even sides facing each other), for rolls without
street lines."""

import numpy as np
import shapely

from conftest import roll_rows, square_communes
from decoupage_bv import Params, build
from decoupage_bv.guides import street_axes

X0, Y0 = 650000.0, 6860000.0


def _street(name, start, stop, step, across, horizontal=True):
    """Addresses of both sides of a straight street: (x, y, label), odd numbers at +across, even at -across."""
    out = []
    for k, t in enumerate(np.arange(start, stop + 1e-9, step)):
        for s, n in ((across, 2 * k + 1), (-across, 2 * k + 2)):
            out.append((t, s, f"{n} {name}") if horizontal else (s, t, f"{n} {name}"))
    return out


def _axes(rows, **params):
    x, y, adr = (np.array(v) for v in zip(*rows))
    return street_axes(x.astype(float), y.astype(float), adr.astype(object), Params(**params))


def test_axis_runs_between_the_two_sides_and_reaches_the_cross_street():
    rue_a = _street("Rue A", 0.0, 200.0, 20.0, 8.0)  # axis y = 0, x from 0 to 200
    rue_b = [(x + 100.0, y + 30.0, a) for x, y, a in _street("Rue B", 0.0, 200.0, 20.0, 7.0, horizontal=False)]
    axes = _axes(rue_a + rue_b, axis_reach=80.0, axis_overshoot=20.0)
    assert len(axes) == 2
    a = next(g for g in axes if abs(shapely.get_coordinates(g)[:, 1]).max() < 50)
    assert np.abs(shapely.get_coordinates(a)[:, 1]).max() < 1e-6  # on the axis, midway between the sides
    b = next(g for g in axes if g is not a)
    # Rue B's last pair is 30 m short of Rue A: its end is carried on until it meets Rue A's axis, and 1 m past
    assert b.intersects(a)
    assert abs(shapely.get_coordinates(b)[:, 1].min() + 1.0) < 1e-6
    # an end that meets nothing goes a little past its last pair (axis_overshoot), not on and on
    assert shapely.get_coordinates(a)[:, 0].min() == -20.0 and shapely.get_coordinates(a)[:, 0].max() == 220.0


def test_a_street_numbered_on_one_side_or_with_its_sides_far_apart_has_no_axis():
    one_side = [(20.0 * k, 8.0, f"{2 * k + 2} Quai C") for k in range(10)]
    far = [(20.0 * k, 100.0 + 60.0 * (k % 2), f"{k + 1} Rue D") for k in range(10)]  # 60 m across
    assert len(_axes(one_side)) == 0 and len(_axes(far, axis_max_pair=40.0)) == 0
    assert len(_axes([(0.0, 0.0, "Place E"), (5.0, 5.0, "")])) == 0


def test_without_street_lines_the_axes_keep_a_bv_to_its_own_side_of_the_street():
    """BV 1 holds the block north of Rue S, whose few addresses on Rue S are 80 m and 62 numbers apart (too
    far for a street-side guide); BV 2 faces it across Rue S every 20 m. Voronoi hands the parts of the
    block nearer BV 2's facades to BV 2 across the street; the axes close the block and give it to BV 1."""
    com = square_communes([("31001", "Alpha", X0, Y0, 1000.0)])
    rows = [("31001_1", x, 8.0, f"{1 + 62 * k} Rue S") for k, x in enumerate(range(300, 701, 80))]
    rows += [("31001_2", float(x), -8.0, f"{2 + 2 * k} Rue S") for k, x in enumerate(range(300, 701, 20))]
    # the block's other sides: Rue N (y = 200), Rue W (x = 300), Rue E (x = 700); inner sides BV 1
    n = _street("Rue N", 300.0, 700.0, 20.0, 8.0)
    rows += [("31001_1" if y < 0 else "31001_3", x, y + 200.0, a) for x, y, a in n]
    for name, x0 in (("Rue W", 300.0), ("Rue E", 700.0)):
        for x, y, a in _street(name, 20.0, 180.0, 20.0, 8.0, horizontal=False):
            inner = x > 0 if x0 == 300.0 else x < 0
            rows.append(("31001_1" if inner else "31001_3", x + x0, y, a))
    roll = roll_rows([(bv, "31001", x + X0, y + Y0 + 300) for bv, x, y, _ in rows]).assign(
        address=[a for *_, a in rows])
    block = shapely.box(X0 + 310, Y0 + 310, X0 + 690, Y0 + 490)
    r = build(roll, com, params=Params(jobs=1))
    poly = r.polygons.set_index("code_bv").to_crs(2154)
    without = build(roll, com, params=Params(jobs=1, address_axes=False)).polygons.set_index("code_bv").to_crs(2154)
    assert r.report["guides"]["address_axes"] == 4
    assert poly.loc["0002"].geometry.intersection(block).area < 1.0
    assert without.loc["0002"].geometry.intersection(block).area > 1000.0


def _nearest_of_k_brute(xy, radius, k, accept):
    d = np.hypot(*(xy[None, :, :] - xy[:, None, :]).transpose(2, 0, 1))
    out = np.full(len(xy), -1)
    for i in range(len(xy)):
        ranked = np.lexsort((np.arange(len(xy)), d[i]))[:k]  # nearest first, equals by index
        ok = [j for j in ranked if d[i, j] <= radius and accept(np.array([i]), np.array([j]))[0]]
        out[i] = ok[0] if ok else -1
    return out


def test_the_other_side_is_searched_among_the_k_nearest_as_a_tree_would():
    from decoupage_bv._grid import nearest_of_k

    rng = np.random.default_rng(3)
    # integer positions: many points equally near, and some on top of one another
    xy = rng.integers(0, 120, size=(400, 2)).astype(float) + [X0, Y0]
    code, side = rng.integers(0, 3, size=400), rng.integers(0, 2, size=400)

    def accept(i, j):
        return (code[j] == code[i]) & (side[j] != side[i])

    for radius, k in ((40.0, 24), (10.0, 24), (40.0, 3), (5.0, 1)):
        got = nearest_of_k(xy, radius, k, accept)
        assert (got == _nearest_of_k_brute(xy, radius, k, accept)).all()
    # 30 addresses of another street nearer than the other side: it is not among the 24 nearest
    crowd = np.c_[np.full(30, 1.0), np.linspace(-1, 1, 30)]
    pts = np.r_[[[0.0, 0.0], [-20.0, 0.0]], crowd]
    street = np.r_[0, 0, np.ones(30, dtype=int)]
    parity = np.r_[0, 1, np.zeros(30, dtype=int)]
    got = nearest_of_k(pts, 40.0, 24, lambda i, j: (street[j] == street[i]) & (parity[j] != parity[i]))
    assert got[0] == -1 and got[1] == 0  # from the side away from the crowd, it is the nearest


def test_a_street_numbered_on_one_side_gets_its_axis_where_the_numbering_follows_the_convention():
    # Rue B, both sides numbered going east, odd on the left (north), 6 m from its axis; Quai C, odd numbers
    # only, going east: its street lies to their right (south), 6 m away, half the width across Rue B
    rue_b = [(x, y + 100.0, a) for x, y, a in _street("Rue B", 0.0, 300.0, 20.0, 6.0)]
    quai_c = [(20.0 * k, 200.0, f"{2 * k + 1} Quai C") for k in range(15)]
    axes = _axes(rue_b + quai_c)
    assert len(axes) == 2
    c = shapely.get_coordinates(next(g for g in axes if shapely.get_coordinates(g)[:, 1].min() > 150))
    assert np.abs(c[:, 1] - 194.0).max() < 1e-6 and c[:, 0].min() <= 0.0 and c[:, 0].max() >= 280.0
    # numbered the other way round (odd on the right, as in a commune that does not follow the convention):
    # its two-sided streets tell, and the quai gets no axis; nor when turned off
    flipped = [(x, 200.0 - y, a) for x, y, a in rue_b]
    assert len(_axes(flipped + quai_c)) == 1
    assert len(_axes(rue_b + quai_c, axis_one_sided_min_agreement=2.0)) == 1
    # the other side of the street 60 m away (a wide avenue, a square): no one-sided axis either
    wide = quai_c + [(20.0 * k, 140.0, f"{2 * k + 2} Quai C") for k in range(15)]
    assert len(_axes(rue_b + wide, axis_max_pair=40.0)) == 1
