"""Pack a datafile's clips into one file: decoded once, 16 kHz mono, read by memory map.

Every clip is decoded once (downmixed and resampled to 16 kHz as training does) and stored as
16-bit PCM (--codec pcm16, default) or as FLAC (--codec flac: about half the size, decoded when
read), with a checksum per clip and an index of the datafile's clips and labels. Training reads
the store with one memory map per data worker instead of opening a file per clip; to use
node-local scratch on a cluster, copy the one file there (e.g. `sbcast` or `cp` in the job).

An interrupted pack (Ctrl-C, SIGTERM, a crash) continues where it stopped when run again; the
store appears only when complete. Clips that cannot be decoded are listed in a report csv
(wav, error) and skipped in training. --verify checks every clip of an existing store.

The store records the size and modification time of each clip's file: `atdr train` packs a
datafile again when its store is out of date (other clips or labels, or a clip's file changed).

Examples:
  atdr pack data/train.json                       # writes data/train.pack, data/train_undecodable.csv
  atdr pack data/train.json --codec flac --workers 8 --out /scratch/train.pack
  atdr pack --verify data/train.pack
"""

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="DATAFILE|STORE", help="datafile (json) to pack; with --verify, the store")
    p.add_argument("--out", metavar="PACK", help="store to write (default: DATAFILE stem + .pack beside it)")
    p.add_argument("--codec", choices=("pcm16", "flac"), default="pcm16", help="how clips are stored (default: %(default)s)")
    p.add_argument("--report", metavar="CSV", help="clips that could not be decoded (default: PACK stem + _undecodable.csv)")
    p.add_argument("--workers", type=int, default=0, help="decoding processes (default: %(default)s, this one)")
    p.add_argument("--verify", action="store_true", help="check every clip's checksum of the store SOURCE, write nothing")


def run(args: argparse.Namespace) -> None:
    from atdr.data.pack import PackedStore, pack

    if args.verify:
        store = PackedStore(args.source)
        clips = store.verify()
        log.info("%s: %d clips, every checksum matches (%s)", args.source, clips, store.codec)
        return
    source = Path(args.source)
    out = Path(args.out) if args.out else source.with_suffix(".pack")
    summary = pack(source, out, args.codec, args.report, args.workers)
    log.info("%s: %d clips (%d could not be decoded), %.1f MB, %s%s", out, summary.clips, summary.failed,
             summary.bytes / 1e6, args.codec, f"; {summary.resumed} were packed before the interruption"
             if summary.resumed else "")
