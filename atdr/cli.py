"""The `atdr` command line: one program, one subcommand per stage of the pipeline.

Each subcommand lives in `atdr/commands/<name>.py` with a docstring (its help), an
`add_arguments(parser)` and a `run(args)`; heavy imports happen inside `run` so that
`atdr --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from atdr import __version__
from atdr.data.notes import ConversionNotes
from atdr.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, STORAGE_ERRNOS, AtdrError, storage_message

# Subcommand name -> module in atdr.commands, in the order of the pipeline.
COMMANDS = {
    "synth": "synth",
    "download": "download",
    "link": "link",
    "split": "split",
    "prep": "prep",
    "pack": "pack",
    "weights": "weights",
    "norm-stats": "norm_stats",
    "models": "models",
    "train": "train",
    "evaluate": "evaluate",
    "ensemble": "ensemble",
    "compare": "compare",
    "subset": "subset",
    "label-noise": "label_noise",
    "probe": "probe",
    "analyze": "analyze",
    "cost": "cost",
    "tag": "tag",
    "convert-checkpoint": "convert_checkpoint",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atdr",
        description="AudioTagging Done Right: data preparation, training, evaluation and "
        "comparison of audio taggers. Run `atdr COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"atdr {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"atdr.commands.{module_name}")
        doc = (module.__doc__ or "").strip()
        summary = doc.splitlines()[0] if doc else ""
        p = sub.add_parser(
            name,
            help=summary.replace("%", "%%"),
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        with ConversionNotes().collecting():  # resampled, downmixed: said once, workers' notes too
            return args._run(args) or 0
    except AtdrError as e:
        print(f"atdr {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # whichever command, wherever it writes: a full or read-only disk is one line
        if e.errno not in STORAGE_ERRNOS:
            raise
        print(f"atdr {args.command}: error: {storage_message(e.errno, e.filename or _output(args))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"atdr {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _output(args: argparse.Namespace) -> str | None:
    """Where a command writes (its --out, DEST or --dir): for a failed write that names no file."""
    return next((str(value) for value in (getattr(args, name, None) for name in ("out", "dest", "dir")) if value), None)
