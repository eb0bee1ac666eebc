"""Scale-out on Ray: batch folders, videos and the web app's workers on a Ray cluster (``--cluster``).

``--cluster ray`` starts a local Ray instance (all the cores of this machine); ``--cluster ray:auto`` joins
the cluster this machine is a node of (started with ``ray start --head`` / ``ray start --address``);
``--cluster ray://HOST:10001`` joins one from outside through Ray Client. Ray is an optional extra
(``pip install 'impasto[cluster]'``) and is imported only inside the functions here, so nothing imports it
without ``--cluster``.

The work is done by actors (:class:`BatchActor`, :class:`VideoActor`), each holding one torch thread on one
CPU (``num_cpus=1``, ``torch.set_num_threads(1)``: no oversubscription) and building the method's networks
and the style images once, then taking tasks: one content image x style (batch), one chunk of frames
(video). The driver (the process that runs the command) keeps the order, the progress bar (over the whole
cluster) and every write:

* inputs: by default (``io="store"``) the driver reads each input file and sends its bytes through Ray's
  object store, so workers need no access to the driver's files; with ``io="shared"`` only paths are sent
  and workers read them, for folders that every node sees at the same path (NFS, a cluster filesystem).
* outputs: with ``io="store"`` a worker returns the encoded file (pixels and metadata, exactly what a local
  run writes) and the driver writes it atomically (:func:`impasto.io.atomic.write_bytes`): a task that is
  retried after its worker died is written once, by the driver, when its one result arrives. With
  ``io="shared"`` workers write atomically to the shared folder themselves.

Each image is stylized with the same options and seed as in a local run, so the pixels are the same as
:func:`impasto.batch.run_batch`'s. Actors are restarted when their process dies (``max_restarts``) and their
tasks retried (``max_task_retries``); a driver that died leaves whole files only, and running again with
``--skip-existing`` (``--resume`` for a video) does the rest.

Videos are cut into chunks of ``chunk`` frames; each chunk is preceded by ``overlap`` frames that are
stylized only to build the temporal state (the previous result the first frame is made consistent with) and
not kept. The driver stitches the chunks in order through :meth:`impasto.video.VideoJob.run` (frame cache,
encoder, ``--resume``), so the output has exactly the input's frames.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import api, batch
from . import video as videolib
from .errors import InputError, NonFiniteLossError
from .io.atomic import write_bytes
from .io.images import encode_image, image_from_bytes, load_image, save_image, tensor_to_pil
from .options import Options

#: The one-line error when Ray is asked for and not installed.
MISSING = "--cluster needs Ray, which is not installed: pip install 'impasto[cluster]'"
#: Where a local Ray instance keeps its sockets, logs and spilled objects (short: Unix socket paths are limited
#: to 107 characters; never inside the repository).
TEMP_DIR = os.environ.get("IMPASTO_RAY_TEMP", os.path.join(tempfile.gettempdir(), "impasto-ray"))
#: Times an actor is restarted after its process died, and a task retried on the restarted actor.
MAX_RESTARTS = 3
#: Tasks queued per actor (one running, the next one's inputs already sent), to hide the round trip.
PER_ACTOR = 2
#: Video chunks: frames per chunk and warm-up frames before each (docs/guides/cluster.md).
DEFAULT_CHUNK = 32
DEFAULT_OVERLAP = 4
IO_MODES = ("store", "shared")


def ray_module() -> Any:
    """The ``ray`` module, or the one-line :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(MISSING) from None
    return ray


def quiet_ray(verbose: bool = False) -> None:
    """Keep Ray's Python notices (such as the one on token authentication) off the terminal: its loggers at
    errors only (before ``ray.init``); ``verbose`` leaves Ray as it is."""
    if not verbose:
        logging.getLogger("ray").setLevel(logging.ERROR)


#: A line of Ray's C++ log (``[2026-01-31 12:00:00,123 E 123 123] core_worker.cc:1: ...``).
RAY_LOG_LINE = re.compile(rb"^\[\d{4}-\d\d-\d\d [\d:,.]+ [DIWEF] \d+ \d+\] ")


@contextlib.contextmanager
def without_ray_log_lines(active: bool = True) -> Iterator[None]:
    """Leave out of this process's stderr the lines Ray's C++ core writes there meanwhile (its log level cannot
    be lowered without a line of its own saying so); everything else written to stderr passes, after the block."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().splitlines(keepends=True) if not RAY_LOG_LINE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


def parse_address(spec: str) -> str | None:
    """``ray`` -> None (start a local instance), ``ray:auto`` -> ``auto``, ``ray://HOST:PORT`` -> itself."""
    if spec == "ray":
        return None
    if spec == "ray:auto":
        return "auto"
    if spec.startswith("ray://") and len(spec) > len("ray://"):
        return spec
    raise InputError(f"--cluster must be ray (a local Ray instance), ray:auto or ray://HOST:PORT, got {spec!r}")


