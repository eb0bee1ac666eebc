"""Worker processes of ``impasto serve``: claim jobs from the queue and run them through :mod:`impasto.api`.

A worker is a separate process (started with ``spawn`` by :class:`WorkerPool`), so the web server's process
never computes and its status calls stay fast. For each job it plans, prepares and runs, reporting every step
to the queue (step, loss, ETA) and writing a preview image every second or so; the preview records its step
and doubles as the job's checkpoint: a job whose worker stopped or died is queued again and the next worker
resumes it from that image and step (:func:`impasto.api.prepare`'s ``start``). Networks are kept between jobs
(a :class:`impasto.api.Runner` per set of options; the fast method's network is shared per process).

A worker exits when its server dies (Linux parent-death signal, and a check of its parent process id), and
on SIGTERM hands its running job back to the queue at the next step.

When the data folder's disk fills up, the job being run fails with a message saying so (recorded as soon as
the queue can be written again) and the worker waits, longer after each failed write up to
:data:`BACKOFF_MAX` seconds, logging one line when writes start failing and one when they work again; queued
jobs run once space returns.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import multiprocessing
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import api, cluster
from ..core.progress import StepInfo
from ..errors import ImpastoError, NonFiniteLossError, StylizeInterrupted
from ..io.images import save_image, tensor_to_pil
from ..options import Options, make_options
from .jobs import DiskFull, Job, JobNotFound, JobStore, is_disk_full, log

#: Seconds between preview images (at least; a slow encoder stretches it so previews cost under ~10%);
#: ``IMPASTO_PREVIEW_SECONDS`` overrides it.
PREVIEW_INTERVAL = 1.0
#: Seconds between looks at the queue when it is empty.
POLL_INTERVAL = 0.05
#: Seconds before the first retry of a failed write (the disk is full); doubled after each failure up to
#: :data:`BACKOFF_MAX`.
BACKOFF_MIN = 0.25
BACKOFF_MAX = 5.0


class LostJob(Exception):
    """The job was cancelled or handed to another worker while this one ran it."""


class Stopping(Exception):
    """The worker was asked to stop (SIGTERM) during a job."""


def options_of(job: Job) -> Options:
    """The validated options a job was queued with."""
    values = dict(job.options)
    preset = values.pop("preset", "default")
    return make_options(preset, **values)


class Reporter:
    """The progress callback of one job: step, loss and ETA to the queue at every step, a preview image every
    ``interval`` seconds (and at the first and last step). Raises :class:`LostJob` once the job is cancelled."""

    def __init__(
        self, store: JobStore, job: Job, worker: str, prepared: api.Stylization, meta: dict, stop: threading.Event
    ) -> None:
        self.store, self.job, self.worker, self.prepared = store, job, worker, prepared
        self.meta, self.stop = meta, stop
        self.preview_path = store.file(job.id, "preview.png")
        self.start_step = prepared.start_step
        self.total = sum(s.steps for s in prepared.plan.scales)
        self.t0 = time.perf_counter()
        self.last_preview = -1e9
        self.base_interval = float(os.environ.get("IMPASTO_PREVIEW_SECONDS", PREVIEW_INTERVAL))
        self.interval = self.base_interval
        # The picture's size at each step (a tile's image is not a preview of the picture).
        self.scale_hw: list[tuple[int, tuple[int, int]]] = []
        end = 0
        for s in prepared.plan.scales:
            end += s.steps
            self.scale_hw.append((end, tuple(s.hw)))

    def _hw_at(self, step: int) -> tuple[int, int] | None:
        for end, hw in self.scale_hw:
            if step <= end:
                return hw
        return self.scale_hw[-1][1] if self.scale_hw else None

    def eta(self, step: int) -> float | None:
        done = step - self.start_step
        if done <= 0:
            return None
        return (time.perf_counter() - self.t0) / done * max(0, self.total - step)

    def __call__(self, info: StepInfo) -> None:
        if self.stop.is_set():
            raise Stopping
        if not self.store.progress(self.job.id, self.worker, info.step, info.total, info.loss, self.eta(info.step)):
            raise LostJob
        now = time.perf_counter()
        first = info.step == self.start_step + 1
        if first or info.step == info.total or now - self.last_preview >= self.interval:
            if tuple(info.image.shape[-2:]) == self._hw_at(info.step):
                self.save_preview(info.image, info.step)

    def save_preview(self, image: torch.Tensor, step: int) -> None:
        """The image as the result would look, with its step (the checkpoint a resumed job starts from)."""
        t = time.perf_counter()
        picture = tensor_to_pil(api.preview(self.prepared, image))
        save_image(picture, self.preview_path, {**self.meta, "step": step})
        self.last_preview = time.perf_counter()
        self.interval = max(self.base_interval, 10 * (self.last_preview - t))
        if not self.store.preview_saved(self.job.id, self.worker, step):
            raise LostJob


class Backoff:
    """The wait after a failure of a worker's loop: :data:`BACKOFF_MIN` seconds, doubled after each further
    failure up to :data:`BACKOFF_MAX`. One log line when failures begin (with the traceback of an unexpected
    error, once) and one when they end, however long they last."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0
        self.delay = 0.0

    def failed(self, err: BaseException) -> float:
        """Count a failure; returns the seconds to wait before the next try."""
        if self.failures == 0:
            if is_disk_full(err):
                log(f"worker {self.name}: {_one_line(err)}; jobs wait until space is freed (retrying every "
                    f"{BACKOFF_MAX:g} s at most)")  # fmt: skip
            else:
                log(f"worker {self.name}: unexpected {type(err).__name__}: {_one_line(err)} (retrying every "
                    f"{BACKOFF_MAX:g} s at most while it lasts)")  # fmt: skip
                traceback.print_exception(type(err), err, err.__traceback__)
        self.failures += 1
        self.delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (self.failures - 1))
        return self.delay

    def succeeded(self) -> None:
        if self.failures:
            log(f"worker {self.name}: working again after {self.failures} failed tries")
        self.failures = 0
        self.delay = 0.0


