"""AudioSet from YouTube, the official way: every segment of an official segment list fetched with
yt-dlp and cut and converted by ffmpeg to 16 kHz mono FLAC.

yt-dlp (its Python API) finds the clip's audio stream; ffmpeg reads only the segment's time range
from it where the format allows seeking (`-ss` before `-i`: HTTP range requests) and converts it.
ffmpeg is the system's, else the static binary bundled with `imageio-ffmpeg`.

- Clips are `<dest>/audio/<ytid>_<start>.flac` (start with 3 decimals), as `atdr prep` finds them.
  One already there and valid (16 kHz, mono, not empty) is not fetched again. A clip is written
  under a temporary name and renamed when complete, so a killed run never leaves a half clip
  under a clip's name; its temporary files are removed at the next start.
- Transient failures (network, timeouts, HTTP 5xx and 429, YouTube's "try again later" and bot
  checks) are retried with exponential back-off; permanent ones (removed, private, blocked,
  age-restricted, other HTTP 4xx) are not, and the next run skips them too (the manifest
  remembers; `retry_unavailable` tries them again).
- The manifest `<dest>/<list stem>_manifest.csv` records every segment of the list: ytid, start,
  end, status (`ok`, `unavailable`: permanent, `failed`: transient after every retry), reason,
  seconds of audio, bytes.
- AudioSet always loses clips: the download succeeds when at least `min_fraction` of the list
  is on disk and fails with a message otherwise.
- Without a network (or with a wrong host in the URL template) every clip would fail the same way,
  each after its retries: the run stops early instead, once its first tries all got no answer
  (`OfflineCheck`), with a one-line error; the manifest is written all the same.
"""

from __future__ import annotations

import csv
import logging
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import soundfile as sf
from tqdm import tqdm

from atdr.atomic import atomic_path
from atdr.data.audio import SAMPLE_RATE
from atdr.data.segments import Segment, read_segments
from atdr.download.addresses import AUDIOSET_CSV, youtube_template
from atdr.download.http import TransientError, fetch_once, network_reason, retrying
from atdr.download.unpack import check_clip_id
from atdr.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, AtdrError

log = logging.getLogger(__name__)

# Messages of permanent and of transient failures (checked in this order: transient first).
_TRANSIENT_MESSAGES = (("not a bot", "bot check"), ("try again later", "try again later"),
                       ("too many requests", "rate limited"))
_PERMANENT_MESSAGES = (("private video", "private"), ("has been removed", "removed"),
                       ("account associated with this video has been terminated", "removed"),
                       ("not available in your country", "blocked"), ("blocked it", "blocked"),
                       ("copyright", "blocked"), ("confirm your age", "age restricted"),
                       ("members-only", "members only"), ("video unavailable", "unavailable"),
                       ("no longer available", "unavailable"), ("is not available", "unavailable"))
_CLIP_PREFIX = re.compile(r"^\[[\w:]+\] [\w-]+: ")  # yt-dlp's "[youtube] <ytid>: " before its message
MAX_REASONS = 10  # lines of missing clips by reason; the manifest has them all


class PermanentError(Exception):
    """A clip that will not come back (removed, private, blocked, 4xx): not retried."""


class HostUnreachable(TransientError):
    """A try that got no answer from the clip's host (`network_reason` says why): retried as any
    transient failure, and counted by `OfflineCheck`."""


@dataclass
class Outcome:
    """One manifest row."""

    ytid: str
    start: float
    end: float
    status: str  # ok, unavailable, failed
    reason: str = ""
    seconds: float = 0.0
    bytes: int = 0


def clip_path(audio: Path, seg: Segment) -> Path:
    return audio / f"{seg.ytid}_{seg.start:.3f}.flac"


def ffmpeg_binary() -> str:
    """The system's ffmpeg, else imageio-ffmpeg's bundled static binary."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def valid_clip(path: Path) -> float | None:
    """Seconds of audio in `path` if it is a readable 16 kHz mono clip, else None."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    if info.samplerate != SAMPLE_RATE or info.channels != 1 or info.frames == 0:
        return None
    return info.frames / info.samplerate