class Cluster:
    """A connection to a Ray cluster (``spec`` as :func:`parse_address` reads it) and the number of actors to
    run: ``actors``, or one per CPU of the cluster. Reuses a Ray connection already made in this process
    (tests) and only shuts down what it started. A context manager.

    Ray's own messages (its notices, its C++ log lines, the workers' output) are kept off the terminal unless
    ``verbose``."""

    def __init__(self, spec: str = "ray", actors: int | None = None, verbose: bool = False) -> None:
        address = parse_address(spec)
        if actors is not None and actors < 1:
            raise InputError(f"--cluster-actors must be at least 1, got {actors}")
        ray = ray_module()
        self.ray, self.spec, self.started, self.verbose = ray, spec, False, verbose
        if not ray.is_initialized():
            quiet_ray(verbose)
            kwargs: dict[str, Any] = {"log_to_driver": verbose, "configure_logging": verbose}
            if verbose:
                kwargs["logging_level"] = logging.INFO
            if address is None:
                kwargs.update(include_dashboard=False, _temp_dir=TEMP_DIR)
            try:
                ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                hint = "" if address is None else (" (is it running, and does this machine have its token: "
                                                   "RAY_AUTH_MODE=token and ~/.ray/auth_token?)")  # fmt: skip
                raise InputError(f"cannot connect to the Ray cluster {spec}: {first}{hint}") from None
            self.started = True
        self._kept: list[Any] = []
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.actors = actors or self.cpus

    @classmethod
    def of(cls, spec: str | Cluster, actors: int | None = None) -> tuple[Cluster, bool]:
        """``spec`` connected (and True: the caller closes it), or a :class:`Cluster` given as it is (False)."""
        if isinstance(spec, Cluster):
            return spec, False
        return cls(spec, actors), True

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, cls: type, count: int, *args: Any) -> list[Any]:
        """``count`` actors, each holding ``cls(*args)`` (one CPU each, restarted when their process dies, tasks
        retried). The arguments are put in the object store once, for all actors and their restarts."""
        remote = self.ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(Host)
        boxed = [self.ray.put(args)]  # in a list: Ray hands the reference itself to the actor, which gets it
        self._kept.append(boxed)  # ... and the driver keeps it alive for a restart
        # Ray's core logs an error on each such actor (arguments in the object store, restarts allowed), which
        # the reference kept above makes moot: not shown unless verbose.
        with without_ray_log_lines(not self.verbose):
            return [remote.remote(cls, boxed) for _ in range(count)]

    def kill(self, actors: Sequence[Any]) -> None:
        for a in actors:
            self.ray.kill(a, no_restart=True)

    def map_ordered(self, actors: Sequence[Any], method: str, tasks: Iterator[Any],
                    on_result: Callable[[Any, Any], None] | None = None) -> Iterator[tuple[Any, Any]]:  # fmt: skip
        """Run ``method(task)`` on the actors' objects (:meth:`spawn`) for every task, at most :data:`PER_ACTOR`
        queued per actor (a free actor gets the next task: the load balances itself); yields (task, result) in the
        order of ``tasks`` (results that come early wait for the ones before). ``tasks`` is consumed lazily."""
        ray = self.ray
        free = collections.deque(a for a in actors for _ in range(PER_ACTOR))
        running: dict[Any, tuple[int, Any, Any]] = {}  # ref -> (index, task, actor)
        ready: dict[int, tuple[Any, Any]] = {}
        next_out = 0
        submitted = 0
        window = 2 * PER_ACTOR * len(actors)  # results held for order are bounded by this
        tasks = iter(tasks)
        exhausted = False
        while True:
            while free and not exhausted and submitted - next_out < window:
                try:
                    task = next(tasks)
                except StopIteration:
                    exhausted = True
                    break
                actor = free.popleft()
                ref = actor.call.remote(method, task)
                running[ref] = (submitted, task, actor)
                submitted += 1
            if not running:
                break
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                index, task, actor = running.pop(ref)
                result = ray.get(ref)
                free.append(actor)
                if on_result is not None:
                    on_result(task, result)
                ready[index] = (task, result)
            while next_out in ready:
                yield ready.pop(next_out)
                next_out += 1


