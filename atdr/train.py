"""The training loop: one run = one model, one dataset, one seed (see `atdr.config.RunConfig`).

Reads top to bottom: data, model, optimiser, resume, then epochs of (warm-up, step, evaluate,
checkpoint), then the final outputs. Everything needed to continue exactly lives in
`checkpoints/last.pt`, written atomically at the end of every epoch and when SIGTERM/SIGINT
arrives mid-epoch; running the same command again resumes where it stopped and ends
bit-identical (CPU, fixed seed) to a run that was never interrupted.

Model selection: with a validation set (`data.valid`) the best epoch, the checkpoint ensemble and
early numbers are chosen on it and the eval set is only reported; without one, both happen on the
eval set, as the paper's AudioSet protocol (`summary.json` says which: `selected_on`).

Outputs in the run folder: config.yaml, metrics.csv (per epoch, selection set), steps.csv (per
logged step), checkpoints/{last,best,wa}.pt, predictions.npy / targets.npy (best epoch, eval set),
predictions_ensemble.npy (checkpoint ensemble), predictions_wa.npy (weight averaging),
summary.json.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from atdr import checkpoint
from atdr.atomic import atomic_path, write_npy, write_text
from atdr.config import RunConfig, results_relevant
from atdr.data.datafile import read_datafile
from atdr.data.dataset import AudioDataset, collate
from atdr.data.features import get_frontend
from atdr.data.labels import LabelSet
from atdr.data.sampler import EpochSampler
from atdr.data.stats import NormStats
from atdr.data.weights import read_weights
from atdr.distributed import World, close_world, init_world
from atdr.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, AtdrError
from atdr.metrics import evaluate
from atdr.models import create
from atdr.precision import resolve as resolve_precision
from atdr.predict import LossFn, make_loss, predict
from atdr.run import PREDICTIONS

log = logging.getLogger(__name__)


class Stopped(Exception):
    """Training stopped on a signal after saving `last.pt`; `code` is the process exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _StopSignals:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

    def __enter__(self) -> _StopSignals:
        self.received: int | None = None
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _until_stopped(batches, stop: _StopSignals):
    """Iterate `batches`; if a stop signal also ended the data workers, end early (the loop then
    saves and stops)."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception:
            if stop.received is None:
                raise
            return
        yield batch


@dataclass
class RunState:
    """Everything that changes during a run, but the tensors; saved in last.pt."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimiser steps taken
    consumed: int = 0  # items of the current epoch already trained on (this rank)
    loss_sum: float = 0.0  # over the current epoch
    loss_count: int = 0
    epoch_seconds: float = 0.0  # training time spent in the current epoch so far
    train_seconds: float = 0.0  # total training time (excluding evaluation)
    history: list[dict] = field(default_factory=list)  # one row per epoch (metrics.csv)
    steps: list[dict] = field(default_factory=list)  # logged steps (steps.csv)
    best_epoch: int = 0
    best_score: float = -math.inf
    ensemble_epoch: int = 0
    ensemble_score: float = -math.inf


