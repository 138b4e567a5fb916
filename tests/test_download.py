"""Downloads against a local HTTP server on 127.0.0.1: resumable fetches, checksums, hostile
archives, the archives/ESC-50/Speech Commands sources and published weights. No network."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from corpora import ESC_CATEGORIES, esc50_zip, speechcommands_tar

from atdr.cli import main
from atdr.data.datafile import read_datafile
from atdr.data.labels import LabelSet
from atdr.data.segments import read_segments
from atdr.download.addresses import Digest, resolve
from atdr.download.archives import Archive, download_archives
from atdr.download.esc50 import download_esc50
from atdr.download.http import fetch
from atdr.download.speechcommands import WORDS, download_speechcommands
from atdr.download.unpack import unpack
from atdr.download.weights import fetch_weights, required
from atdr.errors import AtdrError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
FAST = {"tries": 3, "wait": 0.01, "progress": False}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (a connection to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blob(http_server, name: str, size: int = 300_000, seed: int = 0) -> Path:
    path = http_server.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


# --- fetching ----------------------------------------------------------------------------------


def test_a_transfer_cut_half_way_resumes_where_it_stopped(http_server, tmp_path):
    source = blob(http_server, "big.bin")
    http_server.cut("big.bin", 100_000)
    out = fetch(http_server.url("big.bin"), tmp_path / "big.bin", Digest("sha256", sha256(source)), **FAST)
    assert out.read_bytes() == source.read_bytes()
    first, second = http_server.requests_for("big.bin")
    kept = int(second.removeprefix("bytes=").rstrip("-"))
    assert first is None and 0 < kept <= 100_000  # what had arrived, but the chunk being read
    assert http_server.sent["/big.bin"] == source.stat().st_size + 100_000 - kept
    assert not (tmp_path / "big.bin.part").exists()


def test_transient_errors_are_retried_and_permanent_ones_are_not(http_server, tmp_path):
    source = blob(http_server, "flaky.bin", 1000)
    http_server.fail("flaky.bin", 2, 503)
    fetch(http_server.url("flaky.bin"), tmp_path / "flaky.bin", Digest("sha256", sha256(source)), **FAST)
    assert len(http_server.requests_for("flaky.bin")) == 3
    with pytest.raises(AtdrError, match="HTTP 404"):
        fetch(http_server.url("absent.bin"), tmp_path / "absent.bin", None, **FAST)
    assert len(http_server.requests_for("absent.bin")) == 1


def test_a_checksum_mismatch_names_both_sums_and_keeps_nothing(http_server, tmp_path):
    source = blob(http_server, "file.bin", 1000)
    wrong = "0" * 64
    with pytest.raises(AtdrError, match=f"sha256 mismatch: expected {wrong}, got {sha256(source)}"):
        fetch(http_server.url("file.bin"), tmp_path / "file.bin", Digest("sha256", wrong), **FAST)
    assert list(tmp_path.glob("file.bin*")) == []


def test_a_file_already_fetched_is_verified_not_fetched_again(http_server, tmp_path):
    source = blob(http_server, "once.bin", 1000)
    digest = Digest("sha256", sha256(source)[:8])  # a prefix, as the DeiT file names give
    for _ in range(2):
        fetch(http_server.url("once.bin"), tmp_path / "once.bin", digest, **FAST)
    assert len(http_server.requests_for("once.bin")) == 1
    (tmp_path / "once.bin").write_bytes(b"corrupted")
    with pytest.raises(AtdrError, match="mismatch"):
        fetch(http_server.url("once.bin"), tmp_path / "once.bin", digest, **FAST)


def test_the_mirror_setting_redirects_every_address(monkeypatch):
    monkeypatch.setenv("ATDR_MIRROR", "http://127.0.0.1:9/mirror/")
    assert resolve("https://www.dropbox.com/s/abc/x.pth?dl=1") == "http://127.0.0.1:9/mirror/www.dropbox.com/s/abc/x.pth"
    assert resolve("/data/local.tar") == "/data/local.tar"


@pytest.mark.parametrize("host, reason", [
    ("127.0.0.1:{port}", "connection refused by 127.0.0.1:{port}"),
    ("nonexistent.invalid", "cannot resolve host nonexistent.invalid: no network, or a wrong name"),
])
def test_no_network_is_one_line_naming_the_address_the_reason_and_the_way_around(tmp_path, host, reason):
    port = closed_port()
    url = f"http://{host.format(port=port)}/ESC-50-master.zip"
    result = subprocess.run([sys.executable, "-m", "atdr", "-q", "download", "esc50", str(tmp_path / "esc50"), "--url",
                             url, "--md5", "0" * 32, "--tries", "2", "--backoff", "0.01"],
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"atdr download: error: cannot download {url}: {reason.format(port=port)} "
                               "(after 2 attempts); fetch it from a mirror (ATDR_MIRROR) or give a local copy's path")


# --- hostile archives --------------------------------------------------------------------------


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


@pytest.mark.parametrize("member, message", [
    (lambda tmp: (tarfile.TarInfo("good/../../escaped.txt"), b"x"), "points outside the folder"),
    (lambda tmp: (tarfile.TarInfo(str(tmp / "escaped.txt")), b"x"), "absolute path"),
    (lambda tmp: (_symlink("audio/link", "../../.."), b""), "outside the destination"),
    (lambda tmp: (_symlink("audio/link", str(tmp)), b""), "absolute path"),
    (lambda tmp: (tarfile.TarInfo("./../escaped.txt"), b"x"), "points outside the folder"),
    (lambda tmp: (_symlink("./audio/link", "../../.."), b""), "outside the destination"),
    (lambda tmp: (tarfile.TarInfo("./"), b"a file without a name"), "has no name"),
])
def test_hostile_tar_members_are_refused_and_nothing_is_written(tmp_path, member, message):
    archive = _tar(tmp_path / "evil.tar", [(tarfile.TarInfo("ok.txt"), b"fine"), member(tmp_path)])
    target = tmp_path / "a" / "b" / "target"
    with pytest.raises(AtdrError, match=message):
        unpack(archive, target)
    assert list(target.iterdir()) == []  # not even the good member, no staging folder
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "a" / "escaped.txt").exists()


def _zip_with_lying_size(path: Path) -> Path:
    """A zip whose member declares 10 bytes (and their CRC) but inflates to 1 MB."""
    payload = b"\0" * 1_000_000
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.bin", payload)
    raw = bytearray(path.read_bytes())
    for offset in (raw.find(b"PK\x03\x04"), raw.find(b"PK\x01\x02")):
        field = offset + (22 if raw[offset + 2] == 3 else 24)  # uncompressed size in local / central header
        raw[field:field + 4] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def test_a_zip_member_larger_than_declared_is_refused(tmp_path):
    target = tmp_path / "target"
    with pytest.raises(AtdrError, match="declared"):
        unpack(_zip_with_lying_size(tmp_path / "bomb.zip"), target)
    assert list(target.iterdir()) == []


def test_zip_escapes_and_symlinks_are_refused(tmp_path):
    for name, message in (("../escaped.txt", "'..'"), ("/abs.txt", "absolute path")):
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr(name, "x")
        with pytest.raises(AtdrError, match=message):
            unpack(archive, tmp_path / "target")
    link = zipfile.ZipInfo("link")
    link.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(AtdrError, match="symbolic link"):
        unpack(archive, tmp_path / "target")
    assert list((tmp_path / "target").iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_declared_sizes_beyond_the_bound_are_refused(tmp_path):
    archive = _tar(tmp_path / "big.tar", [(tarfile.TarInfo("a.bin"), b"x" * 5000)])
    with pytest.raises(AtdrError, match="more than the 0.0 MB allowed"):
        unpack(archive, tmp_path / "target", max_bytes=4000)


def _folder(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_an_archive_rooted_at_dot_slash_unpacks_its_members_not_its_root(tmp_path, kind):
    """As `tar -C dir .` (and the Speech Commands archive) writes: `./`, `./yes/`, `./yes/a.wav`."""
    if kind == "tar":
        archive = _tar(tmp_path / "flat.tar", [(_folder("./"), b""), (_folder("./yes/"), b""),
                                               (tarfile.TarInfo("./yes/a.wav"), b"clip"),
                                               (tarfile.TarInfo("./LICENSE"), b"CC")])
    else:
        archive = tmp_path / "flat.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("./", "")
            zf.writestr("./yes/a.wav", "clip")
            zf.writestr("./LICENSE", "CC")
    target = tmp_path / "target"
    assert unpack(archive, target) == 2
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["LICENSE", "yes", "yes/a.wav"]
    assert (target / "yes" / "a.wav").read_bytes() == b"clip"


def _members(count: int = 4, size: int = 20_000) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [(tarfile.TarInfo(f"clips/c{i}.bin"), np.random.default_rng(i).bytes(size)) for i in range(count)]


def _archive(path: Path) -> Path:
    """Four members of 20 kB in the format the name says."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in _members():
                zf.writestr(info.name, data)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": [f"c{i}" for i in range(4)], "audio": [_clip() for _ in range(4)]}), path)
    else:
        with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as tar:
            for info, data in _members():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, cut", [
    ("shard.zip", 0.5), ("shard.zip", -10),  # without the central directory at its end
    ("shard.tar.gz", 0.5), ("shard.tar.gz", -4),  # inside the compressed data; without the gzip trailer
    ("shard.tar", 0.5),  # inside a member
    ("shard.tar", 512 + 20_480),  # after the first member, at a header (tarfile alone ends there silently)
    ("shard.tar", 512 + 20_480 + 100),  # inside the second header
    ("shard.parquet", -10),  # without its footer
])
def test_a_truncated_archive_is_reported_as_truncated(tmp_path, name, cut):
    whole = _archive(tmp_path / name)
    target = tmp_path / "target"
    assert unpack(whole, target) == 4  # whole, it unpacks
    data = whole.read_bytes()
    end = int(len(data) * cut) if isinstance(cut, float) else cut % len(data)
    cut_short = tmp_path / "cut" / name
    cut_short.parent.mkdir()
    cut_short.write_bytes(data[:end])
    with pytest.raises(AtdrError, match=rf"{re.escape(str(cut_short))} is truncated: it ends after {end} bytes, .*"
                                        r"get the whole file \(and its checksum\) again"):
        unpack(cut_short, tmp_path / "target2")
    assert list((tmp_path / "target2").iterdir()) == []


