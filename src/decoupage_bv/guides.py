"""Street-side guides: extra seeds that carry the house-number order of each street side.

Official polling stations are defined by street ranges ("rue X, numéros pairs 2 à 40"), so an address
belongs with its neighbours on the same street and side more than with its nearest neighbour across a
corner. Between two consecutive numbers of one street side (same parity), guide points are laid along the
segment that joins them: all of one BV when both are, half and half when the BV changes there. Past the
first and last known number of a side, a short extension carries the range on towards the corner, as far
as the range's BV still holds the nearest address. Guides
steer the Voronoi split of a commune (or of a block) but weigh nothing: counts, fragments and quality
flags use the real addresses only.

Addresses come from the roll's label column (REU ``geo_adresse``, BAN ``result_label``), parsed once per
distinct value: ``"33t Avenue Duquesne 75007 Paris"`` → number 33, street ``AVENUE DUQUESNE``.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
import shapely

from .settings import Params

# number (and suffix), then the street up to the postcode: two linear scans (one pattern with a lazy street
# and an optional postcode backtracks at every character)
_NUMBER = re.compile(r"\s*(?P<number>\d{1,5})\s*(?:(?:bis|ter|quater|quinquies|[a-z])\b)?[\s,]*", re.IGNORECASE)
_POSTCODE = re.compile(r"\s*\b\d{5}\b")
# the same for Arrow's RE2, on ASCII text only: there, Python's \s is this class and both engines' \b and [a-z]
# agree
_WS = r"\t\n\x0b\x0c\r\x1c-\x1f "
_NUMBER_RE2 = (rf"(?is)^[{_WS}]*(?P<number>\d{{1,5}})[{_WS}]*(?:(?:bis|ter|quater|quinquies|[a-z])\b)?[{_WS},]*"
               r"(?P<rest>.*)$")
_POSTCODE_TAIL_RE2 = rf"(?s)[{_WS}]*\b\d{{5}}\b.*$"  # the leftmost match starts where Python's search does


def _street_key(name: str) -> str:
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().upper()
    return re.sub(r"[^A-Z0-9]+", " ", s).strip()


def parse_addresses(labels) -> tuple[np.ndarray, np.ndarray]:
    """House number (``-1`` when none) and normalised street name (``''`` when none) of each address label."""
    # a list of electors repeats each address: parse each distinct label once
    row_label, distinct = pd.factorize(pd.Series(labels, dtype=object).fillna("").astype(str))
    numbers, names = _parse(np.asarray(distinct, dtype=object))
    # street names repeat: normalise each distinct one once
    inverse, uniq = pd.factorize(pd.Series(names, dtype=object))
    keys = np.array([_street_key(u) for u in uniq] + [""], dtype=object)
    keys[np.array([k.isdigit() for k in keys], dtype=bool)] = ""
    streets = keys[inverse].copy()
    numbers[streets == ""] = -1
    streets[numbers < 0] = ""
    return numbers[row_label], streets[row_label]


def _parse(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number (``-1``) and raw street (``''``) of each label: ASCII labels through Arrow, the rest in Python."""
    ascii_ = np.fromiter((v.isascii() for v in labels), dtype=bool, count=len(labels))
    if ascii_.sum() < 1000:  # Arrow's fixed cost is not worth it
        return _parse_python(labels)
    numbers, names = np.full(len(labels), -1, dtype=np.int64), np.full(len(labels), "", dtype=object)
    numbers[ascii_], names[ascii_] = _parse_ascii(labels[ascii_])
    if not ascii_.all():
        numbers[~ascii_], names[~ascii_] = _parse_python(labels[~ascii_])
    return numbers, names