class Worker:
    """One worker: a loop that claims and runs jobs until told to stop."""

    def __init__(self, store: JobStore, name: str, cache_size: int = 2) -> None:
        self.store, self.name = store, name
        self.runners: OrderedDict[str, api.Runner] = OrderedDict()
        self.cache_size = cache_size
        self.stop = threading.Event()
        self.backoff = Backoff(name)

    def runner(self, options: Options) -> api.Runner:
        """A runner for these options, kept for the next jobs with the same options."""
        key = json.dumps(options.to_dict(), sort_keys=True, default=str)
        if key in self.runners:
            self.runners.move_to_end(key)
            return self.runners[key]
        runner = api.Runner(options)
        self.runners[key] = runner
        while len(self.runners) > self.cache_size:
            self.runners.popitem(last=False)
        return runner

    def warm_up(self) -> None:
        """Load the fast method's networks and run it once, so the first job does not pay for it."""
        image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
        opts = make_options(method="fast", size=128)
        api.run(api.prepare(image, image, opts), runner=self.runner(opts))

    def run_next(self) -> Job | None:
        """Claim and run the oldest queued job; returns it (as claimed), or None when the queue is empty. A job
        that cannot go on because the disk is full fails with a message saying so, recorded once the queue can
        be written (:meth:`until_written`)."""
        job = self.store.claim(self.name)
        if job is None:
            return None
        try:
            self.run(job)
        except Stopping:
            self.store.release(job.id, self.name)
            raise
        except Exception as err:
            if not is_disk_full(err):
                with contextlib.suppress(Exception):  # not left running: its page says it failed, the log says why
                    self.store.finish(job.id, self.name, "failed", "the server failed unexpectedly during this job")
                raise
            self.backoff.failed(err)
            step = self.store.get(job.id).step
            message = (f"the server's disk is full: the job stopped at step {step}; submit it again once the "
                       "server has space")  # fmt: skip
            self.until_written(lambda: self.store.finish(job.id, self.name, "failed", message))
        return job

    def until_written(self, write: Callable[[], Any]) -> None:
        """Call ``write`` (a change to the queue) until the disk takes it, waiting :attr:`backoff`'s delay between
        tries; gives up when the worker is stopping (the server re-queues its running job)."""
        while True:
            try:
                write()
            except DiskFull as err:
                if self.stop.wait(self.backoff.failed(err)):
                    return
                continue
            self.backoff.succeeded()
            return

    def run(self, job: Job) -> None:
        store, name = self.store, self.name
        try:
            folder = store.folder(job.id)
            content = store.file(job.id, job.inputs["content"]["file"])
            styles = [store.file(job.id, s["file"]) for s in job.inputs["styles"]]
            opts = options_of(job)
            plan = api.plan(content, styles, opts)
            checkpoint = folder / "preview.png"
            start = step = None
            if plan.iterative and checkpoint.exists() and job.preview_step:
                start, step = checkpoint, api.checkpoint_step(checkpoint)
            prepared = api.prepare(content, styles, opts, planned=plan, start=start, start_step=step)
        except (ImpastoError, JobNotFound, OSError) as err:
            if is_disk_full(err):
                raise
            store.finish(job.id, name, "failed", _one_line(err))
            return
        meta = api.metadata(opts, job.inputs["content"]["name"], [s["name"] for s in job.inputs["styles"]])
        meta["job"] = job.id
        if prepared.start is not None:
            meta["resumed"] = {"step": prepared.start_step}
        total = sum(s.steps for s in plan.scales) if plan.iterative else 1
        remaining = plan.seconds * (total - prepared.start_step) / max(total, 1)
        if not store.start(job.id, name, total, prepared.start_step, remaining):
            return
        reporter = Reporter(store, job, name, prepared, meta, self.stop)
        try:
            result = api.run(prepared, reporter, self.runner(opts))
        except LostJob:
            return
        except StylizeInterrupted:  # a KeyboardInterrupt reached the run: give the job back
            store.release(job.id, name)
            raise Stopping from None
        except NonFiniteLossError as err:
            _save(err.image, store.file(job.id, "result.png"), meta)
            store.finish(job.id, name, "failed", f"{err} (the last good image is the result)", result=True)
            return
        except ImpastoError as err:
            if is_disk_full(err):  # a preview could not be saved: run_next says so
                raise
            store.finish(job.id, name, "failed", _one_line(err))
            return
        _save(result, store.file(job.id, "result.png"), meta)
        if not plan.iterative:
            store.progress(job.id, name, 1, 1, 0.0, 0.0)
        store.finish(job.id, name, "done", result=True)

    def loop(self, parent: int | None = None) -> None:
        """Run jobs until :attr:`stop` is set or the parent process is gone; after a failure (the disk is full,
        an unexpected error) wait :attr:`backoff`'s delay before the next try."""
        while not self.stop.is_set():
            if parent is not None and os.getppid() != parent:
                return
            try:
                job = self.run_next()
            except Stopping:
                return
            except Exception as err:  # noqa: BLE001 - one job's unexpected failure must not end the worker
                self.stop.wait(self.backoff.failed(err))
                continue
            self.backoff.succeeded()
            if job is None:
                self.stop.wait(POLL_INTERVAL)


