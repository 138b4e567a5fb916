"""Concurrent training jobs claim different GPUs (lock files), and wait or fail when none is free."""

import json
import subprocess
import sys
import textwrap

import pytest

from atdr.errors import AtdrError
from atdr.gpus import claim_gpus

CLAIM = textwrap.dedent("""
    import json, os, sys, time
    import atdr.gpus as gpus
    gpus.device_count = lambda: 2  # a machine with two GPUs
    devices = gpus.claim_gpus(int(sys.argv[2]), lock_dir=sys.argv[1], wait_s=float(sys.argv[3]))
    print(json.dumps({"devices": devices, "visible": os.environ["CUDA_VISIBLE_DEVICES"]}), flush=True)
    time.sleep(float(sys.argv[4]))
""")


def claim(lock_dir, n: int, wait_s: float = 5.0, hold_s: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(lock_dir), str(n), str(wait_s), str(hold_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_jobs_get_different_gpus_and_a_third_waits_for_one(tmp_path):
    first, second = claim(tmp_path, 1, hold_s=3), claim(tmp_path, 1, hold_s=3)
    a, b = (json.loads(p.stdout.readline()) for p in (first, second))
    assert sorted(a["devices"] + b["devices"]) == [0, 1]
    assert a["visible"] == str(a["devices"][0]) and b["visible"] == str(b["devices"][0])
    third = claim(tmp_path, 1, wait_s=30)  # both GPUs held: waits until one job ends
    assert json.loads(third.stdout.readline())["devices"] in ([0], [1])
    for p in (first, second, third):
        assert p.wait(timeout=30) == 0


def test_no_free_gpu_in_time_is_a_clear_error(tmp_path):
    holder = claim(tmp_path, 2, hold_s=5)
    assert json.loads(holder.stdout.readline())["devices"] == [0, 1]
    waiting = claim(tmp_path, 1, wait_s=0.5)
    assert waiting.wait(timeout=30) != 0 and "could not claim 1 free GPU(s) within 0.5 s" in waiting.stderr.read()
    holder.kill()


def test_existing_cuda_visible_devices_and_zero_gpus_are_left_alone(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert claim_gpus(1) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert claim_gpus(0) is None


def test_more_gpus_than_the_machine_has(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("atdr.gpus.device_count", lambda: 1)
    with pytest.raises(AtdrError, match="asked for 2 GPUs, this machine has 1"):
        claim_gpus(2)


def test_a_single_process_trains_on_the_gpu_it_asked_for(monkeypatch):
    """Without torchrun (WORLD_SIZE unset) a run that uses CUDA trains on the first visible GPU
    (the one claimed), not on the CPU; found on an H100, where single-GPU runs trained on the CPU."""
    from atdr.distributed import init_world

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_world(use_cuda=True).device == "cuda:0"
    assert init_world(use_cuda=False).device == "cpu"