def _parse_python(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    match, postcode = _NUMBER.match, _POSTCODE.search  # a plain loop: str.extract costs 3x more
    numbers, names = [], []
    for v in labels.tolist():
        m = match(v)
        if m is None:
            numbers.append(-1)
            names.append("")
            continue
        rest = v[m.end():]
        p = postcode(rest)
        numbers.append(int(m.group("number")))
        names.append(rest[:p.start()] if p else rest.rstrip())
    return np.array(numbers, dtype=np.int64), np.array(names, dtype=object)


def _parse_ascii(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_parse_python` of ASCII labels, by Arrow (1.5x to 2x faster; the same answers, see the tests)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    m = pc.extract_regex(pa.array(labels.tolist(), type=pa.string()), _NUMBER_RE2)
    rest = pc.struct_field(m, "rest")  # unlike .field(), null where the label did not match
    # up to the postcode, or all of it without trailing spaces when there is none (as Python's rstrip)
    name = pc.utf8_rtrim(pc.replace_substring_regex(rest, _POSTCODE_TAIL_RE2, "", max_replacements=1),
                         characters=" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
    numbers = pc.fill_null(pc.cast(pc.struct_field(m, "number"), pa.int64()), -1).to_numpy(zero_copy_only=False)
    return numbers.astype(np.int64), pc.fill_null(name, "").to_numpy(zero_copy_only=False).astype(object)


def street_guides(unit: np.ndarray, bv: np.ndarray, x: np.ndarray, y: np.ndarray, address: np.ndarray,
                  params: Params = Params()) -> pd.DataFrame:
    """Guide points (``unit``, ``bv``, ``x``, ``y``) from addresses with a house number, in a metric CRS."""
    empty = pd.DataFrame({"unit": pd.Series(dtype=object), "bv": pd.Series(dtype=np.int64),
                          "x": pd.Series(dtype=float), "y": pd.Series(dtype=float)})
    number, street = parse_addresses(address)
    ok = (number >= 0) & (street != "")
    if ok.sum() < 2:
        return empty
    # sorted by unit, street, side, number, then position and BV (codes of sorted distinct values sort alike)
    unit_code, unit_names = pd.factorize(np.asarray(unit)[ok], sort=True)
    street_code = pd.factorize(street[ok], sort=True)[0]
    n, b = number[ok], np.asarray(bv)[ok]
    xy = np.c_[np.asarray(x, dtype=float)[ok], np.asarray(y, dtype=float)[ok]]
    order = np.lexsort((b, xy[:, 1], xy[:, 0], n, n % 2, street_code, unit_code))
    keys = np.c_[unit_code, street_code, n % 2][order]
    n, b, xy = n[order], b[order], xy[order]
    group = np.cumsum(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]) - 1
    unit_of = np.asarray(unit_names, dtype=object)[keys[:, 0]]
    step = params.guide_step
    parts = []

    # between consecutive numbers of one street side
    a = np.flatnonzero((group[1:] == group[:-1]) & (n[1:] - n[:-1] <= params.guide_max_number_gap))
    vec = xy[a + 1] - xy[a]
    length = np.hypot(vec[:, 0], vec[:, 1])
    a, vec, length = (v[(length <= params.guide_max_distance) & (length >= 2 * step)] for v in (a, vec, length))
    k = (length // step).astype(np.int64)
    if len(a):
        seg = np.repeat(np.arange(len(a)), k - 1)
        j = np.arange(len(seg)) - np.repeat(np.cumsum(k - 1) - (k - 1), k - 1) + 1
        t = j / k[seg]
        lab = np.where(t < 0.5, b[a[seg]], b[a[seg] + 1])
        parts.append((a[seg], lab, xy[a[seg]] + t[:, None] * vec[seg]))

    # past the ends of a side's known range, away from its neighbour
    ext = params.guide_extension
    if ext >= step:
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        last = np.flatnonzero(np.r_[group[1:] != group[:-1], True])
        multi = last > first
        end, nb = np.r_[first[multi], last[multi]], np.r_[first[multi] + 1, last[multi] - 1]
        vec = xy[end] - xy[nb]
        length = np.hypot(vec[:, 0], vec[:, 1])
        keep = (length >= 1.0) & (length <= params.guide_max_distance)
        end, vec, length = end[keep], vec[keep], length[keep]
        dist = np.arange(step, ext + 1e-9, step)
        if len(end):
            e = np.repeat(np.arange(len(end)), len(dist))
            t = np.tile(dist, len(end)) / length[e]
            gxy = xy[end[e]] + t[:, None] * vec[e]
            # only as far as the range's own BV holds the nearest address: past the corner, where another
            # BV's addresses are nearer, the range does not bite into them
            everyone = np.c_[np.asarray(x, dtype=float), np.asarray(y, dtype=float)]
            gi, ai = shapely.STRtree(shapely.points(everyone)).query_nearest(shapely.points(gxy), all_matches=False)
            held = np.zeros(len(gxy), dtype=bool)
            held[gi] = np.asarray(bv)[ai] == b[end[e[gi]]]
            parts.append((end[e[held]], b[end[e[held]]], gxy[held]))
    if not parts:
        return empty
    src = np.concatenate([p[0] for p in parts])
    return pd.DataFrame({"unit": unit_of[src], "bv": np.concatenate([p[1] for p in parts]),
                         "x": np.concatenate([p[2][:, 0] for p in parts]),
                         "y": np.concatenate([p[2][:, 1] for p in parts])})