def test_a_compressed_tar_with_a_wrong_checksum_is_refused(tmp_path):
    data = bytearray(_archive(tmp_path / "shard.tar.gz").read_bytes())
    data[-6] ^= 0xFF  # the CRC-32 in the gzip trailer
    (tmp_path / "bad.tar.gz").write_bytes(bytes(data))
    with pytest.raises(AtdrError, match="broken tar archive .*CRC check failed"):
        unpack(tmp_path / "bad.tar.gz", tmp_path / "target")
    assert list((tmp_path / "target").iterdir()) == []


# --- archives source ---------------------------------------------------------------------------


def _clip(seconds: float = 0.2) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), np.float32), 16000, format="FLAC")
    return buffer.getvalue()


def test_archives_of_every_kind_unpack_into_one_audio_folder_once(http_server, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    www = http_server.root
    _tar(www / "shard0.tar", [(tarfile.TarInfo("bal/AAAAAAAAAAA.flac"), _clip()),
                              (tarfile.TarInfo("bal/AAAAAAAAAAA.json"), b"{}")])
    with zipfile.ZipFile(www / "shard1.zip", "w") as zf:
        zf.writestr("bal/BBBBBBBBBBB.flac", _clip())
    pq.write_table(pa.table({"video_id": ["-CCCCCCCCCC", "DDDDDDDDDDD"],
                             "audio": [{"bytes": _clip(), "path": "x.flac"}, {"bytes": _clip(), "path": None}]}),
                   www / "shard2.parquet")
    (www / "lists").mkdir()
    (www / "lists" / "class_labels_indices.csv").write_text('index,mid,display_name\n0,/m/a,"A"\n')
    archives = [Archive(http_server.url(n), Digest("sha256", sha256(www / n)))
                for n in ("shard0.tar", "shard1.zip", "shard2.parquet")]
    files = {"class_labels_indices.csv": http_server.url("lists/class_labels_indices.csv")}
    dest = tmp_path / "store"
    download_archives(dest, archives, files, **FAST)
    found = sorted(p.relative_to(dest / "audio").as_posix() for p in (dest / "audio").rglob("*.flac"))
    assert found == ["bal/AAAAAAAAAAA.flac", "bal/BBBBBBBBBBB.flac", "shard2/-CCCCCCCCCC.flac", "shard2/DDDDDDDDDDD.flac"]
    assert (dest / "class_labels_indices.csv").is_file() and not list((dest / ".atdr" / "archives").glob("shard*[!e]"))
    requests = len(http_server.log)
    download_archives(dest, archives, files, **FAST)  # a rerun fetches nothing
    assert len(http_server.log) == requests
    manifest = (dest / "archives_manifest.csv").read_text()
    assert manifest.count(",present") == 3


def test_download_archives_cli(http_server, tmp_path):
    _tar(http_server.root / "s.tar", [(tarfile.TarInfo("FFFFFFFFFFF.flac"), _clip())])
    (http_server.root / "labels.csv").write_text('index,mid,display_name\n0,/m/a,"A"\n')
    dest = tmp_path / "store"
    assert main(["-q", "download", "archives", str(dest), "--archive", http_server.url("s.tar"),
                 sha256(http_server.root / "s.tar"), "--file", f"class_labels_indices.csv={http_server.url('labels.csv')}",
                 "--backoff", "0.01"]) == 0
    assert (dest / "audio" / "FFFFFFFFFFF.flac").is_file() and (dest / "class_labels_indices.csv").is_file()
    assert main(["download", "archives", str(dest), "--archive", "x.tar", "123"]) == 2  # not a sha256


def test_a_shard_with_a_wrong_checksum_is_not_unpacked(http_server, tmp_path):
    _tar(http_server.root / "shard.tar", [(tarfile.TarInfo("EEEEEEEEEEE.flac"), _clip())])
    with pytest.raises(AtdrError, match="shard.tar .*sha256 mismatch"):
        download_archives(tmp_path / "store", [Archive(http_server.url("shard.tar"), Digest("sha256", "f" * 64))], **FAST)
    assert not (tmp_path / "store" / "audio").exists() or not list((tmp_path / "store" / "audio").iterdir())


def test_a_parquet_row_with_a_hostile_id_is_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"video_id": ["../../escape"], "audio": [_clip()]}), tmp_path / "s.parquet")
    with pytest.raises(AtdrError, match="not a plain name"):
        unpack(tmp_path / "s.parquet", tmp_path / "target")
    assert list((tmp_path / "target").iterdir()) == []


