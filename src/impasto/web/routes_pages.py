"""The page (``/``) and the HTTP API's documentation (``/docs``, Swagger UI from a package: it works offline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from .jobs import new_id
from .service import HERE

STATIC = HERE / "static"
#: The cookie that tells one browser's jobs from another's (``GET /api/jobs?scope=session``).
SESSION_COOKIE = "impasto_session"

router = APIRouter()


@router.get("/", include_in_schema=False)
def page(request: Request) -> HTMLResponse:
    response = HTMLResponse((STATIC / "index.html").read_text(), headers={"cache-control": "no-cache"})
    if SESSION_COOKIE not in request.cookies:
        response.set_cookie(SESSION_COOKIE, new_id(), max_age=365 * 86400, httponly=True, samesite="strict")
    return response


@router.get("/docs", include_in_schema=False)
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title="impasto HTTP API", swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="/docs-assets/favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )  # fmt: skip
