"""Training on several GPUs (or CPU processes) and machines with PyTorch's own distributed stack.

The worker that runs the job launches one process per device with torch.multiprocessing (spawn), as
torchrun would; each joins a torch.distributed process group (NCCL on GPUs, one rank per visible GPU as
CUDA_VISIBLE_DEVICES leaves them, gloo on CPU), and the trainer wraps its model in
DistributedDataParallel with a DistributedSampler. Rank 0 alone talks to the job: its log lines,
progress and metrics travel back to the worker through a queue, the other ranks' reporter is silent,
and the worker's cancel check reaches rank 0 through an event (rank 0 then broadcasts the decision).
A rank that dies (killed, out of memory) ends the job with a clear message: the launcher notices the
exit at once and stops the others, so nothing hangs in a collective.

Several machines ("nodes"): every node runs the same job folder (shared storage) with the same node
list; the first node hosts the rendezvous (MASTER_ADDR/MASTER_PORT, torchrun's variables, override it).
The node that runs the studio's job is node 0 unless NNC_NODE_RANK says otherwise; the others join with
`python -m nnc_web.engine.training.distributed JOB_FOLDER --node-rank N`, which reads the spec node 0
left in the job folder (which trainer: classifier, detector or segmenter; its datasets, config and port)
and starts that trainer's processes on this node.

The launcher of node 0 (of a one-machine run, the only launcher) hosts the rendezvous' TCPStore itself
and every rank connects to it as a client, as torchrun's agent does: the port is bound from the moment
it is chosen until the run ends, so no other program can take it in between."""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import queue as queue_module
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnc_web.engine.errors import JobCancelled, UserError
from nnc_web.engine.safe_paths import safe_join

if TYPE_CHECKING:  # torch is imported where it is used: the project's Config form checks devices and nodes
    import torch  # on the web side, which does not load torch

DEFAULT_PORT = 29500  # torchrun's
MAX_DEVICES = 64  # processes per machine a config may ask for; the machine's own GPUs / cores cap it further
NODES_SETTING = "NNC_TRAINING_NODES"  # the operator's list of machines a multi-node training may use
POLL_SECONDS = 0.1  # how often the worker relays rank 0's reports and its own cancel check
GRACE_SECONDS = 5.0  # after one rank failed, how long the others get before SIGTERM (then SIGKILL)
CANCEL_SECONDS = 10.0  # after a cancel, how long the ranks get to stop by themselves at a batch's end
SPEC_NAME = "distributed.json"  # what node 0 leaves in the shared job folder for the other nodes
DATASET_KEYS = ("train_csv", "valid_csv")  # the spec's datasets, whose digests a joining node checks
# The trainers a joining node can start, by the spec's `kind` (a spec without one is the classifier's:
# written before the detector and the segmenter took several machines). A fixed list: a spec in shared
# storage names one of these, never a module to import.
JOINERS = {"classifier": "nnc_web.engine.training.trainer", "detector": "nnc_web.engine.detection_training.trainer",
           "segmenter": "nnc_web.engine.segmentation_training.trainer"}


def timeout() -> timedelta:
    """The process group's collective timeout: a rank stuck this long (rank 0 computing the warm-up
    features while the others wait) fails instead of hanging for ever. A dead rank is noticed sooner,
    by the launcher."""
    return timedelta(seconds=float(os.environ.get("NNC_DDP_TIMEOUT", 1800)))


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def parse_devices(value: Any, cuda_count: int | None = None) -> int:
    """`devices` of the training config: `auto` (every visible GPU, 1 on CPU) or a whole number >= 1."""
    count = cuda_devices() if cuda_count is None else cuda_count
    text = str(value).strip().lower() if value is not None else "1"
    if text in ("", "1"):
        return 1
    if text == "auto":
        return max(1, count)
    try:
        number = int(text)
    except ValueError:
        raise UserError(f"devices must be auto or a whole number of processes (1, 2, 4, ...), not {value!r}") from None
    if number < 1 or number > MAX_DEVICES:
        raise UserError(f"devices must be auto or a whole number from 1 to {MAX_DEVICES}, not {value!r}")
    return number


def allowed_nodes() -> list[str]:
    """The machines an administrator lets multi-node trainings use (NNC_TRAINING_NODES, comma- or
    space-separated). Users pick among them: a rendezvous has no authentication, so a user-chosen
    host would let the ranks join (and send the model to) any machine."""
    return str(os.environ.get(NODES_SETTING, "")).replace(",", " ").split()