# --- ESC-50 and Speech Commands ----------------------------------------------------------------


@pytest.fixture
def esc50_served(http_server):
    rows = esc50_zip(http_server.root / "ESC-50-master.zip")
    digest = Digest("md5", hashlib.md5(http_server.root.joinpath("ESC-50-master.zip").read_bytes()).hexdigest())
    return http_server, rows, digest


def test_esc50_becomes_16khz_clips_a_class_list_and_the_official_folds(esc50_served, tmp_path):
    server, rows, digest = esc50_served
    dest = tmp_path / "esc50"
    download_esc50(dest, url=server.url("ESC-50-master.zip"), digest=digest, **FAST)
    labels = LabelSet.read(dest / "class_labels_indices.csv")
    assert labels.mids == tuple(f"/m/07rwj{t:02d}" for t in range(len(ESC_CATEGORIES)))
    assert labels.names == ESC_CATEGORIES
    for k in range(1, 6):
        segments = read_segments(dest / f"fold{k}.csv")
        expected = {(r["filename"][:-4], f"/m/07rwj{r['target']:02d}") for r in rows if r["fold"] == k}
        assert {(s.ytid, s.labels[0]) for s in segments} == expected  # prep_esc50.py's eval list of fold k
    info = sf.info(str(dest / "audio" / rows[0]["filename"]))
    assert (info.samplerate, info.channels) == (16000, 1) and info.duration == pytest.approx(0.5, abs=1e-3)
    # fold 1 as the original: train on folds 2-5, evaluate on fold 1
    out = tmp_path / "data"
    assert main(["-q", "prep", *[arg for k in (2, 3, 4, 5) for arg in ("--segments", str(dest / f"fold{k}.csv"))],
                 "--audio", str(dest / "audio"), "--labels", str(dest / "class_labels_indices.csv"),
                 "--out", str(out / "train.json")]) == 0
    train = read_datafile(out / "train.json", labels)
    assert len(train) == len([r for r in rows if r["fold"] != 1])
    by_name = {Path(c.wav).name: c.labels for c in train}
    assert all(by_name[r["filename"]] == (f"/m/07rwj{r['target']:02d}",) for r in rows if r["fold"] != 1)
    assert not (dest / ".atdr" / "ESC-50-master.zip").exists()  # the archive is not kept