class Host:
    """The actor :meth:`Cluster.spawn` starts: it builds ``cls(*args)`` once (the arguments fetched from the object
    store) and calls its methods."""

    def __init__(self, cls: type, boxed: list) -> None:
        api.tune_allocator()  # the actor's process is impasto's alone
        self.target = cls(*ray_module().get(boxed[0]))

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.target, method)(*args)


def _crash(fault: tuple[str, str] | None, name: str) -> None:
    """Tests only: the first task for the file ``fault[0]`` kills its actor's process (``fault[1]`` marks that it
    happened, so the retried task runs)."""
    if fault is not None and name == fault[0] and not os.path.exists(fault[1]):
        Path(fault[1]).write_text(str(os.getpid()))
        os._exit(1)


# -- batch ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BatchTask:
    """One output of a batch, as an actor gets it."""

    content: str  # the content file's path (as the driver names it: recorded in the output's metadata)
    data: bytes | None  # its bytes (io="store"), or None: the actor reads ``content`` (io="shared")
    styles: list[int]
    output: str


class BatchActor:
    """Stylizes batch tasks with one :class:`~impasto.runner.Runner` (networks built once) and the style
    images decoded once."""

    def __init__(self, options: Options, styles: list[tuple[str, bytes | None]], io: str = "store",
                 fault: tuple[str, str] | None = None) -> None:  # fmt: skip
        torch.set_num_threads(1)
        self.options, self.io, self.fault = options, io, fault
        self.trained = api.METHODS[options.method].styles == "none"  # a trained network
        self.style_paths = [Path(p) for p, _ in styles]
        self.style_ts = []
        if not self.trained:
            for path, data in styles:
                source = image_from_bytes(data, path) if data is not None else path
                self.style_ts.append(load_image(source, options.style_size(), "style image"))
        self.runner = api.Runner(options)

    def pid(self) -> int:
        return os.getpid()

    def run(self, task: BatchTask) -> dict:
        """``{"status": "ok", "data": bytes}`` (io="store"), ``{"status": "written"}`` (io="shared"),
        ``{"status": "skipped" | "failed", "error": message}``."""
        _crash(self.fault, Path(task.content).name)
        o = self.options
        try:
            source = image_from_bytes(task.data, task.content) if task.data is not None else task.content
            content_t = load_image(source, o.size, "content image")
        except InputError as err:
            return {"status": "skipped", "error": str(err)}
        chosen = [] if self.trained else [self.style_ts[i] for i in task.styles]
        try:
            image = api.run(api.prepare(content_t, chosen, o), runner=self.runner)
        except NonFiniteLossError as err:
            return {"status": "failed", "error": str(err)}
        styles = [] if self.trained else [self.style_paths[i] for i in task.styles]
        meta = api.metadata(o, Path(task.content), styles)
        if self.io == "shared":
            save_image(tensor_to_pil(image), task.output, meta)
            return {"status": "written"}
        return {"status": "ok", "data": encode_image(tensor_to_pil(image), task.output, meta)}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def run_batch(
    contents: Sequence[Path],
    styles: Sequence[Path],
    outdir: Path,
    options: Options,
    fmt: str = "png",
    skip_existing: bool = False,
    on_image: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    cluster: str | Cluster = "ray",
    actors: int | None = None,
    io: str = "store",
    fault: tuple[str, str] | None = None,
) -> batch.BatchResult:
    """:func:`impasto.batch.run_batch` on a Ray cluster: the same jobs, output names, metadata, pixels and
    ``skip_existing``; ``on_image(done, total)`` counts images finished anywhere on the cluster. ``cluster``:
    see :func:`parse_address`, or a :class:`Cluster` already connected; ``actors``: how many (default one per
    CPU of the cluster); ``io``: ``store`` (inputs and outputs through the object store, the driver writes) or
    ``shared`` (paths all nodes see). ``fault`` is for tests (see :func:`_crash`)."""
    if io not in IO_MODES:
        raise InputError(f"--cluster-io must be one of {', '.join(IO_MODES)}, got {io!r}")
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    trained = api.METHODS[options.method].styles == "none"  # a trained network
    jobs = batch.make_jobs(contents, styles, outdir, options, fmt)
    result = batch.BatchResult()
    total = len(jobs)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if on_image is not None:
            on_image(done, total)

    start = time.perf_counter()
    todo = jobs
    if skip_existing:
        todo = [j for j in jobs if not j.output.exists()]
        result.existing = total - len(todo)
        advance(result.existing)
    if not todo:
        result.seconds = time.perf_counter() - start
        return result
    style_blobs = [] if trained else [(str(s), s.read_bytes() if io == "store" else None) for s in styles]
    unreadable: set[Path] = set()

    def tasks() -> Iterator[BatchTask]:
        current: tuple[Path, bytes | None] | None = None
        for job in todo:
            if job.content in unreadable:
                continue
            if current is None or current[0] != job.content:
                data = _read(job.content) if io == "store" else None
                if io == "store" and data is None:
                    err = f"cannot read content image {job.content}"
                    warn(f"impasto: warning: skipped {err}")
                    unreadable.add(job.content)
                    n = sum(j.content == job.content for j in todo)
                    result.skipped.append((job.content, err))
                    advance(n)
                    continue
                current = (job.content, data)
            yield BatchTask(str(job.content), current[1], job.styles, str(job.output))

    skipped_contents: set[str] = set()
    c, owned = Cluster.of(cluster, actors)
    try:
        pool = c.spawn(BatchActor, min(actors or c.actors, len(todo)), options, style_blobs, io, fault)
        try:
            for task, out in c.map_ordered(pool, "run", tasks()):
                output = Path(task.output)
                if out["status"] == "ok":
                    write_bytes(output, out["data"])
                    result.written.append(output)
                elif out["status"] == "written":
                    result.written.append(output)
                elif out["status"] == "skipped":
                    if task.content not in skipped_contents:  # one warning per content file, as locally
                        skipped_contents.add(task.content)
                        warn(f"impasto: warning: skipped {out['error']}")
                        result.skipped.append((Path(task.content), out["error"]))
                else:
                    warn(f"impasto: warning: {output.name} not written: {out['error']}")
                    result.failed.append((Path(task.content), out["error"]))
                advance(1)
        finally:
            c.kill(pool)
            result.seconds = time.perf_counter() - start
    finally:
        if owned:
            c.close()
    return result


