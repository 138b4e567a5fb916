"""Shared fixtures: the reference material in ../shared and a tiny embedded dataset."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from atdr.data.synth import synthesize

ROOT = Path(__file__).resolve().parents[1]
SHARED_AUDIOSET = ROOT.parent / "shared" / "fixtures" / "audioset"


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of many tiny models: two OpenMP threads on two shared
    cores make small ops very slow when the machine is busy."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def audioset_fixtures() -> Path:
    """Real AudioSet metadata and one clip (../shared/fixtures/audioset); skip where absent."""
    if not SHARED_AUDIOSET.is_dir():
        pytest.skip(f"reference fixtures not found at {SHARED_AUDIOSET} (the project's ../shared folder)")
    return SHARED_AUDIOSET


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small embedded dataset (48 train, 24 eval clips of 1 s), generated once per session."""
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, n_train=48, n_eval=24, seconds=1.0, seed=0, progress=False)
    return out


def train_attempts(log: Path) -> list[str]:
    """A run's train.log split at each `atdr train` start: every attempt appends to it."""
    return re.split(r"(?m)^(?=[\d:\- ]+ atdr train )", log.read_text())[1:]


def on_a_small_disk(disk: Path, argv: list[str], *, size_kib: int = 256, full: bool = False, read_only: bool = False,
                    **kwargs) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `argv` with a real small file system at `disk`: a tmpfs of `size_kib` KiB (full from the
    start, or read-only) mounted in a private mount namespace, which vanishes with the command.
    Returns the finished command and the non-empty files it left there. Mounting needs root (or
    CAP_SYS_ADMIN): the test is skipped where it is not permitted."""
    disk.mkdir(exist_ok=True)
    left = disk.parent / f"{disk.name}_left.txt"
    options = f"size={size_kib}k" + (",ro" if read_only else "")
    fill = f'head -c {size_kib * 1024 + 1} /dev/zero > "$0/filler" 2>/dev/null; ' if full else ""
    script = (f'mount -t tmpfs -o {options} tmpfs "$0" || exit 99; {fill}"$@"; rc=$?; '
              f'find "$0" -type f -size +0c ! -name filler > {shlex.quote(str(left))}; exit $rc')
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(disk), *argv],
                          capture_output=True, text=True, timeout=300, **kwargs)
    if proc.returncode == 99 or proc.stderr.startswith("unshare:"):
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {proc.stderr.strip()}")
    return proc, left.read_text().split()


def write_run_config(path: Path, dataset: Path, model: dict, *, frontend: str = "kaldi128", target_length: int = 100,
                     **sections: dict) -> Path:
    """A run config for the embedded dataset folder `dataset` (norm stats computed on first use);
    `sections` update the config's sections (e.g. `data={"loader": "reference"}`)."""
    import yaml

    from atdr.cli import main

    stats = dataset / f"stats_{frontend}_{target_length}.json"
    if not stats.exists():
        assert main(["-q", "norm-stats", str(dataset / "train.json"), "--frontend", frontend,
                     "--target-length", str(target_length), "--out", str(stats)]) == 0
    doc = {
        "model": model,
        "data": {"train": str(dataset / "train.json"), "eval": str(dataset / "eval.json"),
                 "labels": str(dataset / "class_labels_indices.csv"), "frontend": frontend,
                 "target_length": target_length, "norm_stats": str(stats)},
        "optim": {"lr": 1e-3, "warmup_steps": 0, "milestones": []},
        "train": {"epochs": 2, "batch_size": 16, "num_workers": 0},
    }
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(doc))
    return path


# Formats of your own recordings that `make_recordings` cycles through: (extension, soundfile format and
# subtype, sample rate, channels). soundfile 0.14's libsndfile 1.2.2 writes and reads all of them, mp3 included.
RECORDING_FORMATS = [
    ("wav", "WAV", "PCM_16", 16000, 1),
    ("flac", "FLAC", "PCM_16", 44100, 2),
    ("ogg", "OGG", "VORBIS", 8000, 1),
    ("opus", "OGG", "OPUS", 48000, 2),
    ("mp3", "MP3", "MPEG_LAYER_III", 22050, 1),
    ("wav", "WAV", "FLOAT", 96000, 2),
]


