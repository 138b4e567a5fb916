"""The cost of SLURM: the same workflow run locally (baseline) and through the SLURM profile on the
one-node test cluster (tests/cluster/slurm_cluster.py), as wall-clock times and their ratio, each
with the machine's load while it ran (the 1-minute load average, sampled every 10 s).

Needs root (the test cluster). The SLURM run uses the README's command for clusters without
accounting; the local run `snakemake --cores all`. Each starts from an empty folder. The test
cluster declares a node of 32 CPUs whatever the machine has, so SLURM runs several 8-CPU jobs at
once on this machine's few cores: `--sized` instead runs the cluster as this machine (its node
declared with this machine's CPUs) and the SLURM command with its jobs sized to it (`--cores` =
its CPUs, as the README says for small nodes), the same CPUs as the local run: the difference is
then SLURM's own cost. A test cluster already running is stopped and started again afterwards.

    sudo .venv/bin/python benchmarks/slurm_overhead.py [--config config/config.yaml | --small] [--sized]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import slurm_cluster


def readme_command(partition: str) -> list[str]:
    for command in slurm_cluster.readme_commands(ROOT / "README.md"):
        if "--slurm-no-account" in command:
            return shlex.split(command.replace("YOUR_PARTITION", partition))
    raise SystemExit("README.md has no SLURM command for clusters without accounting")


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall-clock seconds of `cmd` and the mean load average while it ran."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # jobs' python
    loads, done = [], threading.Event()

    def sample() -> None:
        while not done.wait(10):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    done.set()
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return seconds, sum(loads) / len(loads) if loads else os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--small", action="store_true", help="the tests' small config instead of --config")
    parser.add_argument("--sized", action="store_true",
                        help="instead, the cluster's node and the jobs (--cores) sized to this machine's CPUs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        path = slurm_cluster.small_config(work / "small.yaml") if args.small else args.config.resolve()
        config = ["--configfile", str(path)]
        local_s, load = timed([sys.executable, "-m", "snakemake", "--cores", "all", "--directory", str(work / "local"),
                               *config])
        print(f"local (--cores all):                 {local_s:6.0f} s   load {load:4.1f}", flush=True)
        cpus = os.cpu_count()
        name, node_cpus, extra = ((f"SLURM, node and --cores {cpus}", cpus, ["--cores", str(cpus)]) if args.sized
                                  else ("SLURM, the README's command", slurm_cluster.NODE["cpus"], []))
        running = slurm_cluster.running()
        if running is not None:
            running.stop()
        cluster = slurm_cluster.up(cpus=node_cpus)
        try:
            seconds, load = timed([sys.executable, "-m", *readme_command(cluster.partition), *extra,
                                   "--directory", str(work / "slurm"), *config])
            print(f"{name + f' ({len(cluster.job_records())} jobs)':36} {seconds:6.0f} s   load {load:4.1f}   "
                  f"{seconds / local_s:4.2f} x local", flush=True)
        finally:
            cluster.stop()
            if running is not None:
                slurm_cluster.up()


if __name__ == "__main__":
    main()
