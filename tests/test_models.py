"""The model zoo: registry, every model's forward/backward at reduced size, AST weight loading."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
import yaml

from atdr.cli import main
from atdr.checkpoint import ModelBundle
from atdr.data.features import get_frontend
from atdr.errors import AtdrError
from atdr.models import (
    AudioTagger,
    complexity,
    create,
    get_spec,
    list_models,
    list_specs,
    parse_overrides,
    without_pretraining,
)
from atdr.models.pooling import AttentionPooling, FramePooling
from atdr.models.tal import sinusoid_table

ROOT = Path(__file__).resolve().parents[1]
LABELS = 5
N_MELS, FRAMES = 32, 64
# Reduced widths/depths so every model runs in well under a second on CPU.
SMALL = {
    "ast": dict(model_size="tiny224", fstride=16, tstride=16),
    "psla": dict(eff_b=0, att_head=2),
    "efficientnet": dict(eff_b=0, att_head=1, att_activation="sigmoid"),
    "resnet": dict(depth=18),
    "tal": dict(embedding_size=64),
    "taltrans": dict(embedding_size=64, transformer_dropout=0.1),
    "transformer": dict(embedding_size=32),
    "fnet": dict(num_hidden_layers=2, hidden_size=32, intermediate_size=64),
    "linear": dict(),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def small(name: str, **overrides) -> AudioTagger:
    return create(name, label_dim=LABELS, n_mels=N_MELS, target_length=FRAMES, **{**SMALL[name], **overrides})


def test_registry_names_every_model():
    assert list_models() == sorted(SMALL)
    assert get_spec("efficientnet") is get_spec("psla")


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.name)
def test_spec_defaults_are_the_constructor_keywords(spec):
    params = inspect.signature(spec.cls.__init__).parameters
    keywords = [p for n, p in params.items() if n != "self"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is p.empty for p in keywords)
    assert set(spec.defaults) == set(params) - {"self", "label_dim", "n_mels", "target_length"}
    assert spec.frontend in ("kaldi128", "mel64") and spec.output in ("logits", "probs") and spec.description


def test_paper_recipe_defaults():
    assert get_spec("tal").defaults == dict(embedding_size=2048, n_conv_layers=10, n_pool_layers=5, kernel_size="3",
                                            batch_norm=True, dropout=0.0, pooling="att")
    taltrans = get_spec("taltrans")
    assert taltrans.frontend == "mel64" and (taltrans.n_mels, taltrans.target_length) == (64, 400)
    assert {k: taltrans.defaults[k] for k in ("embedding_size", "n_trans_layers", "addpos", "transformer_dropout")} == \
        dict(embedding_size=1024, n_trans_layers=2, addpos=True, transformer_dropout=0.75)
    assert get_spec("psla").defaults == dict(eff_b=2, att_head=4, att_activation="softmax", bn_momentum=0.01)
    assert (get_spec("tal").n_mels, get_spec("tal").target_length) == (128, 1024)
    assert get_spec("ast").output == "logits"
    assert all(s.output == "probs" for s in list_specs() if s.name != "ast")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_backward_and_determinism(name):
    x = torch.randn(3, FRAMES, N_MELS, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = small(name)
    torch.manual_seed(0)
    twin = small(name)
    model.eval(), twin.eval()
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))  # same seed, same init, same output

    proba = model.predict_proba(x)
    assert proba.shape == (3, LABELS) and ((proba >= 0) & (proba <= 1)).all()
    if model.output == "logits":
        assert torch.allclose(proba, torch.sigmoid(model(x)))
    else:
        assert torch.equal(proba, model(x))

    model.train()
    y = model(x)
    assert y.shape == (3, LABELS)
    target = torch.rand(3, LABELS)
    bce = F.binary_cross_entropy_with_logits if model.output == "logits" else F.binary_cross_entropy
    loss = bce(y, target)  # BCELoss also checks that probabilities are in [0, 1]
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    assert model.model_name == get_spec(name).name
    assert model.config == dict(label_dim=LABELS, n_mels=N_MELS, target_length=FRAMES,
                                **get_spec(name).hparams(SMALL[name]))


@pytest.mark.parametrize("name", ["tal", "taltrans", "linear", "fnet"])
def test_models_also_take_64_mel_and_128_mel_inputs(name):
    for n_mels in (64, 128):
        model = create(name, label_dim=3, n_mels=n_mels, target_length=48, **SMALL[name]).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 48, n_mels)).shape == (2, 3)


def test_resnet_and_psla_take_64_and_128_mel_inputs():
    for name in ("resnet", "psla"):
        for n_mels, frames in ((64, 100), (128, 96)):
            model = create(name, label_dim=3, n_mels=n_mels, target_length=frames, **SMALL[name]).eval()
            with torch.no_grad():
                assert model(torch.randn(1, frames, n_mels)).shape == (1, 3)


# --- errors -----------------------------------------------------------------------------------


def test_unknown_model_lists_the_names():
    with pytest.raises(AtdrError, match=r"unknown model 'cnn14'.*ast, efficientnet, fnet"):
        create("cnn14", label_dim=2, n_mels=64, target_length=400)


def test_unknown_hyper_parameter_names_the_key_and_the_valid_ones():
    with pytest.raises(AtdrError, match=r"'tal' has no hyper-parameter 'embed_dim'; valid: .*embedding_size"):
        create("tal", label_dim=2, n_mels=64, target_length=400, embed_dim=3)


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("ast", dict(model_size="huge"), "model_size must be one of tiny224, small224, base224, base384"),
        ("ast", dict(fstride="10"), "fstride must be int"),
        ("ast", dict(fstride=0), "fstride and tstride must be in 1..16"),
        ("tal", dict(pooling="mean"), "pooling must be one of max, ave, lin, exp, att"),
        ("tal", dict(batch_norm=1), "batch_norm must be bool"),
        ("tal", dict(kernel_size="4"), "kernel_size must be 'n' or 'nxm' with odd"),
        ("tal", dict(n_pool_layers=3), "n_pool_layers .3. must divide n_conv_layers .10."),
        ("tal", dict(n_conv_layers=12, n_pool_layers=6), "n_mels must be a multiple of 64"),
        ("taltrans", dict(embedding_size=63, n_conv_layers=8, n_pool_layers=4), "multiple of the bins left"),
        ("taltrans", dict(n_trans_layers=0), "n_trans_layers must be >= 1"),
        ("psla", dict(eff_b=8), "eff_b must be 0..7"),
        ("psla", dict(att_head=-1), "att_head must be an integer >= 0"),
        ("resnet", dict(att_activation="tanh"), "att_activation must be one of"),
        ("resnet", dict(depth=20), "depth must be 18, 34, 50, 101 or 152"),
        ("resnet", dict(head="max"), "head must be one of mean, original"),
        ("resnet", dict(head="original"), r"head=original .* is defined for depth 50 on 64 mel bins x 385-416"),
        ("fnet", dict(head="softmax"), "head must be one of sigmoid, original"),
        ("fnet", dict(head="original", pooling="max"), "head=original pools with attention"),
    ],
)
def test_bad_values_raise_atdr_error(name, overrides, message):
    with pytest.raises(AtdrError, match=message):
        small(name, **overrides)


def test_input_sizes_the_architecture_cannot_take():
    with pytest.raises(AtdrError, match="ast needs at least 16 mel bins and 16 frames"):
        create("ast", label_dim=2, n_mels=8, target_length=64, **SMALL["ast"])
    with pytest.raises(AtdrError, match="target_length .2. must be at least 4"):
        create("tal", label_dim=2, n_mels=32, target_length=2, embedding_size=64)
    with pytest.raises(AtdrError, match="psla: n_mels=1 is too small"):
        create("psla", label_dim=2, n_mels=1, target_length=64, eff_b=0)
    with pytest.raises(AtdrError, match="label_dim must be a positive integer"):
        create("linear", label_dim=0, n_mels=32, target_length=64)


def test_resnet_original_head_is_defined_where_the_original_runs():
    for frames in (385, 416):
        model = create("resnet", label_dim=2, n_mels=64, target_length=frames, head="original").eval()
        with torch.no_grad():
            assert model(torch.randn(1, frames, 64)).shape == (1, 2)
    for n_mels, frames in ((64, 384), (64, 417), (128, 1024)):
        with pytest.raises(AtdrError, match=f"got depth 50, {n_mels} x {frames}"):
            create("resnet", label_dim=2, n_mels=n_mels, target_length=frames, head="original")


def test_resnet_original_head_is_the_originals_reshape():
    """Written out from the original ResNetAttention.forward (pslaModels.py) for 64 mel bins:
    torchvision's ResNet-50 without avgpool and fc returns its feature map flattened; that is
    reshaped to (832, 4, 16), AvgPool2d((4, 1)), transposed, then PSLA's Attention (1x1 convs)."""
    torch.manual_seed(0)
    model = create("resnet", label_dim=LABELS, n_mels=64, target_length=400, head="original").eval()
    x = torch.randn(2, 400, 64)
    att, cla = (torch.nn.Conv2d(832, LABELS, 1) for _ in range(2))
    for conv, linear in ((att, model.attention.att[0]), (cla, model.attention.cla[0])):
        conv.weight.data.copy_(linear.weight[:, :, None, None])
        conv.bias.data.copy_(linear.bias)
    with torch.no_grad():
        features = model.model.forward_features(x.transpose(1, 2).unsqueeze(1))
        assert features.shape == (2, 2048, 2, 13)
        reshaped = torch.flatten(features, 1).reshape(2, 832, 4, 16)
        # channels, frequency and time mixed: "channel" 1 starts at flat index 64 = 2*26 + 0*13 + 12
        assert torch.equal(reshaped[:, 1, 0, 0], features[:, 2, 0, 12])
        y = torch.nn.AvgPool2d((4, 1))(reshaped).transpose(2, 3)  # (B, 832, 16, 1)
        a = torch.softmax(att(y), dim=1)[:, :, :, 0].clamp(1e-7, 1 - 1e-7)
        c = torch.softmax(cla(y), dim=1)[:, :, :, 0]
        expected = torch.sum(a / torch.sum(a, dim=2)[:, :, None] * c, dim=2)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_resnet_first_convolution_has_pytorchs_default_init():
    """The original replaces conv1 by a new 1-channel nn.Conv2d: kaiming_uniform(a=sqrt(5)),
    i.e. U(-1/7, 1/7) for 7x7 kernels (timm's kaiming_normal fan_out would have std 0.025)."""
    torch.manual_seed(0)
    weight = create("resnet", label_dim=2, n_mels=64, target_length=100, depth=18).model.conv1.weight
    bound = 1 / 7
    assert weight.abs().max() <= bound and 0.9 < weight.std() / (bound / 3**0.5) < 1.1


