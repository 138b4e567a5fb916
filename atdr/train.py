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
summary.json (with the clips each set actually used, and any that could not be read), data.json
(fingerprints of the data it reads). The folder belongs to this run (`atdr.runfolder`): locked
while it trains, refused to a run of another config or on other data unless forced.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from atdr import checkpoint, runfolder
from atdr.atomic import atomic_path, write_npy, write_text
from atdr.config import RunConfig
from atdr.data.datafile import Clip, read_datafile
from atdr.data.features import FrontEnd, get_frontend
from atdr.data.fingerprint import data_fingerprint
from atdr.data.label_checks import check_learnable
from atdr.data.labels import LabelSet
from atdr.data.loaders import Loaders, ensure_packed, run_loaders
from atdr.data.notes import ConversionNotes
from atdr.data.sampler import EpochSampler
from atdr.data.stats import NormStats
from atdr.data.weights import read_weights
from atdr.distributed import World, close_world, init_world
from atdr.errors import EXIT_INTERRUPTED, EXIT_PREEMPTED, AtdrError
from atdr.metrics import evaluate
from atdr.models import create
from atdr.precision import resolve as resolve_precision
from atdr.predict import Inputs, LossFn, Prediction, make_loss, predict
from atdr.run import PREDICTIONS, EvalClip, write_prediction_clips
from atdr.threads import set_torch_threads

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
    unreadable: list[int] = field(default_factory=list)  # training clips skipped as unreadable (indices; distinct after each epoch)