def parse_nodes(value: Any) -> list[str]:
    """The optional node list: host names (or addresses), comma- or space-separated, among the machines
    the administrator allowed; the first hosts the rendezvous."""
    nodes = parse_nodes_syntax(value)
    allowed = allowed_nodes()
    if nodes and not allowed:
        raise UserError(f"nodes: multi-machine training is off on this studio; an administrator turns it on by "
                        f"listing the machines in {NODES_SETTING}")
    refused = [node for node in nodes if node not in allowed]
    if refused:
        raise UserError(f"nodes: {', '.join(refused)} {'is' if len(refused) == 1 else 'are'} not among the machines "
                        f"an administrator allowed ({', '.join(allowed)})")
    return nodes


def parse_nodes_syntax(value: Any) -> list[str]:
    """The node list's host names, checked for form only."""
    if value is None:
        return []
    items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    nodes = [str(item).strip() for item in items if str(item).strip()]
    for node in nodes:
        if len(node) > 253 or not all(c.isalnum() or c in "-._:" for c in node):
            raise UserError(f"nodes: {node!r} is not a host name or address")
    if len(set(nodes)) != len(nodes):
        raise UserError("nodes: a host is named twice (each node runs `devices` processes)")
    return nodes


@dataclass
class Placement:
    """Where the ranks of one training run: `devices` processes on each of the nodes."""

    devices: int
    backend: str  # nccl | gloo
    nodes: list[str] = field(default_factory=list)
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0

    @property
    def world(self) -> int:
        return self.devices * max(1, len(self.nodes))

    def describe(self) -> str:
        where = f"{len(self.nodes)} nodes x {self.devices}" if len(self.nodes) > 1 else f"{self.devices}"
        kind = "GPU" if self.backend == "nccl" else "CPU"
        return f"{self.world} processes ({where} {kind} process{'es' if self.devices > 1 else ''}, {self.backend})"


def plan(devices: Any, nodes: Any, use_cuda: bool) -> Placement:
    """The placement the config asks for on this machine; world 1 means today's single process."""
    count = cuda_devices() if use_cuda else 0
    number = parse_devices(devices, count)
    if use_cuda and number > count:
        raise UserError(f"devices is {number}, but this machine has {count} visible GPU{'s' if count != 1 else ''} "
                        f"(CUDA_VISIBLE_DEVICES): use auto or at most {count}")
    cores = os.cpu_count() or 1
    if not use_cuda and number > cores:  # more CPU processes than cores only slows the run down
        raise UserError(f"devices is {number}, but the worker's machine has {cores} CPU core{'s' if cores != 1 else ''}"
                        f": use at most {cores} CPU processes")
    hosts = parse_nodes(nodes)
    placement = Placement(number, "nccl" if use_cuda else "gloo")
    if len(hosts) > 1:
        placement.nodes = hosts
        placement.node_rank = _node_rank(hosts)
        placement.master_addr = os.environ.get("MASTER_ADDR") or hosts[0]
        # 0: node 0 picks a free port when it starts the run and writes it into the job's spec, so two
        # multi-node runs at once do not both wait on torchrun's 29500 (rendezvous_port).
        placement.master_port = int(os.environ.get("MASTER_PORT") or 0)
    return placement


def rendezvous_port(placement: Placement) -> int:
    """The port of a multi-node run's rendezvous: MASTER_PORT when set, else, on node 0, the port of a
    TCPStore this process starts now and holds until `launch` hands it to the run (every interface: the
    other nodes connect to it; no other program can take the port meanwhile), else torchrun's default."""
    if placement.master_port:
        return placement.master_port
    if placement.node_rank != 0:  # this worker cannot know which port is free on node 0
        return DEFAULT_PORT
    store = _master_store(0)
    _HELD[store.port] = store
    return store.port


_HELD: dict[int, Any] = {}  # rendezvous stores node 0 started before its launch (by port)


def release_port(port: int) -> None:
    """Drop a store rendezvous_port started that no launch took (the run failed before it)."""
    _HELD.pop(port, None)


def _master_store(port: int):
    """The rendezvous' store server on `port` (0: a free one; the server listens on every interface)."""
    import torch.distributed

    return torch.distributed.TCPStore("0.0.0.0", port, None, True, timeout(), wait_for_workers=False)


