"""Imports go one way (inference <- conversion <- training, app on top) and test support never ships."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("app", "inference", "conversion", "training", "resources")
# What each shipped package may import of the others.
ALLOWED = {
    "inference": set(),
    "conversion": {"inference"},
    "training": {"inference", "conversion"},
    "app": {"inference", "conversion", "training"},
    "resources": set(),
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_imports_go_one_way_and_no_shipped_module_imports_test_support():
    wrong = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            others = _imported_packages(path) & (set(SHIPPED) | {"tests", "benchmarks"})
            for name in sorted(others - {package} - ALLOWED[package]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_wheel_holds_no_test_support(tmp_path):
    # Built from a copy of the sources: an in-tree build would reuse (and leave) a build/ folder in the checkout.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", ".ruff_cache", "*.gguf"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(source)], check=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "inference/store/manifest.py" in names and "app/cli.py" in names  # the runtime is there
    assert [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "docs")] == []
    assert [n for n in names if "synthetic" in n or "loopback" in n or "fake_hub" in n] == []


def test_the_gui_start_and_light_commands_load_no_training_converter_or_torch(tmp_path):
    """`huatuo` builds its parser without importing the other commands' modules; the window's module needs none
    of the training, data, evaluation or conversion code."""
    probe = (
        "import sys\n"
        "from app import cli\n"
        "import app.ui.main\n"
        f"assert cli.main(['render', {str(ROOT / 'resources/decks/sample_deck.json')!r}, '--out', 'x.png']) != 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'torch', 'transformers', 'datasets')"
        " or m.startswith('conversion.'))\n"
        "print(heavy)\n"
        "assert heavy == [], heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stdout + result.stderr
