"""Convert a published checkpoint (AST, PSLA) into an atdr model checkpoint.

SRC is a state dict of the original ASTModel or EffNetAttention as published (`module.`
prefixes, `{"model": ...}` or `{"state_dict": ...}` wrappers allowed). Its keys are mapped onto
model NAME, built for the given input size and hyper-parameters (default: the model's default
front-end and the paper recipe's), the result must load strictly, and DST gets
`{"model": NAME, "hparams": {...}, "state_dict": {...}}`.

Examples:
  # the AudioSet AST (0.4593 mAP), https://www.dropbox.com/s/cv4knew8mvbrnvq/audioset_0.4593.pth?dl=1
  atdr convert-checkpoint audioset_10_10_0.4593.pth ast_audioset.pt --model ast \\
      --n-mels 128 --target-length 1024 --set fstride=10 --set tstride=10
  # a PSLA EfficientNet-B2 trained with 4 heads
  atdr convert-checkpoint psla_audioset.pth psla.pt --model psla --set att_activation=sigmoid
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the original checkpoint (.pth)")
    p.add_argument("dst", help="where to write the atdr checkpoint")
    p.add_argument("--model", required=True, metavar="NAME", help="registered model name (see `atdr models`)")
    p.add_argument("--label-dim", type=int, default=527, metavar="N", help="number of classes (default: %(default)s)")
    p.add_argument("--n-mels", type=int, metavar="N", help="mel bins (default: the model's default front-end)")
    p.add_argument("--target-length", type=int, metavar="N",
                   help="input frames (default: the model's default front-end)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyper-parameter, repeatable (e.g. --set fstride=10)")


def run(args: argparse.Namespace) -> None:
    from atdr.models import parse_overrides
    from atdr.models.convert import convert_checkpoint

    overrides = parse_overrides(args.model, args.set)
    model = convert_checkpoint(args.src, args.dst, args.model, label_dim=args.label_dim, n_mels=args.n_mels,
                               target_length=args.target_length, **overrides)
    log.info("converted %s -> %s (%s, %s)", args.src, args.dst, model.model_name, model.config)
