"""One task layer for sweeps and checks, over ``dask.distributed`` (laptop to cluster), with a serial path.

    with open_runner() as run:                           # embedded LocalCluster sized to the machine
        jobs = [run.submit(train_one, cfg, out, name=f"train {i}") for i, cfg in enumerate(configs)]
        results = run.gather(jobs)                       # progress lines, retries of tasks whose worker died

``scheduler``: None or "local" -> an embedded ``LocalCluster`` (one process per core, ``threads_per_worker``
torch threads each, nothing to start by hand); "serial" -> every task in this process, no Dask at all, the
same numbers (each task runs with the same torch thread count as on a worker); anything else -> the address
of a running scheduler ("tcp://host:8786"), e.g. one started by :func:`slurm_client` or ``dask scheduler``.

A task is a module-level function of plain arguments (a spec, an output path) that writes its result
atomically (``slt.runio`` / ``slt.checks.cache``) and returns a small summary. The files on disk are the
source of truth: a task that finds its result there returns it without computing, so a killed worker's task
(retried by Dask, ``retries``) and a rerun of a whole sweep resume from what finished. A task may depend on
others (pass their :class:`Job` as arguments: the task receives their results) and may add follow-up tasks
when it finishes (``then=``: e.g. sample the checkpoints a training task wrote), so units whose number is
only known after an earlier unit ran still go through the same layer.

GPU workers: start workers with ``dask worker ADDRESS --resources GPU=1`` (or ``slurm_client(gpus=N)``); on an
external scheduler a task for device 'cuda' is submitted with ``resources={"GPU": 1}`` (:func:`task_resources`),
so it runs only there and one at a time per GPU. An embedded LocalCluster asks for no resources (its workers share
the machine's GPUs; use ``n_workers`` to bound how many tasks share one).

In a script, open an embedded cluster under ``if __name__ == "__main__":`` (its worker processes are spawned and
re-import the script); the ``slt`` command and ``python -m slt`` already are.

Progress: one plain line per finished task (``[k/N] name done in 12.3 s, elapsed 1m05s, ETA 3m10s``), the
Dask dashboard link once when an embedded cluster starts.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

SCHEDULER_HELP = "None or 'local' (embedded LocalCluster), 'serial' (this process, no Dask) or a scheduler address"


# ---------------------------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class _Done:
    """What a task returns through the layer: its value, its wall seconds and the worker that ran it."""

    value: Any
    seconds: float
    where: str


def _unwrap(x: Any) -> Any:
    return x.value if isinstance(x, _Done) else x


_MALLOC_TUNED = False
# glibc mallopt parameters (malloc.h) and the values a task process runs with: tensors up to 32 MiB come from the
# heap, and up to 256 MiB of freed heap is kept for the next step instead of being returned to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 * 2**20, 256 * 2**20


def tune_malloc() -> bool:
    """Keep a task process's freed tensor memory for reuse (glibc only; elsewhere a no-op returning False).

    Why: a Dask nanny spawns its worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (distributed's default
    ``distributed.nanny.pre-spawn-environ``), and setting any malloc threshold turns off glibc's dynamic mmap
    threshold, so every tensor above 128 KiB is mmapped and unmapped on each SGLD or training step and its pages
    are faulted in and zeroed again. Measured here (p 53, width 256, 6 copies x 3 chains, 250 SGLD steps, one
    thread): 3.0 s in a plain process, 6.9 s (4.3 s of it system time) with that variable, 2.6 s after
    ``mallopt(M_MMAP_THRESHOLD, 32 MiB)`` and ``mallopt(M_TRIM_THRESHOLD, 256 MiB)``. The default ``slt check``
    on a 2-worker LocalCluster spent 332 s of system time before this. Called once per process, by each task, and
    by SGLD (``slt.sampling``) and training (``slt.training.train``) in the user's own process: glibc's default
    dynamic threshold also gives back the (R, d) buffers of 32 SGLD chains at the paper's setting between steps
    (measured: 413 -> 602 chain-steps/s with the tuning; 3 chains 481 -> 679; training 100 seeds 60 -> 55 ms per
    step). The price: up to 256 MiB of freed memory stays with the process. ``SLT_MALLOC_TUNING=0`` turns it off."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("SLT_MALLOC_TUNING", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                           TRIM_THRESHOLD))
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    _MALLOC_TUNED = ok
    return ok


def _run_task(fn: Callable, threads: int | None, args: tuple, kwargs: dict) -> _Done:
    """Run one task with ``threads`` torch threads (restored after, so the serial path leaves the caller's
    setting alone); dependencies arrive as :class:`_Done` and are unwrapped."""
    import torch

    tune_malloc()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        value = fn(*(_unwrap(a) for a in args), **{k: _unwrap(v) for k, v in kwargs.items()})
    finally:
        if threads:
            torch.set_num_threads(before)
    return _Done(value, time.perf_counter() - t0, f"pid {os.getpid()}")


