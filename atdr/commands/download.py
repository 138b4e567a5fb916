"""Download a dataset or published weights, verified and resumable (the workflow's download stage).

Each source leaves AudioSet's layout in DEST: class_labels_indices.csv, segment lists and audio/,
ready for `atdr link`/`atdr prep`. Interrupted downloads resume; what is on disk and valid is not
fetched again. Addresses: atdr/download/addresses.py; $ATDR_MIRROR redirects them all to a mirror
(README, "Real data").

Examples:
  atdr download audioset resources/data/audioset --segments balanced_train_segments.csv eval_segments.csv
  atdr download archives resources/data/audioset --archive https://host/bal_00.tar SHA256 \\
      --file balanced_train_segments.csv=/data/lists/balanced_train_segments.csv
  atdr download esc50 resources/data/esc50
  atdr download speechcommands resources/data/speechcommands
  atdr download weights deit_base_distilled_patch16_384 audioset_10_10_0.4593
  atdr download weights --list
"""

import argparse
import logging

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tries", type=int, default=5, help="attempts per file or clip on transient errors (default: %(default)s)")
    p.add_argument("--backoff", type=float, default=2.0, metavar="SECONDS",
                   help="first wait before a retry; doubles each time (default: %(default)s)")


def _checksum(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="fetch from this address instead of the official one; a local path or file:// URL "
                   "is read where it is (never deleted)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--sha256", help="expected sha256 of what --url gives (default: the published checksum)")
    group.add_argument("--md5", help="expected md5 of what --url gives")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="source", metavar="SOURCE", required=True)

    a = sub.add_parser("audioset", help="AudioSet clips from YouTube (yt-dlp + ffmpeg) for official segment lists",
                       description="Fetch every segment of each list with yt-dlp, cut and convert it to 16 kHz mono "
                       "FLAC (audio/<ytid>_<start>.flac). Lists and the class list absent from DEST are fetched from "
                       "AudioSet's official address. Writes <list>_manifest.csv; fails below --min-fraction.")
    a.add_argument("dest", help="folder for the lists, class_labels_indices.csv and audio/")
    a.add_argument("--segments", nargs="+", required=True, metavar="CSV", help="segment list names, e.g. eval_segments.csv")
    a.add_argument("--workers", type=int, default=8, help="clips fetched at once (default: %(default)s)")
    a.add_argument("--min-fraction", type=float, default=0.5,
                   help="fail when less than this share of a list is on disk (default: %(default)s)")
    a.add_argument("--url-template", help="where a clip is looked up, with {ytid} (default: $ATDR_YOUTUBE_URL or YouTube)")
    a.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="network timeout (default: %(default)s)")
    a.add_argument("--retry-unavailable", action="store_true", help="try again clips found removed/private/blocked before")
    _common(a)

    r = sub.add_parser("archives", help="tar/zip/parquet shards of clips named by their ids, with sha256",
                       description="Fetch (HTTP range resume) or read each shard, verify its sha256, unpack it "
                       "safely into DEST/audio/. A shard once unpacked is never fetched again.")
    r.add_argument("dest", help="folder for audio/ and the metadata files")
    r.add_argument("--archive", nargs=2, action="append", required=True, metavar=("URL", "SHA256"),
                   help="a shard (URL or local path) and its sha256; repeat for each")
    r.add_argument("--file", action="append", default=[], metavar="NAME=URL",
                   help="a metadata file to put in DEST as NAME (class list, segment lists) unless there")
    r.add_argument("--id-column", help="parquet: the column of clip ids (default: video_id, ytid or id)")
    r.add_argument("--audio-column", help="parquet: the column of audio bytes (default: audio)")
    r.add_argument("--max-bytes", type=int, help="refuse archives declaring more (default: the free space of DEST)")
    r.add_argument("--keep-archives", action="store_true", help="keep the shards after unpacking")
    _common(r)

    for name, what in (("esc50", "ESC-50: 2000 clips, 50 classes, 5 folds (as egs/esc50/prep_esc50.py)"),
                       ("speechcommands", "Speech Commands v0.02: 35 words, official splits (as prep_sc.py)")):
        s = sub.add_parser(name, help=what, description=what)
        s.add_argument("dest", help="folder for class_labels_indices.csv, the segment lists and audio/")
        s.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive")
        _checksum(s)
        _common(s)

    w = sub.add_parser("weights", help="published pretrained weights (ImageNet DeiT, AudioSet AST)",
                       description="Fetch NAME.pth into the checkpoint folder and verify it.")
    w.add_argument("names", nargs="*", metavar="NAME", help="weights to fetch (see --list)")
    w.add_argument("--list", action="store_true", help="list the known weights and exit")
    w.add_argument("--dir", help="checkpoint folder (default: $ATDR_CHECKPOINTS or resources/checkpoints)")
    _checksum(w)
    _common(w)


def _digest(args: argparse.Namespace):
    from atdr.download.addresses import Digest
    from atdr.errors import AtdrError

    algorithm = "sha256" if args.sha256 else "md5" if args.md5 else None
    try:
        return Digest(algorithm, args.sha256 or args.md5) if algorithm else None
    except ValueError as e:
        raise AtdrError(f"--{algorithm}: {e}") from None


def run(args: argparse.Namespace) -> int:
    from atdr.errors import AtdrError

    retry = {"tries": args.tries, "wait": args.backoff}
    if args.source == "audioset":
        from atdr.download.youtube import download_audioset

        for segments in args.segments:
            code = download_audioset(args.dest, segments, template=args.url_template, workers=args.workers,
                                     timeout=args.timeout, min_fraction=args.min_fraction,
                                     retry_unavailable=args.retry_unavailable, **retry)
            if code:
                return code
    elif args.source == "archives":
        from atdr.download.addresses import Digest
        from atdr.download.archives import Archive, download_archives
        from atdr.download.unpack import ParquetColumns

        files = {}
        for item in args.file:
            name, sep, source = item.partition("=")
            if not sep or not name or not source:
                raise AtdrError(f"--file {item!r}: expected NAME=URL")
            files[name] = source
        try:
            archives = [Archive(source, Digest("sha256", sha)) for source, sha in args.archive]
        except ValueError as e:
            raise AtdrError(f"--archive: {e}") from None
        download_archives(args.dest, archives, files, keep=args.keep_archives, max_bytes=args.max_bytes,
                          columns=ParquetColumns(args.id_column, args.audio_column), **retry)
    elif args.source in ("esc50", "speechcommands"):
        from atdr.download import esc50, speechcommands

        fetch = esc50.download_esc50 if args.source == "esc50" else speechcommands.download_speechcommands
        if args.url and not (args.sha256 or args.md5):
            raise AtdrError("--url needs --sha256 or --md5: what it gives is checked")
        options = {"url": args.url, "digest": _digest(args)} if args.url else {}
        fetch(args.dest, keep=args.keep_archive, **options, **retry)
    else:
        from atdr.download.addresses import WEIGHTS
        from atdr.download.weights import checkpoint_dir, fetch_weights

        if args.list or not args.names:
            for name, w in WEIGHTS.items():
                print(f"{name:36} {w.digest or 'no published checksum'}  {w.description}")
            return 0
        if args.url and len(args.names) > 1:
            raise AtdrError("--url goes with a single NAME")
        for name in args.names:
            fetch_weights(name, args.dir or checkpoint_dir(), url=args.url, digest=_digest(args), **retry)
    return 0
