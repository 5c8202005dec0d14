"""From roll rows to tessellation seeds: resolve communes, check coordinates, filter, de-duplicate.

Every row that does not become (part of) a seed is counted under a reason; every BV of the roll is kept in
the BV table, with or without seeds, so that nothing is lost silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from . import codes
from ._errors import InputError
from ._grid import nearest_of_k
from .settings import Params
from .sources import parse_numbers


@dataclass
class Points:
    """Seeds, BVs and tessellation units of one build, in a metric CRS.

    ``units``: GeoDataFrame ``unit``, ``nom``, ``geometry`` — the polygons to tile (communes, or a whole
    city whose BVs come by arrondissement). ``bvs``: one row per BV of the roll (``bv`` index, ``unit``,
    ``code_insee``, ``id_brut_bv_reu``, ``code_bv``, ``code_note``, ``n_adresses``, ``n_rows``, ``n_points``).
    ``seeds``: ``unit``, ``bv``, ``x``, ``y``, ``weight`` (addresses), ``score``.
    """

    units: gpd.GeoDataFrame
    bvs: pd.DataFrame
    seeds: pd.DataFrame
    crs: str
    drops: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    unknown_communes: list = field(default_factory=list)
    #: rows dropped per BV index and reason: ``{bv: Counter}``
    bv_drops: dict = field(default_factory=dict)
    #: the addresses street-side guides are laid from (``unit``, ``bv``, ``x``, ``y``, ``address``): the seeds'
    #: rows before co-located ones merge; :func:`guides.street_guides` lays them, commune by commune, in the
    #: workers of :func:`tessellation.tessellate`
    guide_rows: pd.DataFrame | None = None


def normalise_name(name: str) -> str:
    """Upper-case, accent-free, article-free, ``ST``→``SAINT`` form of a commune name, for matching lists."""
    s = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().upper()
    s = re.sub(r"[^A-Z0-9]+", " ", s).strip()
    s = re.sub(r"\bSTE\b", "SAINTE", s)
    s = re.sub(r"\bST\b", "SAINT", s)
    return re.sub(r"^(LE|LA|LES|L) ", "", s)  # outlines and lists disagree on leading articles


_CONTROL = re.compile(r"[\x00-\x1f]")


def canonical_bv_id(raw: str) -> str:
    """One spelling per BV: a numeric label loses its leading zeros (``'0001'`` and ``'1'`` are one BV)."""
    prefix, label = codes.split_raw_bv(raw)
    if label.isdigit():
        label = str(int(label))
        return f"{prefix}_{label}" if prefix else label
    return raw.strip()


def build_units(communes: gpd.GeoDataFrame, roll_codes: set) -> tuple[gpd.GeoDataFrame, dict]:
    """Choose the polygons to tile and map each roll commune code to one of them.

    Paris, Lyon and Marseille may come by arrondissement in the roll, the outlines, or both: arrondissement
    outlines are used when the roll is by arrondissement; a roll by arrondissement over a whole-city outline
    tiles the city; a whole-city roll over arrondissement outlines tiles their union.
    """
    com = communes.set_index("code")
    codes_present = set(com.index)
    drop, merge = set(), {}
    for parent in sorted(codes.ARM_PARENTS):
        arms = sorted(c for c in codes_present if codes.arrondissement_parent(c) == parent)
        roll_arms = any(codes.arrondissement_parent(c) == parent for c in roll_codes)
        roll_parent = parent in roll_codes
        if arms and parent in codes_present:
            drop |= ({parent} if roll_arms and not roll_parent else set(arms))
        elif arms and roll_parent and not roll_arms:
            merge[parent] = arms
    keep = com.drop(index=sorted(drop))
    merged = {c for arms in merge.values() for c in arms}
    rows = [(c, nom, geom) for c, nom, geom in zip(keep.index, keep["nom"], keep.geometry.values) if c not in merged]
    for parent, arms in merge.items():
        rows.append((parent, _city_name(com.loc[arms[0], "nom"]), shapely.union_all(com.loc[arms].geometry.values)))
    units = gpd.GeoDataFrame(rows, columns=["unit", "nom", "geometry"], crs=communes.crs)
    units = units.sort_values("unit").reset_index(drop=True)
    unit_codes = set(units["unit"])
    mapping = {}
    for c in roll_codes:
        if c in unit_codes:
            mapping[c] = c
        elif codes.arrondissement_parent(c) in unit_codes:
            mapping[c] = codes.arrondissement_parent(c)
    return units, mapping


def _city_name(arm_name: str) -> str:
    return re.split(r"\s+\d", str(arm_name))[0] or str(arm_name)


def prepare_points(roll: pd.DataFrame, communes: gpd.GeoDataFrame, crs: str, params: Params = Params(),
                   bv_codes: dict | None = None, source: str = "addresses") -> Points:
    """Turn canonical roll rows (see :func:`sources.read_roll`) into seeds per commune.

    *bv_codes* optionally maps raw BV ids to Ministry ids (from ``table-bv-reu``'s ``id_brut_miom``).
    """
    drops: Counter = Counter()
    notes: Counter = Counter()
    df = roll.copy()
    n0 = len(df)

    inverse, uniq = pd.factorize(df["bv"].fillna("").astype(str), use_na_sentinel=False)
    raw = np.array([canonical_bv_id(v.strip()) for v in uniq], dtype=object)  # once per distinct id
    bad = np.array([r == "" or _CONTROL.search(r) is not None for r in raw], dtype=bool)
    bad_id = bad[inverse]
    drops["missing_or_malformed_bv_id"] += int(bad_id.sum())
    df = _rows(df, ~bad_id).assign(bv=raw[inverse[~bad_id]])

    df["code_insee"] = _resolve_communes(df, communes, notes)
    roll_codes = set(df["code_insee"].dropna().unique())
    units, unit_of = build_units(communes, roll_codes)
    df["unit"] = codes.map_distinct(df["code_insee"], unit_of.get)
    unknown = df[df["unit"].isna()]
    unknown_communes = []
    if len(unknown):
        label = unknown["code_insee"].fillna(unknown.get("commune_name", pd.Series("", index=unknown.index)))
        for key, grp in unknown.groupby(label.fillna("?"), sort=True):
            unknown_communes.append({"commune": str(key), "rows": int(len(grp)),
                                     "bvs": sorted(grp["bv"].unique().tolist())[:50]})
        drops["unknown_commune"] += len(unknown)
    df = _rows(df, df["unit"].notna().to_numpy()).copy()

    df["weight"] = _counts(df, notes)
    bvs, df["bv_index"] = _bv_table(df, bv_codes)
    prefixes = [codes.split_raw_bv(r)[0] for r in bvs["id_brut_bv_reu"]]
    mismatch = np.array([p is not None and p != c for p, c in zip(prefixes, bvs["code_insee"])], dtype=bool)
    notes["bv_id_prefix_differs_from_commune"] += int(bvs["n_rows"].to_numpy()[mismatch].sum())

    bv_drops: dict = {}

    def drop(reason, mask):
        """Count the rows of *df* under *mask* as dropped for *reason*, in total and per BV."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n:
            drops[reason] += n
            for b, k in zip(*np.unique(df["bv_index"].to_numpy()[mask], return_counts=True)):
                bv_drops.setdefault(int(b), Counter())[reason] += int(k)

    lon = parse_numbers(df["lon"]) if "lon" in df else pd.Series(np.nan, index=df.index)
    lat = parse_numbers(df["lat"]) if "lat" in df else pd.Series(np.nan, index=df.index)
    missing = lon.isna() | lat.isna()
    invalid = ~missing & ((lon.abs() > 180) | (lat.abs() > 90) | ((lon == 0) & (lat == 0)))
    _check_not_metric(lon[invalid], lat[invalid], int((~missing).sum()), source)
    drop("missing_coordinates", missing)
    drop("invalid_coordinates", invalid)
    ok = ~(missing | invalid)
    df, lon, lat = _rows(df, ok.to_numpy()), _rows(lon, ok.to_numpy()), _rows(lat, ok.to_numpy())

    keep = np.ones(len(df), dtype=bool)
    if "geo_type" in df:
        gt = df["geo_type"].fillna("").str.strip().str.lower()
        weak = ~gt.isin([t.lower() for t in params.geo_types]).to_numpy()
        drop("weak_geocoding_type", weak)
        keep &= ~weak
    score = parse_numbers(df["geo_score"]).to_numpy() if "geo_score" in df else np.full(len(df), np.nan)
    low = keep & (score < params.min_score)
    drop("low_geocoding_score", low)
    keep &= ~low
    if "citycode" in df:
        cc = codes.map_distinct(df["citycode"].fillna("").astype(str).str.strip(),
                                lambda c: codes.normalise_commune(c) or "")
        city = lambda c: codes.arrondissement_parent(c) or c  # noqa: E731
        same = (cc == df["code_insee"]) | (codes.map_distinct(cc, city) == codes.map_distinct(df["code_insee"], city))
        other = keep & (cc != "").to_numpy() & ~same.to_numpy()
        drop("geocoded_in_other_commune", other)
        keep &= ~other
    df, lon, lat, score = _rows(df, keep), _rows(lon, keep), _rows(lat, keep), score[keep]

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon.to_numpy(), lat.to_numpy())
    units_m = units.to_crs(crs)
    unit_geom = dict(zip(units_m["unit"], units_m.geometry.values))
    for g in unit_geom.values():
        shapely.prepare(g)
    unit_code, unit_names = pd.factorize(df["unit"], sort=True)  # integers from here on: faster than strings
    own = np.array([unit_geom[u] for u in unit_names] + [None], dtype=object)[unit_code]
    inside = shapely.contains_xy(own, x, y) if len(df) else np.zeros(0, dtype=bool)
    edge = np.flatnonzero(~inside)  # within the tolerance of the outline counts as inside
    inside[edge] = shapely.dwithin(own[edge], shapely.points(x[edge], y[edge]), params.outside_tolerance)
    if len(df) >= 10 and inside.mean() < 0.5:
        _check_not_swapped(own, lon.to_numpy(), lat.to_numpy(), crs, params, source)
    drop("outside_commune", ~inside)
    pts_df = pd.DataFrame({"unit": unit_code, "bv": df["bv_index"].to_numpy(), "x": x, "y": y,
                           "weight": df["weight"].to_numpy(), "score": np.nan_to_num(score, nan=0.0)})[inside]
    df = _rows(df, inside)

    keep = _outliers_kept(pts_df, params)
    drop("bv_outlier", ~keep)
    guide_rows = None
    if params.guides and "address" in df:
        kept = pts_df[keep]
        guide_rows = pd.DataFrame({"unit": np.asarray(unit_names, dtype=object)[kept["unit"].to_numpy()],
                                   "bv": kept["bv"].to_numpy(), "x": kept["x"].to_numpy(), "y": kept["y"].to_numpy(),
                                   "address": df["address"].to_numpy()[keep]})
    seeds, lost = _colocate(pts_df[keep], params.colocation_grid, unit_names)
    drops["co_located_with_other_bv"] += int(lost["rows"].sum())
    for b, k in zip(lost["bv"], lost["rows"]):
        bv_drops.setdefault(int(b), Counter())["co_located_with_other_bv"] += int(k)
    assert sum(drops.values()) + int(seeds["rows"].sum()) == n0, "row accounting"
    seeds = seeds.drop(columns="rows")

    n_points = seeds.groupby("bv").size()
    bvs["n_points"] = bvs["bv"].map(n_points).fillna(0).astype(int)
    return Points(units=units_m, bvs=bvs, seeds=seeds, crs=crs, drops=Counter({k: v for k, v in drops.items() if v}),
                  notes=Counter({k: v for k, v in notes.items() if v}), unknown_communes=unknown_communes,
                  bv_drops=bv_drops, guide_rows=guide_rows)


