"""`atdr download audioset` with yt-dlp pointed at local media (its generic extractor, through the
URL template) on a 127.0.0.1 server, and ffmpeg from imageio-ffmpeg. No network."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from atdr.data.segments import Segment, write_segments
from atdr.download.youtube import EXIT_PREEMPTED, download_audioset
from atdr.errors import AtdrError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
IDS = ["-BfvyPmVMoA", "0a1b2c3d4e5", "Xy_z-123456", "kLmNoPqRsTu"]  # YouTube-shaped ids


def media(seconds: float = 12.0) -> bytes:
    """A 44.1 kHz stereo wav: a different tone per channel, a click each second."""
    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    wave = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1)
    wave[::sr] = 0.9
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
def youtube(http_server, tmp_path):
    """Media for IDS on the server, the lists and class list in a store folder, and the template."""
    (http_server.root / "media").mkdir()
    for ytid in IDS:
        (http_server.root / "media" / f"{ytid}.wav").write_bytes(media())
    store = tmp_path / "audioset"
    store.mkdir()
    (store / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n')
    return http_server, store, http_server.url("media/{ytid}.wav")


def segment_list(store: Path, ids: list[str], name: str = "eval_segments.csv", start: float = 2.0,
                 end: float = 7.0) -> str:
    write_segments(store / name, [Segment(i, start, end, ("/m/09x0r",)) for i in ids])
    return name


FAST = {"tries": 3, "wait": 0.01, "workers": 2, "progress": False}


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (connecting is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_store(tmp_path: Path, n: int) -> tuple[Path, str]:
    """A store folder with the class list and a segment list of `n` clips, as a user has them."""
    store = tmp_path / "audioset"
    store.mkdir()
    (store / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n')
    return store, segment_list(store, [f"clip{k:07d}" for k in range(n)] if n > len(IDS) else IDS[:n])


# Hosts that do not answer ({port}: a closed port of 127.0.0.1), and what a failed try says.
OFFLINE_HOSTS = [
    ("127.0.0.1:{port}", "connection refused by 127.0.0.1:{port}"),
    ("nonexistent.invalid", "cannot resolve host nonexistent.invalid: no network, or a wrong name"),
]


def download_offline(store: Path, name: str, host: str, reason: str, *args: str
                     ) -> tuple[subprocess.CompletedProcess, str]:
    """`atdr download audioset` of segment list `name` from `host` (one of OFFLINE_HOSTS), and
    the reason its tries fail with."""
    port = closed_port()
    result = subprocess.run([sys.executable, "-m", "atdr", "-q", "download", "audioset", str(store), "--segments", name,
                             "--url-template", f"http://{host.format(port=port)}/{{ytid}}.wav", *args],
                            env=ENV, capture_output=True, text=True, timeout=300)
    return result, reason.format(port=port)


def test_clips_are_16khz_mono_flac_of_the_segments_length(youtube):
    _, store, template = youtube
    name = segment_list(store, IDS[:2])
    stale = store / "audio" / f".{IDS[0]}_2.000.flac.tmp4242"  # what a SIGKILLed run leaves
    stale.parent.mkdir()
    stale.write_bytes(b"half a clip")
    assert download_audioset(store, name, template=template, **FAST) == 0
    assert sorted(p.name for p in (store / "audio").iterdir()) == sorted(f"{i}_2.000.flac" for i in IDS[:2])
    for ytid in IDS[:2]:
        data, sr = sf.read(str(store / "audio" / f"{ytid}_2.000.flac"))
        assert sr == 16000 and data.ndim == 1
        assert len(data) == pytest.approx(5 * 16000, abs=160)  # 7.0 - 2.0 s
        assert np.abs(data).max() > 0.1  # audio, downmixed
    manifest = pd.read_csv(store / "eval_segments_manifest.csv")
    assert list(manifest.columns) == ["ytid", "start", "end", "status", "reason", "seconds", "bytes"]
    assert (manifest.status == "ok").all() and manifest.seconds.between(4.99, 5.01).all() and (manifest.bytes > 0).all()


def test_removed_clips_are_recorded_as_permanent_and_the_stage_still_succeeds(youtube):
    server, store, template = youtube
    (server.root / "media" / f"{IDS[2]}.wav").unlink()  # 404
    server.fail(f"media/{IDS[3]}.wav", 99, 410)
    name = segment_list(store, IDS)
    assert download_audioset(store, name, template=template, min_fraction=0.5, **FAST) == 0
    manifest = pd.read_csv(store / "eval_segments_manifest.csv").set_index("ytid")
    assert list(manifest.status) == ["ok", "ok", "unavailable", "unavailable"]
    assert manifest.loc[IDS[2], "reason"] == "HTTP 404" and manifest.loc[IDS[3], "reason"] == "HTTP 410"
    assert len(server.requests_for(f"media/{IDS[3]}.wav")) == 1  # permanent: not retried
    requests = len(server.log)
    assert download_audioset(store, name, template=template, min_fraction=0.5, **FAST) == 0
    assert len(server.log) == requests  # a rerun fetches nothing: ok clips on disk, the rest known unavailable


def test_a_clip_that_fails_twice_then_works_is_retried(youtube):
    server, store, template = youtube
    server.fail(f"media/{IDS[0]}.wav", 2, 503)
    name = segment_list(store, IDS[:1])
    assert download_audioset(store, name, template=template, **FAST) == 0
    assert (store / "audio" / f"{IDS[0]}_2.000.flac").is_file()
    assert len(server.requests_for(f"media/{IDS[0]}.wav")) >= 3


def test_below_the_success_floor_the_stage_fails_with_a_clear_message(youtube):
    server, store, template = youtube
    for ytid in IDS[1:]:
        server.fail(f"media/{ytid}.wav", 99, 503)
    name = segment_list(store, IDS)
    with pytest.raises(AtdrError, match=r"only 1 of 4 clips \(25.0%\) downloaded, below the floor of 50%; "
                                        r"missing: 3 clips failed: HTTP 503; see "):
        download_audioset(store, name, template=template, min_fraction=0.5, **FAST)
    assert pd.read_csv(store / "eval_segments_manifest.csv").status.tolist() == ["ok", "failed", "failed", "failed"]


@pytest.mark.parametrize("host, reason", OFFLINE_HOSTS)
def test_without_network_the_missing_clips_are_one_line_per_reason(tmp_path, host, reason):
    store, name = offline_store(tmp_path, len(IDS))
    result, reason = download_offline(store, name, host, reason, "--tries", "2", "--backoff", "0.01")
    assert result.returncode == 2
    assert [line.split(" ", 1)[1] if line[:1].isdigit() else line for line in result.stderr.strip().splitlines()] == [
        f"{name}: 4 clips failed: {reason}",  # a warning, after its time
        f"atdr download: error: {name}: only 0 of 4 clips (0.0%) downloaded, below the floor of 50%; missing: 4 clips "
        f"failed: {reason}; see {store / 'eval_segments_manifest.csv'}. Run again to retry the failed ones"]
    manifest = pd.read_csv(store / "eval_segments_manifest.csv")
    assert (manifest.status == "failed").all() and (manifest.reason == reason).all()


@pytest.mark.parametrize("host, reason", OFFLINE_HOSTS)
def test_without_network_the_download_stops_after_its_first_tries_with_one_line(tmp_path, host, reason):
    store, name = offline_store(tmp_path, 60)
    workers, limit = 4, 16  # the check's limit: max(16, 2 * workers) tries
    result, reason = download_offline(store, name, host, reason, "--tries", "4", "--backoff", "0.05",
                                      "--workers", str(workers))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"atdr download: error: {name}: no clip could be fetched: {reason} (the first {limit} tries all failed so); "
        "check the connection (or the URL template: --url-template, youtube.url_template) and run again: clips "
        "already on disk are kept"]
    manifest = pd.read_csv(store / "eval_segments_manifest.csv", keep_default_na=False)
    assert len(manifest) == 60 and (manifest.status == "failed").all()  # every segment is in it
    tried = manifest[manifest.reason != "not tried"]
    assert (tried.reason == reason).all()  # the clips tried keep their reason
    assert 1 <= len(tried) < limit + workers  # each tried clip had a try: at most the limit, and those under way


def first_then(condition, action, poll: float = 0.02, limit: float = 120.0) -> None:
    """Call `action` once `condition()` holds (or after `limit` seconds)."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(poll)
    action()