# -- long-running services (impasto serve's workers) -------------------------------------------------------
class ServiceActor:
    """Holds one CPU and runs one long call, ``target(*args)`` (e.g. a web worker's loop), until it returns or
    the actor is killed."""

    def __init__(self) -> None:
        torch.set_num_threads(1)

    def pid(self) -> int:
        return os.getpid()

    def run(self, target: Callable[..., Any], args: tuple) -> Any:
        return target(*args)


class ActorProcess:
    """A :class:`ServiceActor` running ``target(*args)`` on ``cluster``, with the parts of
    :class:`multiprocessing.Process` a process pool uses (``start``, ``is_alive``, ``join``, ``terminate``,
    ``kill``, ``pid``): a pool written for processes runs its workers on the cluster. Not restarted by Ray: the
    pool sees it die and starts another."""

    def __init__(self, cluster: Cluster, target: Callable[..., Any], args: tuple = (), name: str | None = None,
                 daemon: bool | None = None) -> None:  # fmt: skip
        self.cluster, self.target, self.args, self.name = cluster, target, args, name
        self.actor: Any = None
        self.ref: Any = None
        self.pid: int | None = None

    def start(self) -> None:
        ray = self.cluster.ray
        self.actor = ray.remote(num_cpus=1, max_restarts=0)(ServiceActor).remote()
        self.pid = ray.get(self.actor.pid.remote())
        self.ref = self.actor.run.remote(self.target, self.args)

    def is_alive(self) -> bool:
        if self.ref is None:
            return False
        done, _ = self.cluster.ray.wait([self.ref], timeout=0)
        return not done

    def join(self, timeout: float | None = None) -> None:
        if self.ref is not None:
            self.cluster.ray.wait([self.ref], timeout=timeout)

    def terminate(self) -> None:
        self.kill()

    def kill(self) -> None:
        if self.actor is not None:
            self.cluster.ray.kill(self.actor, no_restart=True)


# -- video ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Chunk:
    """Frames ``first`` .. ``first + len(frames) - warm_up - 1`` of a video, after ``warm_up`` frames before them."""

    first: int
    frames: np.ndarray  # (warm_up + n, H, W, 3) uint8
    warm_up: int
    previous: tuple[np.ndarray, np.ndarray] | None = None  # exact previous input and result (resumed run)


class VideoActor:
    """Stylizes chunks of a video's frames with one runner and one flow estimator, built once."""

    def __init__(self, stylizer: videolib.FrameStylizer, fault: tuple[str, str] | None = None) -> None:
        torch.set_num_threads(1)
        self.stylizer, self.fault = stylizer, fault
        self.runner = stylizer.runner()
        self.estimator = stylizer.estimator()

    def pid(self) -> int:
        return os.getpid()

    def run(self, chunk: Chunk) -> tuple[np.ndarray, float]:
        """The chunk's frames stylized (warm-up left out), and the seconds it took."""
        _crash(self.fault, f"chunk{chunk.first}")
        t0 = time.perf_counter()
        out = self.stylizer.chunk(self.runner, self.estimator, chunk.frames, chunk.warm_up, chunk.previous)
        return out, time.perf_counter() - t0


