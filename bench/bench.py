"""Benchmarks: accuracy on both Paris dev sets, speed and peak memory of a build.

    python bench/bench.py accuracy     # paris_dev and paris2012_dev, 5 folds, plain / voronoi / streets
    python bench/bench.py arrondissements  # the same folds, each arrondissement scored alone
    python bench/bench.py where        # fold 0, streets: wrong area by class of block (empty, one BV, mixed…)
    python bench/bench.py noise        # paris_dev with 2 % of addresses moved 30 m and 1 % given a neighbouring BV
    python bench/bench.py cv           # cross-validated parameter choices (fragments, guides, joins) on all sets
    python bench/bench.py cv_guides    # its last part: guides' reach and spacing, empty blocks, strays handed out
    python bench/bench.py cv_axes      # street axes drawn from the addresses (no street lines): on, off, settings
    python bench/bench.py cv_extension # how far a range is carried past its last number inside its block
    python bench/bench.py cv_empty     # blocks without addresses given whole to the BV they round off
    python bench/bench.py cv_straight  # straight limits in mixed blocks: widest margin, between the changes, main pair
    python bench/bench.py cv_empty_pair  # blocks without addresses split between the two main BVs of their outline
    python bench/bench.py cv_depth     # the depth beyond which limits in mixed blocks are straight (≈ 35 min)
    python bench/bench.py cv_wood      # stretches of empty blocks over an area split as plain Voronoi splits them
    python bench/bench.py cv_strips    # the core of a block of three BVs to its main pair only in blocks round enough
    python bench/bench.py cv_one_sided # axes for streets numbered on one side, where numbering follows the convention
    python bench/bench.py cv_points    # detached pieces handed out by their number of points, with and without guides
    python bench/bench.py cv_rejoin    # joins that cut a BV whose cut-off pieces join it back: how many strips to try
    python bench/bench.py cv_facades   # a BV there by its guides only keeping its facade: off, on, the facade's depth
    python bench/bench.py suburbs      # Val-de-Marne 2019 lists (no streets, real geocoding noise): left-out electors
    python bench/bench.py speed        # build time: ours against the peers' 20-line geopandas Voronoi
    python bench/bench.py paris        # build Paris 1er–10e from paris_dev/roll.csv: time, memory
    python bench/bench.py dept31       # ~300 k synthetic addresses over the 586 communes of 31: time, memory
    python bench/bench.py france       # synthetic France, 20 M rows: 1, 4, 16, 102 départements (long)
    python bench/bench.py france_small # the same at 1, 4 and 16 départements
    python bench/bench.py france --method streets   # the same with street lines (cached files)
    python bench/bench.py accuracy --method streets   # one method only

Accuracy cases first check that the outlines do not carry the official limits (evaluate.outline_leak).

Each case runs in its own process so that peak memory is its own. Data: ../shared/data (or $DECOUPAGE_BV_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("DECOUPAGE_BV_DATA", os.path.join(HERE, "..", "..", "shared", "data"))


def _peak_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return r / 1024


def _canonical(roll: pd.DataFrame) -> pd.DataFrame:
    return roll.rename(columns={"id_brut_bv_reu": "bv", "code_commune_ref": "commune", "longitude": "lon",
                                "latitude": "lat", "nb_adresses": "count"})


def case_paris(method: str) -> dict:
    from decoupage_bv import Params, build

    method = "streets" if method == "all" else method
    t = time.perf_counter()
    r = build(os.path.join(DATA, "paris_dev", "roll.csv"), os.path.join(DATA, "paris_dev", "communes.geojson"),
              params=Params(method=method), streets=os.path.join(DATA, "paris_dev", "streets_voie.geojson"))
    return {"case": "paris", "method": method, "addresses": r.report["counts"]["address_rows"],
            "bv": r.report["counts"]["bv_drawn"], "seconds": round(time.perf_counter() - t, 2),
            "peak_mb": round(_peak_mb())}


def synth_dept31(n_total: int = 300_000, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """~*n_total* addresses over the real 586 outlines of 31, by population; BVs of ~1,000 inhabitants."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    com = gpd.read_file(os.path.join(DATA, "communes", "31_communes_adminexpress2024_simplified.geojson"))
    pop = pd.to_numeric(com["population_municipale"], errors="coerce").fillna(100).clip(lower=50)
    n_addr = np.maximum(5, np.round(n_total * pop / pop.sum())).astype(int)
    rng = np.random.default_rng(seed)
    m = com.to_crs(2154)
    rows = []
    for code, geom, n, p in zip(m["code"], m.geometry.values, n_addr, pop):
        minx, miny, maxx, maxy = geom.bounds
        # addresses clustered around a few centres (village, hamlets), inside the outline
        k = max(1, int(np.ceil(p / 1000)))
        centres = []
        while len(centres) < k + 2:
            c = rng.uniform([minx, miny], [maxx, maxy], size=(64, 2))
            centres += [tuple(xy) for xy in c[shapely.contains_xy(geom, c[:, 0], c[:, 1])]]
        centres = np.array(centres[: k + 2])
        spread = 0.15 * np.sqrt(geom.area / (k + 2))
        pts = np.empty((0, 2))
        while len(pts) < n:
            c = centres[rng.integers(0, len(centres), size=2 * n)]
            cand = c + rng.normal(0, spread, size=c.shape)
            pts = np.vstack([pts, cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]])
        pts = pts[:n]
        seeds = pts[rng.choice(len(pts), size=min(k, len(pts)), replace=False)]
        label = cKDTree(seeds).query(pts)[1] + 1  # nearest seed (a broadcast argmin took 0.9 GB for Toulouse)
        rows.append(pd.DataFrame({"bv": [f"{code}_{b}" for b in label], "commune": code,
                                  "x": pts[:, 0], "y": pts[:, 1]}))
    df = pd.concat(rows, ignore_index=True)
    lon, lat = Transformer.from_crs(2154, 4326, always_xy=True).transform(df["x"].to_numpy(), df["y"].to_numpy())
    df = df.drop(columns=["x", "y"]).assign(lon=lon, lat=lat, geo_type="housenumber", geo_score=0.95, count=1)
    return df, com


def case_dept31(method: str) -> dict:
    from decoupage_bv import Params, build

    method = "voronoi" if method == "all" else method
    roll, com = synth_dept31()
    streets = None
    if method == "streets":  # no real network here: a 250 m grid over the département
        import geopandas as gpd
        import shapely

        minx, miny, maxx, maxy = com.to_crs(2154).total_bounds
        lines = [shapely.LineString([(x, miny), (x, maxy)]) for x in np.arange(minx, maxx, 250.0)]
        lines += [shapely.LineString([(minx, y), (maxx, y)]) for y in np.arange(miny, maxy, 250.0)]
        streets = gpd.GeoDataFrame(geometry=lines, crs=2154)
    t = time.perf_counter()
    r = build(roll, com, dept="31", params=Params(method=method, jobs=2), streets=streets)
    return {"case": "dept31_synthetic", "method": method, "addresses": len(roll), "communes": len(com),
            "bv": r.report["counts"]["bv_drawn"], "seconds": round(time.perf_counter() - t, 2),
            "peak_mb": round(_peak_mb())}


