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
from scipy.spatial import cKDTree

from . import codes
from ._errors import InputError
from .guides import street_guides
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
    #: street-side guide points (``unit``, ``bv``, ``x``, ``y``), see :mod:`guides`
    guides: pd.DataFrame | None = None


def normalise_name(name: str) -> str:
    """Upper-case, accent-free, article-free, ``ST``→``SAINT`` form of a commune name, for matching lists."""
    s = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode().upper()
    s = re.sub(r"[^A-Z0-9]+", " ", s).strip()
    s = re.sub(r"\bSTE\b", "SAINTE", s)
    s = re.sub(r"\bST\b", "SAINT", s)
    return re.sub(r"^(LE|LA|LES|L) ", "", s)  # outlines and lists disagree on leading articles


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

    raw = codes.map_distinct(df["bv"].fillna("").astype(str).str.strip(), canonical_bv_id)
    bad_id = (raw == "") | raw.str.contains(r"[\x00-\x1f]", regex=True)
    drops["missing_or_malformed_bv_id"] += int(bad_id.sum())
    df = df[~bad_id].assign(bv=raw[~bad_id])

    df["code_insee"] = _resolve_communes(df, communes, notes)
    roll_codes = set(df["code_insee"].dropna())
    units, unit_of = build_units(communes, roll_codes)
    df["unit"] = df["code_insee"].map(unit_of)
    unknown = df[df["unit"].isna()]
    unknown_communes = []
    if len(unknown):
        label = unknown["code_insee"].fillna(unknown.get("commune_name", pd.Series("", index=unknown.index)))
        for key, grp in unknown.groupby(label.fillna("?"), sort=True):
            unknown_communes.append({"commune": str(key), "rows": int(len(grp)),
                                     "bvs": sorted(grp["bv"].unique().tolist())[:50]})
        drops["unknown_commune"] += len(unknown)
    df = df[df["unit"].notna()].copy()

    prefixes = codes.map_distinct(df["bv"], lambda r: codes.split_raw_bv(r)[0])
    mismatch = prefixes.notna() & (prefixes != df["code_insee"])
    notes["bv_id_prefix_differs_from_commune"] += int(mismatch.sum())

    df["weight"] = _counts(df, notes)
    bvs = _bv_table(df, bv_codes)
    key = pd.MultiIndex.from_frame(df[["code_insee", "bv"]])
    df["bv_index"] = bvs.set_index(["code_insee", "id_brut_bv_reu"])["bv"].reindex(key).to_numpy()

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
    df, lon, lat = df[ok], lon[ok], lat[ok]

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
    df, lon, lat, score = df[keep], lon[keep], lat[keep], score[keep]

    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon.to_numpy(), lat.to_numpy())
    units_m = units.to_crs(crs)
    unit_geom = dict(zip(units_m["unit"], units_m.geometry.values))
    for g in unit_geom.values():
        shapely.prepare(g)
    pts = shapely.points(x, y)
    unit_codes, unit_index = pd.factorize(df["unit"])
    own = np.array([unit_geom[u] for u in unit_index] + [None], dtype=object)[unit_codes]
    inside = shapely.dwithin(own, pts, params.outside_tolerance) if len(df) else np.zeros(0, dtype=bool)
    if len(df) >= 10 and inside.mean() < 0.5:
        _check_not_swapped(own, lon.to_numpy(), lat.to_numpy(), crs, params, source)
    drop("outside_commune", ~inside)
    pts_df = pd.DataFrame({"unit": df["unit"].to_numpy(), "bv": df["bv_index"].to_numpy(), "x": x, "y": y,
                           "weight": df["weight"].to_numpy(), "score": np.nan_to_num(score, nan=0.0)})[inside]
    df = df[inside]

    keep = _outliers_kept(pts_df, params)
    drop("bv_outlier", ~keep)
    guides = None
    if params.guides and "address" in df:
        kept = pts_df[keep]
        guides = street_guides(kept["unit"].to_numpy(), kept["bv"].to_numpy(), kept["x"].to_numpy(),
                               kept["y"].to_numpy(), df["address"].to_numpy()[keep], params)
    seeds, lost = _colocate(pts_df[keep], params.colocation_grid)
    drops["co_located_with_other_bv"] += int(lost["rows"].sum())
    for b, k in zip(lost["bv"], lost["rows"]):
        bv_drops.setdefault(int(b), Counter())["co_located_with_other_bv"] += int(k)
    assert sum(drops.values()) + int(seeds["rows"].sum()) == n0, "row accounting"
    seeds = seeds.drop(columns="rows")

    n_points = seeds.groupby("bv").size()
    bvs["n_points"] = bvs["bv"].map(n_points).fillna(0).astype(int)
    return Points(units=units_m, bvs=bvs, seeds=seeds, crs=crs, drops=Counter({k: v for k, v in drops.items() if v}),
                  notes=Counter({k: v for k, v in notes.items() if v}), unknown_communes=unknown_communes,
                  bv_drops=bv_drops, guides=guides)


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