def test_fnet_original_head_clamps_linear_scores():
    """The original FNetPooler: clamp(fc(x)) without sigmoid, clamped and renormalised softmax attention."""
    torch.manual_seed(0)
    model = small("fnet", head="original").eval()
    x = torch.randn(2, FRAMES, N_MELS)
    with torch.no_grad():
        h = model.input_proj(model.input_norm(x))
        for layer in model.layers:
            h = layer(h)
        scores = model.head.fc_prob(h)
        assert (scores < 0).any() and (scores > 1).any()
        a = torch.softmax(model.head.fc_att(h), dim=1).clamp(1e-7, 1 - 1e-7)
        expected = (scores.clamp(1e-7, 1 - 1e-7) * (a / a.sum(dim=1).unsqueeze(1))).sum(dim=1)
        assert torch.equal(model(x), expected)


def test_parse_overrides_types_values_from_the_command_line():
    assert parse_overrides("taltrans", ["addpos=false", "embedding_size=256", "transformer_dropout=0.5",
                                        "kernel_size=3x5"]) == \
        dict(addpos=False, embedding_size=256, transformer_dropout=0.5, kernel_size="3x5")
    with pytest.raises(AtdrError, match="addpos must be true or false"):
        parse_overrides("taltrans", ["addpos=maybe"])
    with pytest.raises(AtdrError, match="embedding_size must be int"):
        parse_overrides("taltrans", ["embedding_size=1.5"])
    with pytest.raises(AtdrError, match="no hyper-parameter 'depth'"):
        parse_overrides("taltrans", ["depth=3"])
    with pytest.raises(AtdrError, match="expected key=value"):
        parse_overrides("taltrans", ["addpos"])


