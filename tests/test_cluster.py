"""Scale-out on Ray (``--cluster``): a batch on a local Ray instance gives the local run's files, pixel for pixel; an
actor killed mid-task has its task retried and every output written once; a video cut into chunks is stitched
without a duplicated or missing frame; Ray is imported only with ``--cluster``, and its absence is one line."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impasto import batch, cluster, video
from impasto.cli import main
from impasto.core import flow
from impasto.io.images import read_metadata
from impasto.options import make_options

from . import clips

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = ROOT / "examples" / "chelsea.png"
STARRY = ROOT / "examples" / "starry_night.jpg"
#: A few optimization steps from noise at 48 px (the seed matters), in fp32.
GATYS = {"method": "gatys", "size": 48, "steps": 6, "init": "noise", "seed": 3, "precision": "fp32"}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# -- without Ray ---------------------------------------------------------------------------------------------
@pytest.mark.subprocess
def test_no_ray_import_without_cluster(tmp_path: Path) -> None:
    """A batch without --cluster never imports Ray (run in a child so that this process's imports do not count)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(CHELSEA).convert("RGB").resize((40, 30)).save(folder / "a.png")
    code = (
        "import sys\nfrom impasto.cli import main\n"
        f"rc = main([{str(folder)!r}, {str(STARRY)!r}, '-o', {str(tmp_path / 'out')!r}, '--method', 'fast', "
        "'-s', '32', '-q'])\n"
        "assert rc == 0, rc\nprint('ray' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
    assert (tmp_path / "out" / "a-starry_night.png").is_file()


@pytest.mark.subprocess
def test_missing_ray_is_one_line(tmp_path: Path) -> None:
    """With Ray not importable, --cluster fails before any work with one line saying how to install it."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(CHELSEA).convert("RGB").resize((40, 30)).save(folder / "a.png")
    code = (
        "import sys\nsys.modules['ray'] = None\nfrom impasto.cli import main\n"
        f"sys.exit(main([{str(folder)!r}, {str(STARRY)!r}, '-o', {str(tmp_path / 'out')!r}, '--method', 'fast', "
        "'--cluster', 'ray']))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"impasto: error: {cluster.MISSING}"]
    assert "pip install 'impasto[cluster]'" in run.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cluster_addresses() -> None:
    assert cluster.parse_address("ray") is None
    assert cluster.parse_address("ray:auto") == "auto"
    assert cluster.parse_address("ray://head:10001") == "ray://head:10001"
    for bad in ("dask", "ray://", "ray:head"):
        with pytest.raises(cluster.InputError, match="--cluster must be"):
            cluster.parse_address(bad)
    assert cluster.chunk_bounds(0, 12, 5, 2) == [(0, 0, 5), (3, 5, 10), (8, 10, 12)]
    assert cluster.chunk_bounds(7, 9, 5, 3) == [(7, 7, 9)]  # nothing before the first frame taken


# -- on a local Ray instance ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for the module; the code under test reuses it and leaves it running."""
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(prefix="impasto-ray-test-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos (different sizes and formats) and a broken file."""
    folder = tmp_path_factory.mktemp("photos")
    im = Image.open(CHELSEA).convert("RGB")
    im.resize((64, 48)).save(folder / "cat.png")
    im.resize((61, 37)).save(folder / "wide.jpg")
    im.rotate(90, expand=True).resize((36, 50)).save(folder / "tall.webp")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return folder


@pytest.fixture(scope="module")
def local(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local batch run (no Ray) the cluster runs are compared with."""
    out = tmp_path_factory.mktemp("local")
    contents = batch.find_contents(str(photos))
    result = batch.run_batch(contents, [STARRY], out, make_options(**GATYS), warn=lambda m: None)
    assert len(result.written) == 3 and len(result.skipped) == 1
    return out


def _same_as_local(local: Path, out: Path) -> None:
    names = sorted(p.name for p in local.iterdir())
    assert names == ["cat-starry_night.png", "tall-starry_night.png", "wide-starry_night.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        a, b = _pixels(local / name), _pixels(out / name)
        assert a.shape == b.shape, name
        # The same pixels, up to rounding: on CPUs where oneDNN splits the sums of the smallest convolutions
        # (conv5_1 at 3x2 positions here) by thread count, a local run's float result and a one-thread actor's
        # differ by ~1e-6; a value within that of a half level rounds the other way (docs/guides/cluster.md).
        diff = np.abs(a.astype(int) - b.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, (name, int(diff.max()), float((diff > 0).mean()))
        assert read_metadata(out / name) == read_metadata(local / name)


@pytest.mark.cluster
def test_batch_on_cluster_is_the_local_batch(ray_local, photos: Path, local: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    warnings: list[str] = []
    progress: list[tuple[int, int]] = []
    contents = batch.find_contents(str(photos))
    result = cluster.run_batch(contents, [STARRY], out, make_options(**GATYS), on_image=lambda d, t: progress.append(
        (d, t)), warn=warnings.append, actors=2)  # fmt: skip
    assert len(result.written) == 3 and len(set(result.written)) == 3
    assert [p.name for p, _ in result.skipped] == ["broken.png"] and "broken.png" in warnings[0]
    assert progress[-1] == (4, 4) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    _same_as_local(local, out)
    assert _leftovers(out) == []
    # --skip-existing: nothing is run again; a removed output is made again, the same.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    (out / "wide-starry_night.png").unlink()
    again = cluster.run_batch(contents, [STARRY], out, make_options(**GATYS), skip_existing=True,
                              warn=lambda m: None, actors=1)  # fmt: skip
    assert again.existing == 2 and [p.name for p in again.written] == ["wide-starry_night.png"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "wide-starry_night.png"} == {
        k: v for k, v in stamps.items() if k != "wide-starry_night.png"
    }
    _same_as_local(local, out)


@pytest.mark.cluster
def test_cli_batch_on_cluster_with_shared_paths(ray_local, photos: Path, local: Path, tmp_path: Path, capsys
                                                ) -> None:  # fmt: skip
    """The command line, workers reading and writing the (shared) paths themselves."""
    out = tmp_path / "out"
    args = [str(photos), str(STARRY), "-o", str(out), "--method", "gatys", "-s", "48", "--steps", "6", "--init",
            "noise", "--seed", "3", "--precision", "fp32", "--cluster", "ray", "--cluster-io", "shared",
            "-q"]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "broken.png" in err  # the broken file was skipped, as in a local run
    _same_as_local(local, out)
    assert _leftovers(out) == []


@pytest.mark.cluster
def test_a_killed_actor_is_retried_and_nothing_is_written_twice(ray_local, photos: Path, local: Path,
                                                                tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / "crashed"
    writes: list[str] = []
    real = cluster.write_bytes

    def counting(path, data):  # noqa: ANN001, ANN202
        writes.append(Path(path).name)
        return real(path, data)

    cluster.write_bytes = counting
    try:
        result = cluster.run_batch(batch.find_contents(str(photos)), [STARRY], out, make_options(**GATYS),
                                   warn=lambda m: None, actors=2, fault=("cat.png", str(marker)))  # fmt: skip
    finally:
        cluster.write_bytes = real
    assert marker.is_file()  # an actor's process did die in the middle of cat.png's task
    assert int(marker.read_text()) != os.getpid()
    assert sorted(writes) == ["cat-starry_night.png", "tall-starry_night.png", "wide-starry_night.png"]
    assert len(result.written) == 3 and not result.failed
    _same_as_local(local, out)
    assert _leftovers(out) == []


# -- video ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frames_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, clips.Clip]:
    """12 frames (64x42 PNGs: a camera pan and a disc moving across), as a folder of frames."""
    c = clips.render(Image.open(CHELSEA), frames=12, size=(64, 42))
    folder = tmp_path_factory.mktemp("frames")
    for i, f in enumerate(c.frames):
        Image.fromarray(f).save(folder / f"f{i:03d}.png")
    return folder, c


def _frames(folder: Path) -> list[np.ndarray]:
    return [_pixels(p) for p in sorted(folder.glob("frame_*.png"))]


def _video(src: Path, out: Path, temporal: float, on_cluster: dict | None = None) -> video.VideoResult:
    opts = make_options(method="fast")
    with video.VideoJob(src, [STARRY], out, opts, video.VideoSettings(temporal=temporal)) as job:
        if on_cluster is None:
            return job.run()
        return cluster.run_video(job, **on_cluster)


@pytest.mark.cluster
def test_video_chunks_are_stitched_without_duplicate_or_missing_frames(ray_local, frames_in, tmp_path: Path) -> None:
    pytest.importorskip("cv2")  # the optical flow
    src, clip = frames_in
    # Each frame on its own (no temporal state): the chunks must give exactly the local frames, in order.
    _video(src, tmp_path / "local0", 0.0)
    result = _video(src, tmp_path / "ray0", 0.0, {"actors": 2, "chunk": 5, "overlap": 2})
    local0, ray0 = _frames(tmp_path / "local0"), _frames(tmp_path / "ray0")
    assert result.frames == 12 and len(ray0) == 12
    assert all(np.array_equal(a, b) for a, b in zip(local0, ray0))
    # With the temporal blend: chunks of 5 after 2 warm-up frames (borders before frames 5 and 10).
    _video(src, tmp_path / "local", 0.7)
    marker = tmp_path / "crashed"  # the actor running the second chunk dies in it: the chunk is retried
    _video(src, tmp_path / "ray", 0.7, {"actors": 2, "chunk": 5, "overlap": 2, "fault": ("chunk5", str(marker))})
    assert marker.is_file()
    loc, ray = _frames(tmp_path / "local"), _frames(tmp_path / "ray")
    assert len(ray) == 12 and sorted(p.name for p in (tmp_path / "ray").iterdir()) == [
        f"frame_{i:06d}.png" for i in range(1, 13)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(loc[:5], ray[:5]))  # the first chunk is the local run
    for i, f in enumerate(ray):  # every frame is the stylization of its own input frame: none shifted or repeated
        d = [np.abs(f.astype(float) - g).mean() for g in loc]
        assert int(np.argmin(d)) == i, (i, d)
    # Temporal consistency across the borders: the warping error from frame 4 to 5 and 9 to 10 is of the order of
    # the one inside the chunks (without the warm-up the border frame would start from scratch).
    estimator = flow.FlowEstimator("medium")

    def error(frames: list[np.ndarray], t: int) -> float:
        pair = estimator.pair(clip.frames[t - 1], clip.frames[t])
        return flow.warping_error(frames[t], frames[t - 1], pair.backward, pair.reliability())

    borders = [error(ray, t) for t in (5, 10)]
    inside = [error(ray, t) for t in range(1, 12) if t not in (5, 10)]
    indep = [error(ray0, t) for t in (5, 10)]
    assert max(borders) < 1.5 * float(np.median(inside)), (borders, inside)
    assert max(borders) < min(indep), (borders, indep)  # and clearly better than no consistency at all
    assert _leftovers(tmp_path / "ray") == []


# -- impasto serve's workers -----------------------------------------------------------------------------------
@pytest.mark.cluster
def test_serve_workers_on_the_cluster(ray_local, tmp_path: Path) -> None:
    """The web app's workers as Ray actors: a job queued over HTTP is run by an actor (another process) into the
    pixels of a local run; a killed actor is replaced and its job re-queued and finished."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import io

    from fastapi.testclient import TestClient  # noqa: I001 - after the skip

    from impasto import api
    from impasto.web.app import ServerConfig, create_app

    from .test_web import BASE, _wait, submit

    content = tmp_path / "cat.png"
    Image.open(CHELSEA).convert("RGB").resize((48, 36)).save(content)
    config = ServerConfig(data=tmp_path / "data", warm_up=False, cluster="ray", cluster_actors=1)
    with TestClient(create_app(config, start_workers=True), base_url=BASE) as c:
        pool = c.app.state.runtime["pool"]
        assert len(pool.pids()) == 1 and pool.pids()[0] != os.getpid()
        job = submit(c, content, [STARRY], method="fast", size=32).json()
        _wait(c, job["id"], lambda j: j["state"] == "done")
        assert pool.ready() == 1  # the actor said it was ready (this process runs no worker)
        got = np.asarray(Image.open(io.BytesIO(c.get(f"/api/jobs/{job['id']}/result").content)).convert("RGB"))
        want = api.stylize(content, STARRY, method="fast", size=32)
        assert np.array_equal(got, np.asarray(want.convert("RGB")))
        # The actor dies: the pool starts another, which runs the next job.
        first = list(pool.processes)[0]
        pool.processes[first].kill()
        deadline = time.time() + 60
        while first in pool.processes and time.time() < deadline:
            time.sleep(0.1)
        assert first not in pool.processes and pool.restarts == 1
        job2 = submit(c, content, [STARRY], method="fast", size=24).json()
        _wait(c, job2["id"], lambda j: j["state"] == "done")
        assert len(pool.processes) == 1 and pool.ready() == 1


@pytest.mark.cluster
def test_video_on_cluster_resumes_after_the_driver_stopped(ray_local, frames_in, tmp_path: Path) -> None:
    """The driver stops after 6 frames (Ctrl-C): the frames cached so far are kept, and --resume on the cluster
    does the rest, every frame once and in order."""
    pytest.importorskip("cv2")
    src, _ = frames_in
    out = tmp_path / "ray"
    engine = {"actors": 2, "chunk": 4, "overlap": 2}

    def stop_at_6(info: video.FrameInfo) -> None:
        if info.done == 6:
            raise KeyboardInterrupt

    opts = make_options(method="fast")
    with video.VideoJob(src, [STARRY], out, opts, video.VideoSettings(temporal=0.7)) as job:
        with pytest.raises(video.VideoStopped) as stopped:
            cluster.run_video(job, stop_at_6, **engine)
    assert stopped.value.frames == 6
    cache = out.with_name(out.name + ".frames")
    first = _frames(cache)
    assert len(first) == 6
    with video.VideoJob(src, [STARRY], out, opts, video.VideoSettings(temporal=0.7, resume=True)) as job:
        assert job.resume_from == 6
        result = cluster.run_video(job, None, **engine)
    assert result.frames == 12 and result.stylized == 6 and not cache.exists()
    done = _frames(out)
    assert len(done) == 12 and all(np.array_equal(a, b) for a, b in zip(first, done[:6]))
    _video(src, tmp_path / "local", 0.7)
    loc = _frames(tmp_path / "local")
    for i, f in enumerate(done):
        d = [np.abs(f.astype(float) - g).mean() for g in loc]
        assert int(np.argmin(d)) == i, (i, d)


def test_ray_log_lines_are_left_out_unless_verbose(capfd):
    import logging

    ray_line = b"[2026-12-07 13:23:33,445 E 3671 3671] core_worker.cc:2465: Actor with class name: 'Host' ...\n"
    with cluster.without_ray_log_lines():
        os.write(2, ray_line + b"impasto: a line of ours\n")
    assert capfd.readouterr().err == "impasto: a line of ours\n"
    with cluster.without_ray_log_lines(active=False):  # --cluster-verbose
        os.write(2, ray_line)
    assert capfd.readouterr().err == ray_line.decode()
    logger = logging.getLogger("ray")
    before = logger.level
    try:
        cluster.quiet_ray(verbose=True)
        assert logger.level == before
        cluster.quiet_ray()
        assert logger.level == logging.ERROR  # the token notice is a warning
    finally:
        logger.setLevel(before)
