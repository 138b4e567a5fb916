"""Fetching one file: resumable over HTTP(S), retried with back-off on transient failures only,
verified before it gets its final name.

A transfer that breaks (connection cut, timeout, 5xx, 429) is retried; the bytes already on
disk are kept in `<name>.part` and the next request asks only for the rest (HTTP Range), in this
process or the next one (a killed download resumes). A 4xx other than 408/425/429 is permanent
and not retried. When every attempt failed (no network, say), the error is one line naming the
address, the reason and the way around it (a mirror, a local copy). The file is renamed from
`.part` to its name only once its checksum matches, so a file under its final name is always
complete. A source that is a path or a `file://` URL is read where it is, never copied or deleted.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
import tenacity
from tqdm import tqdm

from atdr import __version__
from atdr.atomic import atomic_path
from atdr.download.addresses import Digest, resolve
from atdr.errors import AtdrError

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
CHUNK = 1 << 16  # a broken transfer loses at most the chunk being read
USER_AGENT = f"atdr/{__version__}"


class TransientError(Exception):
    """A failure worth retrying (network, 5xx, 429)."""


def network_reason(error: BaseException, url: str) -> str | None:
    """What a socket said, anywhere in `error`'s causes (requests, urllib3 and yt-dlp wrap it), in a
    few words naming `url`'s host, e.g. "connection refused by 127.0.0.1:9"; None if nothing did."""
    parts = urlsplit(url)
    host = parts.netloc
    seen, todo = set(), [error]
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:  # a library's `reason` may be a string
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror):
            return f"cannot resolve host {parts.hostname}: no network, or a wrong name"
        if isinstance(e, ConnectionRefusedError):
            return f"connection refused by {host}"
        if isinstance(e, TimeoutError):
            return f"no answer from {host} (timed out)"
        if isinstance(e, ConnectionResetError):
            return f"connection reset by {host}"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return f"network unreachable ({host})"
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
    return None


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def check_digest(path: Path, digest: Digest, what: str) -> None:
    """Raise AtdrError naming `what` and both sums unless `path` has `digest`."""
    actual = file_digest(path, digest.algorithm)
    if not digest.matches(actual):
        raise AtdrError(f"{what}: {digest.algorithm} mismatch: expected {digest.hexdigest}"
                        f"{'...' if digest.is_prefix else ''}, got {actual}")


def is_url(source: str) -> bool:
    """Whether `source` is fetched over the network (http, https), not read from a local file."""
    return urlsplit(source).scheme in ("http", "https")


def local_path(source: str) -> Path:
    """The file a source that is not an http(s) URL names: a path, or a `file://` URL."""
    parts = urlsplit(source)
    return Path(url2pathname(parts.path)) if parts.scheme == "file" else Path(source)


def retrying(tries: int, wait: float, what: str, level: int = logging.INFO,
             until: threading.Event | None = None) -> tenacity.Retrying:
    """Retry TransientError up to `tries` attempts in all, waiting `wait`, 2·`wait`, ... (at most 60 s);
    each retry is logged at `level`, naming `what`. Once `until` is set, the retries end: a wait in
    progress ends at once, and the last attempt's error is raised."""
    stop = tenacity.stop_after_attempt(max(tries, 1))
    if until is not None:  # the stop check does the waiting, on `until`: once set, it ends the wait and stops
        stop |= lambda state: until.wait(state.upcoming_sleep)
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        stop=stop,
        wait=tenacity.wait_exponential(multiplier=wait, min=wait, max=60),
        sleep=tenacity.sleep if until is None else (lambda seconds: None),  # with `until`: waited in `stop`
        before_sleep=lambda state: log.log(level, "%s: %s; retrying (attempt %d of %d)", what,
                                           state.outcome.exception(), state.attempt_number + 1, tries),
        reraise=True,
    )


def fetch(source: str, dest: str | Path, digest: Digest | None, *, tries: int = 5, wait: float = 2.0,
          timeout: float = 60.0, progress: bool = True) -> Path:
    """Download URL `source` to `dest` (resuming `dest.part`) and verify it; return `dest`.

    A `dest` already there is verified and kept. A local `source` (path or `file://` URL) is
    verified in place and returned as is (nothing is copied). A mismatching download is deleted,
    so the next attempt starts afresh, and reported with both sums.
    """
    if not is_url(source):
        path = local_path(source)
        if not path.is_file():
            raise AtdrError(f"file not found: {path}")
        if digest is not None:
            check_digest(path, digest, str(path))
        return path
    dest = Path(dest)
    if dest.is_file():  # fetched before: verified then, checked again now
        if digest is not None:
            check_digest(dest, digest, f"{dest} (delete it to download it again)")
        return dest
    url = resolve(source)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in retrying(tries, wait, url):
            with attempt:
                _download(url, part, timeout, progress)
    except TransientError as e:
        raise AtdrError(f"cannot download {url}: {e} (after {max(tries, 1)} attempts); fetch it from a mirror "
                        "(ATDR_MIRROR) or give a local copy's path in place of the URL "
                        "(README, \"Real data\")") from None
    if digest is not None:
        try:
            check_digest(part, digest, f"{dest.name} (downloaded from {url})")
        except AtdrError:
            part.unlink()
            raise
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request for the bytes `part` lacks; raises TransientError or AtdrError."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as e:
        raise TransientError(network_reason(e, url) or f"{type(e).__name__}: {e}") from None
    with response:
        status = response.status_code
        if status == 416 and have:  # nothing after what we have: the file is complete
            return
        if status in TRANSIENT_STATUS:
            raise TransientError(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise AtdrError(f"cannot download {url}: HTTP {status} {response.reason}")
        if status == 206:
            start = int(response.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
            if start != have:  # start over on the next attempt
                part.unlink()
                raise TransientError(f"the server resumed at byte {start}, not {have}")
            mode = "ab"
        else:  # 200: the server ignored the Range, start over
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if have:
            log.info("resuming %s at %.1f MB", url, have / 1e6)
        with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True, leave=False,
                                         desc=Path(urlsplit(url).path).name, disable=None if progress else True) as bar:
            try:
                for chunk in response.iter_content(CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
            except requests.RequestException as e:
                reason = network_reason(e, url) or type(e).__name__
                raise TransientError(f"transfer broken after {f.tell() / 1e6:.1f} MB ({reason})") from None


def fetch_once(source: str, dest: str | Path, digest: Digest | None = None, **kwargs) -> Path:
    """`dest`, fetched from URL (or copied from the local path) `source` unless it is already there."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    if is_url(source):
        return fetch(source, dest, digest, **kwargs)
    path = fetch(source, dest, digest)  # verifies the local file
    with atomic_path(dest) as tmp:
        shutil.copyfile(path, tmp)
    return dest
