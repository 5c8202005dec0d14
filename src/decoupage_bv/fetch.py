"""Sources from the network, cached under ``data/raw/``: REU tables, commune outlines, constituencies.

Resources are found through the data.gouv.fr API from stable dataset slugs, downloaded with
:mod:`._http` (resumable, retried, verified, renamed into place), and recorded in ``manifest.json`` with their
URL, checksum and date. Offline, a missing file raises :class:`MissingSourceError` naming the URL to download
and the path to put it at.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from dataclasses import dataclass

from . import codes
from ._errors import DownloadError, MissingSourceError
from ._http import download, get_json, sha256_of, stream_filtered

DATAGOUV_API = "https://www.data.gouv.fr/api/1"

#: data.gouv.fr datasets (slugs) and the resource title fragments we take from them.
DATASETS = {
    "reu": ("bureaux-de-vote-et-adresses-de-leurs-electeurs",
            {"table-adresses-reu": "table-adresses-reu", "table-bv-reu": "table-bv-reu"}),
    "circonscriptions": ("contours-geographiques-des-circonscriptions-legislatives",
                         {"circonscriptions": "circonscriptions-legislatives"}),
    "communes": ("decoupage-administratif-communal-francais-issu-d-openstreetmap",
                 {"communes": "communes"}),
}

# how a build without street lines goes on (the report's note)
_WITHOUT_LINES = "method voronoi, blocks from street axes drawn from the address labels where the roll has them"


def api_base() -> str:
    """The data.gouv.fr API root (``DECOUPAGE_BV_DATAGOUV_API`` overrides it, e.g. for a mirror)."""
    return os.environ.get("DECOUPAGE_BV_DATAGOUV_API", DATAGOUV_API).rstrip("/")


@dataclass
class Cache:
    """Files under *root* (``data/raw`` by default) and their manifest."""

    root: str = os.path.join("data", "raw")

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, "manifest.json")

    def manifest(self) -> dict:
        if not os.path.exists(self.manifest_path):
            return {}
        with open(self.manifest_path, encoding="utf-8") as fh:
            return json.load(fh)

    def has(self, rel: str) -> bool:
        return os.path.exists(self.path(rel))

    def record(self, rel: str, **info) -> None:
        from .outputs import write_json

        m = self.manifest()
        m[rel] = {"sha256": sha256_of(self.path(rel)), "bytes": os.path.getsize(self.path(rel)), **info}
        write_json(dict(sorted(m.items())), self.manifest_path)


def resolve(key: str, resource: str) -> dict:
    """Find a resource of a known dataset through the data.gouv API: ``url``, ``title``, ``sha256`` (when the
    API gives that kind of checksum), ``filesize``, ``last_modified``."""
    slug, titles = DATASETS[key]
    url = f"{api_base()}/datasets/{slug}/"
    meta = get_json(url)
    want = titles[resource].lower()
    found = [r for r in meta.get("resources", []) if want in (r.get("title") or "").lower()
             or want in os.path.basename(r.get("url") or "").lower()]
    if not found:
        raise DownloadError(f"{url}: no resource matching {titles[resource]!r} in dataset {slug}")
    found.sort(key=lambda r: (r.get("last_modified") or "", r.get("title") or ""), reverse=True)
    r = found[0]
    checksum = r.get("checksum") or {}
    return {"url": r["url"], "title": r.get("title"), "filesize": r.get("filesize"),
            "sha256": checksum.get("value") if checksum.get("type") == "sha256" else None,
            "last_modified": r.get("last_modified"), "dataset": url}


def _today() -> str:
    return _dt.date.today().isoformat()


def _commune_filter(dept: str, columns=("code_commune_ref", "code_commune", "code_insee")):
    """``make_keep(header)`` for :func:`_http.stream_filtered`: keep rows whose commune is in *dept*."""

    def make_keep(header: bytes):
        text = header.decode("utf-8-sig", "replace")
        sep = max((";", ",", "\t"), key=text.count)
        names = [n.strip().strip('"').lower() for n in next(csv.reader([text], delimiter=sep))]
        idx = next((names.index(c) for c in columns if c in names), None)
        if idx is None:
            raise DownloadError(f"no commune column in the header ({', '.join(names[:10])})")
        def keep(line: bytes) -> bool:
            if b'"' in line:
                fields = next(csv.reader([line.decode("utf-8", "replace")], delimiter=sep))
            else:
                fields = line.decode("utf-8", "replace").split(sep)
            code = codes.normalise_commune(fields[idx]) if idx < len(fields) else None
            return code is not None and codes.dept_of_commune(code) == dept

        return keep

    return make_keep


def _offline(cache: Cache, rel: str, hint: str) -> MissingSourceError:
    return MissingSourceError(f"{cache.path(rel)} is not in the cache and --offline forbids downloading it",
                              hint=hint)


def _resource_page(key: str, resource: str) -> str:
    return f"the resource '{DATASETS[key][1][resource]}' of {api_base()}/datasets/{DATASETS[key][0]}/"


class _Missing:
    """Collects the sources missing offline, so that one error names them all."""

    def __init__(self):
        self.errors: list = []

    def attempt(self, fn, *args):
        try:
            return fn(*args)
        except MissingSourceError as exc:
            self.errors.extend(getattr(exc, "parts", [exc]))  # a collector's error: its sources, one by one
            return None

    def raise_if_any(self) -> None:
        if self.errors:
            exc = MissingSourceError(
                f"--offline: {len(self.errors)} source(s) not in the cache: " + "; ".join(map(str, self.errors)),
                hint=" | ".join(dict.fromkeys(m.hint for m in self.errors if m.hint)))
            exc.parts = self.errors
            raise exc


def fetch_reu(dept: str, cache: Cache = Cache(), offline: bool = False, progress: bool = True) -> dict:
    """The REU address and BV tables cut to *dept*: ``{"table-adresses-reu": path, "table-bv-reu": path}``.

    A national file put by hand at ``data/raw/reu/<table>.csv`` (or ``.csv.gz``) is cut locally; otherwise the
    national file is streamed from data.gouv.fr and only the département's rows are kept.
    """
    dept = codes.normalise_dept(dept)
    out, missing = {}, _Missing()
    for table in ("table-adresses-reu", "table-bv-reu"):
        rel = f"reu/{table}_{dept}.csv"
        if cache.has(rel):
            out[table] = cache.path(rel)
            continue
        local = next((f"reu/{table}{ext}" for ext in (".csv", ".csv.gz") if cache.has(f"reu/{table}{ext}")), None)
        if local:
            info = _cut_local(cache.path(local), cache.path(rel), _commune_filter(dept))
            cache.record(rel, source=local, fetched=_today(), rows=info["kept"])
        elif offline:
            missing.errors.append(_offline(cache, rel, f"download {_resource_page('reu', table)} and put it at "
                                                       f"{cache.path(f'reu/{table}.csv')} (it is cut to the "
                                                       "département on the next run), or run without --offline"))
            continue
        else:
            res = resolve("reu", table)
            os.makedirs(os.path.dirname(cache.path(rel)), exist_ok=True)
            info = stream_filtered(res["url"], cache.path(rel), _commune_filter(dept), sha256=res["sha256"],
                                   progress=progress)
            cache.record(rel, url=res["url"], source_sha256=info["sha256"], fetched=_today(), rows=info["kept"],
                         last_modified=res.get("last_modified"))
        out[table] = cache.path(rel)
    missing.raise_if_any()
    return out


def _cut_local(src: str, dest: str, make_keep) -> dict:
    import gzip

    from .outputs import atomic_write

    opener = gzip.open if src.endswith(".gz") else open
    counts = {"kept": 0, "lines": 0}

    def write(tmp):
        with opener(src, "rb") as fin, open(tmp, "wb") as fout:
            header = fin.readline()
            fout.write(header)
            keep = make_keep(header.rstrip(b"\r\n"))
            for line in fin:
                counts["lines"] += 1
                if line.strip() and keep(line.rstrip(b"\r\n")):
                    fout.write(line)
                    counts["kept"] += 1

    atomic_write(dest, write)
    return counts


def fetch_file(key: str, resource: str, rel: str, cache: Cache = Cache(), offline: bool = False,
               progress: bool = True) -> str:
    """Download a whole resource once into the cache (verified against the API's sha256 when given)."""
    if cache.has(rel):
        return cache.path(rel)
    if offline:
        raise _offline(cache, rel, f"download {_resource_page(key, resource)} and put it at {cache.path(rel)}")
    res = resolve(key, resource)
    os.makedirs(os.path.dirname(cache.path(rel)), exist_ok=True)
    download(res["url"], cache.path(rel), sha256=res["sha256"], size=res.get("filesize"), progress=progress)
    cache.record(rel, url=res["url"], fetched=_today(), last_modified=res.get("last_modified"))
    return cache.path(rel)


def _roll_area(roll_path: str, columns: dict | None = None):
    from .osm import area_of_points
    from .sources import parse_numbers, read_roll

    # an unreadable roll is the user's first problem: its error goes up as it is
    rows = read_roll(roll_path, columns=columns).rows
    lon, lat = parse_numbers(rows["lon"]), parse_numbers(rows["lat"])
    ok = lon.between(-180, 180) & lat.between(-90, 90)
    if not ok.any():
        raise DownloadError(f"{roll_path}: no coordinates to bound the OpenStreetMap query")
    # the bulk of the roll: a few stray points abroad must not widen the query to a continent
    lon, lat = lon[ok], lat[ok]
    return area_of_points([lon.quantile(0.001), lon.quantile(0.999)], [lat.quantile(0.001), lat.quantile(0.999)])


def _write_gpkg(gdf, rel: str, cache: Cache, **info) -> str:
    from .outputs import write_polygons

    os.makedirs(os.path.dirname(cache.path(rel)), exist_ok=True)
    write_polygons(gdf, cache.path(rel), layer=os.path.splitext(os.path.basename(rel))[0])
    cache.record(rel, fetched=_today(), **info)
    return cache.path(rel)


def fetch_communes(dept: str, roll_path: str, cache: Cache = Cache(), offline: bool = False,
                   progress: bool = True, columns: dict | None = None) -> str:
    """Commune outlines of *dept*: OpenStreetMap through osmnx (boundaries within the roll's extent), else the
    data.gouv.fr file of communes derived from OSM."""
    dept = codes.normalise_dept(dept)
    rel = f"communes/communes_osm_{dept}.gpkg"
    for cached in (rel, "communes/communes.geojson"):
        if cache.has(cached):
            return cache.path(cached)
    if not offline:
        from .osm import communes_from_osm

        try:
            return _write_gpkg(communes_from_osm(dept, _roll_area(roll_path, columns), cache.root), rel, cache,
                               source="OpenStreetMap via osmnx (boundary=administrative, admin_level 8/9)")
        except DownloadError:
            pass  # fall back to the data.gouv.fr file
    return fetch_file("communes", "communes", "communes/communes.geojson", cache, offline, progress)


def fetch_streets(dept: str, roll_path: str, cache: Cache = Cache(), offline: bool = False,
                  columns: dict | None = None) -> str:
    """Street, rail and waterway lines of *dept* from OpenStreetMap (osmnx), cached as a GeoPackage."""
    dept = codes.normalise_dept(dept)
    rel = f"streets/streets_osm_{dept}.gpkg"
    if cache.has(rel):
        return cache.path(rel)
    if offline:
        raise _offline(cache, rel, "run once without --offline, or give a line file with --streets")
    from .osm import streets_from_osm

    return _write_gpkg(streets_from_osm(_roll_area(roll_path, columns), cache.root), rel, cache,
                       source="OpenStreetMap via osmnx (highway, railway, waterway)")


def complete_inputs(dept: str, addresses=None, communes=None, circonscriptions=None, bv_table=None, streets=None,
                    osm_streets: bool = True, cache: Cache = Cache(), offline: bool = False,
                    progress: bool = True, columns: dict | None = None) -> dict:
    """The inputs of a build: those not given come from the cache or the network, and only those.

    Constituencies are fetched with the roll or the outlines (a build from local files asks for nothing it
    was not given). Street lines are optional: when OpenStreetMap cannot be reached, or offline with none
    cached, the build goes on without them and ``streets_note`` says why. Offline, every missing file is
    named in one error.
    """
    dept = codes.normalise_dept(dept)
    out = {"addresses": addresses, "communes": communes, "circonscriptions": circonscriptions,
           "bv_table": bv_table, "streets": streets, "streets_source": os.path.basename(streets) if streets else None,
           "streets_note": None}
    missing = _Missing()
    attempt = missing.attempt
    if not addresses:
        reu = attempt(fetch_reu, dept, cache, offline, progress)
        if reu:
            out["addresses"], out["bv_table"] = reu["table-adresses-reu"], bv_table or reu["table-bv-reu"]
    if not communes:
        out["communes"] = attempt(fetch_communes, dept, out["addresses"], cache, offline, progress,
                                  columns if addresses else None)
    if not circonscriptions and not (addresses and communes):
        out["circonscriptions"] = attempt(fetch_file, "circonscriptions", "circonscriptions",
                                          "circonscriptions/circonscriptions.geojson", cache, offline, progress)
    missing.raise_if_any()
    if not streets and osm_streets:
        rel = f"streets/streets_osm_{dept}.gpkg"
        if cache.has(rel) or (out["addresses"] and os.path.exists(out["addresses"])):
            try:
                out["streets"] = fetch_streets(dept, out["addresses"], cache, offline, columns if addresses else None)
                out["streets_source"] = "OpenStreetMap via osmnx (" + os.path.basename(out["streets"]) + ")"
            except MissingSourceError:
                out["streets_note"] = (f"no OpenStreetMap streets in the cache ({cache.path(rel)}) and --offline: "
                                       f"built without street lines ({_WITHOUT_LINES})")
            except DownloadError as exc:
                out["streets_note"] = streets_unavailable(exc)
    return out


def streets_unavailable(exc: Exception) -> str:
    """The report's note when a département's street lines cannot be had: it is built without them."""
    return f"street lines unavailable ({exc}): built without them ({_WITHOUT_LINES})"


def fetch_national(addresses=None, communes=None, circonscriptions=None, cache: Cache = Cache(),
                   offline: bool = False, progress: bool = True) -> dict:
    """The national inputs of a run over several départements, those not given downloaded whole (resumable)
    into the cache: the REU address table, the communes derived from OSM, the constituencies."""
    out = {"addresses": addresses, "communes": communes, "circonscriptions": circonscriptions}
    missing = _Missing()
    attempt = missing.attempt

    if not addresses:
        names = [f"reu/table-adresses-reu{ext}" for ext in (".csv", ".csv.gz")]
        cached = next((rel for rel in names if cache.has(rel)), None)
        if cached:
            out["addresses"] = cache.path(cached)
        else:
            rel = "reu/table-adresses-reu.csv"
            if not offline:
                url = resolve("reu", "table-adresses-reu")["url"]
                rel += ".gz" if url.split("?")[0].endswith(".gz") else ""
            out["addresses"] = attempt(fetch_file, "reu", "table-adresses-reu", rel, cache, offline, progress)
    if not communes:
        out["communes"] = attempt(fetch_file, "communes", "communes", "communes/communes.geojson", cache, offline,
                                  progress)
    if not circonscriptions and not (addresses and communes):
        out["circonscriptions"] = attempt(fetch_file, "circonscriptions", "circonscriptions",
                                          "circonscriptions/circonscriptions.geojson", cache, offline, progress)
    missing.raise_if_any()
    return out