def _norm(cfg: RunConfig) -> tuple[float, float]:
    if cfg.data.norm_stats is None:
        return cfg.data.mean, cfg.data.std
    stats = NormStats.read(cfg.data.norm_stats)
    if stats.frontend != cfg.data.frontend:
        raise AtdrError(f"{cfg.data.norm_stats}: stats are for front-end {stats.frontend}, the run uses {cfg.data.frontend}")
    return stats.mean, stats.std


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _ignore_stop_signals(worker_id: int) -> None:
    """Data workers leave SIGTERM/SIGINT to the main process, which saves before stopping."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def train(cfg: RunConfig, out: str | Path) -> dict:
    """Train (or resume, or just finish) the run in folder `out`; return its summary."""
    out = Path(out)
    use_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise AtdrError("train.device is cuda but no CUDA device is available")
    world = init_world(use_cuda)
    try:
        return _train(cfg, out, world, torch.device(world.device if use_cuda else "cpu"))
    finally:
        close_world(world)


def _train(cfg: RunConfig, out: Path, world: World, device: torch.device) -> dict:
    t, d = cfg.train, cfg.data
    if t.batch_size % world.size:
        raise AtdrError(f"train.batch_size {t.batch_size} is not divisible by the {world.size} processes")
    torch.manual_seed(t.seed)

    # Data. Each loader draws its workers' seeds from its own generator, not the global RNG,
    # so that a resumed run's dropout sees the same random numbers as an uninterrupted one.
    labels = LabelSet.read(d.labels)
    frontend = get_frontend(d.frontend)
    mean, std = _norm(cfg)
    train_clips = read_datafile(d.train, labels)
    scored = {name: read_datafile(path, labels) for name, path in (("valid", d.valid), ("eval", d.eval)) if path}
    selection = "valid" if "valid" in scored else "eval"  # the set the best epoch is chosen on
    weights = read_weights(d.weights, len(train_clips)) if d.weights else None
    train_set = AudioDataset(train_clips, labels, frontend, d.target_length, (mean, std),
                             cfg.augment, skip_unreadable=t.skip_unreadable)
    sampler = EpochSampler(len(train_set), weights, t.seed, world.rank, world.size)
    rank_batch = t.batch_size // world.size

    def loader(dataset: AudioDataset, batch_size: int, **kwargs) -> DataLoader:
        return DataLoader(dataset, batch_size, num_workers=t.num_workers, collate_fn=collate,
                          pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals,
                          generator=torch.Generator().manual_seed(t.seed), **kwargs)

    train_loader = loader(train_set, rank_batch, sampler=sampler)
    scored_loaders = {name: loader(AudioDataset(clips, labels, frontend, d.target_length, (mean, std),
                                                skip_unreadable=t.skip_unreadable), 2 * t.batch_size)
                      for name, clips in scored.items()}

    # Model, loss, optimiser, schedule, precision
    model = create(cfg.model.name, label_dim=len(labels), n_mels=frontend.n_mels, target_length=d.target_length,
                   **cfg.model.params).to(device)
    loss_kind = t.loss if t.loss != "auto" else ("bce" if d.task == "multilabel" else "ce")
    loss_fn = make_loss(loss_kind, model.output)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                 betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.optim.milestones, cfg.optim.gamma)
    precision = resolve_precision(t.precision, cfg.model.name, device)
    autocast, scaler = precision.autocast(), precision.grad_scaler()
    scoring = Scoring(scored_loaders, selection, "mAP" if d.task == "multilabel" else "acc", device, loss_fn)

    # Resume
    ckpt_dir = out / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    state, extra = RunState(), {}
    if last_path.exists():
        saved = checkpoint.load(last_path)
        if results_relevant(saved["config"]) != results_relevant(cfg.to_dict()):
            log.warning("%s was written for another config; starting this run from scratch", last_path)
        else:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            scaler.load_state_dict(saved["scaler"])
            torch.set_rng_state(saved["rng"])
            if device.type == "cuda" and "cuda_rng" in saved:
                torch.cuda.set_rng_state_all(saved["cuda_rng"])
            state = RunState(**saved["state"])
            extra = saved["extra"]
            if state.epoch < t.epochs:
                log.info("resuming %s from epoch %d, step %d", out, state.epoch + (state.consumed > 0), state.step)
    if world.is_main:
        write_text(out / "config.yaml", cfg.dump())
        sizes = ", ".join(f"{len(clips)} {name}" for name, clips in scored.items())
        log.info("%s: %s on %d clips (%s; best epoch chosen on %s), %.2fM parameters, %s%s, %s", out, cfg.model.name,
                 len(train_clips), sizes, selection, sum(p.numel() for p in model.parameters()) / 1e6, device,
                 f" x{world.size}" if world.size > 1 else "", precision.name)

    def save_last() -> None:
        if world.is_main:
            rng = {"rng": torch.get_rng_state()}
            if device.type == "cuda":
                rng["cuda_rng"] = torch.cuda.get_rng_state_all()
            checkpoint.save({"config": cfg.to_dict(), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), **rng,
                             "state": asdict(state), "extra": extra}, last_path)

    def save_bundle(state_dict: dict, info: dict, name: str) -> None:
        checkpoint.ModelBundle(cfg.model.name, cfg.model.params, d.frontend, d.target_length, mean, std,
                               list(labels.mids), list(labels.names), state_dict, info).save(ckpt_dir / name)

    def stop_if_signalled(epoch: int, tick: float, bar: tqdm) -> None:
        """After a step: if SIGTERM/SIGINT reached any process, save last.pt and stop."""
        if not world.any(stop.received is not None):
            return
        state.epoch_seconds += time.perf_counter() - tick
        state.train_seconds += time.perf_counter() - tick
        save_last()
        world.barrier()  # no rank ends before rank 0 has saved (a launcher may kill the others when one ends)
        bar.close()
        code = EXIT_PREEMPTED if stop.received == signal.SIGTERM else EXIT_INTERRUPTED
        raise Stopped(code, f"stopped at epoch {epoch}, step {state.step}; state saved to {last_path}. "
                            "Run the same command again to resume.")

    net = DistributedDataParallel(model) if world.size > 1 else model
    base_lr = cfg.optim.lr
    with _StopSignals() as stop:
        for epoch in range(state.epoch + 1, t.epochs + 1):
            sampler.set_epoch(epoch, start=state.consumed)
            net.train()
            bar = tqdm(total=len(sampler) * world.size, desc=f"epoch {epoch}/{t.epochs}", unit="clip", leave=False,
                       disable=None if world.is_main else True)  # clips/s and loss on a terminal
            tick = time.perf_counter()
            for batch in _until_stopped(train_loader, stop):
                if (cfg.optim.warmup_steps and state.step <= cfg.optim.warmup_steps
                        and state.step % cfg.optim.warmup_every == 0):
                    for group in optimizer.param_groups:  # the original: lr = step / warmup * lr, every 50 steps
                        group["lr"] = state.step / cfg.optim.warmup_steps * base_lr
                state.consumed = min(state.consumed + rank_batch, sampler.per_rank)
                if batch is not None:
                    x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
                    with autocast:
                        output = net(x)
                    loss = loss_fn(output.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.optim.grad_clip:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                    value = world.mean(loss.item())
                    if not math.isfinite(value):
                        where = f"epoch {state.epoch} ({last_path})" if state.epoch else "none (no epoch finished)"
                        raise AtdrError(f"loss is {value} at step {state.step + 1} (epoch {epoch}); training stopped. "
                                        f"Last good checkpoint: {where}. Check the data and lower optim.lr")
                    scaler.step(optimizer)
                    scaler.update()
                    state.step += 1
                    state.loss_sum += value * len(x)
                    state.loss_count += len(x)
                    if state.step % t.log_every == 0:
                        lr = optimizer.param_groups[0]["lr"]
                        state.steps.append({"step": state.step, "epoch": epoch, "loss": value, "lr": lr})
                        if bar.disable and world.is_main:
                            rate = state.loss_count * world.size / max(state.epoch_seconds + time.perf_counter() - tick, 1e-9)
                            log.info("epoch %d step %d: loss %.4f, lr %.3g, %.0f clips/s", epoch, state.step, value,
                                     lr, rate)
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                bar.update(rank_batch * world.size)
                stop_if_signalled(epoch, tick, bar)
            stop_if_signalled(epoch, tick, bar)  # the signal may also have ended the data workers
            bar.close()
            seconds = state.epoch_seconds + time.perf_counter() - tick
            state.train_seconds += time.perf_counter() - tick

            if world.is_main:
                row = scoring.epoch(epoch, model, state, extra)
                if state.best_epoch == epoch:
                    save_bundle(extra["best_model"], extra["best_scores"], "best.pt")
                row.update(train_loss=state.loss_sum / max(state.loss_count, 1), lr=optimizer.param_groups[0]["lr"],
                           epoch_seconds=seconds, clips_per_s=state.loss_count * world.size / max(seconds, 1e-9))
                state.history.append(row)
                _write_csv(out / "metrics.csv", state.history)
                _write_csv(out / "steps.csv", state.steps)
                metric = scoring.main_metric
                log.info("epoch %d/%d: %s %s %.4f (ensemble %.4f), train loss %.4f, %s loss %.4f, %.0f clips/s", epoch,
                         t.epochs, selection, metric, row[metric], row[f"ensemble_{metric}"], row["train_loss"],
                         selection, row["valid_loss"], row["clips_per_s"])
                if t.wa_start is not None and t.wa_start <= epoch <= (t.wa_end or t.epochs):
                    _accumulate_average(extra, _cpu_state(model))
            scheduler.step()
            state.epoch, state.consumed, state.loss_sum, state.loss_count, state.epoch_seconds = epoch, 0, 0.0, 0, 0.0
            save_last()
            world.barrier()

    if not world.is_main:
        return {}
    return _write_outputs(cfg, out, model, scoring, state, extra, save_bundle, world.size if device.type == "cuda" else 0)


@dataclass(frozen=True)
class Scoring:
    """The scored sets (`eval`, and `valid` when given) and how an epoch is judged: on the
    `selection` set's `main_metric`."""

    loaders: dict[str, DataLoader]
    selection: str
    main_metric: str
    device: torch.device
    loss_fn: LossFn

    def epoch(self, epoch: int, model: torch.nn.Module, state: RunState, extra: dict) -> dict:
        """Predict every scored set; keep the best epoch and the best checkpoint ensemble
        (epochs 1..n averaged), both chosen on the selection set, with their eval predictions.
        Returns the epoch's metrics row (selection set)."""
        results = {name: predict(model, loader, self.device, self.loss_fn) for name, loader in self.loaders.items()}
        sums = extra.setdefault("ensemble_sum", {})
        for name, (probs, _, _) in results.items():
            sums[name] = sums.get(name, 0) + torch.from_numpy(probs).double()
        probs, targets, loss = results[self.selection]
        scores, ens_scores = evaluate(probs, targets), evaluate((sums[self.selection] / epoch).numpy(), targets)
        eval_probs, eval_targets, _ = results["eval"]
        if getattr(scores, self.main_metric) > state.best_score:
            state.best_epoch, state.best_score = epoch, getattr(scores, self.main_metric)
            extra["best_model"] = _cpu_state(model)
            extra["best_predictions"] = torch.from_numpy(eval_probs)
            extra["best_scores"] = {"epoch": epoch, **evaluate(eval_probs, eval_targets).as_dict()}
        if getattr(ens_scores, self.main_metric) > state.ensemble_score:
            state.ensemble_epoch, state.ensemble_score = epoch, getattr(ens_scores, self.main_metric)
            extra["ensemble_predictions"] = (sums["eval"] / epoch).float()
        extra["targets"] = torch.from_numpy(eval_targets)
        return {"epoch": epoch, "step": state.step, **scores.as_dict(), "ensemble_mAP": ens_scores.mAP,
                "ensemble_acc": ens_scores.acc, "valid_loss": loss}


