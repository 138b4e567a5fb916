"""Converting checkpoints of the original code (every family) into atdr model checkpoints.

The original-named state dicts are written here from the name mapping documented in README.md
("Checkpoints of the original code"), not taken from the original source: our model's weights,
renamed the original's way, must convert back to the same model, strictly, with the same outputs.
"""

from __future__ import annotations

import re

import pytest
import torch

from atdr.checkpoint import ModelBundle
from atdr.cli import main
from atdr.data.labels import LabelSet
from atdr.errors import AtdrError
from atdr.models import create, get_spec, list_specs
from atdr.models.convert import convert_state_dict, rename_keys
from atdr.models.tal import sinusoid_table
from atdr.torchfile import load_state_dict

AST_SMALL = dict(model_size="tiny224", fstride=16, tstride=16)


pytestmark = pytest.mark.usefixtures("one_thread")


def _as_published_ast(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our AST state dict in the published layout: DataParallel prefix and the unused DeiT heads."""
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    dim = model.v.embed_dim
    state |= {f"module.v.{h}.{p}": torch.zeros((1000, dim) if p == "weight" else (1000,))
              for h in ("head", "head_dist") for p in ("weight", "bias")}
    return state


@pytest.fixture
def labels7(tmp_path):
    labels = LabelSet(tuple(f"/m/{i}" for i in range(7)), tuple(f"class {i}" for i in range(7)))
    labels.write(tmp_path / "labels.csv")
    return tmp_path / "labels.csv"


def test_ast_checkpoint_converts_through_the_cli(tmp_path, labels7):
    torch.manual_seed(0)
    original = create("ast", label_dim=7, n_mels=32, target_length=64, **AST_SMALL).eval()
    torch.save(_as_published_ast(original), tmp_path / "ast.pth")
    args = ["convert-checkpoint", str(tmp_path / "ast.pth"), str(tmp_path / "out" / "ast.pt"), "--model", "ast",
            "--labels", str(labels7), "--frontend", "kaldi32", "--target-length", "64", "--mean", "-4.27",
            "--std", "4.57", "--set", "model_size=tiny224", "--set", "fstride=16", "--set", "tstride=16"]
    assert main(args) == 0
    bundle = ModelBundle.load(tmp_path / "out" / "ast.pt")
    assert (bundle.model, bundle.frontend, bundle.target_length, bundle.mean, bundle.std) == ("ast", "kaldi32", 64, -4.27, 4.57)
    assert bundle.params == dict(model_size="tiny224", fstride=16, tstride=16, imagenet_pretrain=False,
                                 audioset_pretrain=False)
    assert bundle.names[3] == "class 3"
    converted = bundle.build()
    x = torch.randn(2, 64, 32)
    with torch.no_grad():
        assert torch.equal(converted(x), original(x))


def test_a_checkpoint_that_does_not_fit_says_why(tmp_path, capsys, labels7):
    torch.manual_seed(0)
    original = create("ast", label_dim=7, n_mels=32, target_length=64, **AST_SMALL)
    state = _as_published_ast(original)
    with pytest.raises(AtdrError, match=r"shape \(1\): v\.pos_embed \(1, 10, 192\) vs \(1, 14, 192\)"):
        convert_state_dict(state, "ast", label_dim=7, n_mels=32, target_length=96, **AST_SMALL)
    with pytest.raises(AtdrError, match=r"unexpected \(1\): v\.extra"):
        convert_state_dict({**state, "module.v.extra": torch.zeros(1)}, "ast", label_dim=7, n_mels=32,
                           target_length=64, **AST_SMALL)
    torch.save(state, tmp_path / "ast.pth")
    assert main(["convert-checkpoint", str(tmp_path / "ast.pth"), str(tmp_path / "x.pt"), "--model", "ast",
                 "--labels", str(labels7), "--mean", "0", "--std", "1"]) == 2
    assert "checkpoint does not fit ast" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_a_missing_checkpoint_file_is_one_line(tmp_path):
    with pytest.raises(AtdrError, match="checkpoint not found"):
        load_state_dict(tmp_path / "nothing.pth")


# --- every family, in the original's naming ----------------------------------------------------


def _renamed(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """`state` with each key renamed by the first matching rule (ours -> the original's)."""
    out = {}
    for key, value in state.items():
        for pattern, template in rules:
            if re.fullmatch(pattern, key):
                key = re.sub(pattern, template, key)
                break
        out[key] = value
    return out


HEAD = [(r"head\.fc_(prob|att)\.(.+)", r"fc_\1.\2")]  # TALNet, TransformerEncoder, Transformer, LinearModel
CONV = [(r"conv\.layers\.(\d+)\.(.+)", r"conv.\1.\2")]  # ModuleList `conv` ...


def _conv_aliases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """... whose blocks the original also registers as attributes `conv1`, `conv2`, ..."""
    aliases = {}
    for key, value in state.items():
        if m := re.fullmatch(r"conv\.(\d+)\.(.+)", key):
            aliases[f"conv{int(m[1]) + 1}.{m[2]}"] = value
    return state | aliases


def original_tal(model) -> dict[str, torch.Tensor]:
    return _conv_aliases(_renamed(model.state_dict(), CONV + HEAD))


def original_taltrans(model) -> dict[str, torch.Tensor]:
    state = _conv_aliases(_renamed(model.state_dict(), CONV + HEAD + [(r"layers\.0\.(.+)", r"enc_layer.\1")]))
    state["positional_encoding.pe"] = sinusoid_table(model.target_length, model.n_mels).unsqueeze(0)  # a buffer there
    return state


def original_fnet(model) -> dict[str, torch.Tensor]:
    return _renamed(model.state_dict(), [
        (r"input_norm\.(.+)", r"input.layer_norm.\1"), (r"input_proj\.(.+)", r"input.hidden_mapping.\1"),
        (r"layers\.(.+)", r"encoder.layer.\1"), (r"head\.fc_prob\.(.+)", r"pooler.fc.\1"),
        (r"head\.fc_att\.(.+)", r"pooler.att.\1"),
    ])  # fmt: skip


def original_resnet(model) -> dict[str, torch.Tensor]:
    """`model.*` is torchvision's ResNet (timm's names); the attention layers are 1x1 convs."""
    state = _renamed(model.state_dict(), [(r"attention\.(att|cla)\.0\.(.+)", r"attention.\1.\2")])
    return {k: v[:, :, None, None] if re.fullmatch(r"attention\.(att|cla)\.weight", k) else v for k, v in state.items()}


ORIGINAL_NAMING = {
    "tal": (dict(embedding_size=64, n_conv_layers=4, n_pool_layers=2, kernel_size="3x5"), (32, 64), original_tal),
    "taltrans": (dict(embedding_size=64, n_conv_layers=4, n_pool_layers=2), (32, 64), original_taltrans),
    "transformer": (dict(embedding_size=32, n_trans_layers=2), (32, 64), lambda m: _renamed(m.state_dict(), HEAD)),
    "linear": (dict(n_layers=3, hidden_dim=16), (32, 64), lambda m: _renamed(m.state_dict(), HEAD)),
    "fnet": (dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64, head="original"), (32, 64), original_fnet),
    "resnet": (dict(head="original"), (64, 400), original_resnet),
}


def _with_statistics(model):
    """`model` with BatchNorm statistics that are not the identity, so that they matter."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("name", sorted(ORIGINAL_NAMING))
def test_original_checkpoints_of_every_family_convert_exactly(name):
    params, (n_mels, frames), to_original = ORIGINAL_NAMING[name]
    torch.manual_seed(0)
    ours = _with_statistics(create(name, label_dim=5, n_mels=n_mels, target_length=frames, **params))
    state = {f"module.{k}": v for k, v in to_original(ours).items()}  # saved from DataParallel
    fixed = get_spec(name).original.fixed
    converted = convert_state_dict(state, name, label_dim=5, n_mels=n_mels, target_length=frames,
                                   **{k: v for k, v in params.items() if k not in fixed}).eval()
    assert converted.config == ours.config
    x = torch.randn(2, frames, n_mels)
    with torch.no_grad():
        assert torch.equal(converted(x), ours(x))


def _efficientnet_pytorch_b(b: int):
    """The original PSLA backbone with BatchNorm statistics that are not the identity."""
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    net = efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-b{b}", in_channels=1).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1.0, 0.1)
            m.bias.data.normal_()
    net._fc = torch.nn.Identity()  # as PSLA's EffNetAttention
    return net


def _psla_reference(net, att, cla, head_weight, x, activation):
    """PSLA's EffNetAttention forward (AvgPool2d((4,1)), then MHeadAttention / Attention /
    MeanPooling), written out for 128 mel bins; `att`, `cla`: lists of 1x1 convs."""
    act = torch.sigmoid if activation == "sigmoid" else (lambda t: torch.softmax(t, dim=1))
    feats = net.extract_features(x.transpose(1, 2).unsqueeze(1))  # (B, C, 4, T')
    feats = torch.nn.functional.avg_pool2d(feats, (4, 1)).transpose(2, 3)  # (B, C, T', 1)
    if not att:  # mean pooling, always sigmoid
        return torch.sigmoid(cla[0](feats))[:, :, :, 0].mean(dim=2)
    out = 0
    for a_conv, c_conv, w in zip(att, cla, head_weight):
        a = act(a_conv(feats))[:, :, :, 0].clamp(1e-7, 1 - 1e-7)
        c = act(c_conv(feats))[:, :, :, 0]
        out = out + (a / a.sum(dim=2, keepdim=True) * c).sum(dim=2) * w
    return out


@pytest.mark.parametrize("heads, activation", [(4, "softmax"), (4, "sigmoid"), (1, "sigmoid"), (0, "sigmoid")])
def test_psla_checkpoint_gives_the_original_outputs(heads, activation):
    """EfficientNet-B2 (the recipe): its static padding differs from timm's dynamic "same" padding.
    Key layouts: `attention.att.N` (heads > 1), `attention.att` (1 head), `attention.cla` (mean)."""
    torch.manual_seed(0)
    net = _efficientnet_pytorch_b(2)
    labels = 6
    att = [torch.nn.Conv2d(1408, labels, 1) for _ in range(heads)]
    cla = [torch.nn.Conv2d(1408, labels, 1) for _ in range(max(heads, 1))]
    head_weight = torch.rand(heads) if heads > 1 else torch.ones(1)
    state = {f"module.effnet.{k}": v for k, v in net.state_dict().items()}
    for kind, convs in (("att", att), ("cla", cla)):
        for i, conv in enumerate(convs):
            prefix = f"module.attention.{kind}.{i}." if heads > 1 else f"module.attention.{kind}."
            state |= {prefix + k: v for k, v in conv.state_dict().items()}
    if heads > 1:
        state["module.attention.head_weight"] = head_weight
    model = convert_state_dict(state, "efficientnet", label_dim=labels, n_mels=128, target_length=80,
                               att_head=heads, att_activation=activation).eval()
    x = torch.randn(2, 80, 128)
    image = x.transpose(1, 2).unsqueeze(1)
    with torch.no_grad():
        assert torch.allclose(model.effnet.forward_features(image), net.extract_features(image), atol=1e-5)
        expected = _psla_reference(net, att, cla, head_weight, x, activation)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_the_original_class_and_its_arguments_are_recorded(tmp_path, labels7):
    torch.manual_seed(0)
    params = dict(embedding_size=64, n_conv_layers=4, n_pool_layers=2, kernel_size="3x5", pooling="lin")
    ours = create("tal", label_dim=7, n_mels=32, target_length=64, **params).eval()
    torch.save({f"module.{k}": v for k, v in original_tal(ours).items()}, tmp_path / "tal.pth")
    sets = [a for k, v in params.items() for a in ("--set", f"{k}={v}")]
    assert main(["-q", "convert-checkpoint", str(tmp_path / "tal.pth"), str(tmp_path / "tal.pt"), "--model", "tal",
                 "--labels", str(labels7), "--frontend", "kaldi32", "--target-length", "64", "--mean", "-3.68",
                 "--std", "4.37", *sets]) == 0
    bundle = ModelBundle.load(tmp_path / "tal.pt")
    assert bundle.info["original"] == {
        "class": "src/models/Net_mModal_mgpu.py:TALNet",
        "arguments": dict(n_mels=32, embedding_size=64, n_conv_layers=4, n_pool_layers=2, batch_norm=True,
                          dropout=0.0, pooling="lin", kernel_size=(3, 5)),
    }
    assert bundle.info["converted_from"] == str(tmp_path / "tal.pth")
    x = torch.randn(2, 64, 32)
    with torch.no_grad():
        assert torch.equal(bundle.build()(x), ours(x))


def test_help_lists_every_family_and_its_original_class(capsys):
    with pytest.raises(SystemExit):
        main(["convert-checkpoint", "--help"])
    text = capsys.readouterr().out
    for spec in list_specs():
        assert re.search(rf"^  {spec.name} +\S*{spec.original.cls.rsplit('/', 1)[-1]}", text, re.M), spec.name


def test_what_the_original_class_always_has_cannot_be_overridden():
    with pytest.raises(AtdrError, match=r"TransformerEncoder always has share_trans_weights=True"):
        convert_state_dict({}, "taltrans", share_trans_weights=False)
    with pytest.raises(AtdrError, match=r"ResNetAttention always has head='original'"):
        convert_state_dict({}, "resnet", head="mean")


def test_module_aliases_must_hold_the_same_weights():
    torch.manual_seed(0)
    ours = create("tal", label_dim=3, n_mels=32, target_length=16, embedding_size=64, n_conv_layers=2,
                  n_pool_layers=1)
    state = original_tal(ours)
    state["conv2.conv.bias"] = state["conv2.conv.bias"] + 1
    with pytest.raises(AtdrError, match=r"conv\.1\.conv\.bias and conv2\.conv\.bias are one weight"):
        convert_state_dict(state, "tal", label_dim=3, n_mels=32, target_length=16, embedding_size=64,
                           n_conv_layers=2, n_pool_layers=1)


def test_rename_keys_rules():
    one, two = torch.ones(1), torch.zeros(1)
    rules = [(r"a\.(\d+)", lambda m: f"b.{int(m[1]) * 10}"), (r"drop\..*", None), (r"c\.(.+)", r"d.\1")]
    assert rename_keys({"a.2": one, "drop.me": two, "c.x": two, "kept": one}, rules) == \
        {"b.20": one, "d.x": two, "kept": one}
