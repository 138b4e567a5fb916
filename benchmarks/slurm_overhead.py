"""The cost of SLURM: the same workflow run locally (baseline) and through the SLURM profile on the
one-node test cluster (tests/cluster/slurm_cluster.py), as wall-clock times and their ratio.

Needs root (the test cluster). The SLURM run uses the README's command for clusters without
accounting; the local run `snakemake --cores all`. Both start from an empty folder.

    sudo .venv/bin/python benchmarks/slurm_overhead.py [--config config/config.yaml | --small]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
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


def timed(cmd: list[str]) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # jobs' python
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--small", action="store_true", help="the tests' small config instead of --config")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as local, tempfile.TemporaryDirectory() as remote:
        path = slurm_cluster.small_config(Path(local) / "small.yaml") if args.small else args.config.resolve()
        config = ["--configfile", str(path)]
        local_s = timed([sys.executable, "-m", "snakemake", "--cores", "all", "--directory", local, *config])
        print(f"local (--cores all):       {local_s:7.0f} s")
        running = slurm_cluster.running()
        cluster = running or slurm_cluster.up()
        try:
            before = len(cluster.job_records())
            slurm_s = timed([sys.executable, "-m", *readme_command(cluster.partition), "--directory", remote, *config])
            jobs = len(cluster.job_records()) - before
        finally:
            if not running:
                cluster.stop()
    print(f"SLURM ({jobs} jobs):            {slurm_s:7.0f} s")
    print(f"ratio SLURM / local:       {slurm_s / local_s:7.2f}")


if __name__ == "__main__":
    main()
