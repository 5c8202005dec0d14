"""Read the inputs: electoral-roll address tables, commune outlines, constituencies.

Every reader returns plain (Geo)DataFrames with canonical column names, and turns unusable input into an
:class:`InputError` naming the file and the column or row at fault.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import warnings
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import codes
from ._errors import DecoupageWarning, InputError

# Canonical roll columns and the header names recognised for each, in order of preference.
ROLL_COLUMNS = {
    "bv": ("id_brut_bv_reu", "id_brut_reu", "id_bv", "bureau", "code_bv"),
    "commune": ("code_commune_ref", "code_commune", "code_insee", "codgeo", "insee"),
    "commune_name": ("nom_commune", "libelle_commune", "commune", "ville"),
    "lon": ("longitude", "lon", "lng", "x"),
    "lat": ("latitude", "lat", "y"),
    "geo_type": ("geo_type", "result_type"),
    "geo_score": ("geo_score", "result_score"),
    "count": ("nb_adresses", "n_adresses"),
    "citycode": ("result_citycode",),
    "address": ("geo_adresse", "result_label"),
    "electors": ("nb_electeurs",),
}
_REQUIRED = ("bv", "lon", "lat")

COMMUNE_CODE_COLUMNS = ("code", "insee_com", "insee", "ref:insee", "code_insee", "codgeo", "com", "inseecode")
COMMUNE_NAME_COLUMNS = ("nom", "name", "nom_com", "libelle", "nom_commune", "lib_com")

_CHUNK_ROWS = 250_000


@dataclass
class RollRead:
    """A roll read from disk: canonical rows plus what was seen while reading."""

    rows: pd.DataFrame
    path: str
    rows_read: int = 0
    rows_other_dept: int = 0
    columns: dict = field(default_factory=dict)


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def open_maybe_compressed(path: str, mode: str = "rb", **kwargs):
    """Open *path*, decompressing ``.gz``, ``.bz2`` and ``.xz`` on the fly."""
    return _OPENERS.get(os.path.splitext(path)[1].lower(), open)(path, mode, **kwargs)


def _open_text_sample(path: str, nbytes: int = 1 << 20) -> bytes:
    with open_maybe_compressed(path) as fh:
        return fh.read(nbytes)


def parse_numbers(values: pd.Series, drop_spaces: bool = False) -> pd.Series:
    """Numbers from text with a decimal comma (``'2,45'``); NaN where unreadable. With *drop_spaces*,
    thousands separators (spaces, no-break spaces) are removed first (``'1 234'``)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    fast = _arrow_floats(values)
    if fast is not None:
        return fast
    out = pd.to_numeric(values, errors="coerce").astype(float)  # plain numbers: the fast, common case
    rest = out.isna().to_numpy() & values.notna().to_numpy()
    if rest.any():
        s = values[rest].astype(str).str.strip()
        if drop_spaces:
            s = s.str.replace(r"[\s\u00a0\u202f]", "", regex=True)
        out[rest] = pd.to_numeric(s.str.replace(",", ".", regex=False), errors="coerce").astype(float).to_numpy()
    return out


