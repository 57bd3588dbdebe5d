"""The package boundaries (pyproject.toml, [tool.importlinter]) hold, and would catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contract_names() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [c["name"] for c in config["tool"]["importlinter"]["contracts"]]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed (pip install -r requirements/dev.txt)"
    return subprocess.run(
        [exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    names = _contract_names()
    assert len(names) == 4
    for name in names:
        assert f"{name} KEPT" in result.stdout
    assert f"{len(names)} kept, 0 broken" in result.stdout


def test_import_contracts_catch_a_breach_of_each_kind(tmp_path: Path) -> None:
    # given a copy of the tree whose domain imports Django, whose domain model imports the
    # ports, and whose public API imports the worker
    for name in ("lokaly_core", "lokaly_public", "lokaly_admin", "lokaly_worker"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    _prepend(tmp_path / "lokaly_core" / "domain" / "model" / "orders.py", "import django.db")
    _prepend(
        tmp_path / "lokaly_core" / "domain" / "model" / "delivery.py",
        "from lokaly_core.domain.ports import UnitOfWork",
    )
    _prepend(tmp_path / "lokaly_public" / "views.py", "import lokaly_worker.consumer")
    # when the contracts are checked, then each breach is reported
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "plain Python BROKEN" in result.stdout
    assert "services above ports above the model BROKEN" in result.stdout
    assert "lokaly_core.domain.model.delivery -> lokaly_core.domain.ports" in result.stdout
    assert "never import each other BROKEN" in result.stdout


def _prepend(module: Path, line: str) -> None:
    module.write_text(f"{line}  # noqa\n" + module.read_text())