def _accumulate_average(extra: dict, weights: dict[str, torch.Tensor]) -> None:
    """Add one epoch's weights to the weight-averaging sum (integer buffers keep the latest value)."""
    total = extra.get("wa_sum")
    extra["wa_sum"] = {k: (total[k] + v if total is not None and v.is_floating_point() else v.clone())
                       for k, v in weights.items()}
    extra["wa_count"] = extra.get("wa_count", 0) + 1


def _write_outputs(cfg: RunConfig, out: Path, model: torch.nn.Module, scoring: Scoring, state: RunState, extra: dict,
                   save_bundle: Callable[[dict, dict, str], None], gpus: int) -> dict:
    """The run's final files (also rewritten when a finished run is run again); returns the summary."""
    _write_csv(out / "metrics.csv", state.history)
    _write_csv(out / "steps.csv", state.steps)
    targets = extra["targets"].numpy()
    write_npy(out / "targets.npy", targets)
    write_npy(out / PREDICTIONS["best"], extra["best_predictions"].numpy())
    write_npy(out / PREDICTIONS["ensemble"], extra["ensemble_predictions"].numpy())
    save_bundle(extra["best_model"], extra["best_scores"], "best.pt")
    summary = {
        "model": cfg.model.name,
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "main_metric": scoring.main_metric,
        "selected_on": scoring.selection,
        "params": sum(p.numel() for p in model.parameters()),
        "device": scoring.device.type,
        "gpus": gpus,
        "train_seconds": state.train_seconds,
        "clips_per_s": float(np.mean([r["clips_per_s"] for r in state.history])),
        "best": extra["best_scores"],
        "ensemble": {"epoch": state.ensemble_epoch,
                     **evaluate(extra["ensemble_predictions"].numpy(), targets).as_dict()},
    }
    if "wa_sum" in extra:
        averaged = {k: v / extra["wa_count"] if v.is_floating_point() else v for k, v in extra["wa_sum"].items()}
        model.load_state_dict(averaged)
        probs, _, _ = predict(model, scoring.loaders["eval"], scoring.device)
        write_npy(out / PREDICTIONS["wa"], probs)
        wa_scores = evaluate(probs, targets)
        save_bundle(averaged, {"epochs": extra["wa_count"], **wa_scores.as_dict()}, "wa.pt")
        summary["wa"] = {"epochs": [cfg.train.wa_start, cfg.train.wa_end or cfg.train.epochs], **wa_scores.as_dict()}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    metric = scoring.main_metric
    log.info("%s: best %s %.4f on %s at epoch %d (eval %s %.4f); summary in %s", out, metric, state.best_score,
             scoring.selection, state.best_epoch, metric, extra["best_scores"][metric], out / "summary.json")
    return summary