@pytest.mark.parametrize("as_url", [False, True])
def test_a_local_archive_is_read_where_it_is_and_never_deleted(esc50_served, tmp_path, as_url):
    server, rows, digest = esc50_served
    local = server.root / "ESC-50-master.zip"  # the user's copy
    dest = tmp_path / "esc50"
    assert main(["-q", "download", "esc50", str(dest), "--url", local.as_uri() if as_url else str(local),
                 "--md5", digest.hexdigest]) == 0
    assert local.is_file() and hashlib.md5(local.read_bytes()).hexdigest() == digest.hexdigest
    assert len(list((dest / "audio").glob("*.wav"))) == len(rows) and server.log == []
    assert not (dest / ".atdr" / "ESC-50-master.zip").exists()  # read in place, not copied


@pytest.mark.parametrize("corpus", ["esc50", "speechcommands"])
def test_a_preparation_that_fails_midway_leaves_only_the_verified_archive(http_server, tmp_path, corpus):
    if corpus == "esc50":
        broken = esc50_zip(http_server.root / "archive", broken=30)[30]["filename"]
        prepare, clip = download_esc50, f"audio/{broken}"
    else:
        clip = speechcommands_tar(http_server.root / "archive", WORDS, broken=60)["all"][60]
        prepare = download_speechcommands
    archive = http_server.root / "archive"
    dest = tmp_path / corpus
    for _ in range(2):  # the second attempt reads the archive kept by the first
        with pytest.raises(AtdrError, match=rf": {clip}: cannot read audio .* not prepared: the unpacked files are "
                                            r"removed; the archive .* is kept for the next attempt"):
            prepare(dest, url=http_server.url("archive"), digest=Digest("sha256", sha256(archive)), **FAST)
        kept = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()]
        assert len(kept) == 1 and (dest / kept[0]).read_bytes() == archive.read_bytes(), kept
    assert len(http_server.requests_for("archive")) == 1