def _norm(cfg: RunConfig) -> tuple[float, float]:
    """The normalisation: data.mean and data.std, or stats computed for this front-end and input length."""
    d = cfg.data
    if d.norm_stats is None:
        return d.mean, d.std
    stats = NormStats.read(d.norm_stats)
    if stats.frontend != d.frontend:
        raise AtdrError(f"{d.norm_stats}: stats are for front-end {stats.frontend}, the run uses {d.frontend}")
    if stats.target_length != d.target_length:
        raise AtdrError(f"{d.norm_stats}: stats are for target_length {stats.target_length}, the run uses "
                        f"{d.target_length} (padding changes them): recompute them with `atdr norm-stats "
                        f"--target-length {d.target_length}`, or give data.mean and data.std to use others")
    return stats.mean, stats.std


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _init_worker(notes: ConversionNotes, worker_id: int) -> None:
    """Data workers leave SIGTERM/SIGINT to the main process, which saves before stopping, and
    send their conversion notes to it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    notes.install()


@dataclass(frozen=True)
class RunData:
    """A run's data: the training loader (its sampler plans each epoch), the loaders of the scored
    sets, and the data path (`atdr.data.loaders`) that turns their batches into model inputs."""

    path: Loaders
    labels: LabelSet
    frontend: FrontEnd
    norm: tuple[float, float]  # mean, std
    train_clips: list[Clip]
    sampler: EpochSampler
    train_loader: DataLoader
    scored: dict[str, list[Clip]]  # eval, and valid when given
    scored_loaders: dict[str, DataLoader]

    @property
    def selection(self) -> str:
        """The set the best epoch is chosen on."""
        return "valid" if "valid" in self.scored else "eval"


def _run_data(cfg: RunConfig, world: World, device: torch.device, notes: ConversionNotes) -> RunData:
    """The packed fast path (stores made on first use, by `_data_identity`) or the per-clip
    reference. Each loader draws its workers' seeds from its own generator, not the global RNG, so
    that a resumed run's dropout sees the same random numbers as an uninterrupted one."""
    t, d = cfg.train, cfg.data
    labels, frontend, norm = LabelSet.read(d.labels), get_frontend(d.frontend), _norm(cfg)
    datafiles = d.datafiles
    clips = {name: read_datafile(file, labels, check_files=d.loader == "reference") for name, file in datafiles.items()}
    stores = {"train": d.train_store} if d.train_store else {}  # the others: each datafile's own
    loaders = run_loaders(cfg, labels, frontend, norm, device)
    weights = read_weights(d.weights, len(clips["train"])) if d.weights else None
    sampler = EpochSampler(len(clips["train"]), weights, t.seed, world.rank, world.size)

    def loader(name: str, batch_size: int, sampler: EpochSampler | None = None) -> DataLoader:
        return loaders.loader(datafiles[name], clips[name], batch_size, sampler, stores.get(name),
                              num_workers=t.num_workers, pin_memory=device.type == "cuda",
                              worker_init_fn=partial(_init_worker, notes),
                              generator=torch.Generator().manual_seed(t.seed))

    scored = {name: c for name, c in clips.items() if name != "train"}
    return RunData(loaders, labels, frontend, norm, clips["train"], sampler, loader("train", t.batch_size // world.size, sampler),
                   scored, {name: loader(name, t.eval_batch_size or 2 * t.batch_size) for name in scored})


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step, its options fixed at set-up: forward under the run's precision, loss in
    fp32, backward (scaled for fp16), gradient clipping when set, update. Returns the loss averaged
    over the processes."""

    net: torch.nn.Module  # the model as trained: wrapped in DDP and/or compiled
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast: AbstractContextManager
    loss_fn: LossFn
    grad_clip: float | None
    world: World

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        with self.autocast:
            output = self.net(x)
        loss = self.loss_fn(output.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        value = self.world.mean(loss.item())
        if math.isfinite(value):  # otherwise the weights stay as they were, and the loop stops
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return value


def train(cfg: RunConfig, out: str | Path, force: bool = False) -> dict:
    """Train (or resume, or just finish) the run in folder `out`; return its summary. With
    `force`, a folder holding a run of another config or on other data is emptied first instead
    of refused."""
    out = Path(out)
    use_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise AtdrError("train.device is cuda but no CUDA device is available")
    world = init_world(use_cuda)
    try:
        with ConversionNotes().collecting() as notes:
            data = _data_identity(cfg) if world.is_main else {}
            with runfolder.claim(out, cfg.to_dict(), data, force) if world.is_main else nullcontext():
                data = world.broadcast(data)  # the other processes start once the folder is claimed
                return _train(cfg, data, out, world, torch.device(world.device if use_cuda else "cpu"), notes)
    finally:
        close_world(world)


def _data_identity(cfg: RunConfig) -> dict[str, str]:
    """The fingerprints of the data the run reads (`atdr.data.fingerprint`), on the packed path
    once each datafile's store is there and up to date (packed first where it is not). Labels
    that cannot be learnt stop the run first, before anything is packed."""
    d = cfg.data
    labels = LabelSet.read(d.labels)
    clips = {name: read_datafile(file, labels, check_files=False) for name, file in d.datafiles.items()}
    unscored = check_learnable({name: [clip.labels for clip in split] for name, split in clips.items()})
    if unscored:
        log.warning("warning: %s", unscored)
    if d.loader == "packed":
        for name, file in d.datafiles.items():
            if not (name == "train" and d.train_store):  # data.train_store: a larger datafile's, packed ahead
                ensure_packed(file, clips[name])
    return data_fingerprint(d)


def _train(cfg: RunConfig, data_identity: dict[str, str], out: Path, world: World, device: torch.device,
           notes: ConversionNotes) -> dict:
    t, d = cfg.train, cfg.data
    if t.batch_size % world.size:
        raise AtdrError(f"train.batch_size {t.batch_size} is not divisible by the {world.size} processes")
    torch.manual_seed(t.seed)
    set_torch_threads(t.threads, t.num_workers)

    data = _run_data(cfg, world, device, notes)
    train_clips, scored, selection, sampler = data.train_clips, data.scored, data.selection, data.sampler
    labels, frontend, (mean, std) = data.labels, data.frontend, data.norm
    rank_batch = t.batch_size // world.size

    # Model, loss, optimiser, schedule, precision
    model = create(cfg.model.name, label_dim=len(labels), n_mels=frontend.n_mels, target_length=d.target_length,
                   **cfg.model.params).to(device, memory_format=torch.channels_last if t.channels_last else None)
    loss_kind = t.loss if t.loss != "auto" else ("bce" if d.task == "multilabel" else "ce")
    loss_fn = make_loss(loss_kind, model.output)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.optim.lr,
                                 betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay, fused=cfg.optim.fused or None)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.optim.milestones, cfg.optim.gamma)
    precision = resolve_precision(t.precision, cfg.model.name, device)
    scaler = precision.grad_scaler()
    scoring = Scoring(data.scored_loaders, scored, selection, "mAP" if d.task == "multilabel" else "acc", device,
                      loss_fn, data.path.eval_inputs)

    # Resume
    ckpt_dir = out / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    state, extra = RunState(), {}
    if last_path.exists():
        saved = checkpoint.load(last_path)
        held = runfolder.difference(saved["config"], saved.get("data"), cfg.to_dict(), data_identity)
        if held:
            raise AtdrError(f"{last_path} was written for {held}, not this run: delete it to start this run over")
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
            done = f", {state.consumed * world.size} of its {len(sampler) * world.size} clips done" if state.consumed else ""
            log.info("resuming %s at epoch %d (%d of %d epochs finished%s; step %d)", out, state.epoch + 1,
                     state.epoch, t.epochs, done, state.step)
    if world.is_main:
        write_text(out / runfolder.CONFIG, cfg.dump())
        write_text(out / runfolder.DATA, json.dumps(data_identity, indent=2) + "\n")
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
                             "state": asdict(state), "extra": extra, "data": data_identity}, last_path)

    def save_bundle(state_dict: dict, info: dict, name: str) -> None:
        checkpoint.ModelBundle(cfg.model.name, cfg.model.params, d.frontend, d.target_length, mean, std,
                               list(labels.mids), list(labels.names), state_dict, info).save(ckpt_dir / name)

    def stop_if_signalled(epoch: int, tick: float, bar: tqdm) -> None:
        """After a step (or before an epoch): if SIGTERM/SIGINT reached any process, save last.pt and stop."""
        if not world.any(stop.received is not None):
            return
        state.epoch_seconds += time.perf_counter() - tick
        state.train_seconds += time.perf_counter() - tick
        state.unreadable = world.union(state.unreadable)
        save_last()
        world.barrier()  # no rank ends before rank 0 has saved (a launcher may kill the others when one ends)
        bar.close()
        code = EXIT_PREEMPTED if stop.received == signal.SIGTERM else EXIT_INTERRUPTED
        where = f"in epoch {epoch}" if state.consumed else f"after epoch {epoch - 1}"
        raise Stopped(code, f"stopped {where}, step {state.step}; state saved to {last_path}. "
                            "Run the same command again to resume.")

    net = DistributedDataParallel(model) if world.size > 1 else model
    step = TrainStep(torch.compile(net) if t.compile else net, model, optimizer, scaler, precision.autocast(), loss_fn,
                     cfg.optim.grad_clip, world)
    base_lr = cfg.optim.lr
    with _StopSignals() as stop:
        for epoch in range(state.epoch + 1, t.epochs + 1):
            sampler.set_epoch(epoch, start=state.consumed)
            net.train()
            bar = tqdm(total=len(sampler) * world.size, desc=f"epoch {epoch}/{t.epochs}", unit="clip", leave=False,
                       disable=None if world.is_main else True)  # clips/s and loss on a terminal
            tick = time.perf_counter()
            stop_if_signalled(epoch, tick, bar)  # a signal during the last evaluation: stop between epochs
            for batch in _until_stopped(data.train_loader, stop):
                if (cfg.optim.warmup_steps and state.step <= cfg.optim.warmup_steps
                        and state.step % cfg.optim.warmup_every == 0):
                    for group in optimizer.param_groups:  # the original: lr = step / warmup * lr, every 50 steps
                        group["lr"] = state.step / cfg.optim.warmup_steps * base_lr
                state.consumed = min(state.consumed + rank_batch, sampler.per_rank)
                state.unreadable += batch.unreadable  # repeats are merged at the epoch's end (`world.union`)
                if batch.clips is not None:
                    x, y = data.path.train_inputs(batch.clips, device)
                    value = step(x, y)
                    if not math.isfinite(value):
                        where = f"epoch {state.epoch} ({last_path})" if state.epoch else "none (no epoch finished)"
                        raise AtdrError(f"loss is {value} at step {state.step + 1} (epoch {epoch}); training stopped. "
                                        f"Last good checkpoint: {where}. Check the data and lower optim.lr")
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
                notes.flush()
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
            state.unreadable = world.union(state.unreadable)  # each rank skipped its own
            save_last()
            world.barrier()

    if not world.is_main:
        return {}
    notes.flush()
    return _write_outputs(cfg, out, model, train_clips, scoring, state, extra, save_bundle,
                          world.size if device.type == "cuda" else 0)


@dataclass(frozen=True)
class Scoring:
    """The scored sets (`eval`, and `valid` when given) and how an epoch is judged: on the
    `selection` set's `main_metric`."""

    loaders: dict[str, DataLoader]
    clips: dict[str, list[Clip]]
    selection: str
    main_metric: str
    device: torch.device
    loss_fn: LossFn
    inputs: Inputs  # a scored batch -> (x, y) on the device

    def predict(self, model: torch.nn.Module, name: str, extra: dict, loss: bool = True) -> Prediction:
        """Predict one scored set; clips that could not be read are logged once and recorded in
        `extra["unreadable"][name]` (the prediction has no row for them)."""
        result = predict(model, self.loaders[name], self.device, self.loss_fn if loss else None, self.inputs)
        missed = [self.clips[name][i].wav for i in result.unreadable]
        recorded = extra.setdefault("unreadable", {}).setdefault(name, [])
        if missed != recorded:  # the ensemble adds up predictions of the same clips every epoch
            if recorded:
                raise AtdrError(f"the {name} clips that can be read changed during the run (now unreadable: "
                                f"{', '.join(missed) or 'none'}); check the disk, then run again")
            log.warning("%d %s clip(s) could not be read and are left out of its scores: %s", len(missed), name,
                        ", ".join(missed))
            recorded.extend(missed)
        return result

    def epoch(self, epoch: int, model: torch.nn.Module, state: RunState, extra: dict) -> dict:
        """Predict every scored set; keep the best epoch and the best checkpoint ensemble
        (epochs 1..n averaged), both chosen on the selection set, with their eval predictions.
        Returns the epoch's metrics row (selection set)."""
        results = {name: self.predict(model, name, extra) for name in self.loaders}
        sums = extra.setdefault("ensemble_sum", {})
        for name, result in results.items():
            sums[name] = sums.get(name, 0) + torch.from_numpy(result.probs).double()
        chosen = results[self.selection]
        scores = evaluate(chosen.probs, chosen.targets)
        ens_scores = evaluate((sums[self.selection] / epoch).numpy(), chosen.targets)
        eval_probs, eval_targets = results["eval"].probs, results["eval"].targets
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
                "ensemble_acc": ens_scores.acc, "valid_loss": chosen.loss}