@dataclass(eq=False)
class Job:
    """A submitted task: ``name`` (for progress), ``key`` (unique; submitting the same key twice returns the
    first job, so two claims that need the same training run share one task), and its handle."""

    name: str
    key: str
    handle: Any = None  # a distributed Future, or the serial runner's pending call
    then: list[Callable[[Any], Iterable["Job"] | None]] = field(default_factory=list)
    done: _Done | None = None


def task_resources(device: str) -> dict[str, float] | None:
    """Dask resources a task on ``device`` needs: {"GPU": 1} for 'cuda'/'cuda:N', None on the CPU."""
    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    return {"GPU": 1} if device.startswith("cuda") else None


# ---------------------------------------------------------------------------------------------- progress

def _hms(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    """Plain progress lines: ``[k/N] name done in 12.3 s, elapsed 1m05s, ETA 3m10s``.

    The ETA is (elapsed / k) x (N - k): the mean pace so far over the tasks still to finish (N grows when a
    finished task adds follow-ups, so the ETA counts only the tasks known so far). When the lines go to ``print``
    and stdout is a terminal, a tqdm bar (tasks done, elapsed, ETA) stays below them (``bar=None``: decide so)."""

    def __init__(self, log: Callable[[str], None] | None = print, total: int = 0, bar: bool | None = None) -> None:
        self.log = log
        self.total = total
        self.finished = 0
        self.t0 = time.perf_counter()
        if bar is None:
            bar = log is print and stdout_is_terminal()
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="task", dynamic_ncols=True, leave=False)

    def add(self, n: int = 1) -> None:
        self.total += n
        if self._bar is not None and n:
            self._bar.total = self.total
            self._bar.refresh()

    def done(self, name: str, seconds: float, where: str = "") -> str:
        self.finished += 1
        elapsed = time.perf_counter() - self.t0
        left = self.total - self.finished
        eta = elapsed / self.finished * left
        line = (f"[{self.finished}/{self.total}] {name} done in {seconds:.1f} s" + (f" ({where})" if where else "")
                + f", elapsed {_hms(elapsed)}, ETA {_hms(eta) if left else '0s'}")
        if self._bar is not None:
            self._bar.write(line)  # above the bar
            self._bar.update(1)
        elif self.log is not None:
            self.log(line)
        return line

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ---------------------------------------------------------------------------------------------- runners

