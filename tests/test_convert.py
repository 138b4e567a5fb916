"""Converting the original checkpoints (AST, PSLA) into atdr model checkpoints."""

from __future__ import annotations

import pytest
import torch

from atdr.cli import main
from atdr.errors import AtdrError
from atdr.checkpoint import ModelBundle
from atdr.data.labels import LabelSet
from atdr.models import create
from atdr.checkpoint import load_state_dict
from atdr.models.convert import convert_state_dict

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


def test_models_without_published_checkpoints_have_no_converter(tmp_path):
    with pytest.raises(AtdrError, match="no converter for model 'tal': original checkpoints convert for ast, psla"):
        convert_state_dict({}, "tal")
    with pytest.raises(AtdrError, match="checkpoint not found"):
        load_state_dict(tmp_path / "nothing.pth")


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
