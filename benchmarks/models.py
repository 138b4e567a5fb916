"""Training-step throughput of each model of the paper at its recipe's input size.

For each recipe of `config/paper.yaml` (model and hyper-parameters, front-end, input length,
augmentation and precision of the full-AudioSet runs; AST without its ImageNet weights, which do
not change the cost), clips/s of a training step (forward, backward, Adam) at a small batch:

- `step`: the data path excluded (a fixed input batch already on the device);
- `data`: the data path alone (the packed loader with N workers, which mix each clip with its
  partner, then `BatchPipeline.train` on the device: features, SpecAugment, normalisation);
- `step+data`: both, one after the other, as the training loop runs them.

A model is input-bound where `step+data` is far below `step` (the table says so when the data path
takes more than a fifth of the time).

With CUDA, also AST base384's model FLOPs utilisation (MFU) on the recipe's input and batch, in
fp32, bf16 (autocast) and bf16 + torch.compile: 3 x the forward FLOPs of `atdr.models.complexity`
per clip (forward + backward), times clips/s, over the GPU's dense bf16 peak (all three modes are
divided by the same peak, so fp32 shows how far it is from what the tensor cores can do).

    .venv/bin/python benchmarks/models.py [--models ast tal ...] [--batch 2] [--steps 2] [--out CSV]
    .venv/bin/python benchmarks/models.py --models linear --mfu-out results/benchmarks/ast_mfu.csv  # on a GPU
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from atdr.config import AugmentConfig
from atdr.data.features import get_frontend
from atdr.data.pack import PackedDataset
from atdr.data.pipeline import BatchPipeline, collate_waves
from atdr.data.sampler import EpochSampler
from atdr.models import complexity, create, without_pretraining
from atdr.precision import resolve
from atdr.predict import make_loss
from atdr.workflow import run_config
from common import best_seconds, machine, synthetic_dataset, write_csv

PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"
DATASET = "audioset_full"
CLASSES = 527
# Dense bf16 tensor-core peaks, TFLOP/s (NVIDIA data sheets; SXM parts).
PEAK_BF16 = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0}


class Recipe:
    """One model of the paper as its full-AudioSet run builds it."""

    def __init__(self, config: dict, name: str) -> None:
        doc = run_config(config, DATASET, name, 0)
        self.name = name
        self.model_name = doc["model"]["name"]
        self.params = without_pretraining(doc["model"]["params"])
        self.frontend = get_frontend(doc["data"]["frontend"])
        self.target_length = doc["data"]["target_length"]
        self.norm = (doc["data"].get("mean", 0.0), doc["data"].get("std", 1.0))
        self.augment = AugmentConfig(**doc.get("augment", {}))
        self.precision = doc.get("train", {}).get("precision", "auto")

    def model(self, device: torch.device) -> torch.nn.Module:
        return create(self.model_name, label_dim=CLASSES, n_mels=self.frontend.n_mels,
                      target_length=self.target_length, **self.params).to(device).train()


def make_step(model: torch.nn.Module, autocast: torch.autocast):
    """forward + loss + backward + Adam step on one batch (fp32 loss, as the engine)."""
    loss_fn = make_loss("bce", model.output)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast:
            output = model(x)
        loss = loss_fn(output.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def data_batches(loader: DataLoader, sampler: EpochSampler, pipeline: BatchPipeline, device: torch.device):
    """Training batches `(x, y)` on `device`, epoch after epoch; targets padded to CLASSES."""
    for epoch in itertools.count(1):
        sampler.set_epoch(epoch)
        for batch in loader:
            x, y = pipeline.train(batch.waves.to(device), batch.lengths, batch.targets.to(device), batch.generator())
            yield x, torch.nn.functional.pad(y, (0, CLASSES - y.shape[1]))


def rates(recipe: Recipe, args: argparse.Namespace, packed, device: torch.device) -> dict:
    """clips/s of the step alone, the data path alone, and both, at `args.batch`."""
    clips, labels, store = packed
    model = recipe.model(device)
    step = make_step(model, resolve(recipe.precision, recipe.model_name, device).autocast())
    sampler = EpochSampler(len(clips), seed=0)
    loader = DataLoader(PackedDataset(store, clips, labels, mixup=recipe.augment), args.batch, sampler=sampler,
                        num_workers=args.workers, collate_fn=collate_waves, persistent_workers=args.workers > 0, drop_last=True,
                        pin_memory=device.type == "cuda")
    batches = data_batches(loader, sampler, BatchPipeline(recipe.frontend, recipe.target_length, recipe.norm,
                                                          recipe.augment), device)
    x, y = next(batches)
    step(x, y)  # warm-up
    sync = device.type == "cuda"

    def steps_only() -> None:
        for _ in range(args.steps):
            step(x, y)

    def data_only() -> None:
        for _ in range(args.steps):
            next(batches)

    def both() -> None:
        for _ in range(args.steps):
            step(*next(batches))

    clips_timed = args.batch * args.steps
    result = {name: clips_timed / best_seconds(fn, args.repeats, sync, warm_up=False)
              for name, fn in (("step", steps_only), ("data", data_only), ("step+data", both))}
    del loader  # ends the persistent workers
    return result


def mfu(config: dict, args: argparse.Namespace) -> list[dict]:
    """AST base384's MFU on the recipe's input, at `args.mfu_batch`, in three precisions."""
    recipe = Recipe(config, "ast")
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16.items() if k in name), None)
    forward = complexity(recipe.model_name, label_dim=CLASSES, n_mels=recipe.frontend.n_mels,
                         target_length=recipe.target_length, **recipe.params).gflops * 1e9
    x = torch.randn(args.mfu_batch, recipe.target_length, recipe.frontend.n_mels, device=device)
    y = (torch.rand(args.mfu_batch, CLASSES, device=device) < 0.01).float()
    rows = []
    for mode in ("fp32", "bf16", "bf16+compile"):
        clips_per_s = _ast_rate(recipe, mode, x, y, args)
        torch.cuda.empty_cache()
        tflops = 3 * forward * clips_per_s / 1e12
        rows.append({"model": "ast (base384, mel64 x 400, stride 4)", "mode": mode, "batch": args.mfu_batch,
                     "clips_per_s": round(clips_per_s, 1), "model_tflops_per_s": round(tflops, 1),
                     "mfu": round(tflops / peak, 3) if peak else "", "peak_bf16_tflops": peak or "", "gpu": name})
        print(f"AST base384 {mode:13s} batch {args.mfu_batch}: {clips_per_s:7.1f} clips/s, {tflops:6.1f} TFLOP/s"
              + (f", MFU {tflops / peak:.1%} of {peak:g} TFLOP/s (dense bf16)" if peak else ""), flush=True)
    return rows


def _ast_rate(recipe: Recipe, mode: str, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> float:
    """Training clips/s of a fresh AST in `mode` (fp32, bf16, bf16+compile) on the batch `x, y`."""
    model = recipe.model(x.device)
    if mode.endswith("compile"):
        model = torch.compile(model)
    step = make_step(model, torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode != "fp32"))
    for _ in range(3):  # warm-up (and compilation)
        step(x, y)
    seconds = best_seconds(lambda: [step(x, y) for _ in range(args.mfu_steps)], args.repeats, sync=True)
    return args.mfu_batch * args.mfu_steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="recipes of config/paper.yaml (default: all)")
    parser.add_argument("--batch", type=int, default=2, help="clips per step (default: %(default)s, CPU-sized)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=1, help="timed repetitions, the best counts (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--mfu-batch", type=int, default=24, help="AST MFU batch (default: the recipe's %(default)s)")
    parser.add_argument("--mfu-steps", type=int, default=10, help="timed steps per MFU measurement")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: known H100/H200/A100)")
    parser.add_argument("--out", help="write the per-model table to this csv")
    parser.add_argument("--mfu-out", help="write the MFU table to this csv (CUDA only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = yaml.safe_load(PAPER.read_text())
    config["datasets"][DATASET].setdefault("loader", "packed")  # the schema's default (snakemake fills it in)
    names = args.models or list(config["models"])
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    print(f"{machine()}; {device}; batch {args.batch}, {args.steps} steps; recipes of {PAPER.name} ({DATASET})")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        packed = synthetic_dataset(tmp, max(8 * args.batch, 16), 10.0)
        for name in names:
            recipe = Recipe(config, name)
            start = time.perf_counter()
            rate = rates(recipe, args, packed, device)
            share = 1 - rate["step+data"] / rate["step"]
            shape = f"{recipe.frontend.name} x {recipe.target_length}"
            print(f"{name:12s} {shape:16s} step {rate['step']:8.3g}  data {rate['data']:8.3g}  step+data "
                  f"{rate['step+data']:8.3g} clips/s{'  input-bound' if share > 0.2 else ''} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            rows.append({"model": name, "input": shape, "device": device.type, "batch": args.batch,
                         "step_clips_per_s": float(f"{rate['step']:.3g}"), "data_clips_per_s": float(f"{rate['data']:.3g}"),
                         "step_data_clips_per_s": float(f"{rate['step+data']:.3g}"), "input_bound": share > 0.2,
                         "machine": machine()})
    write_csv(args.out, rows)
    if torch.cuda.is_available() and device.type == "cuda":
        write_csv(args.mfu_out, mfu(config, args))


if __name__ == "__main__":
    main()