def _save(image: torch.Tensor, path: Path, meta: dict) -> None:
    save_image(tensor_to_pil(image), path, meta)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (PR_SET_PDEATHSIG); elsewhere the loop's check does."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(data: str, name: str, threads: int, parent: int, warm_up: bool = True) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    if os.getppid() != parent:  # the server died before the line above ran
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the server; it stops the workers
    torch.set_num_threads(max(1, threads))
    api.tune_allocator()
    store = JobStore(data)
    worker = Worker(store, name)
    signal.signal(signal.SIGTERM, lambda signum, frame: worker.stop.set())
    _ready(store, worker, name, warm_up)
    worker.loop(parent)
    sys.exit(0)


def _ready(store: JobStore, worker: Worker, name: str, warm_up: bool) -> None:
    """Build the networks ahead of the first job (when asked), then tell the store this worker is ready."""
    if warm_up:
        try:
            worker.warm_up()
        except Exception:  # noqa: BLE001 - a job will report the real problem
            traceback.print_exc()
    worker.until_written(lambda: store.worker_ready(name, os.getpid()))


def actor_main(data: str, name: str, threads: int, parent: int, warm_up: bool = True) -> None:
    """Entry point of a worker running in a Ray actor (``impasto serve --cluster``): as :func:`main`, without the
    parent-process checks and signal handlers (Ray stops the actor; its job goes back to the queue)."""
    torch.set_num_threads(max(1, threads))
    api.tune_allocator()
    store = JobStore(data)
    worker = Worker(store, name)
    _ready(store, worker, name, warm_up)
    worker.loop()


