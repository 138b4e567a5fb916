"""The training loop: one run = one model, one dataset, one seed (see `atdr.config.RunConfig`).

Reads top to bottom: data, model, optimiser, resume, then epochs of (warm-up, step, evaluate,
checkpoint). Everything needed to continue exactly lives in `checkpoints/last.pt`, written
atomically at the end of every epoch and when SIGTERM/SIGINT arrives mid-epoch; running the same
command again resumes where it stopped and ends bit-identical (CPU, fixed seed) to a run that
was never interrupted.

Outputs in the run folder: config.yaml, metrics.csv (per epoch), steps.csv (per logged step),
checkpoints/{last,best,wa}.pt, predictions.npy / targets.npy (best epoch, eval set),
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
from atdr.errors import AtdrError
from atdr.metrics import evaluate
from atdr.models import create
from atdr.predict import make_loss, predict
from atdr.run import PREDICTIONS

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving; run the same command again
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C after saving


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
    """Everything that changes during a run; saved in last.pt."""

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
    amp = t.amp and device.type == "cuda"
    torch.manual_seed(t.seed)

    # Data
    labels = LabelSet.read(d.labels)
    frontend = get_frontend(d.frontend)
    mean, std = _norm(cfg)
    train_clips, eval_clips = read_datafile(d.train, labels), read_datafile(d.eval, labels)
    weights = read_weights(d.weights, len(train_clips)) if d.weights else None
    train_set = AudioDataset(train_clips, labels, frontend, d.target_length, (mean, std),
                             cfg.augment, skip_unreadable=t.skip_unreadable)
    eval_set = AudioDataset(eval_clips, labels, frontend, d.target_length, (mean, std), skip_unreadable=t.skip_unreadable)
    sampler = EpochSampler(len(train_set), weights, t.seed, world.rank, world.size)
    loader_args = dict(num_workers=t.num_workers, collate_fn=collate, pin_memory=device.type == "cuda",
                       worker_init_fn=_ignore_stop_signals)
    rank_batch = t.batch_size // world.size
    train_loader = DataLoader(train_set, rank_batch, sampler=sampler, **loader_args)
    eval_loader = DataLoader(eval_set, 2 * t.batch_size, shuffle=False, **loader_args)

    # Model, loss, optimiser, schedule
    model = create(cfg.model.name, label_dim=len(labels), n_mels=frontend.n_mels, target_length=d.target_length,
                   **cfg.model.params).to(device)
    loss_kind = t.loss if t.loss != "auto" else ("bce" if d.task == "multilabel" else "ce")
    loss_fn = make_loss(loss_kind, model.output)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                 betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.optim.milestones, cfg.optim.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    main_metric = "mAP" if d.task == "multilabel" else "acc"
    wa_start, wa_end = t.wa_start, t.wa_end or t.epochs

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
        log.info("%s: %s on %d clips (%d eval), %.2fM parameters, %s%s", out, cfg.model.name, len(train_clips),
                 len(eval_clips), sum(p.numel() for p in model.parameters()) / 1e6, device,
                 f" x{world.size}" if world.size > 1 else "")

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
                    with torch.autocast(device.type, enabled=amp):
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
                    lr = optimizer.param_groups[0]["lr"]
                    if state.step % t.log_every == 0:
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

            # Evaluate (main process), checkpoint ensemble, weight averaging
            if world.is_main:
                probs, targets, valid_loss = predict(model, eval_loader, device, loss_fn, amp)
                scores = evaluate(probs, targets)
                extra["ensemble_sum"] = extra.get("ensemble_sum", 0) + torch.from_numpy(probs).double()
                ensemble = (extra["ensemble_sum"] / epoch).numpy()
                ens_scores = evaluate(ensemble, targets)
                score = getattr(scores, main_metric)
                if score > state.best_score:
                    state.best_epoch, state.best_score = epoch, score
                    extra["best_model"] = _cpu_state(model)
                    extra["best_predictions"] = torch.from_numpy(probs)
                    extra["best_scores"] = {"epoch": epoch, **scores.as_dict()}
                    save_bundle(extra["best_model"], extra["best_scores"], "best.pt")
                if getattr(ens_scores, main_metric) > state.ensemble_score:
                    state.ensemble_epoch, state.ensemble_score = epoch, getattr(ens_scores, main_metric)
                    extra["ensemble_predictions"] = torch.from_numpy(ensemble)
                extra["targets"] = torch.from_numpy(targets)
                if wa_start is not None and wa_start <= epoch <= wa_end:
                    current = _cpu_state(model)
                    wa = extra.get("wa_sum")
                    extra["wa_sum"] = {k: (wa[k] + v if wa is not None and v.is_floating_point() else v.clone())
                                       for k, v in current.items()}
                    extra["wa_count"] = extra.get("wa_count", 0) + 1
                row = {"epoch": epoch, "step": state.step, **scores.as_dict(),
                       "ensemble_mAP": ens_scores.mAP, "ensemble_acc": ens_scores.acc,
                       "train_loss": state.loss_sum / max(state.loss_count, 1), "valid_loss": valid_loss,
                       "lr": optimizer.param_groups[0]["lr"], "epoch_seconds": seconds,
                       "clips_per_s": state.loss_count * world.size / max(seconds, 1e-9)}
                state.history.append(row)
                _write_csv(out / "metrics.csv", state.history)
                _write_csv(out / "steps.csv", state.steps)
                log.info("epoch %d/%d: %s %.4f (ensemble %.4f), train loss %.4f, valid loss %.4f, %.0f clips/s",
                         epoch, t.epochs, main_metric, score, getattr(ens_scores, main_metric), row["train_loss"],
                         valid_loss, row["clips_per_s"])
            scheduler.step()
            state.epoch, state.consumed, state.loss_sum, state.loss_count, state.epoch_seconds = epoch, 0, 0.0, 0, 0.0
            save_last()
            world.barrier()

    if not world.is_main:
        return {}

    # Final outputs (also rewritten when a finished run is run again)
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
        "main_metric": main_metric,
        "params": sum(p.numel() for p in model.parameters()),
        "device": device.type,
        "gpus": world.size if device.type == "cuda" else 0,
        "train_seconds": state.train_seconds,
        "clips_per_s": float(np.mean([r["clips_per_s"] for r in state.history])),
        "best": extra["best_scores"],
        "ensemble": {"epoch": state.ensemble_epoch,
                     **evaluate(extra["ensemble_predictions"].numpy(), targets).as_dict()},
    }
    if "wa_sum" in extra:
        averaged = {k: v / extra["wa_count"] if v.is_floating_point() else v for k, v in extra["wa_sum"].items()}
        model.load_state_dict(averaged)
        probs, _, _ = predict(model, eval_loader, device, loss_fn, amp)
        write_npy(out / PREDICTIONS["wa"], probs)
        wa_scores = evaluate(probs, targets)
        save_bundle(averaged, {"epochs": extra["wa_count"], **wa_scores.as_dict()}, "wa.pt")
        summary["wa"] = {"epochs": [cfg.train.wa_start, cfg.train.wa_end or cfg.train.epochs], **wa_scores.as_dict()}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("%s: best %s %.4f at epoch %d; summary in %s", out, main_metric, state.best_score, state.best_epoch,
             out / "summary.json")
    return summary