def test_esc50_with_a_wrong_checksum_unpacks_nothing(esc50_served, tmp_path):
    server, _, _ = esc50_served
    with pytest.raises(AtdrError, match="md5 mismatch"):
        download_esc50(tmp_path / "esc50", url=server.url("ESC-50-master.zip"), digest=Digest("md5", "0" * 32), **FAST)
    assert not (tmp_path / "esc50" / "audio").exists() and not (tmp_path / "esc50" / "fold1.csv").exists()


def test_a_killed_esc50_download_resumes_and_fetches_nothing_twice(esc50_served, tmp_path):
    server, _, digest = esc50_served
    size = (server.root / "ESC-50-master.zip").stat().st_size
    server.slow("ESC-50-master.zip", size / 3)  # about 3 s
    dest = tmp_path / "esc50"
    cmd = [sys.executable, "-m", "atdr", "-q", "download", "esc50", str(dest), "--url", server.url("ESC-50-master.zip"),
           "--md5", digest.hexdigest, "--backoff", "0.01"]
    proc = subprocess.Popen(cmd, env=ENV)
    part = dest / ".atdr" / "ESC-50-master.zip.part"
    for _ in range(200):
        if part.exists() and part.stat().st_size > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    server.rates.clear()
    assert 0 < server.sent["/ESC-50-master.zip"] < size
    # The killed run's connection may still count a chunk or two into the kernel's buffer: count
    # only the bytes sent to the requests of the run that resumes.
    first = len(server.log)
    assert subprocess.run(cmd, env=ENV).returncode == 0
    kept = int(server.requests_for("ESC-50-master.zip")[-1].removeprefix("bytes=").rstrip("-"))
    assert kept > 0 and sum(server.bodies[first:]) == size - kept  # only the rest
    assert len(list((dest / "audio").glob("*.wav"))) == 50
    requests = len(server.log)
    assert subprocess.run(cmd, env=ENV).returncode == 0 and len(server.log) == requests