def add_noise(roll: pd.DataFrame, moved: float = 0.02, distance: float = 30.0, relabelled: float = 0.01,
              seed: int = 0) -> pd.DataFrame:
    """Geocoding noise: *moved* of the addresses shifted *distance* m in a random direction, *relabelled* of
    them given the BV of their nearest address of another BV (a neighbouring BV)."""
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    out = roll.copy()
    to_m = Transformer.from_crs(4326, 2154, always_xy=True)
    to_deg = Transformer.from_crs(2154, 4326, always_xy=True)
    x, y = to_m.transform(out["lon"].astype(float).to_numpy(), out["lat"].astype(float).to_numpy())
    n = len(out)
    move = rng.random(n) < moved
    angle = rng.uniform(0, 2 * np.pi, n)
    x2, y2 = np.where(move, x + distance * np.cos(angle), x), np.where(move, y + distance * np.sin(angle), y)
    lon, lat = to_deg.transform(x2, y2)
    out["lon"], out["lat"] = np.round(lon, 7).astype(str), np.round(lat, 7).astype(str)
    relabel = np.flatnonzero(rng.random(n) < relabelled)
    tree = cKDTree(np.c_[x, y])
    bv = out["bv"].to_numpy()
    _, idx = tree.query(np.c_[x, y][relabel], k=min(64, n))
    for i, cand in zip(relabel, idx):
        other = [j for j in cand if bv[j] != bv[i] and out["commune"].iat[j] == out["commune"].iat[i]]
        if other:
            out.iat[i, out.columns.get_loc("bv")] = bv[other[0]]
    return out


DEV_SETS = {  # dataset → (roll, official polygons, outlines); both use the City of Paris street axes
    "paris_dev": "2017 official polygons, BAN points labelled by polygon",
    "paris2012_dev": "2012 real electoral list (labels from the list), weighted by electors",
}
STREETS = os.path.join(DATA, "paris_dev", "streets_voie.geojson")


def _dev(name: str):
    roll = _canonical(pd.read_csv(os.path.join(DATA, name, "roll.csv"), dtype=str)).rename(
        columns={"geo_adresse": "address", "nb_electeurs": "electors"})
    return roll, os.path.join(DATA, name, "official.geojson"), os.path.join(DATA, name, "communes.geojson")


def check_no_leak(name: str) -> None:
    """Refuse to score against outlines that carry the official limits (see evaluate.outline_leak)."""
    from decoupage_bv.evaluate import outline_leak

    _, official, com = _dev(name)
    leak = outline_leak(com, official)
    bad = leak[(leak["interior_limit_share"] > 0.02)]
    if len(bad):
        raise SystemExit(f"{name}: outlines run along official BV limits ({', '.join(bad['code'])}): "
                         "scores would be leaked, not measured")


def plain_voronoi(roll: pd.DataFrame, communes: str):
    """The peers' method as a 20-line geopandas script: Voronoi per commune, dissolved by BV, clipped."""
    import geopandas as gpd
    import shapely

    pts = gpd.GeoDataFrame(roll[["bv", "commune"]], crs=4326, geometry=gpd.points_from_xy(
        roll["lon"].astype(float), roll["lat"].astype(float))).to_crs(2154)
    pts = pts[~pts.geometry.duplicated()]
    com = (communes if isinstance(communes, gpd.GeoDataFrame) else gpd.read_file(communes)).to_crs(2154)
    out = []
    for code, poly in zip(com["code"], com.geometry):
        p = pts[pts["commune"] == code]
        cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(p.geometry.values), extend_to=poly))
        cells = gpd.GeoDataFrame(geometry=cells, crs=2154).sjoin(p, predicate="contains")
        bv = cells.dissolve("bv").clip(poly).reset_index()
        out.append(bv.assign(code_insee=code, code_bv=bv["bv"].str.split("_").str[1]))
    return pd.concat(out, ignore_index=True)[["code_insee", "code_bv", "geometry"]]


def _build(method: str, train: pd.DataFrame, com: str, **params):
    from decoupage_bv import Params, build

    if method == "plain":
        return plain_voronoi(train, com)
    p = Params(method=method, **params)
    return build(train, com, params=p, streets=STREETS if method == "streets" else None).polygons


