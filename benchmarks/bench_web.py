"""Benchmarks of ``impasto serve`` against a real server started here (loopback only), in four parts:

    python benchmarks/bench_web.py load --clients 20 --seconds 60    # every job completes once; status latency
    python benchmarks/bench_web.py faults --jobs 5                   # kill -9 server and workers, restart: all finish
    python benchmarks/bench_web.py preview --size 512 --repeats 5    # Start -> first preview on screen (Chromium)
    python benchmarks/bench_web.py screenshot --out docs/web.jpg     # the documentation's picture of the page

Each part starts its own server (``python -m impasto serve``) on a free port with a fresh data folder and stops
it at the end; request loops are bounded in count and time. The browser parts use Debian's Chromium through
Playwright (``make test`` installs it). Timings on a shared machine are noisy: compare runs side by side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT

CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "starry_night.jpg"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


# -- a server and a little HTTP ---------------------------------------------------------------------------------
class Server:
    """``impasto serve`` in a child process on a free loopback port."""

    def __init__(self, data: Path, workers: int, *extra: str) -> None:
        self.data, self.workers, self.extra = data, workers, extra
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> Server:
        cmd = [sys.executable, "-m", "impasto", "serve", "--port", str(self.port), "--data", str(self.data),
               "--workers", str(self.workers), *self.extra]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"impasto serve exited with {self.proc.returncode}")
            try:
                if self.get("/api/health")["ready_workers"] >= self.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("impasto serve did not get ready in time")

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        try:
            return [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.load(r)


def multipart(fields: dict[str, str], files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = secrets.token_hex(12)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")  # fmt: skip
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None) -> tuple[int, dict]:
        headers = {"content-type": ctype} if ctype else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data and r.getheader("content-type", "").startswith(
            "application/json"
        ) else {}


def submit(server: Server, **fields: str) -> str:
    body, ctype = multipart({k: str(v) for k, v in fields.items()}, [("content", CONTENT), ("style", STYLE)])
    status, job = Client(server.port).request("POST", "/api/jobs", body, ctype)
    if status != 201:
        raise SystemExit(f"submit failed: {status} {job}")
    return job["id"]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# -- load ---------------------------------------------------------------------------------------------------------
def load(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="impasto-bench-load-"))
    server = Server(data, args.workers, "--max-jobs-per-client", "1000").start()
    print(f"server on {server.url}, {args.workers} worker(s); {args.clients} clients for {args.seconds} s, "
          f"fast jobs at {args.size} px")  # fmt: skip
    body, ctype = multipart({"method": "fast", "size": str(args.size)}, [("content", CONTENT), ("style", STYLE)])
    latencies: list[tuple[float, float, bool]] = []  # (when, seconds, a worker was busy)
    submitted: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    t_end = time.time() + args.seconds

    def client() -> None:
        c = Client(server.port)
        while time.time() < t_end:
            status, job = c.request("POST", "/api/jobs", body, ctype)
            if status != 201:
                with lock:
                    errors.append(f"submit {status}: {job}")
                time.sleep(0.5)
                continue
            with lock:
                submitted.append(job["id"])
            deadline = time.time() + args.seconds + 300
            while time.time() < deadline:
                t = time.perf_counter()
                status, job = c.request("GET", f"/api/jobs/{job['id']}")
                dt = time.perf_counter() - t
                with lock:
                    latencies.append((time.time(), dt, True))
                if status != 200:
                    with lock:
                        errors.append(f"status {status}")
                    break
                if job["state"] in ("done", "failed", "cancelled"):
                    break
                time.sleep(args.poll)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    jobs = {j["id"]: j for j in server.get("/api/jobs?limit=1000")["jobs"]}
    states = {}
    for job_id in submitted:
        states[jobs.get(job_id, {}).get("state", "lost")] = states.get(jobs.get(job_id, {}).get("state", "lost"), 0) + 1
    twice = [j for j in submitted if jobs.get(j, {}).get("attempts", 0) != 1]
    results = sum(1 for j in submitted if jobs.get(j, {}).get("has_result"))
    server.stop()
    secs = [dt * 1000 for _, dt, _ in latencies]
    print(
        f"{len(submitted)} jobs submitted in {wall:.0f} s ({len(submitted) / wall:.2f} jobs/s): states {states}; "
        f"with a result {results}; claimed more than once {len(twice)}; errors {len(errors)} {errors[:3]}"
    )
    print(f"status calls: {len(secs)}, p50 {pct(secs, 50):.1f} ms, p95 {pct(secs, 95):.1f} ms, max {max(secs):.1f} ms "
          "(target p95 < 100 ms)")  # fmt: skip
    ok = states.get("done", 0) == len(submitted) and not twice and results == len(submitted) and not errors
    print("PASS" if ok else "FAIL")
    if not args.keep:
        _rmtree(data)
    sys.exit(0 if ok else 1)


# -- faults -----------------------------------------------------------------------------------------------------------
def faults(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="impasto-bench-faults-"))
    server = Server(data, args.workers).start()
    ids = [submit(server, size=args.size, steps=args.steps) for _ in range(args.jobs)]
    print(f"{args.jobs} jobs ({args.size} px, {args.steps} steps) on {args.workers} worker(s); waiting for a preview")
    deadline = time.time() + 300
    while time.time() < deadline:
        jobs = [server.get(f"/api/jobs/{i}") for i in ids]
        if sum(1 for j in jobs if (j["preview_step"] or 0) >= args.kill_after) >= min(args.workers, args.jobs):
            break
        time.sleep(0.1)
    states = [(j["state"], j["step"]) for j in jobs]
    pids = server.worker_pids()
    assert server.proc is not None
    for pid in [server.proc.pid, *pids]:
        os.kill(pid, signal.SIGKILL)
    server.proc.wait()
    print(f"kill -9 of the server ({server.proc.pid}) and its workers {pids} with jobs at {states}")
    t0 = time.time()
    server = Server(data, args.workers)
    server.start()
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        jobs = [server.get(f"/api/jobs/{i}") for i in ids]
        if all(j["state"] in ("done", "failed", "cancelled") for j in jobs):
            break
        time.sleep(0.5)
    server.stop()
    done = [j for j in jobs if j["state"] == "done" and j["has_result"] and j["step"] == j["total"]]
    for j in jobs:
        print(f"  {j['id'][:8]} {j['state']:>9} step {j['step']}/{j['total']} attempts {j['attempts']} "
              f"resumed from step {j['resumed_from']}")  # fmt: skip
    print(f"{len(done)} of {len(ids)} complete {time.time() - t0:.0f} s after the restart: "
          f"{'PASS' if len(done) == len(ids) else 'FAIL'}")  # fmt: skip
    if not args.keep:
        _rmtree(data)
    sys.exit(0 if len(done) == len(ids) else 1)


# -- the browser ------------------------------------------------------------------------------------------------------
def _page(browser, server: Server, width: int = 1100, height: int = 900):  # noqa: ANN001, ANN202 - playwright objects
    page = browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.set_input_files("#content-file", str(CONTENT))
    page.set_input_files("#style-file", str(STYLE))
    return page


def preview(args: argparse.Namespace) -> None:
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="impasto-bench-preview-"))
    server = Server(data, 1).start()
    times, breakdown = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = _page(browser, server)
        page.select_option("#opt-method", "fast")
        page.fill("#opt-size", str(args.size))
        page.wait_for_function("document.getElementById('estimate').textContent.includes('peak')")
        for _ in range(args.repeats):
            page.wait_for_function("!document.getElementById('start').disabled", timeout=120_000)
            page.click("#start")
            page.wait_for_function("window.impastoTimings.firstPreview !== undefined", timeout=120_000)
            ms = page.evaluate("window.impastoTimings.firstPreview")
            times.append(ms)
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Done')", timeout=120_000)
            job = server.get("/api/jobs?limit=1")["jobs"][0]
            breakdown.append((job["started"] - job["created"], job["finished"] - job["started"]))
            queued, ran = (x * 1000 for x in breakdown[-1])
            print(
                f"  first preview on screen {ms:.0f} ms after Start (server: queued {queued:.0f} ms, "
                f"run and save {ran:.0f} ms)"
            )
        browser.close()
    server.stop()
    med = statistics.median(times)
    print(f"fast method at {args.size} px: median {med:.0f} ms, best {min(times):.0f} ms over {len(times)} "
          f"(target <= 2000 ms): {'PASS' if med <= 2000 else 'FAIL'}")  # fmt: skip
    if not args.keep:
        _rmtree(data)


def screenshot(args: argparse.Namespace) -> None:
    """The page in the middle of an optimizing run (preview, loss curve, ETA), taken by headless Chromium."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="impasto-bench-shot-"))
    server = Server(data, 1).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = _page(browser, server, 1100, 900)
        page.fill("#opt-size", str(args.size))
        page.fill("#opt-steps", str(args.steps))
        page.wait_for_function("document.getElementById('estimate').textContent.includes('peak')")
        page.click("#start")
        page.wait_for_function(f"(window.impastoTimings.firstPreview !== undefined) && "
                               f"document.getElementById('bar').value >= {args.at_step}", timeout=600_000)  # fmt: skip
        page.wait_for_timeout(300)
        png = Path(tempfile.mktemp(suffix=".png"))
        page.screenshot(path=str(png), full_page=True)
        page.click("#cancel")
        browser.close()
    server.stop()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(png).convert("RGB").save(out, quality=85, optimize=True)
    png.unlink()
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")
    if not args.keep:
        _rmtree(data)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="part", required=True)
    a = sub.add_parser("load", help="concurrent clients submitting and polling fast jobs")
    a.add_argument("--clients", type=int, default=20)
    a.add_argument("--seconds", type=float, default=60)
    a.add_argument("--size", type=int, default=128, help="fast jobs' size in px")
    a.add_argument("--workers", type=int, default=1)
    a.add_argument("--poll", type=float, default=0.2, help="seconds between a client's status calls")
    a.set_defaults(run=load)
    a = sub.add_parser("faults", help="kill -9 the server and its workers mid-way, restart, all jobs finish")
    a.add_argument("--jobs", type=int, default=5)
    a.add_argument("--workers", type=int, default=1)
    a.add_argument("--size", type=int, default=96)
    a.add_argument("--steps", type=int, default=40)
    a.add_argument("--kill-after", type=int, default=2, help="kill once a running job has a preview at this step")
    a.add_argument("--timeout", type=float, default=900)
    a.set_defaults(run=faults)
    a = sub.add_parser("preview", help="Start -> first preview on screen, in Chromium")
    a.add_argument("--size", type=int, default=512)
    a.add_argument("--repeats", type=int, default=5)
    a.set_defaults(run=preview)
    a = sub.add_parser("screenshot", help="a screenshot of the page for the documentation")
    a.add_argument("--out", default=str(ROOT / "docs" / "web.jpg"))
    a.add_argument("--size", type=int, default=256)
    a.add_argument("--steps", type=int, default=200)
    a.add_argument("--at-step", type=int, default=25, help="take it once the run has reached this step")
    a.set_defaults(run=screenshot)
    for a in sub.choices.values():
        a.add_argument("--keep", action="store_true", help="keep the server's data folder")
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