def rows_by_unit(df: pd.DataFrame) -> dict:
    """Row positions of each unit of *df* (column ``unit``), units in sorted order: one sort, not a pandas
    groupby per unit."""
    codes_, uniq = pd.factorize(df["unit"], sort=True)
    order = np.argsort(codes_, kind="stable")
    return dict(zip(uniq, np.split(order, np.searchsorted(codes_[order], np.arange(1, len(uniq))))))


def _rows(frame, mask: np.ndarray):
    """``frame[mask]``, without the copy when every row is kept (a wide frame of strings copies slowly)."""
    return frame if mask.all() else frame[mask]


def _check_not_metric(lon: pd.Series, lat: pd.Series, n_with_coordinates: int, source: str) -> None:
    """Lambert-93 (or another metric CRS) in the longitude/latitude columns: say so instead of dropping it all."""
    if n_with_coordinates == 0 or len(lon) < 0.5 * n_with_coordinates:
        return
    lambert = ((lon.between(50_000, 1_300_000) & lat.between(6_000_000, 7_200_000))
               | (lat.between(50_000, 1_300_000) & lon.between(6_000_000, 7_200_000)))
    what = "Lambert-93 (EPSG:2154) metres" if lambert.mean() > 0.5 else "numbers outside longitude/latitude ranges"
    raise InputError(f"{source}: {len(lon)} of {n_with_coordinates} rows have {what} in the longitude/latitude "
                     "columns (first: " + f"{lon.iloc[0]:g}, {lat.iloc[0]:g}); give WGS84 degrees (EPSG:4326)")


