"""What atdr needs from SLURM: the job a process runs in (and requeueing it after a pre-emption),
launching one training run over the nodes of an allocation (one `srun` task per DDP process), and
the sizes of the nodes (`sinfo`), to stop a workflow whose jobs would never start.

It runs SLURM's own commands (`scontrol`, `srun`, `sinfo`) and reads the environment SLURM gives a
job; outside SLURM nothing here is called.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from atdr.errors import AtdrError

if TYPE_CHECKING:
    from snakemake.dag import DAG

log = logging.getLogger(__name__)

# Variables a nested `srun` may keep: the job's identity. Every other SLURM_* variable of the
# enclosing step (task count, CPUs, GPUs, ...) would become a default of the new step.
_JOB_VARIABLES = {"SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CONF", "SLURM_CLUSTER_NAME", "SLURM_SUBMIT_DIR",
                  "SLURM_SUBMIT_HOST"}


def job_id() -> str | None:
    """The SLURM job this process runs in (None outside SLURM)."""
    return os.environ.get("SLURM_JOB_ID")


def _command(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(args, 1, "", str(e))


def job_fields(job: str) -> dict[str, str]:
    """`scontrol show job` as a dict (JobState, Reason, Restarts, ...); empty if it fails."""
    result = _command("scontrol", "show", "job", "--oneliner", job)
    return dict(re.findall(r"(\w+)=(\S*)", result.stdout)) if result.returncode == 0 else {}


def requeue_after_stop(job: str) -> bool:
    """Requeue `job`, whose trainer has saved its state and stopped on SIGTERM, so that SLURM
    starts it again and it resumes; True if requeued.

    Requeued when the job is still running (pre-emption within its GraceTime, in REQUEUE or
    CANCEL mode; `scancel --signal=TERM`; the `--signal=TERM@120` warning before the time limit)
    or is ending at its time limit. Not when it is ending for another reason: a cancelled job
    stays cancelled, and a job that SLURM requeues at once is SLURM's to restart.
    """
    fields = job_fields(job)
    state, reason = fields.get("JobState", "UNKNOWN"), fields.get("Reason", "None")
    if state != "RUNNING" and reason != "TimeLimit":
        log.warning("SLURM job %s is %s (reason %s): not requeued", job, state, reason)
        return False
    # said first: once requeued, SLURM ends the job's processes at once
    log.warning("requeueing SLURM job %s: it starts again and resumes from the saved state", job)
    result = _command("scontrol", "requeue", job)
    if result.returncode != 0:
        log.warning("could not requeue SLURM job %s: %s", job, (result.stderr or result.stdout).strip())
        return False
    return True


def hostnames(nodelist: str) -> list[str]:
    """The node names of a SLURM node list such as `gpu[01-03],big7`."""
    result = _command("scontrol", "show", "hostnames", nodelist)
    if result.returncode != 0:
        raise AtdrError(f"scontrol cannot expand the node list {nodelist!r}: {result.stderr.strip()}")
    return result.stdout.split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def ddp_over_allocation(processes: int, module_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command (and its environment) that runs `python -m atdr <module_args>` as `processes`
    DDP processes spread evenly over the nodes of this SLURM job: one `srun` task per process, which
    meet at a rendezvous on the job's first node (MASTER_ADDR, MASTER_PORT) and take their ranks
    from SLURM (`rank_environment`). No launcher sits between SLURM and the trainers, so each gets
    SLURM's signals once, directly."""
    nodes = hostnames(os.environ["SLURM_JOB_NODELIST"])
    if processes % len(nodes):
        raise AtdrError(f"{processes} training processes cannot be spread evenly over the job's {len(nodes)} nodes")
    per_node = processes // len(nodes)
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK") or len(os.sched_getaffinity(0)))
    argv = ["srun", "--overlap", f"--nodes={len(nodes)}", f"--ntasks={processes}", f"--ntasks-per-node={per_node}",
            f"--cpus-per-task={max(cpus // per_node, 1)}", "--kill-on-bad-exit=1", sys.executable, "-m", "atdr",
            *module_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") or k in _JOB_VARIABLES}
    env.update(MASTER_ADDR=nodes[0], MASTER_PORT=str(_free_port()), ATDR_SLURM_DDP="1")
    return argv, env


def rank_environment() -> dict[str, str]:
    """torch.distributed's variables (RANK, LOCAL_RANK, WORLD_SIZE) of a process started by
    `ddp_over_allocation`, from its SLURM task; empty for any other process."""
    if not os.environ.get("ATDR_SLURM_DDP") or "SLURM_PROCID" not in os.environ:
        return {}
    return {"RANK": os.environ["SLURM_PROCID"], "LOCAL_RANK": os.environ["SLURM_LOCALID"],
            "WORLD_SIZE": os.environ["SLURM_NTASKS"]}


# Resource requests against the nodes of the cluster.


@dataclass(frozen=True)
class NodeSize:
    """One node as one partition offers it (`sinfo -N`): CPUs, memory, GPUs, time limit."""

    name: str
    partition: str
    default: bool  # the cluster's default partition
    cpus: int
    mem_mb: int
    gpus: int
    time_limit_min: float  # math.inf: no limit


@dataclass(frozen=True)
class Request:
    """What one job asks SLURM for, per node: the job of a rule, or a group job (the steps of
    several rules in one job)."""

    name: str  # the rule, or the group
    group: bool
    partition: str | None  # None: the default partition
    nodes: int
    cpus: int
    mem_mb: int
    gpus: int
    runtime_min: float

    @property
    def job(self) -> str:
        return f"group {self.name}" if self.group else f"rule {self.name}"

    def describe(self) -> str:
        parts = [f"{self.cpus} CPUs", f"{self.mem_mb} MB"] + ([f"{self.gpus} GPUs"] if self.gpus else [])
        per_node = f" per node on {self.nodes} nodes" if self.nodes > 1 else ""
        runtime = f" for {self.runtime_min:g} min" if self.runtime_min else ""
        return ", ".join(parts) + per_node + runtime

    def fix(self) -> str:
        """How to lower the request on the command line."""
        if self.group:
            return ("Lower it with --cores N and --resources mem_mb=MB (a group job runs its steps side by side "
                    "within them), --set-resources RULE:runtime=MIN for its steps, or choose another partition")
        return (f"Lower it with --cores N (every job's CPUs) or --set-threads {self.name}=N, --set-resources "
                f"{self.name}:mem_mb=MB {self.name}:runtime=MIN, or choose another partition")


SINFO_FORMAT = "%N|%P|%c|%m|%G|%l"


def parse_sinfo(text: str) -> list[NodeSize]:
    """Rows of `sinfo -h -N -o '%N|%P|%c|%m|%G|%l'`."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 6:
            continue
        name, partition, cpus, mem, gres, limit = fields
        nodes.append(NodeSize(name, partition.rstrip("*"), partition.endswith("*"), _int(cpus), _int(mem),
                              _gpus(gres), _minutes(limit)))
    return nodes


def _int(text: str) -> int:
    match = re.match(r"\d+", text)
    return int(match[0]) if match else 0


def _gpus(gres: str) -> int:
    """GPUs in a GRES string: `gpu:4`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:2`, `(null)`."""
    return sum(int(m[1]) for m in re.finditer(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)", gres))


def _minutes(limit: str) -> float:
    """A SLURM time limit in minutes: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
    days-hours:minutes or days-hours:minutes:seconds; `infinite` is math.inf."""
    if limit in ("infinite", "UNLIMITED", "n/a", ""):
        return math.inf
    days, dash, rest = limit.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if dash:  # hours[:minutes[:seconds]] after the days
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:
        hours, minutes, seconds = parts if len(parts) == 3 else [0, *parts, 0][:3]
    return (int(days or 0) * 24 + hours) * 60 + minutes + seconds / 60


def node_sizes() -> list[NodeSize] | None:
    """The cluster's nodes per partition, from sinfo; None where sinfo does not answer."""
    result = _command("sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}")
    return parse_sinfo(result.stdout) if result.returncode == 0 else None


def request_of(name: str, resources: Mapping[str, object], threads: int, *, group: bool = False) -> Request:
    """A job's request as the snakemake SLURM executor submits it (sbatch options from resources)."""

    def number(key: str) -> int:
        value = resources.get(key)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    nodes = max(number("nodes"), 1)
    cpus = number("cpus_per_task") or threads
    mem = number("mem_mb") or number("mem_mb_per_cpu") * cpus
    gres = resources.get("gres")
    gpus = _gpus(gres) if isinstance(gres, str) else 0
    gpus = gpus or math.ceil(max(number("gpu"), number("gpus")) / nodes)
    partition = resources.get("slurm_partition")
    return Request(name, group, str(partition) if partition else None, nodes, cpus, mem, gpus, number("runtime"))


def submitted_jobs(dag: DAG) -> list[Request]:
    """What the snakemake SLURM executor submits for the jobs of a Snakemake DAG still to run: a
    job for each step of a rule that is not local, and one for each group of steps, sized as
    Snakemake sizes it (`GroupResources.basic_layered`): the steps it runs side by side add up
    within the workflow's --cores and --resources, the time limits of those it runs one after
    another add up."""
    from snakemake.resources import GroupResources

    requests, groups = [], set()
    for job in dag.needrun_jobs():
        group = dag.get_job_group(job)
        if group is None:
            if not job.is_local:
                requests.append(request_of(job.rule.name, job.resources, job.threads))
        elif group not in groups:
            groups.add(group)
            # GroupJob.resources, not read from it: it keeps what it computes first, and a step whose input
            # does not exist yet counts without its input-sized memory now, with it at submission
            resources = GroupResources.basic_layered(group.toposorted, constraints=dag.workflow.global_resources,
                                                     run_local=False, additive_resources=["runtime"], sortby=["runtime"])
            requests.append(request_of(group.groupid, resources, resources["_cores"], group=True))
    return requests


def unmet(request: Request, nodes: list[NodeSize]) -> str | None:
    """Why no node could run `request` (None if enough nodes can): a job asking for more than any
    node offers is accepted by sbatch and then pends forever."""
    rows = [n for n in nodes if (n.partition == request.partition if request.partition else n.default)]
    where = f"partition {request.partition}" if request.partition else "the default partition"
    if not rows:
        return f"{request.job}: {where} does not exist (sinfo lists {', '.join(sorted({n.partition for n in nodes}))})"
    fit = [n for n in rows if n.cpus >= request.cpus and n.mem_mb >= request.mem_mb and n.gpus >= request.gpus
           and n.time_limit_min >= request.runtime_min]
    if len({n.name for n in fit}) >= request.nodes:
        return None
    limit = max(n.time_limit_min for n in rows)
    largest = (f"{max(n.cpus for n in rows)} CPUs, {max(n.mem_mb for n in rows)} MB, {max(n.gpus for n in rows)} GPUs"
               f" and {'no time limit' if limit == math.inf else f'a time limit of {limit:g} min'}")
    return (f"{request.job} asks for {request.describe()}, but no{' set of' if request.nodes > 1 else ''} node "
            f"of {where} offers that (at most {largest}; {len({n.name for n in fit})} nodes fit): its jobs would "
            f"wait forever. {request.fix()}")


def check_requests(requests: Iterable[Request]) -> list[str]:
    """One line for each request that no node of the cluster (`sinfo`) could run."""
    nodes = node_sizes()
    if not nodes:
        return []
    messages = (unmet(request, nodes) for request in dict.fromkeys(requests))
    return [message for message in dict.fromkeys(messages) if message]