def _folds(roll: pd.DataFrame, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The fold of each address: the same draw for every case, so that their figures compare."""
    return np.random.default_rng(seed).integers(0, folds, size=len(roll))


def kfold(name: str, method: str, folds: int = 5, seed: int = 0, noise: bool = False, **params) -> dict:
    """K-fold: each fold leaves out 1/k of the addresses (20 % for k = 5), builds from the rest, scores the
    polygons against the official ones and the left-out addresses. With *noise*, the addresses built from
    carry geocoding noise (:func:`add_noise`); scores use clean labels."""
    from decoupage_bv.evaluate import evaluate

    check_no_leak(name)
    roll, official, com = _dev(name)
    fold = _folds(roll, folds, seed)
    scores = []
    for k in range(folds):
        train = add_noise(roll[fold != k], seed=seed + k) if noise else roll[fold != k]
        scores.append(evaluate(_build(method, train, com, jobs=1, **params), official,
                               test_addresses=roll[fold == k]))
    out = {"case": f"{name}_{folds}fold" + ("_noisy" if noise else ""), "method": method,
           **({"seed": seed} if seed else {}), **params}
    for key in ["area_agreement", "v_measure", "address_accuracy", "elector_accuracy", "multipart_share",
                "test_bv_unmapped", "test_electors_bv_unmapped"]:
        v = np.array([s[key] for s in scores if key in s])
        if len(v):
            out[key] = round(float(v.mean()), 4)
            out[key + "_sd"] = round(float(v.std()), 4)
    return out


METHODS = ("plain", "voronoi", "streets")


def case_arrondissements(method: str, folds: int = 5) -> list:
    """Each arrondissement of both dev sets scored alone, on the folds of ``accuracy``: area and left-out
    accuracy (electors on the real list, addresses on paris_dev) per arrondissement and method, mean over
    folds: where a method loses to plain, and how the 10e, the most like the held-out arrondissements, fares."""
    import geopandas as gpd

    from decoupage_bv.evaluate import evaluate

    out = []
    methods = METHODS if method == "all" else [method]
    for name in DEV_SETS:
        check_no_leak(name)
        roll, official, com = _dev(name)
        off = gpd.read_file(official)
        fold = _folds(roll, folds)
        measure = "elector_accuracy" if "electors" in roll else "address_accuracy"
        scores: dict = {}
        for k in range(folds):
            train, test = roll[fold != k], roll[fold == k]
            for m in methods:
                built = _build(m, train, com, jobs=1)
                for code in sorted(off["code_insee"].unique()):
                    e = evaluate(built[built["code_insee"] == code], off[off["code_insee"] == code],
                                 test_addresses=test[test["commune"] == code])
                    scores.setdefault((code, m), []).append((e["area_agreement"], e[measure]))
        for (code, m), v in sorted(scores.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]))):
            a = np.array(v)
            out.append({"case": f"{name}_by_arrondissement", "method": m, "code": code,
                        "area_agreement": round(float(a[:, 0].mean()), 4), measure: round(float(a[:, 1].mean()), 4)})
    return out


def case_where(method: str) -> list:
    """Where the wrong area is: fold 0 of each dev set (``streets``, or *method*), the blocks of the City of
    Paris axes classed by the addresses built from (``empty``; ``one`` BV; ``two_apart``, two BVs whose
    convex hulls are apart, which a straight line separates; ``two_mixed``, two whose hulls overlap;
    ``three``, three or more): each class's share of the area and its points of wrong area (100 × wrong m² /
    all m²), pooled and for each arrondissement."""
    import geopandas as gpd
    import shapely

    from decoupage_bv.blocks import block_of
    from decoupage_bv.evaluate import bv_keys
    from decoupage_bv.streets import enclosures, read_streets

    method = "streets" if method == "all" else method
    lines = read_streets(STREETS, "EPSG:2154")
    out = []
    for name in DEV_SETS:
        check_no_leak(name)
        roll, official, com = _dev(name)
        train = roll[_folds(roll) != 0]
        pred = gpd.GeoDataFrame(_build(method, train, com, jobs=1), geometry="geometry").to_crs(2154)
        pred["pr"] = bv_keys(pred)
        off = gpd.read_file(official).to_crs(2154)
        off["of"] = bv_keys(off)
        off = off.dissolve("of", as_index=False)
        xy = gpd.GeoSeries(gpd.points_from_xy(train["lon"].astype(float), train["lat"].astype(float)),
                           crs=4326).to_crs(2154)
        xy = shapely.get_coordinates(xy.values)
        key = (train["commune"] + "_" + train["bv"].str.split("_").str[1].astype(int).astype(str)).to_numpy()
        rows = []
        for code, outline in zip(*gpd.read_file(com).to_crs(2154)[["code", "geometry"]].to_numpy().T):
            blocks = enclosures(outline, lines)
            mine = (train["commune"] == code).to_numpy()
            blk = block_of(blocks, xy[mine], -1)
            for b, geom in enumerate(blocks):
                pts, labs = xy[mine][blk == b], key[mine][blk == b]
                bvs = np.unique(labs)
                if len(bvs) == 0:
                    cls = "empty"
                elif len(bvs) == 1:
                    cls = "one"
                elif len(bvs) == 2:
                    hulls = [shapely.convex_hull(shapely.multipoints(pts[labs == v])) for v in bvs]
                    cls = "two_mixed" if shapely.intersects(*hulls) else "two_apart"
                else:
                    cls = "three"
                rows.append((code, cls, geom))
        classed = gpd.GeoDataFrame(pd.DataFrame(rows, columns=["code", "cls", "geometry"]), crs=2154)
        x = gpd.overlay(gpd.overlay(classed, pred[["pr", "geometry"]], keep_geom_type=True),
                        off[["of", "geometry"]], keep_geom_type=True)
        x["m2"], x["wrong"] = x.area, x.area.where(x["pr"] != x["of"], 0.0)
        for code, part in [("all", x)] + list(x.groupby("code")):
            total = part["m2"].sum()
            by = part.groupby("cls")[["m2", "wrong"]].sum()
            row = {"case": f"{name}_where", "method": method, "code": code,
                   "wrong_points": round(100 * float(part["wrong"].sum() / total), 2)}
            for cls in ("empty", "one", "two_apart", "two_mixed", "three"):
                if cls in by.index:
                    row[cls] = [round(float(by.loc[cls, "m2"] / total), 3), round(100 * float(by.loc[cls, "wrong"] / total), 2)]
            out.append(row)
    return out


def case_accuracy(method: str) -> list:
    return [kfold(name, m) for name in DEV_SETS for m in (METHODS if method == "all" else [method])]


def case_noise(method: str) -> list:
    return [kfold("paris_dev", m, noise=True) for m in (METHODS if method == "all" else [method])]


def case_cv(method: str) -> list:
    """Cross-validated choice of the fragment thresholds and the guides' reach, on both dev sets."""
    m = "streets" if method == "all" else method
    grid = [dict(fragment_max_points=a, fragment_max_share=s) for a, s in ((2, 0.05), (5, 0.1), (10, 0.2))]
    grid += [dict(guide_extension=e) for e in (0.0, 8.0, 16.0)] + [dict(guides=False)]
    before_joins = dict(join_max_gap=0.0, leftover_max_share=0.1)  # these were chosen first, without joins
    rows = [kfold(name, m, **g, **before_joins) for g in grid for name in DEV_SETS]
    # joining detached pieces, then handing out what is left: both dev sets and the Val-de-Marne lists
    joins = [dict(join_max_gap=g, leftover_max_share=0.1) for g in (0.0, 60.0, 150.0, 300.0)]
    joins += [dict(join_max_gap=300.0, leftover_max_share=s) for s in (0.2, 0.35, 0.5)]
    rows += [kfold(name, mm, **g) for g in joins for name in DEV_SETS for mm in (m, "voronoi")]
    rows += [r for g in joins for r in case_suburbs("guides", **g)]
    return rows + case_cv_guides(method)


def case_cv_guides(method: str) -> list:
    """With joins on: the guides' reach and spacing, the hand-out thresholds again and the strays handed out
    before the joins (both dev sets, the noisy roll and the Val-de-Marne lists); the outline sampling of
    blocks without addresses (both dev sets); the depth of the straight limits in mixed blocks (both dev
    sets, the noisy roll); what is handed out where no guide applies (both dev sets without guides, and the
    Val-de-Marne lists)."""
    m = "streets" if method == "all" else method
    rows = []
    grid = [dict()] + [dict(guide_extension=e) for e in (16.0, 32.0)] + [dict(guide_step=6.0)]
    grid += [dict(guide_max_number_gap=g) for g in (12, 50)] + [dict(guide_max_distance=d) for d in (150.0, 400.0)]
    grid += [dict(fragment_max_points=a, fragment_max_share=f) for a, f in ((2, 0.05), (10, 0.2))]
    grid += [dict(leftover_max_share=s) for s in (0.2, 0.5)]
    for g in grid:
        rows += [kfold(name, m, **g) for name in DEV_SETS] + [kfold("paris_dev", m, noise=True, **g)]
        rows += case_suburbs("guides", **g)
    rows += [kfold(name, m, empty_block_step=s) for s in (2.0, 16.0) for name in DEV_SETS]
    # straight limits in the core of mixed blocks (street lines only: the Val-de-Marne lists have none)
    for d in (0.0, 15.0, 20.0, 30.0):
        rows += [kfold(name, m, straight_cut_depth=d) for name in DEV_SETS] + [kfold("paris_dev", m, noise=True,
                                                                                       straight_cut_depth=d)]
    for n in (0, 1, 2):  # with guides: the strays handed out before the joins (larger pieces are joined first)
        rows += [kfold(name, m, stray_max_points=n) for name in DEV_SETS]
        rows += [kfold("paris_dev", m, noise=True, stray_max_points=n)] + case_suburbs("guides", stray_max_points=n)
    for n in (0, 1, 5):
        rows += [kfold(name, mm, guides=False, stray_max_points=n)
                 for name in DEV_SETS for mm in ("voronoi", m)]
        rows += case_suburbs("voronoi", stray_max_points=n)
    return rows


