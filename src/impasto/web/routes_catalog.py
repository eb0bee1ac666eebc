"""What the page is built from: ``GET /api/options`` (methods, presets, every option, the example paintings, the
built-in styles, the server's limits), the example paintings and the built-in styles' thumbnails, and
``GET /api/health``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ..version import __version__
from .forms import WebError, catalog, option_fields
from .service import GALLERY, GALLERY_DIR, thumbnail

router = APIRouter()
#: Pictures that never change while the server runs: browsers keep them a day.
CACHED = {"cache-control": "max-age=86400"}


@router.get("/api/options", summary="Methods, presets and every option the page offers")
def options(request: Request) -> dict[str, Any]:
    config = request.app.state.config
    return {
        **catalog(), "fields": option_fields(), "version": __version__,
        "gallery": [{"name": k, "title": t, "url": f"/api/gallery/{k}", "thumb": f"/api/gallery/{k}?thumb=1"}
                    for k, (_, t) in GALLERY.items()],
        "limits": {"max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                   "max_styles": config.max_styles, "max_active_per_client": config.max_active_per_client},
        "builtin": request.app.state.builtin.catalog(),
    }  # fmt: skip


@router.get("/api/gallery/{name}", summary="A bundled example style image")
def gallery(name: str, thumb: bool = False) -> Response:
    if name not in GALLERY:
        raise WebError(404, "no such example")
    path = GALLERY_DIR / GALLERY[name][0]
    if thumb:
        return Response(thumbnail(path), media_type="image/jpeg", headers=CACHED)
    return FileResponse(path, headers=CACHED)


@router.get("/api/builtin/{index}", summary="A built-in style (model=builtin:N) on an example photo (JPEG)")
def builtin_thumbnail(index: int, request: Request) -> FileResponse:
    return FileResponse(request.app.state.builtin.thumbnail(index), media_type="image/jpeg", headers=CACHED)


@router.get("/api/health", summary="Workers and queue")
def health(request: Request) -> dict[str, Any]:
    pool = request.app.state.runtime["pool"]
    workers, ready = (len(pool.pids()), pool.ready()) if pool else (0, 0)
    return {"ok": True, "workers": workers, "ready_workers": ready, "jobs": request.app.state.store.counts()}