def _arrow_floats(values: pd.Series) -> pd.Series | None:
    """Arrow-backed text that is all plain numbers (or missing), parsed by Arrow (15x pandas' speed);
    ``None`` for anything else, left to pandas."""
    if not (isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parsed = pc.cast(pa.array(values.array), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
        return None
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=values.index, name=values.name)


def read_vector(path: str) -> gpd.GeoDataFrame:
    """Read a vector file (GeoJSON, GeoPackage, Shapefile…), or raise InputError naming it."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    try:
        return gpd.read_file(path)
    except Exception as exc:  # pyogrio's errors are of several types
        raise InputError(f"{path}: not a readable vector file ({str(exc).splitlines()[0]})") from None


def read_table(path: str) -> pd.DataFrame:
    """Read a whole delimited text file as strings (separator and encoding sniffed), or raise InputError."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    encoding, sep = sniff_csv(path)
    try:
        return pd.read_csv(path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def sniff_csv(path: str) -> tuple[str, str]:
    """Guess (encoding, separator) of a delimited text file, compressed or not."""
    try:
        sample = _open_text_sample(path)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = sample.decode(enc)
            break
        except UnicodeDecodeError as exc:
            if enc == "utf-8-sig" and exc.start > len(sample) - 4:  # a character cut by the sample's end
                text = sample[: exc.start].decode(enc)
                break
    header = text.splitlines()[0] if text else ""
    if not header.strip():
        raise InputError(f"{path}: the file is empty or has no header line")
    sep = max((";", ",", "\t", "|"), key=header.count)
    return enc, sep


def _match_columns(header, mapping, path, roles=ROLL_COLUMNS, required=_REQUIRED):
    """Map canonical roles to the file's header names: explicit *mapping* first, then known names."""
    mapping = dict(mapping or {})
    unknown_roles = set(mapping) - set(roles)
    if unknown_roles:
        raise InputError(f"unknown column role(s) {sorted(unknown_roles)}: expected some of {sorted(roles)}")
    lower = {h.strip().lower(): h for h in header}
    found = {}
    for role, names in roles.items():
        if role in mapping:
            name = mapping[role]
            if name not in header and name.lower() not in lower:
                raise InputError(f"{path}: column {name!r} (given for {role}) not found; columns are {list(header)}")
            found[role] = name if name in header else lower[name.lower()]
            continue
        for n in names:
            if n in lower:
                found[role] = lower[n]
                break
    if roles is ROLL_COLUMNS and "commune" not in found and "commune_name" not in found:
        raise InputError(
            f"{path}: no commune column (looked for {', '.join(ROLL_COLUMNS['commune'])}); "
            "name it with --col commune=NAME or --col commune_name=NAME"
        )
    if "commune" in found and "commune_name" in found and "commune_name" not in mapping:
        del found["commune_name"]
    for role in required:
        if role not in found:
            raise InputError(
                f"{path}: no {role} column (looked for {', '.join(roles[role])}); name it with --col {role}=NAME"
            )
    return found


def dept_of_rows(codes_series: pd.Series) -> np.ndarray:
    """The département of each row's commune code (3 characters overseas); ``1001`` is read as ``01001``."""
    inverse, uniq = pd.factorize(codes_series.fillna("").astype(str), use_na_sentinel=False)
    s = pd.Series(uniq, dtype=object).str.strip().str.upper()  # once per distinct code, not per row
    s = s.where(~s.str.fullmatch(r"\d{4}"), "0" + s)
    return np.where(s.str.startswith("97"), s.str[:3], s.str[:2]).astype(object)[inverse]


def in_dept(codes_series: pd.Series, dept: str) -> np.ndarray:
    return dept_of_rows(codes_series) == dept


def read_roll(path: str, dept: str | None = None, columns: dict | None = None) -> RollRead:
    """Read an address table (REU ``table-adresses-reu`` or a geocoded municipal list).

    CSV (any of ``, ; tab |``, UTF-8 or Latin-1, optionally .gz/.bz2/.xz) or Parquet. With *dept*, rows of
    other départements are skipped while reading, chunk by chunk, so the ~1 GB national file never sits in
    memory whole (only when the commune column is a code; a name column cannot be filtered before matching).
    *columns* maps canonical roles (``bv``, ``commune``, ``commune_name``, ``lon``, ``lat``, ``geo_type``,
    ``geo_score``, ``count``, ``citycode``, ``address``) to the file's own names.

    Returns canonical string columns plus ``row`` (the 1-based line in the file, header = line 1).
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    dept = codes.normalise_dept(dept) if dept else None
    chunks, found = roll_chunks(path, columns)
    keep, read, other = [], 0, 0
    for chunk in chunks:
        chunk = chunk.rename(columns={v: k for k, v in found.items()})
        chunk["row"] = np.arange(read + 2, read + 2 + len(chunk))
        read += len(chunk)
        if dept and "commune" in found:
            mask = in_dept(chunk["commune"], dept)
            other += int((~mask).sum())
            chunk = chunk[mask]
        keep.append(chunk)
    cols = list(found) + ["row"]
    rows = pd.concat(keep, ignore_index=True) if keep else pd.DataFrame(columns=cols)
    return RollRead(rows=rows[cols], path=path, rows_read=read, rows_other_dept=other, columns=found)


def roll_chunks(path: str, columns: dict | None = None):
    """``(chunks, found)``: the roll's rows in chunks of file columns, and the file column of each role."""
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if path.lower().endswith((".parquet", ".pq")):
        return _parquet_chunks(path, columns)
    return _csv_chunks(path, columns)


def _csv_chunks(path, columns, roles=ROLL_COLUMNS, required=_REQUIRED):
    encoding, sep = sniff_csv(path)
    try:
        header = pd.read_csv(path, sep=sep, encoding=encoding, nrows=0, dtype=str).columns.tolist()
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    found = _match_columns(header, columns, path, roles, required)

    def gen():
        done = 0  # rows Arrow handed out before it gave up
        try:
            for chunk in _arrow_chunks(path, encoding, sep, list(found.values())):
                done += len(chunk)
                yield chunk
            return
        except Exception:  # noqa: BLE001 - pandas reads the file again: its message, or what Arrow refuses
            pass
        reader = pd.read_csv(
            path, sep=sep, encoding=encoding, usecols=list(found.values()), dtype=str,
            keep_default_na=False, na_values=[""], chunksize=_CHUNK_ROWS, on_bad_lines="error",
        )
        try:
            for chunk in reader:  # past the rows Arrow already handed out
                if done >= len(chunk):
                    done -= len(chunk)
                    continue
                yield chunk.iloc[done:]
                done = 0
        except UnicodeDecodeError:
            raise InputError(f"{path}: mixed text encodings (not {encoding}); re-save the file as UTF-8") from None
        except pd.errors.ParserError as exc:
            raise InputError(f"{path}: malformed CSV: {str(exc).strip().splitlines()[-1]}") from None
        except (EOFError, OSError, lzma.LZMAError) as exc:
            raise InputError(f"{path}: truncated or corrupt file ({exc})") from None

    return gen(), found


def _arrow_chunks(path: str, encoding: str, sep: str, usecols: list):
    """The CSV's *usecols* as string chunks, parsed by Arrow (two to four times faster than pandas, and in
    parallel), with pandas' reading of missing values: only empty fields are missing. Raises whatever Arrow
    raises; a quoted line break, a short row or a bad byte make it give up, and :func:`_csv_chunks` reads the
    file with pandas instead."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    source = open_maybe_compressed(path) if os.path.splitext(path)[1].lower() in _OPENERS else path
    # blocks of 1 MB (Arrow's default): 16 MB ones read a little faster but held a national cut at 950 MB
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig" else encoding,
                                       block_size=1 << 20),
        parse_options=pacsv.ParseOptions(delimiter=sep),
        convert_options=pacsv.ConvertOptions(include_columns=usecols, column_types=dict.fromkeys(usecols, pa.string()),
                                             null_values=[""], strings_can_be_null=True))
    try:
        for batch in reader:
            yield batch.to_pandas()
    finally:
        if source is not path:
            source.close()


def _parquet_chunks(path, columns):
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    found = _match_columns(pf.schema_arrow.names, columns, path)

    def gen():
        for batch in pf.iter_batches(batch_size=_CHUNK_ROWS, columns=list(found.values())):
            yield batch.to_pandas().astype("string").astype(object).where(lambda d: d.notna(), None)

    return gen(), found


def _detect(columns, candidates, given, path, what, option):
    if given:
        if given not in columns:
            raise InputError(f"{path}: column {given!r} not found for the {what}; columns are {list(columns)}")
        return given
    lower = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    raise InputError(f"{path}: no {what} column (looked for {', '.join(candidates)}); give it with {option}")


def read_communes(path: str, dept: str | None = None, code_column: str | None = None,
                  name_column: str | None = None) -> gpd.GeoDataFrame:
    """Read commune outlines (GeoJSON, GeoPackage, Shapefile…) as ``code``, ``nom``, ``geometry``.

    Codes are normalised to 5 characters; several rows of one code are merged; invalid geometries are
    repaired; rows without geometry raise (a commune must have an outline). With *dept*, only its communes
    (and its municipal arrondissements) are kept.
    """
    return prepare_communes(read_vector(path), path, dept, code_column, name_column)


def prepare_communes(gdf: gpd.GeoDataFrame, path: str = "communes", dept: str | None = None,
                     code_column: str | None = None, name_column: str | None = None) -> gpd.GeoDataFrame:
    """Canonical commune outlines (``code``, ``nom``, ``geometry``) from any GeoDataFrame; see read_communes."""
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    code_col = _detect(cols, COMMUNE_CODE_COLUMNS, code_column, path, "INSEE code", "--commune-code-column")
    try:
        name_col = _detect(cols, COMMUNE_NAME_COLUMNS, name_column, path, "commune name", "--commune-name-column")
    except InputError:
        if name_column:
            raise
        name_col = None
    if gdf.crs is None:
        raise InputError(f"{path}: the file has no CRS; set it (e.g. EPSG:4326) before use")
    code = gdf[code_col].map(codes.normalise_commune)
    bad = code.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: row {i + 1}: {code_col}={gdf[code_col].iloc[i]!r} is not an INSEE commune code")
    out = gpd.GeoDataFrame(
        {"code": code, "nom": gdf[name_col].astype(str) if name_col else code}, geometry=gdf.geometry.values,
        crs=gdf.crs,
    )
    if dept:
        dept = codes.normalise_dept(dept)
        out = out[out["code"].map(codes.dept_of_commune) == dept]
    empty = out.geometry.isna() | out.geometry.is_empty
    if empty.any():
        raise InputError(f"{path}: commune {out['code'][empty].iloc[0]} has no geometry")
    geoms = out.geometry.values
    invalid = ~shapely.is_valid(geoms)
    out["repair"] = ""
    if invalid.any():
        # "structure" keeps the area inside the outer rings (the default "linework" can drop whole lobes)
        out.loc[invalid, "repair"] = [shapely.is_valid_reason(g) for g in geoms[invalid]]
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid], method="structure", keep_collapsed=False)
        warnings.warn(f"{path}: {int(invalid.sum())} invalid commune outline(s) repaired ("
                      + ", ".join(out["code"][invalid].head(5)) + "); they are flagged outline_repaired",
                      DecoupageWarning, stacklevel=2)
    out = out.set_geometry(_polygonal(geoms))
    if out["code"].duplicated().any():
        out = out.dissolve(by="code", aggfunc="first", as_index=False)[["code", "nom", "repair", "geometry"]]
    return out.sort_values("code").reset_index(drop=True)


def _polygonal(geoms):
    """Keep only the polygonal parts (make_valid can return collections with lines)."""
    out = []
    for g in geoms:
        if g.geom_type in ("Polygon", "MultiPolygon"):
            out.append(g)
        else:
            parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
            out.append(shapely.union_all(parts) if parts else shapely.Polygon())
    return np.array(out, dtype=object)


@dataclass
class Circonscriptions:
    """Constituencies: polygons (``circonscription``, geometry) and/or a commune → constituency table."""

    polygons: gpd.GeoDataFrame | None = None
    by_commune: dict | None = None


CIRC_CODE_COLUMNS = ("codecirconscription", "code_circonscription", "circonscription", "code_circ", "id_circo",
                     "circonscriptions_2017", "circonscriptions", "circo")


def read_circonscriptions(path: str, dept: str | None = None) -> Circonscriptions:
    """Read constituencies from polygons (``codeCirconscription``) or a CSV commune → constituency table.

    In the table, several constituencies for one commune (``01|02|03``) mean the commune is split; its BVs
    then need polygons to be assigned.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    dept = codes.normalise_dept(dept) if dept else None
    if path.lower().endswith((".csv", ".csv.gz", ".txt")):
        table = read_table(path)
        code_col = _detect(table.columns, COMMUNE_CODE_COLUMNS, None, path, "INSEE code", "a code_insee column")
        circ_col = _detect(table.columns, CIRC_CODE_COLUMNS, None, path, "constituency", "a circonscription column")
        by_commune = {}
        for i, (c, v) in enumerate(zip(table[code_col], table[circ_col])):
            com = codes.normalise_commune(c)
            if com is None:
                raise InputError(f"{path}: row {i + 2}: {code_col}={c!r} is not an INSEE commune code")
            d = codes.dept_of_commune(com)
            labels = sorted({codes.circonscription_label(p, d) for p in str(v).replace(",", "|").split("|")} - {None})
            if not labels:
                raise InputError(f"{path}: row {i + 2}: {circ_col}={v!r} is not a constituency code")
            by_commune[com] = labels
        return Circonscriptions(by_commune=by_commune)
    gdf = read_vector(path)
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    circ_col = _detect(cols, CIRC_CODE_COLUMNS, None, path, "constituency code", "a codeCirconscription column")
    labels = gdf[circ_col].map(codes.circonscription_label)
    if labels.isna().any():
        i = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise InputError(f"{path}: row {i + 1}: {circ_col}={gdf[circ_col].iloc[i]!r} is not a constituency code")
    polys = gpd.GeoDataFrame({"circonscription": labels}, geometry=shapely.make_valid(gdf.geometry.values),
                             crs=gdf.crs)
    if dept:
        polys = polys[polys["circonscription"].str.split("-").str[0] == dept]
    return Circonscriptions(polygons=polys.reset_index(drop=True))


BV_TABLE_COLUMNS = {
    "bv": ("id_brut_bv_reu", "id_brut_reu"),
    "miom": ("id_brut_miom",),
    "commune": ("code_commune", "code_commune_ref"),
    "code": ("code",),
    "libelle": ("libelle_reu", "libelle"),
}


def read_bv_table(path: str, dept: str | None = None) -> pd.DataFrame:
    """Read INSEE ``table-bv-reu`` (header read, not assumed) as ``bv``, ``miom``, ``commune``, ``code``, ``libelle``.

    ``id_brut_miom`` (the Ministry's id, when filled) gives the BV code used in election results.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    chunks, found = _csv_chunks(path, None, BV_TABLE_COLUMNS, ("bv",))
    out = []
    for chunk in chunks:
        chunk = chunk.rename(columns={v: k for k, v in found.items()})
        if dept and "commune" in chunk:
            chunk = chunk[in_dept(chunk["commune"], codes.normalise_dept(dept))]
        out.append(chunk)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=list(found))
