"""A Python client generated from a server's OpenAPI schema with openapi-python-client, the
way an app team would: the schema validated by ``manage.py spectacular``, then the client
generator run as a process, offline. Not a test module: nothing here is named ``test_*``.
"""

from __future__ import annotations

import compileall
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.core.management import call_command

GENERATE_TIMEOUT_SECONDS = 120
PAGE_FIELDS = {"results", "next", "previous"}


@dataclass(frozen=True)
class GeneratedClient:
    schema: dict[str, Any]
    # the operation modules of each tag's package, ``{"orders": {"orders_list", ...}}``
    modules: dict[str, set[str]]
    seconds: float


def generate_client(tmp_path: Path) -> GeneratedClient:
    """Generate a client from this test run's server's schema into ``tmp_path``; fail on
    any warning from either step."""
    schema_file = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(schema_file))
    # No post hooks: they run ruff over the client, and print a warning where it is not on
    # PATH; formatting the client is not what is tested here.
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")
    out = tmp_path / "client"
    started = time.monotonic()
    result = subprocess.run(  # a fixed command line
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", str(schema_file), "--output-path", str(out), "--meta", "none",
            "--config", str(config), "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=GENERATE_TIMEOUT_SECONDS,
        check=False,
    )
    seconds = time.monotonic() - started
    printed = result.stdout + result.stderr
    assert result.returncode == 0, printed
    assert "warning" not in printed.lower(), printed
    assert compileall.compile_dir(out, quiet=1, force=True), "the client is not valid Python"
    modules = {
        tag.name: {m.stem for m in tag.glob("*.py") if m.stem != "__init__"}
        for tag in (out / "api").iterdir()
        if tag.is_dir() and tag.name != "__pycache__"
    }
    return GeneratedClient(yaml.safe_load(schema_file.read_text()), modules, seconds)


def page_operations(schema: dict[str, Any]) -> dict[str, str]:
    """``{"GET /api/stores": operationId}`` of every GET answering a page of results."""
    found = {}
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        answer = get["responses"].get("200", {}).get("content", {}).get("application/json")
        body = (answer or {}).get("schema", {})
        if "$ref" in body:
            body = components[body["$ref"].rsplit("/", 1)[1]]
        if PAGE_FIELDS <= set(body.get("properties", {})):
            found[f"GET {path}"] = get["operationId"]
    return found
