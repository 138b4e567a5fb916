"""The paper's analyses beyond one column of mAP: tables and figures of trained runs.

- `efficiency`: mAP against the number of training clips (runs on nested subsets, `atdr subset`).
- `labels`: mAP against injected label noise (`atdr label-noise`), and per-class AP against
  per-class label quality.
- `robustness`: mAP under waveform perturbations (`atdr probe`).
- `cost`: parameters, GFLOPs, training and inference speed, mAP per device-hour.

`atdr analyze KIND` and `atdr cost` write them; the workflow runs them under
`results/{dataset}/analysis/`. A run of an analysis is an ordinary run folder (`atdr train`)
trained on another training datafile: what it is, is read from its own files (the clips it used
in summary.json, the files beside its training datafile), not from where it lies.
"""

from __future__ import annotations


def variant_name(value: float) -> str:
    """The folder of a training-set variant: its fraction or noise rate, e.g. "0.25"."""
    return f"{value:g}"