def _node_rank(hosts: list[str]) -> int:
    if os.environ.get("NNC_NODE_RANK"):
        rank = int(os.environ["NNC_NODE_RANK"])
        if not 0 <= rank < len(hosts):
            raise UserError(f"NNC_NODE_RANK is {rank}, but the node list has {len(hosts)} nodes")
        return rank
    names = {socket.gethostname(), socket.getfqdn()}
    for index, host in enumerate(hosts):
        if host in names:
            return index
    # The machine's own name stays out of the message: it is the operator's business, not the user's.
    raise UserError(f"the worker that took this job runs on none of the nodes ({', '.join(hosts)}): an administrator "
                    f"sets NNC_NODE_RANK there, or the job runs on a worker of a listed machine")


@dataclass
class Rank:
    """One process's place in the group, as a trainer sees it."""

    rank: int
    local_rank: int
    world: int
    backend: str
    device: torch.device
    local_world: int = 1  # the processes of this machine (CPU ranks share its memory)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharing(self) -> int:
        """How many processes share this rank's device memory."""
        return self.local_world if self.device.type == "cpu" else 1


class RankReporter:
    """The Reporter of a training process: rank 0 sends its reports to the worker, which owns the job;
    the others say nothing. should_stop is rank 0's view of the worker's cancel check (the trainer
    broadcasts it)."""

    def __init__(self, rank: int, reports, stop, workdir: Path) -> None:
        self.rank, self.reports, self.stop, self.workdir = rank, reports, stop, Path(workdir)

    def _send(self, *message: Any) -> None:
        if self.rank == 0:
            self.reports.put(message)

    def log(self, message: str) -> None:
        self._send("log", message)

    def progress(self, done: int, total: int) -> None:
        self._send("progress", done, total)

    def metric(self, name: str, step: int, value: float) -> None:
        self._send("metric", name, step, value)

    def should_stop(self) -> bool:
        return self.rank == 0 and self.stop.is_set()

    def path(self, name: str) -> Path:
        return safe_join(self.workdir, name)


