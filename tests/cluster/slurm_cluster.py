"""A real one-node SLURM cluster for tests, from Debian's packages (slurm-wlm 22.05, munge).

    python tests/cluster/slurm_cluster.py up     # install if needed, configure, start; prints its folder
    python tests/cluster/slurm_cluster.py down   # stop the daemons (by PID), remove the config

`.ci/run` starts it before the tests, which then use it (`running()`) and leave it to `down`;
elsewhere the tests start their own (`up()`) and stop it.

One node, `localhost`, declared as a GPU node (32 CPUs, 250 GB, three GPUs) whatever the machine has
(`up(cpus=N)`: N CPUs, as the overhead benchmark declares the machine's own):
the GPUs are character devices with /dev/null's numbers, so Slurm schedules them and sets
CUDA_VISIBLE_DEVICES, and torch, finding no CUDA, trains on the CPU. No accounting database:
`squeue` answers job status and jobcomp/filetxt records each job's start and end. Requeued jobs
start again after `cred_expire` (10 s here, 120 s by default).

slurm.conf goes to the default path, /etc/slurm/slurm.conf, because the snakemake job-step
plugin drops SLURM_CONF from its inner `srun`'s environment. Needs root (the daemons, mknod and
/etc); `up` refuses where a slurm.conf not written by this script exists or a slurmctld runs.
Used by tests/test_slurm.py and benchmarks/slurm_overhead.py.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ETC = Path("/etc/slurm")
CONF, GRES_CONF = ETC / "slurm.conf", ETC / "gres.conf"
MARKER = "# written by atdr tests/cluster/slurm_cluster.py"
PACKAGES = ["slurm-wlm", "munge"]
PARTITION = "gpu"
NODE = {"cpus": 32, "mem_mb": 250_000, "gpus": 3}
REQUEUE_DELAY_S = 5


class Unavailable(Exception):
    """The cluster cannot run here; the message says why (tests skip with it)."""


def _run(*cmd: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


def install() -> None:
    """Install slurm-wlm and munge with apt-get where they are missing."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "munged", "sbatch")):
        return
    if os.geteuid() != 0:
        raise Unavailable("slurm-wlm and munge are not installed and installing them needs root")
    if not shutil.which("apt-get"):
        raise Unavailable("slurm-wlm and munge are not installed and there is no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = ("apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES)
    try:
        result = _run(*install_cmd, timeout=600, env=env)
        if result.returncode != 0:  # a stale package list: update once, then try again
            _run("apt-get", "update", "-q", timeout=600, env=env)
            result = _run(*install_cmd, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"apt-get install {' '.join(PACKAGES)} timed out") from None
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"apt-get install {' '.join(PACKAGES)} failed: {last[0]}")


@dataclass
class Cluster:
    """A started cluster: its folder (state, logs, job records) and daemons."""

    root: Path
    partition: str = PARTITION

    @property
    def jobcomp(self) -> Path:
        """One line per finished job (JobId, JobState, StartTime, EndTime, ...)."""
        return self.root / "log" / "jobcomp.txt"

    def pids(self) -> dict[str, int]:
        found = {}
        for name, path in (("slurmd", "slurmd.pid"), ("slurmctld", "slurmctld.pid"), ("munged", "munge/munged.pid")):
            try:
                found[name] = int((self.root / path).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return found

    def job_records(self) -> list[dict[str, str]]:
        """The finished jobs' records from jobcomp/filetxt, as key=value dicts."""
        if not self.jobcomp.exists():
            return []
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in self.jobcomp.read_text().splitlines() if line.strip()]

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job and wait until the queue is empty."""
        _run("scancel", "--full", "--user", "root", timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = _run("squeue", "-h", "-o", "%i", timeout=30)
            if queue.returncode == 0 and not queue.stdout.strip():
                return
            time.sleep(1)

    def stop(self) -> None:
        """Cancel the jobs, stop slurmd, slurmctld and munged by PID, remove the config."""
        if "slurmctld" in self.pids():
            self.cancel_all()
        for pid in self.pids().values():
            _terminate(pid)
        for path in (CONF, GRES_CONF):
            if _ours(path):
                path.unlink()
        shutil.rmtree(self.root, ignore_errors=True)


def _ours(path: Path) -> bool:
    try:
        return path.read_text().startswith(MARKER)
    except OSError:
        return False


def _terminate(pid: int, timeout: float = 20) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def slurm_conf(root: Path, cpus: int = NODE["cpus"]) -> str:
    node = {**NODE, "cpus": cpus}
    return f"""{MARKER} (folder {root})
