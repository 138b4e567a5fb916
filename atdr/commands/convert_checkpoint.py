"""Convert a checkpoint of the original code (any family) into an atdr model checkpoint.

SRC is a state dict saved by the original code (AudioTaggingDoneRight's src/models, or the PSLA
and AST releases): `module.` prefixes (DataParallel) and `{"model": ...}` or
`{"state_dict": ...}` wrappers are fine. Its keys are mapped onto model NAME, built for the given
front-end, input length and hyper-parameters; the weights must load strictly. DST is a
self-describing atdr checkpoint: weights plus the model, front-end, input length,
normalisation and class list they need, and the original class and arguments they came from:
ready for `atdr tag --checkpoint DST`; saved as DIR/checkpoints/best.pt, `atdr evaluate DIR --data
JSON` scores it on a datafile. Give the normalisation the checkpoint was trained with (the run
script's --mean/--std; AST AudioSet: -4.2677393, 4.5689974).

Families (--model) and the original classes they convert from:
  ast          ast_models.py:ASTModel (also the published AST checkpoints)
  psla         pslaModels.py:EffNetAttention (alias efficientnet; also the published PSLA ones)
  resnet       pslaModels.py:ResNetAttention (converts with head=original)
  tal          Net_mModal_mgpu.py:TALNet
  taltrans     Net_mModal_mgpu.py:TransformerEncoder (one transformer block, applied n_trans_layers times)
  transformer  Net_mModal_mgpu.py:Transformer
  fnet         AudioFnet.py:FNet (converts with head=original)
  linear       linearModels.py:LinearModel
The defaults (front-end, input length, hyper-parameters) are the paper recipes' (`atdr models`);
give what a checkpoint's run script set otherwise with --frontend, --target-length and --set.

Examples:
  # the AudioSet AST (0.4593 mAP), https://www.dropbox.com/s/cv4knew8mvbrnvq/audioset_0.4593.pth?dl=1
  atdr convert-checkpoint audioset_10_10_0.4593.pth ast_audioset.pt --model ast \\
      --labels class_labels_indices.csv --frontend kaldi128 --target-length 1024 \\
      --mean -4.2677393 --std 4.5689974 --set fstride=10 --set tstride=10
  # a PSLA EfficientNet-B2 with 4 sigmoid attention heads
  atdr convert-checkpoint psla_audioset.pth psla.pt --model psla --labels class_labels_indices.csv \\
      --mean -4.6476 --std 4.5699 --set att_activation=sigmoid
  # run-psla-res.sh's ResNet-50 (mel64 x 400)
  atdr convert-checkpoint exp/resnet-.../models/best_audio_model.pth resnet.pt --model resnet \\
      --labels class_labels_indices.csv --mean -29.072655 --std 40.71728
  # run-TAL.sh's TALNet (kaldi128 x 1024)
  atdr convert-checkpoint exp/TAL-.../models/audio_model_wa.pth tal.pt --model tal \\
      --labels class_labels_indices.csv --mean -3.6788461 --std 4.3739743
"""

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the original checkpoint (.pth)")
    p.add_argument("dst", help="where to write the atdr checkpoint")
    p.add_argument("--model", required=True, metavar="NAME", help="registered model name (see above and `atdr models`)")
    p.add_argument("--labels", required=True, metavar="CSV", help="class_labels_indices.csv of the checkpoint's classes")
    p.add_argument("--frontend", metavar="NAME", help="kaldi<N> or mel<N> (default: the model's)")
    p.add_argument("--target-length", type=int, metavar="N", help="input frames (default: the front-end's 10 s length)")
    p.add_argument("--mean", type=float, required=True, help="normalisation mean the checkpoint was trained with")
    p.add_argument("--std", type=float, required=True, help="normalisation std the checkpoint was trained with")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hyper-parameter, repeatable (e.g. --set fstride=10)")


def run(args: argparse.Namespace) -> None:
    from atdr.checkpoint import ModelBundle
    from atdr.data.features import get_frontend
    from atdr.data.labels import LabelSet
    from atdr.errors import AtdrError
    from atdr.models import get_spec, parse_overrides
    from atdr.models.convert import convert_state_dict
    from atdr.torchfile import load_state_dict

    if args.std <= 0:
        raise AtdrError("--std must be positive")
    labels = LabelSet.read(args.labels)
    spec = get_spec(args.model)
    frontend = get_frontend(args.frontend or spec.frontend)
    target_length = args.target_length or frontend.default_target_length
    model = convert_state_dict(load_state_dict(args.src), args.model, label_dim=len(labels), n_mels=frontend.n_mels,
                               target_length=target_length, **parse_overrides(args.model, args.set))
    params = {k: v for k, v in model.config.items() if k not in ("label_dim", "n_mels", "target_length")}
    info = {"converted_from": str(args.src), "original": spec.original.describe(model.config)}
    ModelBundle(model.model_name, params, frontend.name, target_length, args.mean, args.std, list(labels.mids),
                list(labels.names), model.state_dict(), info).save(args.dst)
    log.info("converted %s (%s) -> %s (%s, %s, %d frames, %d classes)", args.src, spec.original.cls, args.dst,
             model.model_name, frontend.name, target_length, len(labels))