def test_a_network_outage_after_the_first_clips_does_not_stop_the_run(youtube):
    server, store, template = youtube
    ids = IDS[:1] + [f"clip{k:07d}" for k in range(39)]
    for ytid in ids[1:]:  # every clip is on the server while it runs
        (server.root / "media" / f"{ytid}.wav").symlink_to(server.root / "media" / f"{IDS[0]}.wav")
    name = segment_list(store, ids)
    first = store / "audio" / f"{IDS[0]}_2.000.flac"
    closer = threading.Thread(target=first_then, args=(first.exists, server.close))
    closer.start()  # the server goes away once the first clip is on disk: the others are refused
    with pytest.raises(AtdrError, match=rf"{name}: only \d+ of 40 clips \(\d+.\d%\) downloaded, below the floor of 50%; "
                                        rf"missing: \d+ clips failed: connection refused by 127.0.0.1:\d+; see "):
        download_audioset(store, name, template=template, min_fraction=0.5, **{**FAST, "tries": 2})
    closer.join()
    manifest = pd.read_csv(store / "eval_segments_manifest.csv", keep_default_na=False)
    refused = manifest.reason.str.startswith("connection refused").sum()
    assert manifest.status.iloc[0] == "ok" and "not tried" not in set(manifest.reason)  # every clip was tried
    assert refused * 2 > 16  # more tries refused than the offline check's limit, after the first clip


def test_hostile_ids_in_a_segment_list_are_refused(youtube):
    _, store, template = youtube
    (store / "eval_segments.csv").write_text('# x\n# y\n# z\n../../etc, 0.000, 10.000, "/m/09x0r"\n')
    with pytest.raises(AtdrError, match="not a plain name"):
        download_audioset(store, "eval_segments.csv", template=template, **FAST)


def test_a_killed_download_leaves_no_partial_clip_and_resumes(youtube):
    server, store, template = youtube
    name = segment_list(store, IDS, start=0.0, end=10.0)
    for ytid in IDS:
        server.slow(f"media/{ytid}.wav", 400_000)  # about 5 s per clip
    cmd = [sys.executable, "-m", "atdr", "download", "audioset", str(store), "--segments", name,
           "--url-template", template, "--workers", "4", "--backoff", "0.01"]
    proc = subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True)
    for _ in range(300):  # until ffmpeg is reading the clips (yt-dlp asks once, ffmpeg again)
        if sum(len(server.requests_for(f"media/{i}.wav")) for i in IDS) >= 6:
            break
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err
    leftovers = [p.name for p in (store / "audio").iterdir()]
    assert all(n.endswith(".flac") for n in leftovers), leftovers  # no temporary files
    for path in (store / "audio").iterdir():  # whatever has a clip's name is a whole clip
        assert sf.info(str(path)).duration == pytest.approx(10.0, abs=0.01)
    assert "run the same command again" in err
    server.rates.clear()
    assert subprocess.run(cmd, env=ENV, capture_output=True).returncode == 0
    assert sorted(p.name for p in (store / "audio").iterdir()) == sorted(f"{i}_0.000.flac" for i in IDS)