def chunk_bounds(start: int, end: int, chunk: int, overlap: int) -> list[tuple[int, int, int]]:
    """(warm-up start, first kept, end) per chunk of frames ``start`` .. ``end - 1``: chunks of ``chunk``
    frames, each after up to ``overlap`` frames before it (none before ``start``)."""
    return [(max(start, a - overlap), a, min(end, a + chunk)) for a in range(start, end, chunk)]


def video_frames(
    cluster: Cluster, chunk: int = DEFAULT_CHUNK, overlap: int = DEFAULT_OVERLAP, fault: tuple[str, str] | None = None
) -> Callable[[videolib.VideoJob, Any], Iterator[tuple[Any, np.ndarray, videolib.FrameInfo]]]:
    """The engine :meth:`impasto.video.VideoJob.run` takes (``frames=``): chunks of frames stylized by actors on
    ``cluster``, yielded in order. Decoded frames are held only for the chunks in flight."""
    if chunk < 1:
        raise InputError(f"--chunk-frames must be at least 1, got {chunk}")
    if overlap < 0:
        raise InputError(f"--chunk-overlap must be >= 0, got {overlap}")

    def engine(job: videolib.VideoJob, callback: Any = None) -> Iterator[tuple[Any, np.ndarray, videolib.FrameInfo]]:
        warm = overlap if job.temporal > 0 else 0
        reader = iter(job.reader)
        last: tuple[np.ndarray, np.ndarray] | None = None  # the last cached frame's input and result
        first = None
        for frame in reader:  # a resumed run's cached frames first, read back from the cache
            if frame.index >= job.resume_from:
                first = frame
                break
            out = job.cache.get(frame.index)
            yield frame, out, videolib.FrameInfo(frame.index, 0, job.total, True)
            last = (frame.image, out)
        if first is None:
            return
        held: dict[int, list[Any]] = {}  # a chunk's first index -> its frames (for their time stamps)

        def chunks() -> Iterator[Chunk]:
            recent: collections.deque = collections.deque(maxlen=max(1, warm))  # inputs before the next chunk
            if last is not None:
                recent.append(last[0])
            pending: list[Any] = []
            for frame in itertools.chain([first], reader):
                pending.append(frame)
                if len(pending) == chunk:
                    yield cut(pending, list(recent) if warm else [])
                    recent.extend(f.image for f in pending[-warm:] if warm)
                    pending = []
            if pending:
                yield cut(pending, list(recent) if warm else [])

        def cut(frames: list[Any], before: list[np.ndarray]) -> Chunk:
            held[frames[0].index] = frames
            exact = last if (last is not None and warm and frames[0].index == job.resume_from) else None
            if exact is not None:  # after a resumed run's cache the previous result is known exactly
                before = []
            stack = np.stack([*before, *(f.image for f in frames)])
            return Chunk(frames[0].index, stack, len(before), exact)

        pool = cluster.spawn(VideoActor, cluster.actors, job.stylizer(), fault)
        try:
            for task, (out, seconds) in cluster.map_ordered(pool, "run", chunks()):
                frames = held.pop(task.first)
                for frame, image in zip(frames, out, strict=True):
                    info = videolib.FrameInfo(frame.index, 0, job.total, False)
                    info.stylize_seconds = seconds / max(1, len(task.frames))
                    yield frame, image, info
        finally:
            cluster.kill(pool)

    return engine


def run_video(
    job: videolib.VideoJob,
    on_frame: Callable[[videolib.FrameInfo], None] | None = None,
    cluster: str | Cluster = "ray",
    actors: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    overlap: int = DEFAULT_OVERLAP,
    fault: tuple[str, str] | None = None,
) -> videolib.VideoResult:
    """Run a checked :class:`impasto.video.VideoJob` on a Ray cluster (chunks of ``chunk`` frames, each after
    ``overlap`` warm-up frames); the frame cache, ``--resume`` and the encoding are the local run's."""
    c, owned = Cluster.of(cluster, actors)
    if actors is not None:
        c.actors = actors
    try:
        return job.run(on_frame, None, video_frames(c, chunk, overlap, fault))
    finally:
        if owned:
            c.close()