class _Stop:
    """SIGTERM/SIGINT: stop starting clips, end the running ffmpegs, write the manifest, exit.
    `event` alone (set by `OfflineCheck`) stops starting clips and retries."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self.processes: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def __enter__(self) -> _Stop:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signum
        self.event.set()
        with self.lock:
            for proc in self.processes:
                proc.terminate()

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class OfflineCheck:
    """Fail fast without a network. When the first `limit` tries of a run all get no answer from the
    host (cannot resolve it, refused, unreachable, timed out), the machine is offline or the URL
    template names a wrong host: every clip would fail so, after hours of retries. The check then
    sets `stop` and `reason` says why. Any other outcome among those first tries (a clip fetched, or
    the host answering, even with an error) shows the host can be reached: the check is off for the
    rest of the run, and a later outage is retried as any transient failure.

    The limit, twice the workers and at least 16, is about two tries per worker: a first one and a
    retry after a back-off wait. A failure that outlasts that wait, on several clips at once, is no
    blip of the network.
    """

    def __init__(self, workers: int, stop: threading.Event) -> None:
        self.limit = max(16, 2 * workers)
        self.stop = stop
        self.failures: Counter[str] = Counter()
        self.on = True
        self.reason: str | None = None  # set when the check stopped the run
        self.lock = threading.Lock()

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Count the try made in this block by what it raised (nothing: the clip was fetched)."""
        try:
            yield
        except Exception as e:
            self._count(e)
            raise
        self._count(None)

    def _count(self, error: Exception | None) -> None:
        with self.lock:
            if not self.on:
                return
            if not isinstance(error, HostUnreachable):
                self.on = False
                return
            self.failures[str(error)] += 1
            if self.failures.total() >= self.limit:
                self.on = False
                self.reason = self.failures.most_common(1)[0][0]
                self.stop.set()