def make_recordings(folder: Path, n_clips: int = 60, seconds: float = 1.0, seed: int = 0) -> dict[str, Path]:
    """A folder of "your own recordings" built from the embedded dataset's clips: every format of
    RECORDING_FORMATS at 8-96 kHz, mono and stereo, in sub-folders, some named `<id>_<start>`; one
    segment list with a plain csv header and no class list. Also listed: one clip that is absent,
    one corrupt file and one in a format no reader decodes (.m4a). Returns those three by kind."""
    import shutil

    import numpy as np
    import soundfile as sf
    import torch
    import torchaudio

    from atdr.data.datafile import read_datafile

    raw = folder / ".synth"
    synthesize(raw, n_train=n_clips, n_eval=1, seconds=seconds, seed=seed, progress=False)
    rows = ["YTID,start_seconds,end_seconds,positive_labels"]
    for i, clip in enumerate(read_datafile(raw / "train.json")):
        ext, fmt, subtype, rate, channels = RECORDING_FORMATS[i % len(RECORDING_FORMATS)]
        wave, _ = sf.read(clip.wav, dtype="float32")
        wave = torchaudio.functional.resample(torch.from_numpy(wave), 16000, rate).numpy() * 0.9
        ytid, start = f"rec{i:03d}", float(i % 3)
        name = f"{ytid}_{start:.3f}.{ext}" if i % 4 == 0 else f"{ytid}.{ext}"
        path = folder / "audio" / f"day{i % 2}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.repeat(wave[:, None], channels, axis=1), rate, format=fmt, subtype=subtype)
        rows.append(f'{ytid},{start},{start + seconds},"{",".join(clip.labels)}"')
    labels = rows[1].split(",", 3)[3]
    bad = {"absent": folder / "audio" / "absent.wav", "corrupt": folder / "audio" / "corrupt.wav",
           "unsupported": folder / "audio" / "phone.m4a"}
    bad["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVE this is not audio")
    bad["unsupported"].write_bytes(b"\x00\x00\x00\x20ftypM4A an AAC recording")
    rows += [f"{p.stem},0,{seconds},{labels}" for p in bad.values()]
    (folder / "recordings.csv").write_text("\n".join(rows) + "\n")
    shutil.rmtree(raw)
    return bad


TINY_TAL = {"name": "tal", "params": {"embedding_size": 64, "n_conv_layers": 2, "n_pool_layers": 2}}


@pytest.fixture(scope="session")
def trained_run(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run of a tiny CRNN on the tiny embedded dataset."""
    from atdr.cli import main

    out = tmp_path_factory.mktemp("runs") / "tal"
    config = write_run_config(out.parent / "tal.yaml", tiny_synth, TINY_TAL, train={"wa_start": 1})
    assert main(["-q", "train", "--config", str(config), "--out", str(out)]) == 0
    return out


class LocalServer:
    """A file server on 127.0.0.1 for download tests: serves `root`, honours Range requests, and
    injects faults per path: `fail` (a status for the next N requests), `cut` (the first response
    stops after N bytes), `slow` (bytes per second). `log` lists (path, Range header) of every
    request, `bodies` the body bytes sent by each of them (in the same order) and `sent` the body bytes
    sent per path."""

    def __init__(self, root: Path) -> None:
        import http.server
        import threading

        self.root = root
        self.failures: dict[str, list[int]] = {}
        self.cuts: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self.log: list[tuple[str, str | None]] = []
        self.bodies: list[int] = []
        self.sent: dict[str, int] = {}
        lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET(body=False)

            def do_GET(self, body: bool = True) -> None:
                import time

                path = self.path.split("?")[0]
                with lock:
                    request = len(server.log)
                    server.log.append((path, self.headers.get("Range")))
                    server.bodies.append(0)
                if server.failures.get(path):
                    self.send_error(server.failures[path].pop(0))
                    return
                file = server.root / path.lstrip("/")
                if not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                start = 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0] or 0)
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream" if file.suffix != ".wav" else "audio/wav")
                self.end_headers()
                if not body:
                    return
                stop = len(data)
                if path in server.cuts:
                    stop = min(stop, server.cuts.pop(path))
                rate = server.rates.get(path)
                try:
                    for i in range(start, stop, 16384):
                        chunk = data[i:min(i + 16384, stop)]
                        self.wfile.write(chunk)
                        server.sent[path] = server.sent.get(path, 0) + len(chunk)
                        server.bodies[request] += len(chunk)
                        if rate:
                            time.sleep(len(chunk) / rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{path.lstrip('/')}"

    def fail(self, path: str, times: int, status: int = 503) -> None:
        self.failures[f"/{path.lstrip('/')}"] = [status] * times

    def cut(self, path: str, after: int) -> None:
        self.cuts[f"/{path.lstrip('/')}"] = after

    def slow(self, path: str, bytes_per_second: float) -> None:
        self.rates[f"/{path.lstrip('/')}"] = bytes_per_second

    def requests_for(self, path: str) -> list[str | None]:
        return [r for p, r in self.log if p == f"/{path.lstrip('/')}"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def http_server(tmp_path: Path):
    """A LocalServer serving `tmp_path / "www"` (tests write their files there)."""
    root = tmp_path / "www"
    root.mkdir()
    server = LocalServer(root)
    yield server
    server.close()
