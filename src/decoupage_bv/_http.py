"""HTTP downloads: resumable, retried with backoff, verified, renamed into place only when whole.

Partial data lives under ``<cache>/.partial/`` and is never read as a cached file; a download that fails
verification is deleted there.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import time
import zlib

import requests

from ._errors import DownloadError

USER_AGENT = "decoupage-bv (+https://pypi.org/project/decoupage-bv/)"
CHUNK = 1 << 16


def _session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    return s


_NO_DNS = ("NameResolutionError", "Failed to resolve", "Name or service not known",
           "Temporary failure in name resolution", "nodename nor servname", "getaddrinfo failed")
OFFLINE_HINT = "check the network, or run with --offline to use the cache"


def _no_name_resolution(exc: Exception) -> bool:
    """The host name does not resolve: no network (or no DNS), and retrying will not change that."""
    seen = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) or any(s in str(seen) for s in _NO_DNS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _no_network_error(url: str, exc: Exception) -> DownloadError:
    return DownloadError(f"{url}: {_describe(exc)} (no network?); {OFFLINE_HINT}")


def _describe(exc: Exception) -> str:
    """The reason of a failed request in a few words, not requests' nested repr."""
    text = str(exc)
    for reason in ("Connection refused", "timed out", "Connection reset", "Remote end closed connection"):
        if reason in text:
            return reason.lower()
    if _no_name_resolution(exc):
        return "the host name does not resolve"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def request(method: str, url: str, retries: int = 4, backoff: float = 0.5, timeout: float = 30, parse=None,
            **kwargs):
    """Send a request, retrying lost connections, 429 and 5xx answers with exponential backoff.

    Returns ``parse(response)`` (the response itself by default); other 4xx answers raise at once.
    ``ValueError`` raised by *parse* (a body that does not parse) is retried too.
    """
    parse = parse or (lambda r: r)
    last = None
    for attempt in range(retries + 1):
        try:
            r = _session().request(method, url, timeout=timeout, **kwargs)
            if r.status_code < 400:
                return parse(r)
            if r.status_code < 500 and r.status_code != 429:
                raise DownloadError(f"{url}: HTTP {r.status_code}: {r.text[:200].strip()}".rstrip(": "))
            last = f"HTTP {r.status_code}"
        except (requests.ConnectionError, requests.Timeout, ValueError) as exc:
            if _no_name_resolution(exc):
                raise _no_network_error(url, exc) from None
            last = _describe(exc)
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    raise DownloadError(f"{url}: failed after {retries + 1} attempts ({last}); {OFFLINE_HINT}")


def get_json(url: str, retries: int = 4, backoff: float = 0.5, timeout: float = 30) -> dict:
    """GET a JSON document (see :func:`request`)."""
    return request("GET", url, retries, backoff, timeout, parse=lambda r: r.json())


def _partial_path(dest: str) -> str:
    """Where a download to *dest* grows: ``<dest folder>/.partial/<name>.part``."""
    partial_dir = os.path.join(os.path.dirname(os.path.abspath(dest)), ".partial")
    os.makedirs(partial_dir, exist_ok=True)
    return os.path.join(partial_dir, os.path.basename(dest) + ".part")


def _bar(total, initial, desc, enabled):
    if not enabled:
        return None
    from ._progress import bar

    return bar(total=total, initial=initial, unit="B", unit_scale=True, desc=desc)


def _stream(url, start, on_chunk, retries, backoff, timeout, progress, desc):
    """Stream *url* from byte *start*, calling ``on_chunk(bytes, restarted)``; resumes with Range after errors.

    ``restarted`` is True when the server ignored the Range and sent the file from its beginning.
    Returns the total number of bytes received from offset 0.
    """
    offset, attempt, last, bar = start, 0, None, None
    while True:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with _session().get(url, headers=headers, stream=True, timeout=timeout) as r:
                if r.status_code == 416 and offset:  # nothing left
                    return offset
                if r.status_code >= 500:
                    raise requests.ConnectionError(f"HTTP {r.status_code}")
                if r.status_code >= 400:
                    raise DownloadError(f"{url}: HTTP {r.status_code}")
                restarted = bool(offset) and r.status_code != 206
                if restarted:
                    offset = 0
                length = r.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else None
                if bar is None:
                    bar = _bar(total, offset, desc, progress)
                first = True
                for chunk in r.iter_content(CHUNK):
                    on_chunk(chunk, restarted and first)
                    first = False
                    offset += len(chunk)
                    if bar:
                        bar.update(len(chunk))
                if total is not None and offset < total:
                    raise requests.ConnectionError(f"connection closed at byte {offset} of {total}")
                if bar:
                    bar.close()
                return offset
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if _no_name_resolution(exc):
                if bar:
                    bar.close()
                raise _no_network_error(url, exc) from None
            last = _describe(exc)
            attempt += 1
            if attempt > retries:
                if bar:
                    bar.close()
                raise DownloadError(f"{url}: failed after {attempt} attempts ({last}); "
                                    "run again to resume") from None
            time.sleep(backoff * 2 ** (attempt - 1))


def _check(path, url, sha256, size):
    if size is not None and os.path.getsize(path) != size:
        raise DownloadError(f"{url}: got {os.path.getsize(path)} bytes, expected {size}")
    if path.endswith(".gz") or url.split("?")[0].endswith(".gz"):
        try:
            with gzip.open(path, "rb") as fh:
                while fh.read(CHUNK):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            raise DownloadError(f"{url}: corrupt or truncated gzip ({exc})") from None
    if sha256:
        _check_sha256(url, sha256_of(path), sha256)