def _accumulate_average(extra: dict, weights: dict[str, torch.Tensor]) -> None:
    """Add one epoch's weights to the weight-averaging sum (integer buffers keep the latest value)."""
    total = extra.get("wa_sum")
    extra["wa_sum"] = {k: (total[k] + v if total is not None and v.is_floating_point() else v.clone())
                       for k, v in weights.items()}
    extra["wa_count"] = extra.get("wa_count", 0) + 1


def _write_outputs(cfg: RunConfig, out: Path, model: torch.nn.Module, train_clips: list[Clip], scoring: Scoring,
                   state: RunState, extra: dict, save_bundle: Callable[[dict, dict, str], None], gpus: int) -> dict:
    """The run's final files (also rewritten when a finished run is run again); returns the summary."""
    _write_csv(out / "metrics.csv", state.history)
    _write_csv(out / "steps.csv", state.steps)
    targets = extra["targets"].numpy()
    write_npy(out / "targets.npy", targets)
    write_npy(out / PREDICTIONS["best"], extra["best_predictions"].numpy())
    write_npy(out / PREDICTIONS["ensemble"], extra["ensemble_predictions"].numpy())
    save_bundle(extra["best_model"], extra["best_scores"], "best.pt")
    # The clips each set actually used; those that could not be read are named.
    unreadable = {"train": [train_clips[i].wav for i in sorted(state.unreadable)],
                  **{name: extra.get("unreadable", {}).get(name, []) for name in scoring.clips}}
    clips = {"train": len(train_clips) - len(state.unreadable),
             **{name: len(c) - len(unreadable[name]) for name, c in scoring.clips.items()}}
    # The eval clip of each prediction row (`atdr ensemble` aligns runs by them).
    skipped = set(unreadable["eval"])
    write_prediction_clips(out, [EvalClip(i, clip.wav) for i, clip in enumerate(scoring.clips["eval"])
                                 if clip.wav not in skipped])
    summary = {
        "model": cfg.model.name,
        "seed": cfg.train.seed,
        "epochs": cfg.train.epochs,
        "main_metric": scoring.main_metric,
        "selected_on": scoring.selection,
        "params": sum(p.numel() for p in model.parameters()),
        "clips": clips,
        "device": scoring.device.type,
        "gpus": gpus,
        "train_seconds": state.train_seconds,
        "clips_per_s": float(np.mean([r["clips_per_s"] for r in state.history])),
        "best": extra["best_scores"],
        "ensemble": {"epoch": state.ensemble_epoch,
                     **evaluate(extra["ensemble_predictions"].numpy(), targets).as_dict()},
    }
    if any(unreadable.values()):
        summary["unreadable"] = {name: paths for name, paths in unreadable.items() if paths}
        log.warning("%s: clips left out as unreadable: %s (listed in summary.json; `atdr prep --verify` finds "
                    "them before training)", out, ", ".join(f"{len(v)} {k}" for k, v in unreadable.items() if v))
    if "wa_sum" in extra:
        averaged = {k: v / extra["wa_count"] if v.is_floating_point() else v for k, v in extra["wa_sum"].items()}
        model.load_state_dict(averaged)
        probs = scoring.predict(model, "eval", extra, loss=False).probs
        write_npy(out / PREDICTIONS["wa"], probs)
        wa_scores = evaluate(probs, targets)
        save_bundle(averaged, {"epochs": extra["wa_count"], **wa_scores.as_dict()}, "wa.pt")
        summary["wa"] = {"epochs": [cfg.train.wa_start, cfg.train.wa_end or cfg.train.epochs], **wa_scores.as_dict()}
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    metric = scoring.main_metric
    log.info("%s: best %s %.4f on %s at epoch %d (eval %s %.4f); summary in %s", out, metric, state.best_score,
             scoring.selection, state.best_epoch, metric, extra["best_scores"][metric], out / "summary.json")
    return summary