@pytest.mark.parametrize("root", ["./", ""])  # as `tar -C dir .` writes (the official archive), or without
def test_speech_commands_splits_labels_and_unique_clip_ids(http_server, tmp_path, root):
    lists = speechcommands_tar(http_server.root / "sc.tar.gz", WORDS, root=root)
    digest = Digest("sha256", sha256(http_server.root / "sc.tar.gz"))
    dest = tmp_path / "sc"
    download_speechcommands(dest, url=http_server.url("sc.tar.gz"), digest=digest, **FAST)
    labels = LabelSet.read(dest / "class_labels_indices.csv")
    assert labels.names == WORDS and labels.mids[19] == "/m/spcmd19" and labels.names[19] == "visual"
    ids = {name: (read_segments(dest / f"{name}_list.csv")) for name in ("train", "validation", "testing")}
    as_official = {k: sorted(f"{s.ytid.split('-', 1)[0]}/{s.ytid.split('-', 1)[1]}.wav" for s in v) for k, v in ids.items()}
    assert as_official["validation"] == sorted(lists["validation"]) and as_official["testing"] == sorted(lists["testing"])
    assert as_official["train"] == sorted(set(lists["all"]) - set(lists["validation"]) - set(lists["testing"]))
    assert all(s.labels == (labels.mids[WORDS.index(s.ytid.split("-")[0])],) for v in ids.values() for s in v)
    out = tmp_path / "test.json"
    assert main(["-q", "prep", "--segments", str(dest / "testing_list.csv"), "--audio", str(dest / "audio"),
                 "--labels", str(dest / "class_labels_indices.csv"), "--out", str(out)]) == 0
    clips = read_datafile(out, labels)
    assert len(clips) == len(lists["testing"]) == len({c.wav for c in clips})  # same file names, distinct clips
    assert all(Path(c.wav).parent.name == labels.names[labels.index[c.labels[0]]] for c in clips)
    assert (dest / "_background_noise_" / "white_noise.wav").is_file()


# --- weights -----------------------------------------------------------------------------------


def _checkpoint(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.arange(4.0)}}, path)
    return path


def test_weights_are_fetched_once_verified_and_corruption_is_detected(http_server, tmp_path):
    served = _checkpoint(http_server.root / "deit.pth")
    digest = Digest("sha256", sha256(served))
    out = tmp_path / "checkpoints"
    name = "deit_base_distilled_patch16_384"
    for _ in range(2):
        path = fetch_weights(name, out, url=http_server.url("deit.pth"), digest=digest, **FAST)
    assert path == out / f"{name}.pth" and path.read_bytes() == served.read_bytes()
    assert len(http_server.requests_for("deit.pth")) == 1
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AtdrError, match=f"{name}.pth .*sha256 mismatch: expected {digest.hexdigest}, got "):
        fetch_weights(name, out, url=http_server.url("deit.pth"), digest=digest, **FAST)


def test_weights_without_a_published_checksum_are_recorded_and_then_checked(http_server, tmp_path, monkeypatch):
    # through the mirror setting: the catalogue's own Dropbox address, served locally
    monkeypatch.setenv("ATDR_MIRROR", http_server.url("mirror"))
    _checkpoint(http_server.root / "mirror" / "www.dropbox.com" / "s" / "ca0b1v2nlxzyeb4" / "audioset_10_10_0.4593.pth")
    path = fetch_weights("audioset_10_10_0.4593", tmp_path, **FAST)
    recorded = (tmp_path / "audioset_10_10_0.4593.pth.sha256").read_text().split()[0]
    assert recorded == sha256(path)
    path.write_bytes(b"corrupted")
    with pytest.raises(AtdrError, match=f"expected {recorded}"):
        fetch_weights("audioset_10_10_0.4593", tmp_path, **FAST)


def test_a_download_that_is_not_a_checkpoint_is_rejected(http_server, tmp_path):
    blob(http_server, "junk.pth", 1000)
    with pytest.raises(AtdrError, match="not a checkpoint"):
        fetch_weights("deit_tiny_distilled_patch16_224", tmp_path, url=http_server.url("junk.pth"),
                      digest=Digest("sha256", sha256(http_server.root / "junk.pth")), **FAST)
    assert not (tmp_path / "deit_tiny_distilled_patch16_224.pth").exists()


def test_the_weights_a_model_needs():
    assert required("ast", {"imagenet_pretrain": True}) == ["deit_base_distilled_patch16_384"]
    assert required("ast", {"model_size": "tiny224", "imagenet_pretrain": True}) == ["deit_tiny_distilled_patch16_224"]
    assert required("ast", {"imagenet_pretrain": True, "audioset_pretrain": True}) == ["audioset_10_10_0.4593"]
    assert required("ast", {}) == [] and required("tal", {}) == []


def test_download_weights_cli(http_server, tmp_path, capsys):
    served = _checkpoint(http_server.root / "w.pth")
    assert main(["-q", "download", "weights", "deit_tiny_distilled_patch16_224", "--dir", str(tmp_path),
                 "--url", http_server.url("w.pth"), "--sha256", sha256(served), "--backoff", "0.01"]) == 0
    assert (tmp_path / "deit_tiny_distilled_patch16_224.pth").is_file()
    assert main(["download", "weights", "nope"]) == 2
    assert "unknown weights 'nope'" in capsys.readouterr().err