def _check_sha256(url: str, got: str, expected: str):
    if got != expected.lower():
        raise DownloadError(f"{url}: checksum mismatch (sha256 {got}, expected {expected})")


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str, sha256: str | None = None, size: int | None = None, retries: int = 4,
             backoff: float = 0.5, timeout: float = 60, progress: bool = True) -> str:
    """Download *url* to *dest*, resuming a previous partial download; *dest* appears only when verified."""
    part = _partial_path(dest)
    start = os.path.getsize(part) if os.path.exists(part) else 0
    fh = open(part, "ab")

    def write(chunk, restarted):
        if restarted:
            fh.seek(0)
            fh.truncate()
        fh.write(chunk)

    try:
        _stream(url, start, write, retries, backoff, timeout, progress, os.path.basename(dest))
    finally:
        fh.close()
    try:
        _check(part, url, sha256, size)
    except DownloadError:
        os.remove(part)
        raise
    os.replace(part, dest)
    return dest


def _remove(*paths):
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def stream_filtered(url: str, dest: str, make_keep, sha256: str | None = None, retries: int = 4,
                    backoff: float = 0.5, timeout: float = 60, progress: bool = True) -> dict:
    """Stream a (possibly gzipped) CSV from *url*, writing its header and the lines where ``keep(line)`` is
    true to *dest*, ``keep = make_keep(header_line)``. The source is never stored whole.
    Returns ``{"bytes", "sha256", "lines", "kept"}``.

    Within a run, errors resume with Range requests; plain-text sources also resume across runs from the last
    complete line (the state sits beside the partial file). The source's *sha256*, when given, is checked
    before *dest* appears (it cannot be when a previous run's partial file was resumed).
    """
    part = _partial_path(dest)
    state_path = part + ".json"
    gz = url.split("?")[0].endswith(".gz")
    state = {"offset": 0, "lines": 0, "kept": 0}
    if not gz and os.path.exists(state_path) and os.path.exists(part):
        with open(state_path) as fh:
            state = json.load(fh)
        with open(part, "r+b") as out:
            out.truncate(state["out_size"])
    else:
        _remove(part, state_path)
    out = open(part, "ab")
    keep = None
    if state["offset"] > 0:
        with open(part, "rb") as fh:
            keep = make_keep(fh.readline().rstrip(b"\n"))
    ctx = {"buf": b"", "consumed": state["offset"], "header": state["offset"] > 0, "hash": hashlib.sha256(),
           "hashable": state["offset"] == 0, "dec": zlib.decompressobj(wbits=31) if gz else None}

    def handle_lines(data):
        nonlocal keep
        ctx["buf"] += data
        *lines, ctx["buf"] = ctx["buf"].split(b"\n")
        for line in lines:
            state["lines"] += 1
            if not ctx["header"]:
                out.write(line + b"\n")
                keep = make_keep(line.rstrip(b"\r"))
                ctx["header"] = True
            elif line.strip() and keep(line):
                out.write(line + b"\n")
                state["kept"] += 1

    def on_chunk(chunk, restarted):
        if restarted:  # server ignored Range: start again from zero
            out.seek(0)
            out.truncate()
            state.update(offset=0, lines=0, kept=0)
            ctx.update(buf=b"", consumed=0, header=False, hash=hashlib.sha256(), hashable=True,
                       dec=zlib.decompressobj(wbits=31) if gz else None)
        ctx["hash"].update(chunk)
        if gz:
            handle_lines(ctx["dec"].decompress(chunk))
        else:
            handle_lines(chunk)
            ctx["consumed"] += len(chunk)
            out.flush()
            state.update(offset=ctx["consumed"] - len(ctx["buf"]), out_size=out.tell())
            with open(state_path, "w") as fh:
                json.dump(state, fh)

    try:
        if gz:
            # a gzip stream cannot resume mid-way: retries restart it, so the hash covers the whole file
            attempt = 0
            while True:
                try:
                    total = _stream(url, 0, on_chunk, 0, backoff, timeout, progress, os.path.basename(dest))
                    break
                except DownloadError:
                    attempt += 1
                    if attempt > retries:
                        raise
                    on_chunk(b"", True)
                    time.sleep(backoff * 2 ** (attempt - 1))
            if not ctx["dec"].eof:
                raise DownloadError(f"{url}: truncated gzip stream")
            handle_lines(ctx["dec"].flush())
        else:
            total = _stream(url, state["offset"], on_chunk, retries, backoff, timeout, progress,
                            os.path.basename(dest))
        if ctx["buf"]:
            handle_lines(b"\n")
    except (DownloadError, zlib.error) as exc:
        out.close()
        if gz or isinstance(exc, zlib.error):
            _remove(part, state_path)
        if isinstance(exc, zlib.error):
            raise DownloadError(f"{url}: corrupt gzip stream ({exc})") from None
        raise
    out.close()
    if sha256 and ctx["hashable"]:
        try:
            _check_sha256(url, ctx["hash"].hexdigest(), sha256)
        except DownloadError:
            _remove(part, state_path)
            raise
    os.replace(part, dest)
    if os.path.exists(state_path):
        os.remove(state_path)
    return {"bytes": total, "sha256": ctx["hash"].hexdigest() if ctx["hashable"] else None,
            "lines": state["lines"], "kept": state["kept"]}
