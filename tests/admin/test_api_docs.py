"""The admin server's docs page (``/api/docs/``) loads Swagger UI from this server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.test import Client

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist"


def _docs_assets(client: Client) -> list[str]:
    page = client.get("/api/docs/").content.decode()
    return re.findall(r'<(?:script|link)[^>]* (?:src|href)="([^"]+)"', page)


def _get_file(client: Client, url: str) -> tuple[int, str, bytes]:
    response: Any = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, response["Content-Type"], body


def test_the_admin_docs_page_loads_swagger_ui_from_this_server(client: Client, db: None) -> None:
    assets = _docs_assets(client)

    assert sorted(a.rsplit("/", 1)[1] for a in assets) == [
        "favicon-32x32.png", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
        "swagger-ui.css",
    ]
    assert all(a.startswith(f"/static/{SIDECAR}/") for a in assets)
    (bundle,) = [a for a in assets if a.endswith("/swagger-ui-bundle.js")]
    status, content_type, body = _get_file(client, bundle)
    assert status == 200
    assert content_type.startswith("text/javascript")
    assert b"SwaggerUIBundle" in body


def test_collectstatic_gathers_the_docs_files_for_both_servers(
    settings: Any, tmp_path: Path
) -> None:
    # The image's build step (Dockerfile): the admin server's collectstatic fills the
    # STATIC_ROOT both servers serve from in production.
    settings.STATIC_ROOT = tmp_path

    call_command("collectstatic", "--noinput", verbosity=0)

    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css",
                 "favicon-32x32.png"):
        assert (tmp_path / SIDECAR / name).stat().st_size > 0, name
    assert (tmp_path / "admin" / "css" / "base.css").exists()
