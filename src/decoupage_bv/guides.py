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

from ._grid import nearest_of_k, nearest_within
from .settings import Params

# the way a street side's numbers go up: from the nearest number of the same side at most this many
# numbers higher (or lower), within this many metres
_DIRECTION_NUMBERS = 10
_DIRECTION_REACH = 60.0

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
    row_label, distinct = pd.factorize(np.asarray(labels, dtype=object))  # missing values: -1, parsed as ''
    distinct = np.array([v if isinstance(v, str) else str(v) for v in distinct] + [""], dtype=object)
    row_label[row_label < 0] = len(distinct) - 1
    numbers, names = _parse(distinct)
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
                  params: Params = Params(), parsed: tuple | None = None, farther: np.ndarray | None = None,
                  reach: float = 0.0, block: np.ndarray | None = None, along=None) -> pd.DataFrame:
    """Guide points (``unit``, ``bv``, ``x``, ``y``) from addresses with a house number, in a metric CRS.

    Each guide also carries the two addresses it was laid between (``lo``, ``hi``: positions in the input
    arrays; the same address twice for a guide past the end of a range), so that a limit between two BVs can
    move to the street crossed between them (:func:`blocks.guides_by_block`).

    *parsed*: ``parse_addresses(address)``, when the caller has it already. *farther*: the addresses (a
    mask) whose range, when they end it, is carried *reach* m instead of ``params.guide_extension``.
    *block*: the block of each address, ``-1`` for a block of several BVs (or none): two neighbours in the
    same block of one BV get no guides between them, which would decide nothing there. *along*: given the
    input positions of the addresses that end a range carried *reach* m, the street directions there
    (:func:`blocks.edge_directions`): such a range is carried along the one of them within 45° of
    its own direction (the facade follows the street, where two house numbers give its direction
    roughly)."""
    columns = {"unit": object, "bv": np.int64, "x": float, "y": float, "lo": np.int64, "hi": np.int64}
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
    number, street = parse_addresses(address) if parsed is None else parsed
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
    row = np.flatnonzero(ok)[order]  # sorted position → input position
    group = np.cumsum(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)]) - 1
    unit_of = np.asarray(unit_names, dtype=object)[keys[:, 0]]
    step = params.guide_step
    parts = []

    # between consecutive numbers of one street side
    a = np.flatnonzero((group[1:] == group[:-1]) & (n[1:] - n[:-1] <= params.guide_max_number_gap))
    if block is not None:
        blk = np.asarray(block)[row]
        a = a[(blk[a] < 0) | (blk[a] != blk[a + 1])]
    vec = xy[a + 1] - xy[a]
    length = np.hypot(vec[:, 0], vec[:, 1])
    a, vec, length = (v[(length <= params.guide_max_distance) & (length >= 2 * step)] for v in (a, vec, length))
    k = (length // step).astype(np.int64)
    if len(a):
        seg = np.repeat(np.arange(len(a)), k - 1)
        j = np.arange(len(seg)) - np.repeat(np.cumsum(k - 1) - (k - 1), k - 1) + 1
        t = j / k[seg]
        lab = np.where(t < 0.5, b[a[seg]], b[a[seg] + 1])
        parts.append((a[seg], lab, xy[a[seg]] + t[:, None] * vec[seg], a[seg] + 1))

    # past the ends of a side's known range, away from its neighbour
    ext = params.guide_extension
    far = np.asarray(farther)[row] if farther is not None and reach > ext else np.zeros(len(n), dtype=bool)
    if ext >= step or far.any():
        first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        last = np.flatnonzero(np.r_[group[1:] != group[:-1], True])
        multi = last > first
        end, nb = np.r_[first[multi], last[multi]], np.r_[first[multi] + 1, last[multi] - 1]
        vec = xy[end] - xy[nb]
        length = np.hypot(vec[:, 0], vec[:, 1])
        keep = (length >= 1.0) & (length <= params.guide_max_distance)
        end, vec, length = end[keep], vec[keep], length[keep]
        carried = np.flatnonzero(far[end])
        if along is not None and len(carried):
            cand = along(row[end[carried]]).reshape(len(carried), 2, 2)
            v = vec[carried] / length[carried, None]
            cos = np.nan_to_num((cand * v[:, None, :]).sum(axis=2), nan=0.0)
            pick = np.argmax(np.abs(cos), axis=1)
            c = cos[np.arange(len(carried)), pick]
            known = np.abs(c) >= np.cos(np.pi / 4)
            u = cand[np.arange(len(carried)), pick] * np.sign(c)[:, None]
            vec[carried[known]] = u[known] * length[carried[known], None]
        # each end's guides, *step* apart, as far as its range is carried
        count = np.where(far[end], np.floor(reach / step + 1e-9), np.floor(ext / step + 1e-9)).astype(np.int64)
        end, vec, length, count = end[count > 0], vec[count > 0], length[count > 0], count[count > 0]
        if len(end):
            e = np.repeat(np.arange(len(end)), count)
            dist = (np.arange(len(e)) - np.repeat(np.cumsum(count) - count, count) + 1) * step
            t = dist / length[e]
            gxy = xy[end[e]] + t[:, None] * vec[e]
            # only as far as the range's own BV holds the nearest address: past the corner, where another
            # BV's addresses are nearer, the range does not bite into them (the nearest lies no farther than
            # the range's own end, the distance carried)
            everyone = np.c_[np.asarray(x, dtype=float), np.asarray(y, dtype=float)]
            ai = nearest_within(gxy, everyone, dist + 1e-6, first=2 * step)
            held = (ai >= 0) & (np.asarray(bv)[np.maximum(ai, 0)] == b[end[e]])
            parts.append((end[e[held]], b[end[e[held]]], gxy[held], end[e[held]]))
    if not parts:
        return empty
    src = np.concatenate([p[0] for p in parts])
    other = np.concatenate([p[3] for p in parts])
    return pd.DataFrame({"unit": unit_of[src], "bv": np.concatenate([p[1] for p in parts]),
                         "x": np.concatenate([p[2][:, 0] for p in parts]),
                         "y": np.concatenate([p[2][:, 1] for p in parts]), "lo": row[src], "hi": row[other]})


def street_axes(x: np.ndarray, y: np.ndarray, address: np.ndarray, params: Params = Params(),
                parsed: tuple | None = None) -> np.ndarray:
    """Street axes of one commune drawn from its addresses alone, as LineStrings (metric CRS).

    Where no street lines are given, the addresses still say where streets run: the odd and even numbers
    of a street face each other across it. Each numbered address is paired with the nearest address of the
    other side of its street (at most ``axis_max_pair`` m away); the midpoints, ordered along the street's
    main direction, make its axis. Each end is carried on along its last segment to the first axis it meets
    (at most ``axis_reach`` m; else ``axis_overshoot`` m), so that axes close into blocks. A street numbered
    on one side only gets its axis beside its addresses, on the side the numbering convention gives
    (:func:`_one_sided`). *parsed*: ``parse_addresses(address)``, when the caller has it already.
    """
    empty = np.zeros(0, dtype=object)
    number, street = parse_addresses(address) if parsed is None else parsed
    ok = (number >= 0) & (street != "")
    xy = np.c_[np.asarray(x, dtype=float), np.asarray(y, dtype=float)][ok]
    if len(xy) < 3:
        return empty
    code = pd.factorize(street[ok], sort=True)[0]
    side = number[ok] % 2
    # one point per street, side and position (a list repeats each address)
    key = pd.DataFrame({"c": code, "s": side, "x": np.round(xy[:, 0], 1), "y": np.round(xy[:, 1], 1)})
    first = ~key.duplicated().to_numpy()
    xy, code, side = xy[first], code[first], side[first]
    # the nearest address of the other side of the street, among the 24 nearest
    pick = nearest_of_k(xy, params.axis_max_pair, 24, lambda i, j: (code[j] == code[i]) & (side[j] != side[i]))
    has = np.flatnonzero(pick >= 0)
    if len(has) < 2:
        return empty
    mid, street_of = (xy[has] + xy[pick[has]]) / 2, code[has]
    lone = _one_sided(xy, code, side, number[ok][first], pick, params)
    if lone is not None:
        # each address with nothing across its street: half the commune's usual width across, towards it
        half = float(np.median(np.hypot(*(xy[has] - mid).T)))
        mid = np.vstack([mid, xy[lone[0]] + half * lone[1]])
        street_of = np.r_[street_of, code[lone[0]]]
    # along each street: projected on its main direction (principal axis of its midpoints)
    n = np.bincount(street_of)
    cx, cy = (np.bincount(street_of, mid[:, d]) / np.maximum(n, 1) for d in (0, 1))
    dx, dy = mid[:, 0] - cx[street_of], mid[:, 1] - cy[street_of]
    sxx, syy, sxy = (np.bincount(street_of, v, minlength=len(n)) for v in (dx * dx, dy * dy, dx * dy))
    angle = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    t = dx * np.cos(angle[street_of]) + dy * np.sin(angle[street_of])
    order = np.lexsort((mid[:, 1], mid[:, 0], t, street_of))
    mid, street_of = mid[order], street_of[order]
    fresh = np.r_[True, (street_of[1:] != street_of[:-1]) | (np.abs(mid[1:] - mid[:-1]).sum(axis=1) > 0.01)]
    mid, street_of = mid[fresh], street_of[fresh]
    counts = np.bincount(street_of)
    keep = counts[street_of] >= 2
    mid, street_of = mid[keep], street_of[keep]
    if not len(mid):
        return empty
    lines = shapely.simplify(shapely.linestrings(mid, indices=pd.factorize(street_of)[0]), params.axis_simplify)
    lines = lines[shapely.length(lines) >= 1.0]
    if not len(lines):
        return empty
    return _carry_ends(lines, params.axis_reach, params.axis_overshoot)


def _one_sided(xy: np.ndarray, code: np.ndarray, side: np.ndarray, number: np.ndarray, pick: np.ndarray,
               params: Params) -> tuple[np.ndarray, np.ndarray] | None:
    """The addresses of a street numbered on one side (nothing of the other side within
    ``axis_one_sided_reach`` m: a quay, a street along a park or a rail line), each with the unit vector
    towards its street; ``None`` where the commune's own streets do not follow the numbering convention.

    French streets are numbered going away from the centre (in Paris, from the Seine), odd numbers on the
    left and even on the right: the street lies to the right of the odd side and to the left of the even
    side of the way the numbers go up, found from the nearest number a little higher (or lower) on the same
    side. Where the commune's two-sided streets (*pick*: each address's partner across) agree with that at
    least ``axis_one_sided_min_agreement`` of the time (the Paris dev sets 0.95 to 0.999 by arrondissement,
    the Val-de-Marne communes 0.74 to 0.995, bench/RESULTS.md), the one-sided streets get an axis too.
    """
    if params.axis_one_sided_min_agreement > 1:
        return None

    up, down = _next_numbers(xy, code, side, number)
    d = np.where((up >= 0)[:, None], xy[np.maximum(up, 0)] - xy, xy - xy[np.maximum(down, 0)])
    d /= np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    toward = np.c_[-d[:, 1], d[:, 0]] * np.where(side == 1, -1.0, 1.0)[:, None]  # odd: right; even: left
    known = np.flatnonzero((pick >= 0) & (up >= 0))
    if not len(known):
        return None
    agree = ((xy[pick[known]] - xy[known]) * toward[known]).sum(axis=1) > 0
    if agree.mean() < params.axis_one_sided_min_agreement:
        return None
    lone = np.flatnonzero((pick < 0) & ((up >= 0) | (down >= 0)))
    across = nearest_of_k(xy, params.axis_one_sided_reach, 64,
                          lambda i, j: (code[j] == code[i]) & (side[j] != side[i]), query=lone)
    lone = lone[across < 0]
    return lone, toward[lone]


def _next_numbers(xy: np.ndarray, code: np.ndarray, side: np.ndarray, number: np.ndarray):
    """For each address, the next higher and the next lower number of its street side (``-1`` when none, or
    when it is more than ``_DIRECTION_NUMBERS`` numbers or ``_DIRECTION_REACH`` m away): found by sorting,
    without a spatial search."""
    span = int(number.max()) + _DIRECTION_NUMBERS + 2
    key = (code.astype(np.int64) * 2 + side) * span + number
    order = np.lexsort((xy[:, 1], xy[:, 0], key))
    ks = key[order]
    out = []
    for q in (np.searchsorted(ks, ks + 1, "left"), np.searchsorted(ks, ks, "left") - 1):
        q = np.clip(q, 0, len(ks) - 1)
        ok = (ks[q] // span == ks // span) & (np.abs(ks[q] - ks) <= _DIRECTION_NUMBERS) & (ks[q] != ks)
        j = order[q]
        ok &= np.hypot(*(xy[j] - xy[order]).T) <= _DIRECTION_REACH
        found = np.full(len(xy), -1, dtype=np.int64)
        found[order[ok]] = j[ok]
        out.append(found)
    return out[0], out[1]


def _carry_ends(lines: np.ndarray, reach: float, overshoot: float) -> np.ndarray:
    """*lines* with each end carried on along its last segment to the first other line it meets (and 1 m
    past it, so that the two are noded), at most *reach* m; *overshoot* m where it meets none."""
    coords, which = shapely.get_coordinates(lines, return_index=True)
    start = np.searchsorted(which, np.arange(len(lines)))
    stop = np.r_[start[1:], len(coords)] - 1
    tip, prev = np.r_[coords[start], coords[stop]], np.r_[coords[start + 1], coords[stop - 1]]
    own = np.r_[np.arange(len(lines)), np.arange(len(lines))]
    u = tip - prev
    u /= np.maximum(np.hypot(u[:, 0], u[:, 1]), 1e-9)[:, None]
    rays = shapely.linestrings(np.stack([tip + 0.01 * u, tip + reach * u], axis=1))
    go = np.full(len(tip), overshoot)
    ri, li = shapely.STRtree(lines).query(rays, predicate="intersects")
    other = li != own[ri]
    ri, li = ri[other], li[other]
    if len(ri):
        hit, at = shapely.get_coordinates(shapely.intersection(rays[ri], lines[li]), return_index=True)
        d = np.hypot(*(hit - tip[ri[at]]).T)
        best = np.full(len(tip), np.inf)
        np.minimum.at(best, ri[at], d)
        met = np.isfinite(best)
        go[met] = best[met] + 1.0
    end = tip + go[:, None] * u
    n = len(lines)
    # rebuild each line: its start carried back, its vertices, its end carried on
    pieces_xy = np.vstack([end[:n], coords, end[n:]])
    idx = np.r_[np.arange(n), which, np.arange(n)]
    pos = np.r_[np.full(n, -1), np.arange(len(coords)), np.full(n, len(coords))]
    order = np.lexsort((pos, idx))
    return shapely.linestrings(pieces_xy[order], indices=idx[order])