def _child(local_rank: int, entry: Callable, args: tuple, placement: Placement, reports, stop,
           launcher_pid: int) -> None:
    """The body of one spawned rank: join the group, run the entry, report how it ended."""
    import torch.distributed

    from nnc_web.engine.parallel import die_with_parent

    die_with_parent(launcher_pid)  # a killed worker leaves no training processes behind
    rank = placement.node_rank * placement.devices + local_rank
    if placement.backend == "nccl":  # one rank per visible GPU
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        # Share the cores; an operator's OMP_NUM_THREADS wins, as under torchrun (e.g. two nodes' ranks
        # on one machine, which would each take every core).
        threads = os.environ.get("OMP_NUM_THREADS", "").strip()
        torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0
                              else max(1, (os.cpu_count() or 1) // placement.devices))
    # Every rank is a client of node 0's launcher's store (rank 0 hosts none: see the module's docstring).
    store = torch.distributed.TCPStore(placement.master_addr, placement.master_port, placement.world, False,
                                       timeout())
    torch.distributed.init_process_group(placement.backend, store=store, rank=rank, world_size=placement.world,
                                         timeout=timeout())
    reporter = RankReporter(rank, reports, stop, args[0] if args else Path("."))
    try:
        payload = entry(Rank(rank, local_rank, placement.world, placement.backend, device, placement.devices),
                        reporter, *args)
        reports.put(("result", rank, payload))
    except JobCancelled:
        reports.put(("cancelled", rank))
        return  # every rank stopped at the same batch, but one may already be gone: no teardown to block on
    except UserError as exc:
        reports.put(("user_error", rank, str(exc)))
        raise SystemExit(1) from None
    except Exception as exc:
        reports.put(("error", rank, f"{type(exc).__name__}: {exc}"))
        raise
    # Only after a clean end: with a peer gone, tearing the group down can block until the timeout.
    torch.distributed.destroy_process_group()


def launch(entry: Callable, workdir: Path, args: tuple, placement: Placement, reporter,
           on_start: Callable[[Any], None] = lambda processes: None) -> Any:
    """Run `entry(rank, rank_reporter, workdir, *args)` in placement.devices processes on this node and return
    rank 0's result. Relays rank 0's reports to `reporter` and its should_stop to rank 0 while they run.
    `entry` and `args` must be picklable (spawn)."""
    import torch.multiprocessing as mp

    store = None  # held here until the run ends: the ranks connect to it
    if not placement.nodes:
        store = _master_store(0)
        placement.master_port = store.port
    elif placement.node_rank == 0:
        store = _HELD.pop(placement.master_port, None) or _master_store(placement.master_port)  # MASTER_PORT
    context = mp.get_context("spawn")
    reports, stop = context.Queue(), context.Event()
    processes = mp.start_processes(_child, args=(entry, (workdir, *args), placement, reports, stop, os.getpid()),
                                   nprocs=placement.devices, join=False, start_method="spawn")
    on_start(processes)
    outcome: dict[str, Any] = {}
    failure: Exception | None = None
    deadline: float | None = None  # when the ranks still running are stopped by force
    try:
        while True:
            _relay(reports, reporter, outcome)
            if not stop.is_set() and reporter.should_stop():
                stop.set()
                deadline = min(deadline or math.inf, time.monotonic() + CANCEL_SECONDS)
            if _ended_early(outcome) and deadline is None:
                deadline = time.monotonic() + GRACE_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                # Rank 0 is gone (cancelled, refused) or cannot see the cancel (in its rank-0-only warm-up,
                # waiting for a node that never comes): the others would wait in a collective until the
                # group's timeout.
                break
            try:
                if processes.join(timeout=POLL_SECONDS, grace_period=GRACE_SECONDS):
                    break
            except mp.ProcessExitedException as exc:
                failure = exc
                break
            except mp.ProcessRaisedException as exc:
                failure = exc
                break
    finally:
        for process in processes.processes:  # the job stopped for another reason: stop the ranks too
            if process.is_alive():
                process.kill()
                process.join()
        del store  # the rendezvous ends with the run (a later attempt starts its own)
    _relay(reports, reporter, outcome)
    return _outcome(outcome, failure, placement, stop.is_set(), [p.exitcode for p in processes.processes])


def _ended_early(outcome: dict) -> bool:
    """Whether some rank ended without a result (cancelled, refused, failed): the others may be waiting
    for it in a collective."""
    return any(kind in outcome for kind in ("cancelled", "user_error", "error"))


def _relay(reports, reporter, outcome: dict) -> None:
    while True:
        try:
            message = reports.get(timeout=0.01) if not reports.empty() else None
        except queue_module.Empty:
            message = None
        if message is None:
            return
        kind = message[0]
        if kind == "log":
            reporter.log(message[1])
        elif kind == "progress":
            reporter.progress(message[1], message[2])
        elif kind == "metric":
            reporter.metric(message[1], message[2], message[3])
        else:  # how a rank ended: (kind, rank, detail)
            outcome.setdefault("ended", set()).add(message[1])
            if kind != "result" or message[1] == 0:
                outcome.setdefault(kind, message[1:])


PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "remote worker", "NCCL communicator was aborted")


def _outcome(outcome: dict, failure: Exception | None, placement: Placement, stopped: bool,
             exit_codes: list[int | None]) -> Any:
    """What the ranks' ends mean for the job. A rank that died without a word (killed, out of memory)
    is the news, not the connection errors it caused in the others."""
    if "cancelled" in outcome or (stopped and (failure is not None or "result" not in outcome)):
        raise JobCancelled("cancelled by the user")
    if "user_error" in outcome:
        raise UserError(outcome["user_error"][1])
    silent = [(index, code) for index, code in enumerate(exit_codes)
              if code is not None and code != 0 and index + placement.node_rank * placement.devices
              not in outcome.get("ended", set())]
    silent.sort(key=lambda item: (item[1] == -signal.SIGTERM, item[0]))  # those the launcher stopped come last
    peer_lost = "error" in outcome and any(text in outcome["error"][1] for text in PEER_LOST)
    if "error" in outcome and not (peer_lost and silent):
        rank, message = outcome["error"]
        raise RuntimeError(f"training process {rank} of {placement.world} failed: {message}")
    if failure is not None or silent:
        index, code = silent[0] if silent else (getattr(failure, "error_index", "?"),
                                                getattr(failure, "exit_code", None))
        how = f"exited with code {code}"
        if isinstance(code, int) and code < 0:
            try:
                how = f"was killed ({signal.Signals(-code).name})"
            except ValueError:
                how = f"was killed (signal {-code})"
        # index counts this machine's processes; the rank counts every machine's
        where = (f" (global rank {index + placement.node_rank * placement.devices} of {placement.world})"
                 if isinstance(index, int) else "")
        raise UserError(f"training process {index} of {placement.devices} on this machine{where} {how}, so "
                        f"the others were stopped; resume the run to continue from its last checkpoint")
    if "result" not in outcome:
        raise RuntimeError("the training processes ended without a result")
    return outcome["result"][1]


