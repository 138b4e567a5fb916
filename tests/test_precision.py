"""`train.precision`: auto is the original code's choice per family; fp16 falls back to fp32 off CUDA."""

import pytest
import torch

from atdr.precision import resolve

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.mark.parametrize("model, expected", [("ast", "fp16"), ("tal", "fp32"), ("taltrans", "fp32"), ("psla", "fp32"),
                                             ("resnet", "fp32"), ("linear", "fp32"), ("transformer", "fp32")])
def test_auto_is_the_original_codes_precision(model, expected):
    assert resolve("auto", model, CUDA).name == expected


def test_fp16_needs_cuda_and_auto_ast_trains_fp32_on_the_cpu(caplog):
    assert resolve("auto", "ast", CPU).name == "fp32"
    assert "warning" not in caplog.text.lower()
    assert resolve("fp16", "tal", CPU).name == "fp32"
    assert "fp16 needs CUDA" in caplog.text


def test_autocast_and_scaler_follow_the_choice():
    layer, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    with resolve("bf16", "tal", CPU).autocast():
        assert layer(x).dtype == torch.bfloat16
    with resolve("fp32", "ast", CPU).autocast():
        assert layer(x).dtype == torch.float32
    assert not resolve("bf16", "ast", CPU).grad_scaler().is_enabled()  # loss scaling is for fp16 only