@dataclass(frozen=True)
class Fetcher:
    """How one clip is fetched: where from, with what, how patiently."""

    template: str
    ffmpeg: str
    timeout: float
    stop: _Stop

    def __call__(self, seg: Segment, out: Path) -> tuple[float, int]:
        media, headers = self.resolve(self.template.format(ytid=seg.ytid))
        with atomic_path(out) as tmp:
            self.convert(media, headers, seg, tmp)
            seconds = valid_clip(tmp)
            if seconds is None:
                raise PermanentError("conversion produced no 16 kHz mono audio")
            size = tmp.stat().st_size
        return seconds, size

    def resolve(self, url: str) -> tuple[str, dict]:
        """The audio stream's URL and the HTTP headers to fetch it with."""
        import yt_dlp

        options = {"quiet": True, "no_warnings": True, "noprogress": True, "logger": _YtdlpLog(),
                   "format": "bestaudio/best", "noplaylist": True, "socket_timeout": self.timeout, "cachedir": False}
        try:
            with yt_dlp.YoutubeDL(options) as ydl:
                info = ydl.extract_info(url, download=False)
        except yt_dlp.utils.DownloadError as e:
            raise _classify(e, url) from None
        formats = info.get("requested_formats") or [info]
        media = formats[0].get("url")
        if not media:
            raise PermanentError("no audio stream")
        return media, formats[0].get("http_headers") or info.get("http_headers") or {}

    def convert(self, media: str, headers: dict, seg: Segment, tmp: Path) -> None:
        cmd = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        if media.startswith(("http:", "https:")):
            cmd += ["-rw_timeout", str(int(self.timeout * 1e6))]
            if headers:
                cmd += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
        cmd += ["-ss", f"{seg.start:.3f}", "-t", f"{seg.end - seg.start:.3f}", "-i", media, "-map", "0:a:0",
                "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "flac", "-f", "flac", str(tmp)]
        with self.stop.lock:
            if self.stop.event.is_set():
                raise TransientError("stopped")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self.stop.processes.add(proc)
        try:
            _, err = proc.communicate(timeout=self.timeout * 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise TransientError(f"ffmpeg timed out after {self.timeout * 10:.0f} s") from None
        finally:
            with self.stop.lock:
                self.stop.processes.discard(proc)
        if proc.returncode != 0:
            message = (err.strip().splitlines() or [f"ffmpeg exit code {proc.returncode}"])[-1]
            raise _classify_ffmpeg(message)


class _YtdlpLog:
    """yt-dlp's messages go to the debug log (its errors come back as exceptions)."""

    def debug(self, msg: str) -> None:
        log.debug("yt-dlp: %s", msg)

    info = warning = error = debug


def _classify(error: Exception, url: str) -> Exception:
    """A yt-dlp DownloadError (looking up `url`) as PermanentError or TransientError with a short
    reason, the same for every clip that fails the same way (no clip id in it)."""
    offline = network_reason(error, url)
    if offline:
        return HostUnreachable(offline)
    cause = error.exc_info[1] if getattr(error, "exc_info", None) else None
    status = getattr(cause, "status", None) or getattr(getattr(cause, "cause", None), "status", None)
    if status:
        if 400 <= status < 500 and status not in (408, 425, 429):
            return PermanentError(f"HTTP {status}")
        return TransientError(f"HTTP {status}")
    message = str(getattr(error, "msg", error)).lower()
    for key, reason in _TRANSIENT_MESSAGES:
        if key in message:
            return TransientError(reason)
    for key, reason in _PERMANENT_MESSAGES:
        if key in message:
            return PermanentError(reason)
    message = str(getattr(error, "msg", error)).removeprefix("ERROR: ")
    return TransientError(_CLIP_PREFIX.sub("", message)[:200])


def _classify_ffmpeg(message: str) -> Exception:
    lowered = message.lower()
    for code in ("400", "401", "403", "404", "410", "451"):
        if f"server returned {code}" in lowered or f"http error {code}" in lowered:
            return PermanentError(f"HTTP {code}")
    if "invalid data found" in lowered or "does not contain any stream" in lowered or "matches no streams" in lowered:
        return PermanentError(f"undecodable: {message[:120]}")
    return TransientError(f"ffmpeg: {message[:200]}")


def read_manifest(path: Path) -> dict[tuple[str, float], Outcome]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {(r["ytid"], float(r["start"])): Outcome(r["ytid"], float(r["start"]), float(r["end"]), r["status"],
                                                     r["reason"], float(r["seconds"]), int(r["bytes"])) for r in rows}


def write_manifest(path: Path, outcomes: list[Outcome]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[x.name for x in fields(Outcome)])
        writer.writeheader()
        writer.writerows(asdict(o) for o in outcomes)


def download_audioset(dest: str | Path, segments: str, *, template: str | None = None, workers: int = 8,
                      tries: int = 4, wait: float = 5.0, timeout: float = 30.0, min_fraction: float = 0.5,
                      retry_unavailable: bool = False, progress: bool = True) -> int:
    """Fetch the clips of segment list `segments` (a name in `dest`, else fetched from AudioSet's
    official address) into `dest/audio`; returns 0, or EXIT_PREEMPTED when stopped by SIGTERM."""
    dest = Path(dest)
    audio = dest / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for name in ("class_labels_indices.csv", segments):
        fetch_once(AUDIOSET_CSV.format(name=name), dest / name, tries=tries, wait=wait, progress=progress)
    listed = read_segments(dest / segments)
    for seg in listed:
        check_clip_id(seg.ytid, str(dest / segments))
        if not seg.end > seg.start >= 0:
            raise AtdrError(f"{dest / segments}: segment {seg.ytid}: bad time range {seg.start}-{seg.end}")
    for stale in audio.glob(".*.tmp*"):  # temporary files of a killed run
        stale.unlink()
    manifest_path = dest / f"{Path(segments).stem}_manifest.csv"
    previous = read_manifest(manifest_path)
    outcomes: dict[int, Outcome] = {}
    todo = []
    for i, seg in enumerate(listed):
        known = previous.get((seg.ytid, seg.start))
        path = clip_path(audio, seg)
        if known and known.status == "ok" and path.is_file() and path.stat().st_size == known.bytes:
            outcomes[i] = known
        elif path.is_file() and (seconds := valid_clip(path)) is not None:
            outcomes[i] = Outcome(seg.ytid, seg.start, seg.end, "ok", "", seconds, path.stat().st_size)
        elif known and known.status == "unavailable" and not retry_unavailable:
            outcomes[i] = known
        else:
            todo.append(i)
    log.info("%s: %d segments, %d already on disk, %d known unavailable, %d to fetch with %d workers",
             segments, len(listed), sum(o.status == "ok" for o in outcomes.values()),
             sum(o.status == "unavailable" for o in outcomes.values()), len(todo), workers)

    with _Stop() as stop:
        fetcher = Fetcher(template or youtube_template(), ffmpeg_binary(), timeout, stop)
        offline = OfflineCheck(workers, stop.event)

        def one(i: int) -> Outcome | None:
            """Segment i fetched, or why not; None if stopped before its first try, or by a signal."""
            seg = listed[i]
            if stop.event.is_set():
                return None
            tick = time.perf_counter()
            try:  # retries are logged at DEBUG only: the summary says what failed
                for attempt in retrying(tries, wait, seg.ytid, logging.DEBUG, until=stop.event):
                    with attempt, offline.watch():
                        seconds, size = fetcher(seg, clip_path(audio, seg))
            except PermanentError as e:
                return Outcome(seg.ytid, seg.start, seg.end, "unavailable", str(e))
            except TransientError as e:  # a signal's stop may be the error: the next run tries it again
                return None if stop.signal is not None else Outcome(seg.ytid, seg.start, seg.end, "failed", str(e))
            log.debug("%s: %.1f s of audio in %.1f s", seg.ytid, seconds, time.perf_counter() - tick)
            return Outcome(seg.ytid, seg.start, seg.end, "ok", "", seconds, size)

        last_write = time.monotonic()
        with ThreadPoolExecutor(max(workers, 1)) as pool, tqdm(total=len(todo), desc=segments, unit="clip",
                                                               disable=None if progress else True) as bar:
            for i, outcome in zip(todo, pool.map(one, todo)):
                if outcome is None:  # stopped before it was tried
                    continue
                outcomes[i] = outcome
                bar.update()
                if time.monotonic() - last_write > 30:  # progress survives a SIGKILL
                    write_manifest(manifest_path, _rows(listed, outcomes))
                    last_write = time.monotonic()
        write_manifest(manifest_path, _rows(listed, outcomes))
        if stop.signal is not None:
            log.warning("%s: stopped by a signal with %d of %d clips on disk; run the same command again to continue",
                        segments, sum(o.status == "ok" for o in outcomes.values()), len(listed))
            return EXIT_PREEMPTED if stop.signal == signal.SIGTERM else EXIT_INTERRUPTED
    if offline.reason:
        raise AtdrError(f"{segments}: no clip could be fetched: {offline.reason} (the first {offline.limit} tries all "
                        "failed so); check the connection (or the URL template: --url-template, youtube.url_template) "
                        "and run again: clips already on disk are kept")
    return _summarise(segments, listed, outcomes, min_fraction, manifest_path)


def _rows(listed: list[Segment], outcomes: dict[int, Outcome]) -> list[Outcome]:
    """Manifest rows in list order; segments not tried yet (stopped) are `failed: not tried`."""
    return [outcomes.get(i) or Outcome(s.ytid, s.start, s.end, "failed", "not tried") for i, s in enumerate(listed)]


def _summarise(segments: str, listed: list[Segment], outcomes: dict[int, Outcome], min_fraction: float,
               manifest: Path) -> int:
    """Say what is on disk and, one line per reason, what is missing; fail below `min_fraction`."""
    got = sum(o.status == "ok" for o in outcomes.values())
    missing = [f"{n} clip{'s' if n > 1 else ''} {reason}" for reason, n in
               Counter(f"{o.status}: {o.reason}" for o in outcomes.values() if o.status != "ok").most_common()]
    share = got / len(listed)
    log.info("%s: got %d of %d clips (%.1f%% of the official list); manifest: %s", segments, got, len(listed),
             100 * share, manifest)
    for line in missing[:MAX_REASONS]:
        log.warning("%s: %s", segments, line)
    if len(missing) > MAX_REASONS:
        log.warning("%s: and %d more reasons (see %s)", segments, len(missing) - MAX_REASONS, manifest)
    if share < min_fraction:
        lost = "; ".join(missing[:3]) + ("; ..." if len(missing) > 3 else "")
        raise AtdrError(f"{segments}: only {got} of {len(listed)} clips ({share:.1%}) downloaded, below the floor of "
                        f"{min_fraction:.0%}; missing: {lost}; see {manifest}. Run again to retry the failed ones")
    return 0