def case_cv_axes(method: str) -> list:
    """Street axes drawn from the addresses where no street lines are given (method voronoi): off, the
    defaults, then one setting moved at a time (both dev sets, the noisy roll, the Val-de-Marne lists)."""
    grid = [dict(address_axes=False), dict()]
    grid += [dict(axis_max_pair=v) for v in (25.0, 60.0)] + [dict(axis_simplify=v) for v in (0.5, 5.0)]
    grid += [dict(axis_reach=r, axis_overshoot=o) for r, o in ((80.0, 20.0), (160.0, 60.0), (240.0, 100.0))]
    rows = []
    for g in grid:
        rows += [kfold(name, "voronoi", **g) for name in DEV_SETS] + [kfold("paris_dev", "voronoi", noise=True, **g)]
        rows += case_suburbs("guides", **g)
    return rows


def case_speed(method: str, runs: int = 5) -> list:
    """Build time on the whole roll of each dev set (2 workers, the default): ours against the peers'
    20-line geopandas script (:func:`plain_voronoi`), each timed from the same in-memory roll. Every method
    runs once untimed first (imports, caches: the first run of a process pays them, whichever it is), then
    the methods take turns *runs* times; best and median seconds. ``paris_dev_x2`` (84,568 addresses:
    each of paris_dev's and a copy moved ~5 m) shows how both scale towards 90 k addresses."""
    out = []
    sets = [(name, *_dev(name)[::2]) for name in DEV_SETS]
    sets.append(("paris_dev_x2", _doubled(sets[0][1]), sets[0][2]))
    for name, roll, com in sets:
        row = {"case": f"speed_{name}", "addresses": len(roll), "runs": runs}
        methods = ("plain", "voronoi", "streets")
        for m in methods:
            _build(m, roll, com)
        times = {m: [] for m in methods}
        for _ in range(runs):
            for m in methods:
                t = time.perf_counter()
                _build(m, roll, com)
                times[m].append(time.perf_counter() - t)
        for m in methods:
            row[f"{m}_best"] = round(min(times[m]), 2)
            row[f"{m}_median"] = round(float(np.median(times[m])), 2)
        for m in methods[1:]:
            row[f"{m}_over_plain"] = round(float(np.median(times[m]) / np.median(times["plain"])), 2)
        out.append(row)
    return out