ClusterName=atdrtest
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket,cred_expire={REQUEUE_DELAY_S}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={root}/log/jobcomp.txt
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=3600
GresTypes=gpu
NodeName=localhost CPUs={node['cpus']} RealMemory={node['mem_mb']} Gres=gpu:{node['gpus']} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def up(cpus: int = NODE["cpus"]) -> Cluster:
    """Install, configure and start the cluster, its node declared with `cpus` CPUs; raise
    Unavailable (with the reason) where it cannot run."""
    if sys.platform != "linux":
        raise Unavailable("a SLURM test cluster needs Linux")
    if os.geteuid() != 0:
        raise Unavailable("the SLURM test cluster needs root (its daemons, fake GPU devices and /etc/slurm)")
    install()
    stale = _find()
    if stale is not None:  # left by a run that was killed: ours to stop
        stale.stop()
    for path in (CONF, GRES_CONF):
        if path.exists() and not _ours(path):
            raise Unavailable(f"{path} exists and was not written by the test cluster: not overwriting a real SLURM setup")
    if _run("pgrep", "-x", "slurmctld").returncode == 0:
        raise Unavailable("a slurmctld is already running on this machine")
    root = Path(tempfile.mkdtemp(prefix="atdr-slurm-"))
    os.chmod(root, 0o755)
    cluster = Cluster(root)
    try:
        _start(cluster, cpus)
    except (OSError, subprocess.SubprocessError) as e:  # the machine does not allow it (no mknod, ...)
        cluster.stop()
        raise Unavailable(f"the test cluster could not start: {e}") from e
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(cluster: Cluster, cpus: int) -> None:
    root = cluster.root
    for sub in ("state", "spool", "log", "dev", "munge"):
        (root / sub).mkdir()
    # munge: its socket folder must be world-searchable (755; 700 fails), the key readable by munge only
    munge = root / "munge"
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        result = _run("mungekey", "--create", "--keyfile", str(munge / "munge.key"))
        if result.returncode != 0:
            raise Unavailable(f"no munge key and mungekey failed: {result.stderr.strip()}")
    else:
        shutil.copy(key, munge / "munge.key")
    shutil.chown(munge, "munge", "munge")
    shutil.chown(munge / "munge.key", "munge", "munge")
    os.chmod(munge / "munge.key", 0o400)
    result = _run("runuser", "-u", "munge", "--", "munged", f"--socket={munge}/munge.socket",
                  f"--key-file={munge}/munge.key", f"--pid-file={munge}/munged.pid",
                  f"--log-file={munge}/munged.log", f"--seed-file={munge}/munged.seed")
    if result.returncode != 0:
        raise Unavailable(f"munged did not start: {result.stderr.strip()}")
    # fake GPUs: character devices (plain files are scheduled, but CUDA_VISIBLE_DEVICES is never set)
    for i in range(NODE["gpus"]):
        os.mknod(root / "dev" / f"gpu{i}", 0o666 | 0o020000, os.makedev(1, 3))
    CONF.write_text(slurm_conf(root, cpus))
    GRES_CONF.write_text(f"{MARKER}\nAutoDetect=off\nNodeName=localhost Name=gpu File={root}/dev/gpu[0-{NODE['gpus'] - 1}]\n")
    for daemon in (["slurmctld"], ["slurmd", "-N", "localhost"]):
        result = _run(*daemon)
        if result.returncode != 0:
            raise Unavailable(f"{daemon[0]} did not start: {result.stderr.strip()}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = _run("sinfo", "-h", "-o", "%T", timeout=30).stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise Unavailable(f"the node did not become idle (state {state!r}); see {root}/log")


def small_config(path: Path) -> Path:
    """Write the default config made small to `path`: two models, two seeds, 128 training clips,
    3 epochs, no analyses (what the tests and the overhead benchmark run)."""
    import yaml  # here: `up` and `down` run before the project's environment exists (.ci/run)

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["datasets"]["synth"]["synth"] = {"train": 128, "eval": 32, "seconds": 1.0, "seed": 0}
    config["models"] = {name: config["models"][name] for name in ("linear", "transformer")}
    config["seeds"] = [0, 1]
    config["ensembles"] = {"pair": ["linear", "transformer"]}
    config["run_defaults"]["train"].update(epochs=3, wa_start=2, log_every=1)
    config["bootstrap"] = 20
    config.pop("analyses", None)  # tested without SLURM (tests/test_analyses.py, the default workflow)
    path.write_text(yaml.safe_dump(config))
    return path


def readme_commands(readme: Path) -> list[str]:
    """The SLURM commands the README shows (`snakemake --workflow-profile workflow/profiles/slurm ...`),
    continuation lines joined: what the tests run, with their partition."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if line.startswith("snakemake --workflow-profile workflow/profiles/slurm"):
                commands.append(line)
    return commands


@dataclass(frozen=True)
class TableRow:
    """One row of the README's table of what the jobs ask for."""

    job: str  # the rule, or the group
    steps: frozenset[str]  # the rules the row names
    cpus: int
    mem_mb: int
    minutes: int
    gpus: str  # the cell: empty, a number, or `gpus_per_run`


def readme_job_table(readme: Path) -> list[TableRow]:
    """The README's table "What the jobs ask for", each cell read from its first number (GB as
    1000 MB, h as 60 min)."""
    text = readme.read_text()
    table = text[text.index("What the jobs ask for"):]
    table = table[table.index("\n|"):table.index("\n\n", table.index("\n|"))]

    def number(cell: str) -> int:
        return int(re.match(r"\d+", cell)[0])

    rows = []
    for line in table.strip().splitlines()[2:]:
        job, steps, cpus, mem, limit, gpus = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows.append(TableRow(re.match(r"`(\w+)`", job)[1], frozenset(re.findall(r"\w+", steps)), number(cpus),
                             number(mem) * 1000, number(limit) * 60, gpus))
    return rows


def running() -> Cluster | None:
    """The test cluster started earlier (by `.ci/run` or `up`) if its slurmctld still runs."""
    cluster = _find()
    pid = cluster.pids().get("slurmctld") if cluster else None
    try:
        alive = pid is not None and Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld"
    except OSError:
        alive = False
    return cluster if alive else None


def _find() -> Cluster | None:
    """The running test cluster, from the folder named in its slurm.conf."""
    if not _ours(CONF):
        return None
    root = CONF.read_text().splitlines()[0].split("(folder ", 1)[1].rstrip(")")
    return Cluster(Path(root))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args()
    if args.action == "up":
        try:
            cluster = running() or up()
        except Unavailable as e:
            print(f"test cluster unavailable: {e}", file=sys.stderr)
            return 1
        print(cluster.root)
        return 0
    cluster = _find()
    if cluster is None:
        print("no test cluster is running", file=sys.stderr)
        return 1
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
