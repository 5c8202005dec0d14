"""Benchmarks: speed and peak memory of a build, accuracy on Paris 1er–10e.

    python bench/bench.py paris        # build Paris 1er–10e from paris_dev/roll.csv: time, memory
    python bench/bench.py dept31       # ~300 k synthetic addresses over the 586 communes of 31: time, memory
    python bench/bench.py accuracy     # Paris 1er–10e, 20 % of addresses left out, 5 folds
    python bench/bench.py all

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

    t = time.perf_counter()
    r = build(os.path.join(DATA, "paris_dev", "roll.csv"), os.path.join(DATA, "paris_dev", "communes.geojson"),
              params=Params(method=method))
    return {"case": "paris", "method": method, "addresses": r.report["counts"]["address_rows"],
            "bv": r.report["counts"]["bv_drawn"], "seconds": round(time.perf_counter() - t, 2),
            "peak_mb": round(_peak_mb())}


def synth_dept31(n_total: int = 300_000, seed: int = 0) -> tuple[pd.DataFrame, object]:
    """~*n_total* addresses over the real 586 outlines of 31, by population; BVs of ~1,000 inhabitants."""
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

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
        label = np.argmin(((pts[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2), axis=1) + 1
        rows.append(pd.DataFrame({"bv": [f"{code}_{b}" for b in label], "commune": code,
                                  "x": pts[:, 0], "y": pts[:, 1]}))
    df = pd.concat(rows, ignore_index=True)
    lon, lat = Transformer.from_crs(2154, 4326, always_xy=True).transform(df["x"].to_numpy(), df["y"].to_numpy())
    df = df.drop(columns=["x", "y"]).assign(lon=lon, lat=lat, geo_type="housenumber", geo_score=0.95, count=1)
    return df, com


def case_dept31(method: str) -> dict:
    from decoupage_bv import Params, build

    roll, com = synth_dept31()
    t = time.perf_counter()
    r = build(roll, com, dept="31", params=Params(method=method, jobs=2))
    return {"case": "dept31_synthetic", "method": method, "addresses": len(roll), "communes": len(com),
            "bv": r.report["counts"]["bv_drawn"], "seconds": round(time.perf_counter() - t, 2),
            "peak_mb": round(_peak_mb())}


def case_accuracy(method: str, folds: int = 5, seed: int = 0) -> dict:
    """K-fold: each fold leaves out 1/k of the addresses (20 % for k = 5), builds, scores."""
    from decoupage_bv import Params, build
    from decoupage_bv.evaluate import evaluate

    roll = _canonical(pd.read_csv(os.path.join(DATA, "paris_dev", "roll.csv"), dtype=str))
    fold = np.random.default_rng(seed).integers(0, folds, size=len(roll))
    official = os.path.join(DATA, "paris_dev", "official.geojson")
    com = os.path.join(DATA, "paris_dev", "communes.geojson")
    scores = []
    for k in range(folds):
        r = build(roll[fold != k], com, params=Params(method=method))
        scores.append(evaluate(r.polygons, official, test_addresses=roll[fold == k]))
    keys = ["area_agreement", "v_measure", "address_accuracy"]
    out = {"case": "accuracy_paris_5fold", "method": method}
    for key in keys:
        v = np.array([s[key] for s in scores])
        out[key] = round(float(v.mean()), 4)
        out[key + "_sd"] = round(float(v.std()), 4)
    return out


CASES = {"paris": case_paris, "dept31": case_dept31, "accuracy": case_accuracy}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=[*CASES, "all"])
    ap.add_argument("--method", default="voronoi")
    ap.add_argument("--inline", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.inline:
        print(json.dumps(CASES[a.case](a.method)))
        return
    for case in (CASES if a.case == "all" else [a.case]):
        out = subprocess.run([sys.executable, __file__, case, "--method", a.method, "--inline"],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
