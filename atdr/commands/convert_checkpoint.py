"""Convert a published checkpoint (AST, PSLA) into an atdr model checkpoint.

SRC is a state dict of the original ASTModel or EffNetAttention as published (`module.`
prefixes, `{"model": ...}` or `{"state_dict": ...}` wrappers allowed). Its keys are mapped onto
model NAME, built for the given front-end, input length and hyper-parameters; the weights must
load strictly. DST is a self-describing atdr checkpoint: weights plus the model, front-end,
input length, normalisation and class list they need, ready for `atdr tag --checkpoint DST`.
Give the normalisation the checkpoint was trained with (AST AudioSet: -4.2677393, 4.5689974).

Examples:
  # the AudioSet AST (0.4593 mAP), https://www.dropbox.com/s/cv4knew8mvbrnvq/audioset_0.4593.pth?dl=1
  atdr convert-checkpoint audioset_10_10_0.4593.pth ast_audioset.pt --model ast \\
      --labels class_labels_indices.csv --frontend kaldi128 --target-length 1024 \\
      --mean -4.2677393 --std 4.5689974 --set fstride=10 --set tstride=10
  # a PSLA EfficientNet-B2 with 4 sigmoid attention heads
  atdr convert-checkpoint psla_audioset.pth psla.pt --model psla --labels class_labels_indices.csv \\
      --mean -4.6476 --std 4.5699 --set att_activation=sigmoid
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the original checkpoint (.pth)")
    p.add_argument("dst", help="where to write the atdr checkpoint")
    p.add_argument("--model", required=True, metavar="NAME", help="registered model name (see `atdr models`)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv of the checkpoint's classes")
    p.add_argument("--frontend", metavar="NAME", help="kaldi<N> or mel<N> (default: the model's)")
    p.add_argument("--target-length", type=int, metavar="N", help="input frames (default: the front-end's 10 s length)")
    p.add_argument("--mean", type=float, required=True, help="normalisation mean the checkpoint was trained with")
    p.add_argument("--std", type=float, required=True, help="normalisation std the checkpoint was trained with")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyper-parameter, repeatable (e.g. --set fstride=10)")


def run(args: argparse.Namespace) -> None:
    from atdr.checkpoint import ModelBundle, load_state_dict
    from atdr.data.features import get_frontend
    from atdr.data.labels import LabelSet
    from atdr.errors import AtdrError
    from atdr.models import get_spec, parse_overrides, without_pretraining
    from atdr.models.convert import convert_state_dict

    if args.std <= 0:
        raise AtdrError("--std must be positive")
    labels = LabelSet.read(args.labels)
    frontend = get_frontend(args.frontend or get_spec(args.model).frontend)
    target_length = args.target_length or frontend.default_target_length
    overrides = parse_overrides(args.model, args.set)
    model = convert_state_dict(load_state_dict(args.src), args.model, label_dim=len(labels), n_mels=frontend.n_mels,
                               target_length=target_length, **overrides)
    params = without_pretraining(get_spec(args.model).hparams(overrides))
    ModelBundle(model.model_name, params, frontend.name, target_length, args.mean, args.std, list(labels.mids),
                list(labels.names), model.state_dict(), {"converted_from": str(args.src)}).save(args.dst)
    log.info("converted %s -> %s (%s, %s, %d frames, %d classes)", args.src, args.dst, model.model_name,
             frontend.name, target_length, len(labels))