def _check_not_swapped(own, lon: np.ndarray, lat: np.ndarray, crs: str, params: Params, source: str) -> None:
    """Most points outside their commune but inside it once longitude and latitude trade places: say so."""
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lat, lon)
    ok = np.isfinite(x) & np.isfinite(y)
    swapped = np.zeros(len(lon), dtype=bool)
    swapped[ok] = shapely.dwithin(own[ok], shapely.points(x[ok], y[ok]), params.outside_tolerance)
    if swapped.mean() > 0.5:
        raise InputError(f"{source}: longitude and latitude look swapped ({swapped.mean():.0%} of the points fall "
                         "in their commune once exchanged); map them with --col lon=<latitude column> "
                         "--col lat=<longitude column>")


def _counts(df: pd.DataFrame, notes: Counter) -> np.ndarray:
    if "count" not in df:
        return np.ones(len(df), dtype=np.int64)
    c = parse_numbers(df["count"])
    bad = c.isna() | (c < 1)
    notes["address_count_missing_set_to_1"] += int(bad.sum())
    return c.where(~bad, 1).round().astype(np.int64).to_numpy()


def _resolve_communes(df: pd.DataFrame, communes: gpd.GeoDataFrame, notes: Counter) -> pd.Series:
    """INSEE code per row: from the code column, else by name (then the geocoder's citycode) against the outlines."""
    if "commune" in df:
        return codes.map_distinct(df["commune"], codes.normalise_commune)
    by_name: dict = {}
    for code, nom in zip(communes["code"], communes["nom"]):
        by_name.setdefault(normalise_name(nom), set()).add(code)
    unique = {k: next(iter(v)) for k, v in by_name.items() if len(v) == 1}
    names = codes.map_distinct(df["commune_name"].fillna(""), normalise_name)
    out = names.map(unique)
    if "citycode" in df:
        known = set(communes["code"])
        cc = codes.map_distinct(df["citycode"], codes.normalise_commune)
        fill = out.isna() & cc.isin(known)
        notes["commune_taken_from_geocoder_citycode"] += int(fill.sum())
        out = out.where(~fill, cc)
    return out