# --- family details ---------------------------------------------------------------------------


def test_tal_conv_schedule_is_the_originals():
    with torch.device("meta"):
        model = create("tal", label_dim=527, n_mels=128, target_length=1024)
    blocks = model.conv.layers
    assert [b.conv.out_channels for b in blocks] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert [b.pool for b in blocks] == [None, (2, 2), None, (2, 2), None, (1, 2), None, (1, 2), None, (1, 2)]
    assert all(b.conv.bias is not None for b in blocks)  # the original's bias=~batch_norm is always on
    assert model.gru.hidden_size == 1024 and model.gru.bidirectional


def test_taltrans_shared_or_separate_transformer_layers():
    torch.manual_seed(0)
    shared = small("taltrans", n_trans_layers=3)
    separate = small("taltrans", n_trans_layers=3, share_trans_weights=False)
    assert len(shared.layers) == 1 and len(separate.layers) == 3
    per_layer = sum(p.numel() for p in shared.layers[0].parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in shared.parameters()) == 2 * per_layer


def test_taltrans_addpos_scales_input_and_adds_sinusoids():
    table = sinusoid_table(FRAMES, N_MELS)
    assert torch.equal(table[0, 0::2], torch.zeros(N_MELS // 2))  # sin(0)
    assert torch.equal(table[0, 1::2], torch.ones(N_MELS // 2))  # cos(0)
    assert torch.allclose(table[5, 2], torch.sin(torch.tensor(5.0) / 10000 ** (2 / N_MELS)))
    torch.manual_seed(0)
    model = small("taltrans").eval()
    seen = {}
    model.conv.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    x = torch.randn(2, FRAMES, N_MELS)
    with torch.no_grad():
        model(x)
    assert torch.allclose(seen["x"], 8 * x + table)


def test_frame_pooling_functions():
    pool = {name: FramePooling(4, 3, name) for name in ("max", "ave", "lin", "exp", "att")}
    x = torch.randn(2, 7, 4)
    p = torch.sigmoid(pool["max"].fc_prob(x))
    for name, m in pool.items():
        m.fc_prob.load_state_dict(pool["max"].fc_prob.state_dict())
    with torch.no_grad():
        assert torch.allclose(pool["max"](x), p.amax(1))
        assert torch.allclose(pool["ave"](x), p.mean(1))
        assert torch.allclose(pool["lin"](x), (p**2).sum(1) / p.sum(1))
        assert torch.allclose(pool["exp"](x), (p * p.exp()).sum(1) / p.exp().sum(1))
        w = torch.softmax(pool["att"].fc_att(x), dim=1)
        assert torch.allclose(pool["att"](x), (p * w).sum(1))


def test_attention_pooling_heads():
    x = torch.randn(2, 6, 8)
    mean = AttentionPooling(8, 3, heads=0, activation="linear")
    with torch.no_grad():
        assert torch.allclose(mean(x), torch.sigmoid(mean.cla[0](x)).mean(1))  # always sigmoid, as PSLA
    multi = AttentionPooling(8, 3, heads=4, activation="softmax")
    assert torch.equal(multi.head_weight.detach(), torch.full((4,), 0.25))
    with torch.no_grad():
        out = multi(x)
        a = torch.softmax(multi.att[2](x), dim=-1).clamp(1e-7, 1 - 1e-7)  # softmax over classes
        head2 = (a / a.sum(1, keepdim=True) * torch.softmax(multi.cla[2](x), dim=-1)).sum(1)
        multi.head_weight.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0]))
        assert torch.allclose(multi(x), head2) and not torch.allclose(out, head2)
    assert AttentionPooling(8, 3, heads=1, activation="sigmoid").head_weight is None


# --- AST weights --------------------------------------------------------------------------------


@pytest.fixture
def deit_tiny(tmp_path, monkeypatch):
    """A DeiT-tiny checkpoint in the official release format, in a checkpoint dir set by ATDR_CHECKPOINTS."""
    torch.manual_seed(3)
    state = timm.create_model("deit_tiny_distilled_patch16_224").state_dict()
    torch.save({"model": state}, tmp_path / "deit_tiny_distilled_patch16_224.pth")
    monkeypatch.setenv("ATDR_CHECKPOINTS", str(tmp_path))
    return state


def test_ast_imagenet_weights_and_position_embedding_adaptation(deit_tiny):
    model = create("ast", label_dim=LABELS, n_mels=128, target_length=1024, model_size="tiny224",
                   fstride=10, tstride=10, imagenet_pretrain=True)
    v = model.v
    assert model.grid == (12, 101)  # the original AST's patch grid
    assert v.pos_embed.shape == (1, 12 * 101 + 2, 192)
    assert torch.equal(v.patch_embed.proj.weight, deit_tiny["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert torch.equal(v.patch_embed.proj.bias, deit_tiny["patch_embed.proj.bias"])
    assert v.patch_embed.proj.stride == (10, 10)
    assert torch.equal(v.pos_embed[:, :2], deit_tiny["pos_embed"][:, :2])  # cls and dist tokens
    assert torch.equal(v.blocks[11].mlp.fc2.weight, deit_tiny["blocks.11.mlp.fc2.weight"])
    # frequency: 14 -> 12 rows cut from the middle; time: 14 -> 101 columns interpolated bilinearly
    grid = deit_tiny["pos_embed"][:, 2:].transpose(1, 2).reshape(1, 192, 14, 14)
    expected = F.interpolate(grid[:, :, 1:13, :], size=(12, 101), mode="bilinear")
    assert torch.allclose(v.pos_embed[:, 2:].transpose(1, 2).reshape(1, 192, 12, 101), expected)
    with torch.no_grad():
        assert model(torch.randn(1, 1024, 128)).shape == (1, LABELS)


def test_ast_small_grid_is_cut_from_the_middle(deit_tiny):
    model = create("ast", label_dim=2, n_mels=64, target_length=100, model_size="tiny224", imagenet_pretrain=True)
    assert model.grid == (13, 22)  # fstride = tstride = 4 (the paper's recipe)
    grid = deit_tiny["pos_embed"][:, 2:].transpose(1, 2).reshape(1, 192, 14, 14)
    expected = F.interpolate(grid[:, :, 7 - 6 : 7 - 6 + 13, :], size=(13, 22), mode="bilinear")
    assert torch.allclose(model.v.pos_embed[:, 2:].transpose(1, 2).reshape(1, 192, 13, 22), expected)


def test_ast_without_imagenet_weights_needs_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDR_CHECKPOINTS", str(tmp_path))
    model = small("ast")
    assert 0.01 < model.v.pos_embed.std() < 0.03  # trunc_normal(std=0.02)


def test_missing_weights_raise_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDR_CHECKPOINTS", str(tmp_path / "ckpts"))
    with pytest.raises(AtdrError) as e:
        small("ast", imagenet_pretrain=True)
    msg = str(e.value)
    assert "\n" not in msg
    assert "deit_tiny_distilled_patch16_224.pth" in msg and str(tmp_path / "ckpts") in msg
    assert "https://dl.fbaipublicfiles.com/deit/deit_tiny_distilled_patch16_224-b40b3cf7.pth" in msg
    with pytest.raises(AtdrError, match=r"audioset_10_10_0\.4593\.pth not found.*atdr download weights audioset_10_10_0\.4593"
                                        r".*www\.dropbox\.com/s/ca0b1v2nlxzyeb4"):  # egs/audioset/download_models.sh
        create("ast", label_dim=2, n_mels=128, target_length=64, fstride=10, tstride=10, audioset_pretrain=True)


def test_default_checkpoint_dir_is_resources_checkpoints(tmp_path, monkeypatch):
    monkeypatch.delenv("ATDR_CHECKPOINTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AtdrError, match=r"not found in resources/checkpoints/"):
        small("ast", imagenet_pretrain=True)


def test_ast_audioset_pretrain_needs_the_checkpoints_geometry():
    with pytest.raises(AtdrError, match="audioset_pretrain needs model_size=base384, fstride=10, tstride=10"):
        create("ast", label_dim=2, n_mels=64, target_length=400, audioset_pretrain=True)


# --- checkpoints, complexity, CLI ---------------------------------------------------------------


def test_model_bundle_round_trip_rebuilds_without_pretraining_files(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDR_CHECKPOINTS", str(tmp_path / "empty"))
    torch.manual_seed(0)
    model = small("taltrans").eval()
    params = {**model.config}
    for key in ("label_dim", "n_mels", "target_length"):
        params.pop(key)
    labels = [f"/m/{i}" for i in range(LABELS)]
    bundle = ModelBundle("taltrans", params, f"mel{N_MELS}", FRAMES, -5.0, 4.0, labels, labels, model.state_dict())
    bundle.save(tmp_path / "m.pt")
    restored = ModelBundle.load(tmp_path / "m.pt")
    assert restored.labels.mids == tuple(labels) and (restored.mean, restored.std) == (-5.0, 4.0)
    x = torch.randn(2, FRAMES, N_MELS)
    with torch.no_grad():
        assert torch.equal(model(x), restored.build()(x))
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(AtdrError, match="is not an atdr model checkpoint"):
        ModelBundle.load(tmp_path / "foreign.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:1000])
    with pytest.raises(AtdrError, match="cannot load checkpoint"):
        ModelBundle.load(tmp_path / "truncated.pt")


def test_the_model_zoo_does_not_import_the_model_bundle():
    """atdr.checkpoint's bundles build models; the zoo reads weight files through atdr.torchfile,
    below both, so that the two do not import each other."""
    code = "import sys, atdr.models, atdr.models.convert; sys.exit('atdr.checkpoint' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_complexity_counts_parameters_and_flops():
    torch.manual_seed(0)
    kwargs = dict(n_mels=N_MELS, target_length=FRAMES, **SMALL["tal"])
    c = complexity("tal", label_dim=LABELS, **kwargs)
    assert c.params == sum(p.numel() for p in small("tal").parameters())
    assert c.gflops > 0
    # a linear model's FLOPs by hand: 2 per multiply-add of its matrix products
    lin = complexity("linear", label_dim=LABELS, n_mels=N_MELS, target_length=FRAMES, n_layers=1, hidden_dim=8)
    assert lin.gflops * 1e9 == 2 * FRAMES * (N_MELS * 8 + 8 * 8 + 2 * 8 * LABELS)


def test_models_command_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "front-end", "output"]
    for name in list_models():
        assert name in out
    tal = next(line for line in lines if line.startswith("tal "))
    assert "kaldi128" in tal and "probs" in tal
    assert float(tal.split()[4]) == pytest.approx(25.8, abs=0.1)  # params (M) at the paper recipe
    assert len(lines) == 1 + len(list_specs())


def test_models_command_and_readme_show_the_paper_recipes(capsys):
    """`atdr models` and README's Models table: every model as config/paper.yaml trains it (the
    recipe named after it), at the recipe's front-end and input length."""
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    lengths = paper["datasets"]["audioset_full"]["target_length"]
    assert main(["models"]) == 0
    row = re.compile(r"^(\w+)\W.*?\s(?:probs|logits)\s+([\d.]+)\s+([\d.]+)\s")
    listed = {m[1]: (m[2], m[3]) for m in map(row.match, capsys.readouterr().out.splitlines()[1:])}
    readme = re.findall(r"^\| `(\w+)`.*?\| (?:probs|logits) \| ([\d.]+) M \| ([\d.]+) \|",
                        (ROOT / "README.md").read_text(), re.M)
    assert {name: (params, gflops) for name, params, gflops in readme} == listed
    recipes = {spec.name: paper["models"].get(spec.name) for spec in list_specs()}
    for name, recipe in recipes.items():
        if recipe is not None:
            frontend = recipe["data"]["frontend"]
            assert (recipe["model"]["name"], frontend) == (name, get_spec(name).frontend)
            built = complexity(name, n_mels=get_frontend(frontend).n_mels, target_length=lengths[frontend],
                               **without_pretraining(recipe["model"].get("params", {})))
            assert listed[name] == (f"{built.params / 1e6:.1f}", f"{built.gflops:.1f}"), name
    for name, recipe in recipes.items():  # the registry knows each recipe
        spec = get_spec(name)
        assert (spec.paper is None) == (recipe is None), name
        assert recipe is None or spec.hparams(spec.paper) == spec.hparams(recipe["model"].get("params", {})), name

# --- heavy models, reduced input -------------------------------------------------------------------


@pytest.mark.slow
def test_ast_base384_reduced_input():
    model = create("ast", label_dim=LABELS, n_mels=N_MELS, target_length=FRAMES, fstride=16, tstride=16)
    assert model.v.embed_dim == 768 and len(model.v.blocks) == 12
    y = model(torch.randn(2, FRAMES, N_MELS))
    assert y.shape == (2, LABELS)
    y.sum().backward()


@pytest.mark.slow
def test_efficientnet_b7_reduced_input():
    model = create("psla", label_dim=LABELS, n_mels=N_MELS, target_length=FRAMES, eff_b=7)
    assert model.effnet.num_features == 2560
    y = model(torch.randn(2, FRAMES, N_MELS))
    assert y.shape == (2, LABELS) and ((y >= 0) & (y <= 1)).all()
    y.sum().backward()


@pytest.mark.slow
def test_ast_audioset_pretrain_adapts_the_time_axis(tmp_path, monkeypatch):
    torch.manual_seed(0)
    published = create("ast", label_dim=527, n_mels=128, target_length=1024, fstride=10, tstride=10)
    assert published.grid == (12, 101)
    torch.save({f"module.{k}": v for k, v in published.state_dict().items()}, tmp_path / "audioset_10_10_0.4593.pth")
    monkeypatch.setenv("ATDR_CHECKPOINTS", str(tmp_path))
    model = create("ast", label_dim=3, n_mels=128, target_length=512, fstride=10, tstride=10, audioset_pretrain=True)
    assert model.grid == (12, 50)
    source = published.v.pos_embed
    grid = source[:, 2:].transpose(1, 2).reshape(1, 768, 12, 101)
    assert torch.equal(model.v.pos_embed[:, :2], source[:, :2])
    assert torch.equal(model.v.pos_embed[:, 2:].transpose(1, 2).reshape(1, 768, 12, 50), grid[:, :, :, 25:75])
    assert torch.equal(model.v.patch_embed.proj.weight, published.v.patch_embed.proj.weight)
    assert torch.equal(model.v.blocks[5].attn.qkv.weight, published.v.blocks[5].attn.qkv.weight)
    assert model.mlp_head[1].weight.shape == (3, 768)  # a new head, as the original


def test_pretrained_weights_of_another_model_are_refused(deit_tiny, tmp_path):
    torch.save({"model": deit_tiny}, tmp_path / "deit_small_distilled_patch16_224.pth")
    with pytest.raises(AtdrError, match="pretrained weights do not fit deit_small_distilled_patch16_224"):
        small("ast", model_size="small224", imagenet_pretrain=True)
