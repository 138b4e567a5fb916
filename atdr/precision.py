"""Numeric precision of the training forward pass: fp32, or autocast to fp16 or bf16.

`auto` trains each model as the original code did: AST's forward runs under fp16 autocast
(`@autocast()` on `ASTModel.forward`), every other family in fp32 (the loop's autocast is
commented out in `src/traintest.py`). The choice is made once, at set-up; evaluation always runs
in fp32 so that probabilities are not rounded into ties (see `atdr.predict`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from atdr.models import get_spec

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class TrainPrecision:
    """The resolved precision of one run on one device."""

    name: Literal["fp32", "fp16", "bf16"]
    device_type: str

    def autocast(self) -> torch.autocast:
        """The context the forward pass runs in (disabled for fp32)."""
        return torch.autocast(self.device_type, dtype=_DTYPES.get(self.name, torch.float32), enabled=self.name != "fp32")

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, on for fp16 only (bf16 has fp32's exponent range)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def resolve(precision: Precision, model_name: str, device: torch.device) -> TrainPrecision:
    """`precision` for `model_name` on `device`: `auto` becomes the original code's choice, and
    fp16, which autocast supports on CUDA only, becomes fp32 on the CPU (said once)."""
    name = get_spec(model_name).original_precision if precision == "auto" else precision
    if name == "fp16" and device.type != "cuda":
        if precision == "fp16":
            log.warning("train.precision fp16 needs CUDA; training in fp32 on the %s", device.type)
        name = "fp32"
    return TrainPrecision(name, device.type)