def _bv_table(df: pd.DataFrame, bv_codes: dict | None) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (commune, raw BV id), numbered in (commune, code_bv) order; and each row's BV number."""
    ci_inv, ci_uniq = pd.factorize(df["code_insee"])
    bv_inv, bv_uniq = pd.factorize(df["bv"])
    pair_inv, pair_uniq = pd.factorize(ci_inv.astype(np.int64) * len(bv_uniq) + bv_inv)
    first = np.zeros(len(pair_uniq), dtype=np.int64)
    first[pair_inv[::-1]] = np.arange(len(pair_inv))[::-1]  # first row of each pair
    g = pd.DataFrame({"code_insee": np.asarray(ci_uniq, dtype=object)[pair_uniq // len(bv_uniq)],
                      "id_brut_bv_reu": np.asarray(bv_uniq, dtype=object)[pair_uniq % len(bv_uniq)],
                      "unit": df["unit"].to_numpy()[first],
                      "n_adresses": np.bincount(pair_inv, weights=df["weight"].to_numpy()).astype(np.int64),
                      "n_rows": np.bincount(pair_inv), "pair": np.arange(len(pair_uniq))})
    g = g.sort_values(["code_insee", "id_brut_bv_reu"]).reset_index(drop=True)
    code_bv, note = [], []
    commune, raws = g["code_insee"].tolist(), g["id_brut_bv_reu"].tolist()  # sorted by commune
    starts = [0] + [i for i in range(1, len(commune)) if commune[i] != commune[i - 1]] + [len(commune)]
    for a, b in zip(starts[:-1], starts[1:]):
        labels = {}
        for raw in raws[a:b]:
            src = bv_codes.get(raw, raw) if bv_codes else raw
            labels[raw] = codes.split_raw_bv(src)[1]
        assigned = codes.assign_codes_bv(set(labels.values()))
        for raw in raws[a:b]:
            c, n = assigned[labels[raw]]
            code_bv.append(c)
            note.append(n)
    g["code_bv"] = code_bv
    g["code_note"] = note
    g = g.sort_values(["code_insee", "code_bv", "id_brut_bv_reu"]).reset_index(drop=True)
    g.insert(0, "bv", np.arange(len(g)))
    dup = g.duplicated(["code_insee", "code_bv"], keep=False)
    g.loc[dup, "code_note"] = "ambiguous"
    bv_of_pair = np.empty(len(g), dtype=np.int64)
    bv_of_pair[g["pair"].to_numpy()] = g["bv"].to_numpy()
    return g.drop(columns="pair"), bv_of_pair[pair_inv]


def _outliers_kept(pts: pd.DataFrame, params: Params) -> np.ndarray:
    """Mask of points kept: outliers lie far from every point of their BV yet close to another BV's points.

    A point that shares a grid cell of diagonal ``outlier_min_distance`` with another location of its BV
    cannot be one; only the others (few) are measured, against their BV's locations and their unit's points.
    """
    keep = np.ones(len(pts), dtype=bool)
    if not len(pts):
        return keep
    x, y, bv = pts["x"].to_numpy(), pts["y"].to_numpy(), pts["bv"].to_numpy().astype(np.int64)
    cell = 0.999 * params.outlier_min_distance / np.sqrt(2)
    alone = np.ones(len(pts), dtype=bool)
    for shift in (0.0, 0.5):  # a second grid, shifted half a cell, clears most points near cell edges
        gx, gy = np.floor(x / cell + shift).astype(np.int64), np.floor(y / cell + shift).astype(np.int64)
        key = (bv << 42) | ((gx - gx.min()) << 21) | (gy - gy.min())
        g = pd.DataFrame({"key": key, "x": x, "y": y}).groupby("key", sort=False)
        alone &= ((g["x"].transform("min") == g["x"].transform("max"))
                  & (g["y"].transform("min") == g["y"].transform("max"))).to_numpy()
    if not alone.any():
        return keep
    unit, base = pts["unit"].to_numpy().astype(np.int64), int(bv.max()) + 1
    key = unit * base + bv  # one BV of one unit
    mixed_unit = np.bincount(np.unique(key) // base)[unit] > 1
    # the BVs with a point to measure, in three places or more
    rows = np.flatnonzero(np.isin(key, np.unique(key[alone & mixed_unit])))
    place = _ids(key[rows], x[rows].view(np.int64), y[rows].view(np.int64))
    first = rows[np.unique(place, return_index=True)[1]]  # one row per place, in place order
    group = np.unique(key[first], return_inverse=True)[1]
    cand = rows[alone[rows] & (np.bincount(group)[group[place]] >= 3)]
    if not len(cand):
        return keep
    # the nearest other location of its BV, each BV set apart from the others (one grid search, no loop)
    x0, y0 = x.min(), y.min()
    gap = float(np.ptp(x)) + 1.0
    near = nearest_of_k(np.c_[x[first] - x0 + group * gap, y[first] - y0], np.inf, len(first),
                        lambda i, j: (group[j] == group[i]) & (i != j), first=params.outlier_min_distance,
                        query=place[np.searchsorted(rows, cand)])
    d_own = _distance(np.c_[x[cand], y[cand]], np.c_[x[first[near]], y[first[near]]])
    far = d_own > params.outlier_min_distance
    cand, d_own = cand[far], d_own[far]
    if not len(cand):
        return keep
    # among its 16 nearest points of its unit, another BV's nearest: farther than d_own / factor, it decides
    # nothing
    reach = float(d_own.max()) / params.outlier_factor
    rows = np.flatnonzero(np.isin(unit, unit[cand]))
    unit_code, b = pd.factorize(unit[rows])[0], bv[rows]
    gap = float(np.ptp(x)) + 2 * reach + 1.0
    other = nearest_of_k(np.c_[x[rows] - x0 + unit_code * gap, y[rows] - y0], reach, 16,
                         lambda i, j: b[j] != b[i], first=params.outlier_min_distance / params.outlier_factor,
                         query=np.searchsorted(rows, cand))
    other = np.where(other >= 0, rows[other], -1)
    d_other = np.where(other >= 0, _distance(np.c_[x[cand], y[cand]], np.c_[x[other], y[other]]), np.inf)
    keep[cand[d_own > params.outlier_factor * d_other]] = False
    return keep


def _ids(*columns: np.ndarray) -> np.ndarray:
    """One integer per distinct row of *columns* (integer arrays), in sorted order of the rows."""
    order = np.lexsort(columns[::-1])
    new = np.r_[True, np.any([c[order][1:] != c[order][:-1] for c in columns], axis=0)]
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.cumsum(new) - 1
    return out


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dx, dy = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    return np.sqrt(dx * dx + dy * dy)


def _cell_ids(unit: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """An integer per row, equal when (unit, gx, gy) are and ordered like them: packed bits when they fit."""
    gx0, gy0 = gx - gx.min(), gy - gy.min()
    bx, by = int(gx0.max()).bit_length(), int(gy0.max()).bit_length()
    if int(unit.max()).bit_length() + bx + by <= 62:
        return (unit.astype(np.int64) << (bx + by)) | (gx0 << by) | gy0
    return _ids(unit, gx, gy)


def _bv_within_unit(unit: np.ndarray, bv: np.ndarray) -> bool:
    """Whether sorting by BV index also sorts by unit (BV indices are numbered commune by commune)."""
    o = np.argsort(bv, kind="stable")
    return bool((np.diff(unit[o]) >= 0).all())


def _colocate(pts: pd.DataFrame, grid: float, unit_names) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One seed per location: the BV with most addresses there, then best score, then lowest BV index.

    A BV that would lose all its locations this way takes back the one where it weighs most, unless that
    leaves the location's winner without any seed.
    """
    if not len(pts):
        empty = pd.DataFrame(columns=["unit", "bv", "x", "y", "weight", "score", "rows"])
        return empty, empty[["bv", "rows"]]
    unit = pts["unit"].to_numpy()  # codes into *unit_names*, in sorted order
    x, y = pts["x"].to_numpy(dtype=float), pts["y"].to_numpy(dtype=float)
    gx, gy = np.round(x / grid).astype(np.int64), np.round(y / grid).astype(np.int64)
    bv, weight, score = pts["bv"].to_numpy(), pts["weight"].to_numpy(), pts["score"].to_numpy(dtype=float)
    # one row per (unit, cell, BV), in numpy: a pandas groupby over 4 keys costs more than the rest together
    cell = _cell_ids(unit, gx, gy)
    o = np.lexsort((bv, cell))
    cell_o, bv_o = cell[o], bv[o]
    starts = np.flatnonzero(np.r_[True, (cell_o[1:] != cell_o[:-1]) | (bv_o[1:] != bv_o[:-1])])
    n = np.diff(np.r_[starts, len(o)])
    C, B, U, GX, GY = cell_o[starts], bv_o[starts], unit[o][starts], gx[o][starts], gy[o][starts]
    X, Y = np.add.reduceat(x[o], starts) / n, np.add.reduceat(y[o], starts) / n
    W, S = np.add.reduceat(weight[o], starts), np.maximum.reduceat(score[o], starts)
    win = np.r_[True, C[1:] != C[:-1]]  # a location's first row
    loc = np.cumsum(win) - 1
    shared = np.flatnonzero(np.bincount(loc)[loc] > 1)  # rows of locations held by several BVs (few)
    best = np.arange(len(B))
    best[shared] = shared[np.lexsort((B[shared], -S[shared], -W[shared], loc[shared]))]  # the winner first
    GX, GY, B, X, Y, W, S, n = (a[best] for a in (GX, GY, B, X, Y, W, S, n))
    losers = np.setdiff1d(B, B[win])
    if len(losers):
        seeds_per_bv = Counter(B[win].tolist())
        winner = np.flatnonzero(win)  # winner[loc]: row position of the location's current seed
        cand = np.flatnonzero(np.isin(B, losers))
        cand = cand[np.lexsort((cand, -S[cand], -W[cand], B[cand]))]
        done = set()
        for i in cand:
            cur, b = winner[loc[i]], B[i]
            if b in done or seeds_per_bv[B[cur]] <= 1:
                continue
            win[cur], win[i], winner[loc[i]] = False, True, i
            seeds_per_bv[B[cur]] -= 1
            seeds_per_bv[b] = 1
            done.add(b)
    lost = pd.DataFrame({"bv": B[~win], "rows": n[~win]})
    k = np.flatnonzero(win)  # in (unit, cell) order: a stable sort by BV gives (unit, BV, cell)
    if _bv_within_unit(U[k], B[k]):
        k = k[np.argsort(B[k], kind="stable")]
    else:
        k = k[np.lexsort((GY[k], GX[k], B[k], U[k]))]
    seeds = pd.DataFrame({"unit": pd.Categorical.from_codes(U[k], categories=unit_names), "bv": B[k],
                          "x": X[k], "y": Y[k], "weight": W[k], "score": S[k], "rows": n[k]})
    return seeds.reset_index(drop=True), lost
