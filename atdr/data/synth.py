"""The embedded dataset: synthetic multi-label clips of real AudioSet classes, in AudioSet's formats.

Ten AudioSet classes that synthesis renders convincingly (their real ids and names). Each clip mixes
1-3 events of distinct classes (random onsets, durations and levels) over a low brown-noise floor.
Class frequencies are unequal, as in AudioSet, so balanced sampling matters. Everything is a pure
function of the seed: clip `i` of a split depends only on `(seed, split, i)`.

Layout written to the output folder (as an AudioSet download plus `atdr prep`):
`class_labels_indices.csv`, `balanced_train_segments.csv`, `eval_segments.csv`,
`audio/{balanced_train,eval}/<ytid>.wav` (16 kHz mono PCM), `train.json`, `eval.json`.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from atdr.data.audio import SAMPLE_RATE, write_audio
from atdr.data.datafile import Clip, write_datafile
from atdr.data.labels import LabelSet
from atdr.data.segments import Segment, write_segments

SR = SAMPLE_RATE
Render = Callable[[np.random.Generator, int], np.ndarray]


def _time(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _phase(freq: np.ndarray) -> np.ndarray:
    """Phase of a tone with instantaneous frequency `freq` (Hz, per sample)."""
    return 2 * np.pi * np.cumsum(freq) / SR


def sine_wave(rng: np.random.Generator, n: int) -> np.ndarray:
    f = np.exp(rng.uniform(np.log(300), np.log(3000)))
    return np.sin(2 * np.pi * f * _time(n) + rng.uniform(0, 2 * np.pi))


def beep(rng: np.random.Generator, n: int) -> np.ndarray:
    f, period = rng.uniform(800, 2500), rng.uniform(0.15, 0.5)
    t = _time(n)
    return np.sin(2 * np.pi * f * t) * ((t % period) < period / 2)


def chirp_tone(rng: np.random.Generator, n: int) -> np.ndarray:
    f0, f1, period = rng.uniform(200, 1000), rng.uniform(2000, 6000), rng.uniform(0.2, 1.0)
    if rng.random() < 0.5:
        f0, f1 = f1, f0
    frac = (_time(n) % period) / period
    return np.sin(_phase(f0 * (f1 / f0) ** frac))


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum /= np.sqrt(np.maximum(freqs, 20.0))
    return np.fft.irfft(spectrum, n)


def clicking(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.zeros(n)
    rate = rng.uniform(5, 20)
    for onset in rng.integers(0, n, rng.poisson(rate * n / SR) + 1):
        burst = rng.standard_normal(32) * np.exp(-np.arange(32) / 6)
        x[onset : onset + 32] += burst[: n - onset]
    return x


def mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    f0, t = rng.choice([50.0, 60.0]), _time(n)
    return sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 8))


def buzz(rng: np.random.Generator, n: int) -> np.ndarray:
    f = rng.uniform(100, 250)
    saw = 2 * ((f * _time(n)) % 1.0) - 1
    return saw * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(3, 8) * _time(n)))


def siren(rng: np.random.Generator, n: int) -> np.ndarray:
    fc, dev, lfo = rng.uniform(600, 1200), rng.uniform(200, 500), rng.uniform(0.3, 3.0)
    return np.sin(_phase(fc + dev * np.sin(2 * np.pi * lfo * _time(n))))


def tick(rng: np.random.Generator, n: int) -> np.ndarray:
    period, f = int(rng.uniform(0.25, 1.0) * SR), rng.uniform(2000, 5000)
    ring = np.sin(2 * np.pi * f * _time(400)) * np.exp(-_time(400) / 0.005)
    x = np.zeros(n + 400)
    for onset in range(int(rng.integers(0, period)), n, period):
        x[onset : onset + 400] += ring
    return x[:n]


@dataclass(frozen=True)
class SynthClass:
    mid: str
    name: str
    render: Render


# Real AudioSet ids and display names (class_labels_indices.csv), in frequency order: the first
# class is the most common in the generated data.
CLASSES = (
    SynthClass("/m/01v_m0", "Sine wave", sine_wave),
    SynthClass("/m/02fs_r", "Beep, bleep", beep),
    SynthClass("/m/0hdsk", "Chirp tone", chirp_tone),
    SynthClass("/m/0chx_", "White noise", white_noise),
    SynthClass("/m/0cj0r", "Pink noise", pink_noise),
    SynthClass("/m/07qc9xj", "Clicking", clicking),
    SynthClass("/m/06xkwv", "Mains hum", mains_hum),
    SynthClass("/m/07pjwq1", "Buzz", buzz),
    SynthClass("/m/03kmc9", "Siren", siren),
    SynthClass("/m/07qjznt", "Tick", tick),
)
SPLITS = {"balanced_train": 0, "eval": 1}
_YTID_ALPHABET = np.array(list(string.ascii_letters + string.digits + "-_"))


def _ramp(x: np.ndarray, ms: float = 5.0) -> np.ndarray:
    k = min(int(SR * ms / 1000), len(x) // 2)
    if k:
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, k))
        x[:k] *= fade
        x[-k:] *= fade[::-1]
    return x


def _db(db: float) -> float:
    return 10 ** (db / 20)


def render_clip(rng: np.random.Generator, classes: tuple[SynthClass, ...], n: int, first: int | None = None) -> tuple[np.ndarray, list[int]]:
    """One clip of `n` samples and the indices of its classes (`first`, if given, is included)."""
    prior = 1.0 / np.sqrt(np.arange(1, len(classes) + 1))
    n_events = min(int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])), len(classes))
    chosen = [int(k) for k in rng.choice(len(classes), n_events, replace=False, p=prior / prior.sum())]
    if first is not None and first not in chosen:
        chosen[0] = first

    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove the drift below ~20 Hz
    x = brown / (np.sqrt(np.mean(brown**2)) + 1e-12) * _db(rng.uniform(-50, -38))
    for k in chosen:
        length = max(int(rng.uniform(0.3, 1.0) * n), min(n, SR // 5))
        onset = int(rng.integers(0, n - length + 1))
        event = classes[k].render(rng, length)
        event = _ramp(event / (np.sqrt(np.mean(event**2)) + 1e-12) * _db(rng.uniform(-26, -8)))
        x[onset : onset + length] += event
    peak = np.max(np.abs(x))
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32), sorted(chosen)


def _ytid(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_YTID_ALPHABET, 11))


def synthesize(
    out: str | Path,
    n_train: int = 500,
    n_eval: int = 200,
    seconds: float = 2.0,
    seed: int = 0,
    n_classes: int = len(CLASSES),
    progress: bool = True,
) -> LabelSet:
    """Write the embedded dataset to `out` (see the module docstring); return its class list."""
    out = Path(out)
    classes = CLASSES[:n_classes]
    labels = LabelSet(tuple(c.mid for c in classes), tuple(c.name for c in classes))
    labels.write(out / "class_labels_indices.csv")
    n = int(round(seconds * SR))
    seen: set[str] = set()
    for split, count in (("balanced_train", n_train), ("eval", n_eval)):
        segments, clips = [], []
        for i in tqdm(range(count), desc=f"synth {split}", unit="clip", disable=None if progress else True):
            rng = np.random.default_rng([seed, SPLITS[split], i])
            ytid = _ytid(rng)
            while ytid in seen:
                ytid = _ytid(rng)
            seen.add(ytid)
            # The first clips of a split each contain one given class, so every class occurs.
            wave, chosen = render_clip(rng, classes, n, first=i if i < len(classes) else None)
            mids = tuple(classes[k].mid for k in chosen)
            path = out / "audio" / split / f"{ytid}.wav"
            write_audio(path, wave)
            segments.append(Segment(ytid, 0.0, seconds, mids))
            clips.append(Clip(str(path), mids, {"video_id": ytid}))
        write_segments(out / f"{split}_segments.csv", segments, title=f"Segments csv created by atdr synth (seed {seed})")
        write_datafile(out / ("train.json" if split == "balanced_train" else "eval.json"), clips)
    return labels
