"""Tag audio files with a trained model: top-k labels with display names and probabilities.

Any format soundfile decodes (wav, flac, ogg/vorbis, opus, mp3, ...), sample rate and channel
count is accepted (resampled to 16 kHz, downmixed to mono; said once). Files longer than the
model's input are tagged in sliding windows: the clip-level score is the maximum over windows;
--out keeps the per-window scores too (csv or json by extension). Every readable file is tagged;
each one that is not (not found, a folder, not a readable format, NaN, infinite or absurdly large
samples) gets an error line, and the exit status is then non-zero.

Examples:
  atdr tag clip.wav other.flac --run results/synth/tal/seed0
  atdr tag --run RUN --top-k 5 --out tags.csv -- --BfvyPmVMo.wav   (names starting with - after --)
"""

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", help="audio files (wav, flac, ogg, opus, mp3, ...)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR", help="run folder: uses DIR/checkpoints/best.pt")
    source.add_argument("--checkpoint", metavar="PT", help="model checkpoint (best.pt, wa.pt or converted)")
    p.add_argument("--top-k", type=int, default=10, help="labels to report per clip (default: %(default)s)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="window hop for long files (default: half the model's input length)")
    p.add_argument("--out", metavar="FILE", help="also write every score to FILE (.csv or .json)")


def _top(probs, labels, k: int) -> list[dict]:
    order = probs.argsort()[::-1][:k]
    return [{"mid": labels.mids[i], "display_name": labels.names[i], "probability": round(float(probs[i]), 6)}
            for i in order]


def run(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from atdr.atomic import atomic_path, write_text
    from atdr.checkpoint import ModelBundle
    from atdr.data.audio import SAMPLE_RATE
    from atdr.data.features import get_frontend
    from atdr.errors import AtdrError
    from atdr.tag import Tagger

    if args.top_k < 1:
        raise AtdrError("--top-k must be at least 1")
    if args.out and Path(args.out).suffix not in (".csv", ".json"):
        raise AtdrError(f"--out {args.out}: use a .csv or .json file name")
    bundle = ModelBundle.load(Path(args.run) / "checkpoints" / "best.pt" if args.run else args.checkpoint)
    labels = bundle.labels
    window_s = bundle.target_length * get_frontend(bundle.frontend).hop_length / SAMPLE_RATE
    hop = args.hop if args.hop is not None else window_s / 2
    if hop <= 0:
        raise AtdrError("--hop must be positive")
    tagger = Tagger(bundle)
    k = min(args.top_k, len(labels))
    results, failed = [], []
    for clip in args.clips:
        try:
            tags = tagger(clip, hop)
        except AtdrError as e:
            failed.append(clip)
            print(f"atdr tag: error: {e}", file=sys.stderr)
            continue
        top = _top(tags.clip, labels, k)
        windows = [{"start_s": round(float(s), 3), "end_s": round(float(e), 3), "top": _top(p, labels, k)}
                   for s, e, p in zip(tags.starts, tags.ends, tags.windows)]
        results.append({"file": clip, "top": top, "windows": windows})
        print(f"{clip}" + (f"  ({len(windows)} windows of {window_s:g} s)" if len(windows) > 1 else ""))
        for t in top:
            print(f"  {t['probability']:.4f}  {t['display_name']}  ({t['mid']})")
        sys.stdout.flush()
    if args.out and results:
        if args.out.endswith(".json"):
            write_text(args.out, json.dumps(results, indent=2) + "\n")
        else:
            rows = []
            for r in results:
                entries = [("clip", r["windows"][0]["start_s"], r["windows"][-1]["end_s"], r["top"])]
                entries += [(i, w["start_s"], w["end_s"], w["top"]) for i, w in enumerate(r["windows"])]
                for window, start, end, top in entries:
                    rows += [{"file": r["file"], "window": window, "start_s": start, "end_s": end, "rank": rank, **t}
                             for rank, t in enumerate(top, 1)]
            with atomic_path(args.out) as tmp:
                pd.DataFrame(rows).to_csv(tmp, index=False)
        log.info("wrote %s", args.out)
    if failed:
        if len(args.clips) > 1:
            log.warning("tagged %d of %d files; %d could not be read (errors above)", len(results), len(args.clips),
                        len(failed))
        return 2
    return 0