class WorkerPool:
    """``count`` worker processes for a data folder, restarted when one dies (its job goes back to the queue)."""

    def __init__(self, store: JobStore, count: int, threads: int | None = None, warm_up: bool = True) -> None:
        self.store, self.count = store, count
        cores = os.cpu_count() or 1
        self.threads = threads or max(1, cores // max(1, count))
        self.warm_up = warm_up
        self.processes: dict[str, Any] = {}
        self.restarts = 0
        self._ctx: Any = multiprocessing.get_context("spawn")
        self._target: Any = main
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self) -> None:
        name = f"w{len(self.processes) + self.restarts}-{secrets.token_hex(4)}"
        args = (str(self.store.root), name, self.threads, os.getpid(), self.warm_up)
        proc = self._ctx.Process(target=self._target, args=args, name=f"impasto-worker-{name}", daemon=True)
        proc.start()
        self.processes[name] = proc

    def start(self) -> None:
        with self._lock:
            while len(self.processes) < self.count:
                self._spawn()
        self._thread = threading.Thread(target=self._watch, name="impasto-worker-watch", daemon=True)
        self._thread.start()

    def check(self) -> int:
        """Re-queue the jobs of workers that died and start new ones; returns how many had died."""
        dead = 0
        with self._lock:
            if self._stopping.is_set():
                return 0
            for name, proc in list(self.processes.items()):
                if not proc.is_alive():
                    proc.join(0)
                    del self.processes[name]
                    self.store.requeue_running(name)
                    self.store.forget_worker(name)
                    self.restarts += 1
                    dead += 1
            while len(self.processes) < self.count:
                self._spawn()
        return dead

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            try:
                self.check()
            except DiskFull as err:  # a dead worker's job stays running until a write works (the next start)
                log(f"cannot re-queue the job of a worker that died: {err}")
            except Exception:  # noqa: BLE001 - keep watching
                traceback.print_exc()

    def ready(self) -> int:
        """Workers alive that have loaded their networks."""
        with self._lock:
            names = [n for n, p in self.processes.items() if p.is_alive()]
        return self.store.ready_workers(names)

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.pid is not None]

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop (SIGTERM: a running job goes back to the queue at its next step), wait, then
        kill what is left; jobs of killed workers are re-queued."""
        self._stopping.set()
        with self._lock:
            for proc in self.processes.values():
                if proc.is_alive():
                    proc.terminate()
            deadline = time.monotonic() + timeout
            for proc in self.processes.values():
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.kill()
                    proc.join(2)
            try:
                for name in self.processes:
                    self.store.requeue_running(name)
                    self.store.forget_worker(name)
            except DiskFull as err:  # the next start re-queues every running job
                log(f"running jobs go back to the queue at the next start: {err}")
            self.processes.clear()
        if self._thread is not None:
            self._thread.join(2)


class ClusterWorkerPool(WorkerPool):
    """The workers as Ray actors (``impasto serve --cluster``), one CPU and one torch thread each (``count``, or
    one per CPU of the cluster), pulling jobs from the same SQLite queue: the data folder must be at the same
    path on every node (this machine's with ``--cluster ray``; a shared filesystem with working locks
    otherwise). Dead actors are replaced and their jobs re-queued, as worker processes are."""

    def __init__(self, store: JobStore, spec: str, count: int | None = None, warm_up: bool = True) -> None:
        self.cluster = cluster.Cluster(spec, count)
        super().__init__(store, self.cluster.actors, 1, warm_up)
        self._ctx = _ClusterContext(self.cluster)
        self._target = actor_main

    def stop(self, timeout: float = 10.0) -> None:
        try:
            super().stop(timeout)
        finally:
            self.cluster.close()


class _ClusterContext:
    def __init__(self, c: cluster.Cluster) -> None:
        self.cluster = c

    def Process(self, **kwargs: Any) -> cluster.ActorProcess:  # noqa: N802 - multiprocessing's name
        return cluster.ActorProcess(self.cluster, **kwargs)