def _doubled(roll: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A roll twice as dense (synthetic, for scaling only): each address and a copy of it moved ~5 m."""
    rng = np.random.default_rng(seed)
    copy = roll.copy()
    for col, sd in (("lat", 4e-5), ("lon", 6e-5)):
        copy[col] = (copy[col].astype(float) + rng.normal(0, sd, len(copy))).round(6).astype(str)
    return pd.concat([roll, copy], ignore_index=True)


_PLAIN_BY_COMMUNE: dict = {}


def _val_de_marne():
    """The Val-de-Marne 2019 lists (their columns named) and the outlines of their communes."""
    import geopandas as gpd

    from decoupage_bv import sources

    cols = {"bv": "bureau", "commune_name": "ville", "lon": "longitude", "lat": "latitude",
            "geo_type": "result_type", "geo_score": "result_score", "citycode": "result_citycode",
            "address": "result_label"}
    roll = sources.read_roll(os.path.join(DATA, "reu", "94_electoral_lists_2019_geocoded.csv.bz2"), columns=cols).rows
    return roll, gpd.read_file(os.path.join(DATA, "communes", "94_communes_adminexpress2018.geojson"))


def case_suburbs(method: str, **params) -> list:
    """Val-de-Marne 2019 lists (47 communes, real geocoding noise, no street lines, no official polygons):
    5 folds over addresses (every elector of an address in one fold), scored on the left-out electors whose
    BAN answer is a house number, and on the share of BVs in several pieces; pooled, and commune by commune
    against plain Voronoi (``communes_below_plain``: by more than 0.005, about the noise of one commune's
    score; ``worst_gap``: the lowest difference). The issue's suburban targets are per commune:
    ``communes_multipart_ok`` counts the communes with at most 2 % of their BVs in pieces (in a commune of
    fewer than 50 BVs, none), ``communes_both`` those that are also not below plain."""
    from decoupage_bv import Params, build
    from decoupage_bv.evaluate import address_accuracy

    roll, com = _val_de_marne()
    where = roll["lon"].fillna("") + "," + roll["lat"].fillna("")
    fold = pd.Series(np.random.default_rng(0).integers(0, 5, size=where.nunique()),
                     index=sorted(where.unique()))[where].to_numpy()
    scorable = (roll["geo_type"] == "housenumber").to_numpy() & (pd.to_numeric(roll["geo_score"]) >= 0.5).to_numpy()
    tests = [roll[(fold == k) & scorable].assign(commune=lambda d: d["citycode"]) for k in range(5)]

    def run(m: str, params: dict):
        acc, multi, by_commune = [], [], []
        for k in range(5):
            train = roll[fold != k]
            if m == "plain":
                poly = plain_voronoi(train[scorable[fold != k]].assign(commune=train["citycode"]).dropna(
                    subset=["commune", "lon", "lat"]).assign(bv=lambda d: d["commune"] + "_" + d["bv"]), com)
            else:
                poly = build(train, com, dept="94", params=Params(method="voronoi", guides=m == "guides",
                                                                    jobs=1, **params)).polygons
                poly = poly[poly["code_bv"].notna()]
            acc.append(address_accuracy(poly, tests[k])["address_accuracy"])
            multi.append(float(np.mean(poly.geometry.geom_type == "MultiPolygon")))
            for c, t in tests[k].groupby("commune"):
                if str(c).startswith("94"):
                    pc = poly[poly["code_insee"] == c]
                    by_commune.append((c, address_accuracy(pc, t)["address_accuracy"],
                                       float(np.mean(pc.geometry.geom_type == "MultiPolygon")) if len(pc) else 0.0))
        return acc, multi, pd.DataFrame(by_commune, columns=["c", "acc", "multi"]).groupby("c").mean()

    rows = []
    for m in (("plain", "voronoi", "guides") if method == "all" else [method]):
        acc, multi, by_commune = run(m, params)
        row = {"case": "suburbs_94_5fold", "method": m, **params, "address_accuracy": round(float(np.mean(acc)), 4),
               "address_accuracy_sd": round(float(np.std(acc)), 4), "multipart_share": round(float(np.mean(multi)), 4),
               "commune_mean_accuracy": round(float(by_commune["acc"].mean()), 4),
               "commune_mean_multipart": round(float(by_commune["multi"].mean()), 4)}
        if m == "plain":
            _PLAIN_BY_COMMUNE["by_commune"] = by_commune
        else:
            if "by_commune" not in _PLAIN_BY_COMMUNE:
                _PLAIN_BY_COMMUNE["by_commune"] = run("plain", {})[2]
            plain = _PLAIN_BY_COMMUNE["by_commune"]
            gap = (by_commune["acc"] - plain["acc"]).dropna()
            ok = by_commune["multi"] <= 0.02
            both = ok & (gap.reindex(ok.index) >= -0.005)
            # the communes whose geocoding leaves plain Voronoi's BVs in pieces most (40 % or more), as in
            # the held-out suburban commune (plain: 67 %)
            noisy = plain.index[plain["multi"] >= 0.4].intersection(by_commune.index)
            row.update(communes_below_plain=int((gap < -0.005).sum()), worst_gap=round(float(gap.min()), 4),
                       worst_commune=str(gap.idxmin()), communes=len(by_commune),
                       communes_multipart_ok=int(ok.sum()), communes_both=int(both.sum()),
                       noisy_communes=len(noisy), noisy_multipart_ok=int(ok[noisy].sum()),
                       noisy_below_plain=int((gap.reindex(noisy) < -0.005).sum()),
                       noisy_both=int(both[noisy].sum()), noisy_mean_gap=round(float(gap.reindex(noisy).mean()), 4))
        rows.append(row)
    return rows


def case_cv_handout(method: str) -> list:
    """What is handed out of a detached piece that cannot be joined (Method, step 7), commune by commune on
    the Val-de-Marne lists against plain Voronoi, and on both dev sets."""
    grid = [dict(fragment_max_share=0.1, leftover_max_share=0.35), dict(fragment_max_share=0.1),
            dict(leftover_max_share=0.2), dict(), dict(fragment_max_points=1),
            dict(fragment_max_points=1, join_max_gap=0.0)]
    rows = []
    for g in grid:
        rows += case_suburbs("guides", **g) + [kfold(name, "streets", **g) for name in DEV_SETS]
    return rows


def case_cv_leftover(method: str) -> list:
    """How much of a detached piece that could not be joined is handed out (``leftover_max_share``), and how
    much of another BV a join may cut off (``join_cut_off_share``), against the issue's per-commune suburban
    targets (at most 2 % of BVs in pieces, never below plain Voronoi): the Val-de-Marne lists commune by
    commune, and both dev sets (``streets`` leaves nearly no piece there to hand out)."""
    rows = []
    for share in (0.0, 0.2, 0.35, 1.0):
        rows += case_suburbs("guides", leftover_max_share=share)
        rows += [kfold(name, "voronoi", leftover_max_share=share) for name in DEV_SETS]
    # joins that cut off a few of another BV's addresses (join_cut_off_share), alone and before every piece
    # is handed out
    for g in (dict(join_cut_off_share=0.2), dict(join_cut_off_share=0.5),
              dict(leftover_max_share=1.0, join_cut_off_share=0.5), dict(leftover_max_share=1.0, join_cut_off_share=1.0)):
        rows += case_suburbs("guides", **g)
        rows += [kfold(name, m, **g) for name in DEV_SETS for m in ("voronoi", "streets")]
    return rows


def case_cv_blocks(method: str) -> list:
    """Guides relabelled by block where the two numbers they join lie in different blocks (Method, step 4):
    off, on, and on with the guides past a range's end kept in its block; ``streets`` and ``voronoi`` (address
    axes) on both dev sets and the noisy roll, and the Val-de-Marne lists; with joins up to 300 m, as measured
    for the README (600 m since: ``cv_joins``)."""
    grid = [dict(guide_blocks=False, join_max_gap=300.0), dict(join_max_gap=300.0),
            dict(guide_extension_across=0.0, join_max_gap=300.0)]
    rows = []
    for g in grid:
        for m in ("streets", "voronoi"):
            rows += [kfold(name, m, **g) for name in DEV_SETS] + [kfold("paris_dev", m, noise=True, **g)]
        rows += case_suburbs("guides", **g)
    return rows


def case_cv_joins(method: str) -> list:
    """How far a detached piece is joined to its BV's main piece (Method, step 7): the Val-de-Marne lists,
    pooled and commune by commune, and both dev sets (``streets``; 600 m only moves the suburbs)."""
    rows = []
    for gap in (300.0, 600.0, 1200.0):
        rows += case_suburbs("guides", join_max_gap=gap)
        if gap < 1200:
            rows += [kfold(name, "streets", join_max_gap=gap) for name in DEV_SETS]
    return rows


def case_cv_empty(method: str) -> list:
    """Blocks without addresses given whole to the BV whose outline they round off (Method, step 4): off
    (split along the outline), one margin for every block (0.75, 1.0, 1.25, 1.5), and 0.75 under 1 or 2 ha
    with 1.25 above (the default: under 1 ha), all of any shape; then the default margins with long thin
    blocks always split (least roundness 4πA/P² 0.15 to 0.6; the default 0.3); ``streets`` on both dev sets
    with two draws of folds, and the noisy roll (blocks drawn from the addresses' axes are nearly all
    addressed: ``voronoi`` and the Val-de-Marne lists hardly move, ``suburbs`` checks them)."""
    grid = [dict(empty_block_hull_margin=m, empty_block_hull_margin_small=m, empty_block_min_roundness=0.0)
            for m in (0.0, 0.75, 1.0, 1.25, 1.5)]
    grid += [dict(empty_block_hull_margin=1.25, empty_block_hull_margin_small=0.75, empty_block_small_area=a,
                  empty_block_min_roundness=0.0) for a in (10_000.0, 20_000.0)]
    # long thin blocks (rivers, rail cuttings, medians) always split: the least roundness 4πA/P²
    grid += [dict(empty_block_min_roundness=r) for r in (0.15, 0.3, 0.45, 0.6)]
    rows = []
    for g in grid:
        rows += [kfold(name, "streets", seed=seed, **g) for seed in (0, 1) for name in DEV_SETS]
        rows.append(kfold("paris_dev", "streets", noise=True, **g))
    return rows


def _two_draws(method: str, **params) -> list:
    """:func:`kfold` of both dev sets and the noisy roll, with each of two draws of folds (seeds 0 and 1,
    ``draw`` in each row)."""
    rows = []
    for seed in (0, 1):
        rows += [dict(kfold(name, method, seed=seed, **params), draw=seed) for name in DEV_SETS]
        rows.append(dict(kfold("paris_dev", method, noise=True, seed=seed, **params), draw=seed))
    return rows


def case_cv_empty_pair(method: str) -> list:
    """A block without addresses split among three BVs or more along its outline: between the two holding
    most of it when the others hold at most a share of it (Method, step 4): 0 (never), 0.15, 0.3 (the
    default), 1 (always); ``streets`` on both dev sets and the noisy roll, two draws of folds."""
    return [row for share in (0.0, 0.15, 0.3, 1.0) for row in _two_draws("streets", empty_block_pair_share=share)]


def case_cv_depth(method: str) -> list:
    """The depth beyond which the limits in mixed blocks are straight (Method, step 4), re-chosen with the
    limits between the changes and the main pairs: first one depth for every mixed block, 15, 17.5, 20,
    22.5, 25, 30, 40 m, for ``streets`` on both dev sets and the noisy roll, two draws of folds; then 20 m
    with blocks of three BVs or more at 22.5, 25 (the default) or 30 m; ``voronoi`` (the blocks of street
    axes drawn from the addresses) and the Val-de-Marne lists at 15/15, 20/20, 25/25 and 20/25 m."""
    rows = []
    for depth, three in [(d, d) for d in (15.0, 17.5, 20.0, 22.5, 25.0, 30.0, 40.0)] + [(20.0, t) for t in
                                                                                         (22.5, 25.0, 30.0)]:
        rows += _two_draws("streets", straight_cut_depth=depth, straight_cut_depth_three=three)
    for depth, three in ((15.0, 15.0), (20.0, 20.0), (25.0, 25.0), (20.0, 25.0)):
        rows += _two_draws("voronoi", straight_cut_depth=depth, straight_cut_depth_three=three)
    for depth, three in ((20.0, 20.0), (25.0, 25.0), (20.0, 25.0)):
        rows += case_suburbs("guides", straight_cut_depth=depth, straight_cut_depth_three=three)
    return rows


def case_cv_wood(method: str) -> list:
    """Blocks without addresses touching one another over an area (Method, step 4) split as plain Voronoi
    splits them: from 20, 50, 80 or 100 ha (the default), or never; ``streets`` on both dev sets and the
    noisy roll, two draws of folds. The dev sets' largest such stretch is 81 ha (gardens and river): a
    threshold above it changes nothing there, the woods of the arrondissements held out are 8 to 10 km²."""
    return [row for area in (200_000.0, 500_000.0, 800_000.0, 1_000_000.0, float("inf"))
            for row in _two_draws("streets", empty_region_voronoi_area=area)]


def case_cv_strips(method: str) -> list:
    """The core of a block of three BVs or more given to its main pair only when the block is round enough
    (Method, step 4; its 4πA/P² at least 0, 0.3, 0.4, 0.5 (the default) or 0.65): ``streets`` on both dev
    sets and the noisy roll, two draws of folds. Not in the blocks of street axes drawn from the addresses
    (``voronoi``, the Val-de-Marne lists), where 0.5 left the dev sets within ±0.0003 and one BV more in
    pieces in the suburbs (bench/RESULTS.md)."""
    return [row for roundness in (0.0, 0.3, 0.4, 0.5, 0.65)
            for row in _two_draws("streets", straight_cut_main_pair_min_roundness=roundness)]


def case_cv_one_sided(method: str) -> list:
    """Street axes for the streets numbered on one side (Method, step 3), where no street lines are given:
    never, or where the commune's two-sided streets follow odd-on-the-left numbering at least 0, 0.95, 0.98
    (the default) or 0.99 of the time; ``voronoi`` on both dev sets and the noisy roll, two draws of folds,
    and the Val-de-Marne lists."""
    rows = []
    for agreement in (2.0, 0.0, 0.95, 0.98, 0.99):
        rows += _two_draws("voronoi", axis_one_sided_min_agreement=agreement)
        rows += case_suburbs("guides", axis_one_sided_min_agreement=agreement)
    return rows


def case_cv_points(method: str) -> list:
    """Detached pieces handed out by their number of points (Method, steps 6-7): fragments of at most 3, 5
    (the default) or 8 points where guides apply, on the Val-de-Marne lists (the Paris sets have one point
    per address: a fragment of n points is one of n addresses there, as cross-validated before); where none
    applies (no labels), pieces of no more points than a stray (0: strays only, as before; 1: strays, and no
    second try at joining them), 2 (the default) or 3 points, on the Val-de-Marne lists, both dev sets
    (``voronoi`` and ``streets`` without guides) and the noisy roll."""
    rows = []
    for n in (3, 5, 8):
        rows += case_suburbs("guides", fragment_max_points=n)
    for n in (0, 1, 2, 3):
        rows += case_suburbs("voronoi", fragment_max_points_unguided=n)
        rows += [kfold(name, m, guides=False, fragment_max_points_unguided=n)
                 for name in DEV_SETS for m in ("voronoi", "streets")]
        rows += [kfold("paris_dev", m, noise=True, guides=False, fragment_max_points_unguided=n)
                 for m in ("voronoi", "streets")]
    return rows


def case_cv_rejoin(method: str) -> list:
    """Joins that cut another BV whose cut-off pieces can be joined back to it (Method, step 7): none (0),
    the first 1, 2 (the default) or every (8) such strip of each piece, on the Val-de-Marne lists (with
    guides and address axes) with the time of a whole one-process build of them, and both dev sets
    (``voronoi`` and ``streets``); then every piece left handed out (``--leftover-max-share 1``), without and
    with them."""
    from decoupage_bv import Params, build

    roll, com = _val_de_marne()
    rows = []
    for n in (0, 1, 2, 8):
        t = time.perf_counter()
        whole = build(roll, com, dept="94", params=Params(method="voronoi", jobs=1, join_rejoin_strips=n))
        seconds = time.perf_counter() - t
        row = case_suburbs("guides", join_rejoin_strips=n)[0]
        row.update(whole_list_seconds=round(seconds, 2),
                   whole_list_multipart=int((whole.polygons.geom_type == "MultiPolygon").sum()))
        rows.append(row)
        rows += [kfold(name, m, join_rejoin_strips=n) for name in DEV_SETS for m in ("voronoi", "streets")]
    for n in (0, 2):  # every BV in one piece: the pieces left handed out, fewer with the rejoin
        rows += case_suburbs("guides", join_rejoin_strips=n, leftover_max_share=1.0)
    return rows


def case_cv_extension(method: str) -> list:
    """How far a range is carried past its last known number inside its block, where street lines give the
    blocks (Method, step 4): 24 m (as without street lines), 48, 96, 160 m, along the street or along its
    last two numbers; ``streets`` on both dev sets and the noisy roll (``voronoi`` and the Val-de-Marne lists
    draw their blocks from the addresses and do not use it)."""
    grid = [dict(guide_block_extension=r, guide_along_streets=False) for r in (24.0, 48.0, 96.0, 160.0)]
    grid += [dict(guide_block_extension=r) for r in (48.0, 96.0, 160.0)]
    rows = []
    for g in grid:
        rows += [kfold(name, "streets", **g) for name in DEV_SETS]
        rows.append(kfold("paris_dev", "streets", noise=True, **g))
    return rows


def case_cv_straight(method: str) -> list:
    """The straight limits in the core of mixed blocks (Method, step 4): in blocks of two BVs, the line of
    widest margin between their addresses, or the line between the two places where the BV changes along
    the block's outline (where it leaves each address on its own side); in blocks of three or more, lines
    of widest margin between every two, or the core to the two BVs holding most of the outline. The rows:
    neither, the first alone, both (the default); ``streets`` on both dev sets and the noisy roll, two draws
    of folds; as measured, before blocks without addresses were split between their main pair (0 here;
    ``cv_empty_pair`` has it). The blocks of street axes drawn from the addresses (``voronoi``) keep the
    line of widest margin between two BVs (``bench/RESULTS.md``, 2026-12-07)."""
    return [row for chord, main_pair in ((False, False), (True, False), (True, True))
            for row in _two_draws("streets", straight_cut_chord=chord, straight_cut_main_pair=main_pair,
                                  empty_block_pair_share=0.0)]


def case_cv_facades(method: str) -> list:
    """Ranges whose numbers lie in other blocks (Method, step 4): a BV there by its guides only in a block of
    several BVs' addresses keeping its facade (``guide_only_facades``), off and on, and the facade's depth
    (``guide_through_depth``, shared with the ranges through a block of one BV: 12, 20, 30 m); both dev
    sets and the noisy roll, two draws of folds; ``streets`` and ``voronoi`` for off and 20 m, ``streets``
    alone for the other depths (*method* picks one)."""
    methods = ("streets", "voronoi") if method == "all" else (method,)
    rows = []
    for m in methods:
        for on, depth in ((False, 20.0), (True, 20.0), (True, 12.0), (True, 30.0)):
            if m == "voronoi" and depth != 20.0:
                continue
            rows += [dict(row, guide_only_facades=on, guide_through_depth=depth)
                     for row in _two_draws(m, guide_only_facades=on, guide_through_depth=depth)]
    return rows


def synth_france(n_depts: int, rows_total: int = 20_000_000, folder: str = "/tmp/decoupage_bv_france",
                 seed: int = 0) -> tuple[str, str]:
    """A synthetic France at real scale: *rows_total* × n/102 address rows over *n_depts* départements
    (national order, 2A/2B and overseas included), real outlines (31, 29, 94 and Paris's arrondissements)
    translated where the real ones are missing, BVs of ~300 addresses. Returns (roll CSV, communes GPKG)."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer
    from scipy.spatial import cKDTree

    from decoupage_bv import codes
    from decoupage_bv.national import ALL_DEPTS

    os.makedirs(folder, exist_ok=True)
    roll_path, com_path = os.path.join(folder, f"roll_{n_depts}.csv"), os.path.join(folder, f"communes_{n_depts}.gpkg")
    if os.path.exists(roll_path) and os.path.exists(com_path):
        return roll_path, com_path
    templates = [gpd.read_file(os.path.join(DATA, "communes", f)).to_crs(2154) for f in (
        "31_communes_adminexpress2024_simplified.geojson", "29_communes_adminexpress2018.geojson",
        "94_communes_adminexpress2018.geojson")]
    paris = gpd.read_file(os.path.join(DATA, "communes", "75_paris_arrondissements_adminexpress2024_simplified.geojson"))
    paris = paris[paris["code"].str.startswith("751")].to_crs(2154)
    rng = np.random.default_rng(seed)
    per_dept = rows_total // len(ALL_DEPTS)
    coms, first = [], True
    for i, d in enumerate(ALL_DEPTS[:n_depts]):
        overseas = d.startswith("97")
        t = paris if d == "75" else (templates[2] if overseas else templates[i % len(templates)])  # 47 communes
        geoms = t.geometry.values
        cx, cy = shapely.centroid(shapely.union_all(geoms)).coords[0]
        crs = codes.metric_crs(d)
        # metropolitan copies side by side on a 20 × 6 grid of 250 km cells; overseas at home, in their CRS
        home = {"971": (650000, 1780000), "972": (710000, 1620000), "973": (350000, 450000),
                "974": (340000, 7660000), "975": (560000, 5200000), "976": (520000, 8580000)}.get(d)
        ox, oy = home if home else (100000 + 250000 * (i % 20), 6100000 + 250000 * (i // 20))
        moved = shapely.transform(geoms, lambda xy: xy - [cx, cy] + [ox, oy])
        code = (t["code"].to_numpy() if d == "75" else
                np.array([f"{d}{k + 1:02d}" if overseas else f"{d}{k + 1:03d}" for k in range(len(t))]))
        g = gpd.GeoDataFrame({"code": code, "nom": [f"Commune {c}" for c in code]}, geometry=moved, crs=crs)
        area = shapely.area(moved)
        n_com = np.maximum(5, np.round(per_dept * area / area.sum())).astype(int)
        xs, ys, labels = [], [], []
        for c, geom, n in zip(code, moved, n_com):
            minx, miny, maxx, maxy = geom.bounds
            pts = np.empty((0, 2))
            while len(pts) < n:
                cand = rng.uniform([minx, miny], [maxx, maxy], size=(2 * n + 16, 2))
                pts = np.vstack([pts, cand[shapely.contains_xy(geom, cand[:, 0], cand[:, 1])]])
            pts = pts[:n]
            k = max(1, n // 300)
            lab = cKDTree(pts[rng.choice(n, size=k, replace=False)]).query(pts)[1] + 1
            xs.append(pts[:, 0]), ys.append(pts[:, 1]), labels.append(np.char.add(f"{c}_", lab.astype(str)))
        x, y = np.concatenate(xs), np.concatenate(ys)
        lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
        comm = np.concatenate([np.full(len(a), c) for a, c in zip(xs, code)])
        pd.DataFrame({"id_brut_bv_reu": np.concatenate(labels), "code_commune_ref": comm,
                      "longitude": np.round(lon, 6), "latitude": np.round(lat, 6), "geo_type": "housenumber",
                      "geo_score": 0.95, "nb_adresses": 1}).to_csv(roll_path, mode="w" if first else "a",
                                                                   header=first, index=False)
        first = False
        coms.append(g.to_crs(4326))
    pd.concat(coms, ignore_index=True).pipe(gpd.GeoDataFrame, crs=4326).to_file(com_path)
    return roll_path, com_path


def _children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def synth_streets(communes_path: str, depts: list, spacing: float = 250.0) -> dict:
    """One line file per département: a *spacing* grid over its communes, in its metric CRS (cached)."""
    import geopandas as gpd
    import shapely

    from decoupage_bv import codes

    com = gpd.read_file(communes_path)
    com["_dept"] = com["code"].map(codes.dept_of_commune)
    out = {}
    for d in depts:
        path = os.path.join(os.path.dirname(communes_path), f"streets_{d}.gpkg")
        if not os.path.exists(path):
            crs = codes.metric_crs(d)
            minx, miny, maxx, maxy = com[com["_dept"] == d].to_crs(crs).total_bounds
            lines = [shapely.LineString([(x, miny), (x, maxy)]) for x in np.arange(minx, maxx, spacing)]
            lines += [shapely.LineString([(minx, y), (maxx, y)]) for y in np.arange(miny, maxy, spacing)]
            gpd.GeoDataFrame(geometry=lines, crs=crs).to_file(path)
        out[d] = path
    return out


def synth_france_labelled(n_depts: int, folder: str = "/tmp/decoupage_bv_france_labelled") -> tuple[str, str]:
    """A France of real rolls: the Val-de-Marne 2019 lists (about 150 k rows of 47 communes and 810 BVs,
    real geocoding, and the BAN label of each address as the REU's ``geo_adresse``) copied into each of the
    first *n_depts* metropolitan départements, moved to a place of its own, communes renumbered
    (``<dept>001`` …). Unlike :func:`synth_france`, whose rows have no address, a build of it lays the
    street-side guides and draws the street axes, as a build of the national REU does. 96 départements:
    about 14.5 M rows and 78 k BVs. Returns (roll CSV, communes GPKG)."""
    from functools import partial

    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    from decoupage_bv.national import ALL_DEPTS

    os.makedirs(folder, exist_ok=True)
    roll_path, com_path = os.path.join(folder, f"roll_{n_depts}.csv"), os.path.join(folder, f"communes_{n_depts}.gpkg")
    if os.path.exists(roll_path) and os.path.exists(com_path):
        return roll_path, com_path
    com = gpd.read_file(os.path.join(DATA, "communes", "94_communes_adminexpress2018.geojson")).to_crs(2154)
    com = com.sort_values("code", ignore_index=True)
    src = pd.read_csv(os.path.join(DATA, "reu", "94_electoral_lists_2019_geocoded.csv.bz2"), dtype=str)
    citycode = src["result_citycode"].str[:5]
    src = src[citycode.isin(com["code"]) & src["longitude"].notna() & src["latitude"].notna()]
    x, y = Transformer.from_crs(4326, 2154, always_xy=True).transform(src["longitude"].astype(float).to_numpy(),
                                                                      src["latitude"].astype(float).to_numpy())
    number = dict(zip(com["code"], range(1, len(com) + 1)))
    which = src["result_citycode"].str[:5].map(number).to_numpy()
    cx, cy = shapely.centroid(shapely.union_all(com.geometry.values)).coords[0]
    to_lonlat = Transformer.from_crs(2154, 4326, always_xy=True)
    depts = [d for d in ALL_DEPTS if not d.startswith("97")][:n_depts]
    coms, first = [], True
    for i, d in enumerate(depts):
        ox, oy = 100000 + 60000 * (i % 16), 6100000 + 60000 * (i // 16)  # 60 km apart: the 94 is 30 km wide
        code = np.array([f"{d}{k:03d}" for k in range(1, len(com) + 1)])
        lon, lat = to_lonlat.transform(x - cx + ox, y - cy + oy)
        pd.DataFrame({"id_brut_bv_reu": np.char.add(np.char.add(code[which - 1], "_"), src["bureau"].to_numpy(str)),
                      "code_commune_ref": code[which - 1], "longitude": np.round(lon, 6), "latitude": np.round(lat, 6),
                      "geo_type": src["result_type"].to_numpy(), "geo_score": src["result_score"].to_numpy(),
                      "nb_adresses": 1, "geo_adresse": src["result_label"].to_numpy()}).to_csv(
            roll_path, mode="w" if first else "a", header=first, index=False)
        first = False
        moved = shapely.transform(com.geometry.values, partial(np.add, [ox - cx, oy - cy]))
        coms.append(gpd.GeoDataFrame({"code": code, "nom": [f"Commune {c}" for c in code]}, geometry=moved,
                                     crs=2154).to_crs(4326))
    pd.concat(coms, ignore_index=True).pipe(gpd.GeoDataFrame, crs=4326).to_file(com_path)
    return roll_path, com_path


def case_france(method: str, sizes=(1, 4, 16, 102), synth=None) -> list:
    """Wall time, CPU time and peak memory (this process, and the largest worker) of national builds of
    1, 4, 16 and all 102 départements of the synthetic France (``synth_france``), plain Voronoi; with
    ``--method streets``, street lines already cached (a 250 m grid over each département, as files).
    *synth*: another generator of (roll, communes) by number of départements (:func:`synth_france_labelled`)."""
    import tempfile

    from decoupage_bv import Params
    from decoupage_bv.national import ALL_DEPTS, build_departements

    method = "streets" if method == "streets" else "voronoi"
    case = "france" if synth is None else "france_labelled"
    synth = synth or synth_france
    out = []
    for n in sizes:
        roll, com = synth(n)
        streets = synth_streets(com, list(ALL_DEPTS[:n])) if method == "streets" else None
        t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        k0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryDirectory() as cache:
            r = build_departements(list(ALL_DEPTS[:n]), roll, com, params=Params(method=method, jobs=2),
                                   cache_dir=cache, streets=streets)
        c1, k1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) + (k1.ru_utime + k1.ru_stime
                                                                        - k0.ru_utime - k0.ru_stime)
        out.append({"case": case, "method": method, "departements": n, "rows": int(r.report["counts"]["address_rows"]),
                    "bv": int(r.report["counts"]["bv_drawn"]), "seconds": round(time.perf_counter() - t0, 1),
                    "cpu_seconds": round(cpu, 1), "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                                   / 1024), "worker_peak_mb": round(_children_peak_mb())})
    return out


CASES = {"paris": case_paris, "dept31": case_dept31, "accuracy": case_accuracy, "noise": case_noise,
         "cv": case_cv, "cv_guides": case_cv_guides, "cv_axes": case_cv_axes, "cv_handout": case_cv_handout,
         "cv_blocks": case_cv_blocks, "cv_leftover": case_cv_leftover, "cv_joins": case_cv_joins,
         "cv_extension": case_cv_extension, "cv_empty": case_cv_empty, "cv_straight": case_cv_straight,
         "cv_facades": case_cv_facades,
         "cv_empty_pair": case_cv_empty_pair, "cv_depth": case_cv_depth, "cv_wood": case_cv_wood,
         "cv_strips": case_cv_strips, "cv_one_sided": case_cv_one_sided, "cv_points": case_cv_points,
         "cv_rejoin": case_cv_rejoin,
         "arrondissements": case_arrondissements, "where": case_where,
         "speed": case_speed,
         "suburbs": case_suburbs, "france": case_france,
         "france_small": lambda method: case_france(method, sizes=(1, 4, 16)),
         "france_labelled": lambda method: case_france(method, sizes=(1, 4, 16, 96), synth=synth_france_labelled)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=[*CASES, "all"])
    ap.add_argument("--method", default="all", help="voronoi, streets, plain (accuracy cases), or all")
    ap.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.inline:
        res = CASES[a.case](a.method)
        for r in (res if isinstance(res, list) else [res]):
            print(json.dumps(r), flush=True)
        return
    for case in (CASES if a.case == "all" else [a.case]):
        out = subprocess.run([sys.executable, __file__, case, "--method", a.method, "--inline"],
                             capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr.strip().splitlines()[-1])
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