def _bv_table(df: pd.DataFrame, bv_codes: dict | None) -> pd.DataFrame:
    g = df.groupby(["code_insee", "bv"], sort=True).agg(unit=("unit", "first"), n_adresses=("weight", "sum"),
                                                        n_rows=("weight", "size")).reset_index()
    g = g.rename(columns={"bv": "id_brut_bv_reu"})
    code_bv, note = [], []
    for _, grp in g.groupby("code_insee", sort=True):
        labels = {}
        for raw in grp["id_brut_bv_reu"]:
            src = bv_codes.get(raw, raw) if bv_codes else raw
            labels[raw] = codes.split_raw_bv(src)[1]
        assigned = codes.assign_codes_bv(set(labels.values()))
        for raw in grp["id_brut_bv_reu"]:
            c, n = assigned[labels[raw]]
            code_bv.append(c)
            note.append(n)
    g["code_bv"] = code_bv
    g["code_note"] = note
    g = g.sort_values(["code_insee", "code_bv", "id_brut_bv_reu"]).reset_index(drop=True)
    g.insert(0, "bv", np.arange(len(g)))
    dup = g.duplicated(["code_insee", "code_bv"], keep=False)
    g.loc[dup, "code_note"] = "ambiguous"
    return g


def _outliers_kept(pts: pd.DataFrame, params: Params) -> np.ndarray:
    """Mask of points kept: outliers lie far from every point of their BV yet close to another BV's points."""
    keep = np.ones(len(pts), dtype=bool)
    xy = pts[["x", "y"]].to_numpy()
    bv = pts["bv"].to_numpy()
    for _, idx in pts.groupby("unit", sort=True).indices.items():
        labels = bv[idx]
        if len(np.unique(labels)) < 2:
            continue
        sub = xy[idx]
        tree_all = cKDTree(sub)
        for lab in np.unique(labels):
            own = np.flatnonzero(labels == lab)
            uniq = np.unique(sub[own], axis=0)
            if len(uniq) < 3:
                continue
            tree_own = cKDTree(uniq)
            d_own = tree_own.query(sub[own], k=2)[0][:, 1]
            cand = own[d_own > params.outlier_min_distance]
            if not len(cand):
                continue
            d_own_c = d_own[d_own > params.outlier_min_distance]
            # nearest point of another BV: query enough neighbours to get past same-BV ones
            k = min(len(sub), 16)
            dd, ii = tree_all.query(sub[cand], k=k)
            dd, ii = dd.reshape(len(cand), -1), ii.reshape(len(cand), -1)
            other = labels[ii] != lab
            d_other = np.where(other, dd, np.inf).min(axis=1)
            out = d_own_c > params.outlier_factor * d_other
            keep[idx[cand[out]]] = False
    return keep


def _colocate(pts: pd.DataFrame, grid: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One seed per location: the BV with most addresses there, then best score, then lowest BV index.

    A BV that would lose all its locations this way takes back the one where it weighs most, unless that
    leaves the location's winner without any seed.
    """
    if not len(pts):
        empty = pd.DataFrame(columns=["unit", "bv", "x", "y", "weight", "score", "rows"])
        return empty, empty[["bv", "rows"]]
    p = pts.assign(gx=np.round(pts["x"] / grid).astype(np.int64), gy=np.round(pts["y"] / grid).astype(np.int64))
    g = p.groupby(["unit", "gx", "gy", "bv"], sort=True).agg(x=("x", "mean"), y=("y", "mean"),
                                                             weight=("weight", "sum"), score=("score", "max"),
                                                             rows=("weight", "size")).reset_index()
    g = g.sort_values(["unit", "gx", "gy", "weight", "score", "bv"], ascending=[True, True, True, False, False, True])
    g["loc"] = g.groupby(["unit", "gx", "gy"], sort=False).ngroup()
    win = ~g.duplicated("loc", keep="first")
    won = set(g.loc[win, "bv"])
    losers = sorted(set(g["bv"]) - won)
    if losers:
        seeds_per_bv = g[win].groupby("bv").size().to_dict()
        cand = g[g["bv"].isin(losers)].sort_values(["bv", "weight", "score", "loc"],
                                                   ascending=[True, False, False, True])
        for bv, grp in cand.groupby("bv", sort=True):
            for i, row in grp.iterrows():
                cur = g.index[(g["loc"] == row["loc"]).to_numpy() & win.to_numpy()][0]
                if seeds_per_bv.get(g.at[cur, "bv"], 0) > 1:
                    win[cur] = False
                    win[i] = True
                    seeds_per_bv[g.at[cur, "bv"]] -= 1
                    seeds_per_bv[bv] = 1
                    break
    lost = g.loc[~win, ["bv", "rows"]]
    seeds = g[win].sort_values(["unit", "bv", "gx", "gy"])[["unit", "bv", "x", "y", "weight", "score", "rows"]]
    return seeds.reset_index(drop=True), lost