class Runner:
    """Submit tasks and gather them, on Dask or serially (:func:`open_runner`). Counts for the report:
    ``submitted`` tasks, ``reused`` submissions answered by an earlier job with the same key."""

    serial: bool = True
    dashboard: str | None = None
    address: str = "serial"
    # Dask resources are asked for only on an external scheduler: the workers of an embedded LocalCluster (and
    # this process) share the machine's GPUs and advertise no resources, so a task asking for one would wait forever
    use_resources: bool = False

    def __init__(self, threads_per_worker: int | None = 1, retries: int = 3) -> None:
        if threads_per_worker is not None and (not isinstance(threads_per_worker, int) or threads_per_worker < 1):
            raise ValueError(f"threads_per_worker must be None or an integer >= 1, got {threads_per_worker!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        self.threads = threads_per_worker
        self.retries = retries
        self.jobs: dict[str, Job] = {}
        self.submitted = 0
        self.reused = 0
        self._pending: list[Job] = []

    # the two back ends implement _start(job, fn, args, kwargs, resources) and _wait(progress) -> finished jobs
    def submit(self, fn: Callable, *args: Any, name: str, key: str | None = None,
               resources: dict[str, float] | None = None,
               then: Callable[[Any], Iterable[Job] | None] | None = None, priority: int = 0, **kwargs: Any) -> Job:
        """Submit ``fn(*args, **kwargs)``; :class:`Job` arguments are replaced by their results. ``then(result)``
        runs in this process when the task finishes and may submit follow-up tasks (returning them or not).
        ``priority``: among tasks ready at once, Dask starts higher ones first (the serial path runs in
        submission order; the numbers do not depend on the order)."""
        key = key or name
        if key in self.jobs:
            job = self.jobs[key]
            self.reused += 1
            if then is not None:
                if job.done is not None:
                    self._follow(then, job.done.value)
                else:
                    job.then.append(then)
            return job
        job = Job(name, key)
        if then is not None:
            job.then.append(then)
        self.jobs[key] = job
        self.submitted += 1
        self._start(job, fn, args, kwargs, resources, priority)
        self._pending.append(job)
        return job

    def _follow(self, then: Callable, value: Any) -> None:
        then(value)

    def gather(self, jobs: Sequence[Job] | None = None, progress: Callable[[str], None] | None = print) -> list:
        """Run until every pending task (and every follow-up they add) has finished; return the values of
        ``jobs`` (all jobs submitted so far when None) in their order. A task that fails raises here."""
        prog = Progress(progress, total=len(self._pending))
        try:
            while self._pending:
                for job in self._wait():
                    self._pending.remove(job)
                    prog.done(job.name, job.done.seconds, "" if self.serial else job.done.where)
                    for then in job.then:
                        n_before = len(self._pending)
                        self._follow(then, job.done.value)
                        prog.add(len(self._pending) - n_before)
        finally:
            prog.close()
        wanted = list(self.jobs.values()) if jobs is None else list(jobs)
        return [j.done.value for j in wanted]

    def close(self) -> None:
        pass

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialRunner(Runner):
    """Every task in this process, in submission order (dependencies were submitted first), no Dask."""

    def _start(self, job: Job, fn, args, kwargs, resources, priority) -> None:
        job.handle = (fn, args, kwargs)

    def _wait(self) -> list[Job]:
        job = self._pending[0]
        fn, args, kwargs = job.handle
        args = tuple(a.done if isinstance(a, Job) else a for a in args)
        kwargs = {k: (v.done if isinstance(v, Job) else v) for k, v in kwargs.items()}
        try:
            job.done = _run_task(fn, self.threads, args, kwargs)
        except BaseException:
            self._pending.remove(job)  # raised to the caller once; the runner stays usable
            raise
        job.handle = None
        return [job]


class DaskRunner(Runner):
    """Tasks on a ``distributed.Client``; finished ones come back through ``distributed.as_completed``."""

    serial = False

    def __init__(self, client, cluster=None, threads_per_worker: int | None = 1, retries: int = 3) -> None:
        super().__init__(threads_per_worker, retries)
        from distributed import as_completed

        self.client = client
        self.cluster = cluster
        self.address = client.scheduler.address if client.scheduler is not None else "?"
        self.use_resources = cluster is None
        self._ac = as_completed()
        self._by_future: dict[str, Job] = {}

    def _start(self, job: Job, fn, args, kwargs, resources, priority) -> None:
        args = tuple(a.handle if isinstance(a, Job) else a for a in args)
        kwargs = {k: (v.handle if isinstance(v, Job) else v) for k, v in kwargs.items()}
        # pure=False: a task writes files; key = ours, so the dashboard shows readable names
        fut = self.client.submit(_run_task, fn, self.threads, args, kwargs, key=f"{job.key}-{id(self):x}",
                                 pure=False, retries=self.retries, priority=priority,
                                 resources=resources if self.use_resources else None)
        job.handle = fut
        self._by_future[fut.key] = job
        self._ac.add(fut)

    def _wait(self) -> list[Job]:
        fut = next(self._ac)
        job = self._by_future[fut.key]
        try:
            job.done = fut.result()  # a task that raised raises here, with its traceback
        except BaseException:
            self._pending.remove(job)  # raised to the caller once; the runner stays usable
            raise
        return [job]

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ---------------------------------------------------------------------------------------------- clients

def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


WORKER_MEMORY = 2**30  # what one idle worker process with torch imported holds, with headroom (~0.5 GiB RSS measured)


def default_workers(threads_per_worker: int = 1) -> int:
    """Worker processes of the embedded cluster: one per ``threads_per_worker`` cores, at most one per
    WORKER_MEMORY of available memory (a 64-core node with little free memory does not start 64 torch processes)."""
    from slt.runio import available_memory_bytes

    n = max(1, _cores() // threads_per_worker)
    mem = available_memory_bytes("cpu")
    return n if mem is None else max(1, min(n, int(mem // WORKER_MEMORY)))


def open_client(scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
                dashboard_address: str | None = ":0", log: Callable[[str], None] | None = print):
    """A ``(distributed.Client, cluster or None)`` pair.

    ``scheduler`` None or "local": an embedded ``LocalCluster`` of ``n_workers`` processes (default:
    :func:`default_workers`, one per core) with ``threads_per_worker`` threads each; its dashboard link
    is logged once (``dashboard_address=None`` turns the dashboard off). Otherwise the address of a running
    scheduler (the cluster is then None: it is not ours to close)."""
    from distributed import Client, LocalCluster

    if scheduler == "serial":
        raise ValueError("scheduler='serial' runs without Dask: use open_runner('serial')")
    if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
        raise ValueError(f"n_workers must be None or an integer >= 1, got {n_workers!r}")
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be an integer >= 1, got {threads_per_worker!r}")
    if scheduler is None or scheduler == "local":
        n = n_workers or default_workers(threads_per_worker)
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=dashboard_address)
        client = Client(cluster)
        if log is not None:
            dash = ""
            if dashboard_address is not None:
                try:
                    import bokeh  # noqa: F401  (Dask serves its dashboard only with bokeh installed)

                    dash = f", dashboard {client.dashboard_link}"
                except ImportError:
                    dash = " (live dashboard: pip install 'slt[cluster]', which adds bokeh)"
            log(f"Dask LocalCluster: {n} worker process(es) x {threads_per_worker} thread(s){dash}")
        return client, cluster
    check_scheduler(scheduler, n_workers)
    client = Client(scheduler)
    if log is not None:
        log(f"Dask scheduler {scheduler}: {len(client.scheduler_info().get('workers', {}))} worker(s)")
    return client, None


def check_scheduler(scheduler: str | None, n_workers: int | None = None) -> None:
    """ValueError naming the parameter unless ``scheduler`` is None, 'local', 'serial' or an address (host:port),
    and ``n_workers`` None or >= 1 (None or 1 with 'serial')."""
    if scheduler is not None and not (isinstance(scheduler, str) and (scheduler in ("local", "serial")
                                                                      or ":" in scheduler)):
        raise ValueError(f"scheduler must be {SCHEDULER_HELP}, got {scheduler!r}")
    if n_workers is not None and (not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1):
        raise ValueError(f"n_workers must be None or an integer >= 1, got {n_workers!r}")
    if scheduler == "serial" and n_workers not in (None, 1):
        raise ValueError(f"n_workers must be None or 1 with scheduler='serial', got {n_workers!r}")


def open_runner(scheduler: str | None = None, n_workers: int | None = None, *, threads_per_worker: int = 1,
                retries: int = 3, dashboard_address: str | None = ":0",
                log: Callable[[str], None] | None = print) -> Runner:
    """A :class:`Runner` for ``scheduler`` (see :func:`open_client`; "serial": this process, no Dask). Use it as
    a context manager so an embedded cluster is closed (its worker processes end) when done."""
    check_scheduler(scheduler, n_workers)
    if scheduler == "serial":
        return SerialRunner(threads_per_worker, retries)
    client, cluster = open_client(scheduler, n_workers, threads_per_worker, dashboard_address, log)
    run = DaskRunner(client, cluster, threads_per_worker, retries)
    run.dashboard = client.dashboard_link if cluster is None or dashboard_address is not None else None
    return run


def slurm_client(*, cores: int = 4, memory: str = "16GB", walltime: str = "02:00:00", jobs: int = 1,
                 queue: str | None = None, account: str | None = None, gpus: int = 0, kind: str = "slurm",
                 submit: bool = True, **kwargs: Any):
    """A dask-jobqueue cluster on Slurm (``kind='slurm'``) or PBS (``kind='pbs'``) and a client on it.

    Each batch job runs ``cores`` single-threaded Dask worker processes (an slt task uses one torch thread), so
    one task per core. ``gpus > 0`` adds
    ``--gres=gpu:N`` (Slurm) and starts N worker processes per job, each advertising the Dask resource GPU=1 (set
    ``CUDA_VISIBLE_DEVICES`` per process in ``job_script_prologue`` if the site does not), so tasks submitted with
    ``resources={"GPU": 1}`` (``task_resources('cuda')``) land there. Extra keyword arguments go to the
    jobqueue cluster (e.g. ``job_extra_directives``, ``job_script_prologue=["module load cuda"]``).

    Returns ``(client, cluster)``; with ``submit=False`` no job is submitted and the client is None: read
    ``cluster.job_script()`` to see what would be sent. Then ``open_runner(cluster.scheduler_address)`` (or
    ``slt check --scheduler ADDRESS``) runs on it. Needs the ``cluster`` extra: ``pip install slt[cluster]``."""
    try:
        import dask_jobqueue
    except ImportError as err:
        raise ImportError("slurm_client needs dask-jobqueue: pip install 'slt[cluster]'") from err
    classes = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}
    if kind not in classes:
        raise ValueError(f"kind must be one of {sorted(classes)}, got {kind!r}")
    for name, v in (("cores", cores), ("jobs", jobs)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not isinstance(gpus, int) or gpus < 0:
        raise ValueError(f"gpus must be an integer >= 0, got {gpus!r}")
    extra_args = list(kwargs.pop("worker_extra_args", []))
    directives = list(kwargs.pop("job_extra_directives", []))
    procs = cores
    if gpus:
        extra_args += ["--resources", "GPU=1"]  # per worker process: one process per GPU
        procs = gpus
        if kind == "slurm":
            directives.append(f"--gres=gpu:{gpus}")
    cluster = classes[kind](cores=cores, processes=procs, memory=memory, walltime=walltime, queue=queue,
                            account=account, worker_extra_args=extra_args, job_extra_directives=directives,
                            **kwargs)
    if not submit:
        return None, cluster
    from distributed import Client

    cluster.scale(jobs=jobs)
    return Client(cluster), cluster


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