# -- the other nodes -------------------------------------------------------------------------------
def write_spec(workdir: Path, spec: dict) -> None:
    """What node 0 leaves in the (shared) job folder for the other nodes to join the same run, with the
    SHA-256 of the datasets' CSVs as node 0 read them (check_datasets)."""
    from nnc_web.engine.atomic import replace_atomically

    spec = {**spec, "digests": {key: _digest(Path(spec[key])) for key in DATASET_KEYS if spec.get(key)}}
    replace_atomically(workdir / SPEC_NAME, lambda path: path.write_text(json.dumps(spec)))


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_datasets(spec: dict) -> None:
    """A joining node trains on the very CSVs node 0 read: the same shared folder, unchanged since. Another
    mount, or a dataset replaced in between, would silently give the ranks different data."""
    for key, digest in spec.get("digests", {}).items():
        what = "training" if key == "train_csv" else "validation"
        path = Path(spec[key])
        if not path.is_file():
            raise UserError(f"the {what} dataset ({path.name}) is not in this machine's data folder: NNC_DATA_DIR "
                            f"must be the same shared folder on every node")
        if _digest(path) != digest:
            raise UserError(f"the {what} dataset ({path.name}) differs from the one node 0 read: NNC_DATA_DIR must "
                            f"be the same shared folder on every node, and the dataset unchanged during the run")


def placement_dict(placement: Placement) -> dict:
    return asdict(placement)


def joiner(spec: dict) -> Callable[[dict, int, Any], None]:
    """The `join_run(spec, node_rank, reporter)` of the trainer the spec names."""
    kind = spec.get("kind", "classifier")
    if kind not in JOINERS:
        raise UserError(f"{SPEC_NAME} names a trainer this studio does not have ({kind!r}; it has "
                        f"{', '.join(JOINERS)}): run the same studio version on every node")
    return importlib.import_module(JOINERS[kind]).join_run


def join_placement(spec: dict, node_rank: int):
    """The config (a TrainConfig) and this node's placement of the run node 0 described in `spec`."""
    from nnc_web.engine.training.trainer import TrainConfig, resolve_device

    # Node 0's worker checked the nodes against NNC_TRAINING_NODES; the operator who runs the join on this
    # machine has chosen to take part, with or without the studio's settings loaded in that shell.
    os.environ.setdefault(NODES_SETTING, ",".join(parse_nodes_syntax(spec["config"]["nodes"])))
    config = TrainConfig(**spec["config"])
    config.check()
    check_datasets(spec)
    os.environ["NNC_NODE_RANK"] = str(node_rank)  # what this node is, whatever its host name
    placement = plan(config.devices, config.nodes, resolve_device(config.device).type == "cuda")
    if len(placement.nodes) < 2:
        raise UserError(f"{SPEC_NAME} describes a run of one machine: there is nothing to join")
    # Node 0's port (its MASTER_PORT, or the free port it found), whatever this machine's MASTER_PORT says.
    placement.master_port = spec.get("master_port") or placement.master_port or DEFAULT_PORT
    return config, placement


def join_launch(entry: Callable, workdir: Path, args: tuple, placement: Placement, reporter) -> None:
    """This node's processes of the run: `launch`, where no result is the normal end (rank 0, and its
    result, live on node 0)."""
    try:
        launch(entry, workdir, args, placement, reporter)
    except RuntimeError as exc:
        if "without a result" not in str(exc):
            raise


def _join(argv: list[str] | None = None) -> None:
    """`python -m nnc_web.engine.training.distributed JOB_FOLDER --node-rank N` on another node."""
    import argparse

    from nnc_web.engine.reporting import ConsoleReporter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--node-rank", type=int, required=True)
    options = parser.parse_args(argv)
    if not (options.workdir / SPEC_NAME).exists():
        parser.exit(2, f"no {SPEC_NAME} in {options.workdir}: node 0 writes it when it starts the run (the run's "
                       f"log says 'distributed training: ...'); join while that run is waiting for this node\n")
    spec = json.loads((options.workdir / SPEC_NAME).read_text())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        joiner(spec)(spec, options.node_rank, ConsoleReporter(options.workdir / f"node{options.node_rank}", quiet=False))
    except UserError as exc:  # the message, not a traceback
        parser.exit(1, f"{exc}\n")


if __name__ == "__main__":
    _join()
