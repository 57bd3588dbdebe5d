"""The package boundaries (pyproject.toml, [tool.importlinter]) hold, and would catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (pip install -r requirements/dev.txt)"
    return subprocess.run(
        [exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_import_contracts_catch_a_domain_importing_django(tmp_path: Path) -> None:
    # given a copy of the tree whose domain imports Django
    for name in ("lokaly_core", "lokaly_public", "lokaly_admin", "lokaly_worker"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    offender = tmp_path / "lokaly_core" / "domain" / "orders.py"
    offender.write_text("import django.db  # noqa\n" + offender.read_text())
    public_views = tmp_path / "lokaly_public" / "views.py"
    public_views.write_text("import lokaly_worker.consumer  # noqa\n" + public_views.read_text())
    # when the contracts are checked, then both breaches are reported
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "plain Python BROKEN" in result.stdout
    assert "never import each other BROKEN" in result.stdout
