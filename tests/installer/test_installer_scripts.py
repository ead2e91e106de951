"""The packaging files are well-formed: shell scripts pass shellcheck, the desktop entry and the macOS
entitlements validate, the release workflow names only steps that exist, the frozen entry point guards `-m`."""

from __future__ import annotations

import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"
SCRIPTS = sorted([*INSTALLER.rglob("*.sh"), INSTALLER / "linux" / "AppRun", INSTALLER / "linux" / "huatuo-launcher"])


def test_every_script_is_executable():
    assert len(SCRIPTS) >= 10
    for script in SCRIPTS:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        assert script.read_text().startswith("#!"), f"{script} has no #! line"


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed (apt-get install shellcheck)")
def test_scripts_pass_shellcheck():
    result = subprocess.run(["shellcheck", "--severity=style", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None,
                    reason="desktop-file-validate is not installed (apt-get install desktop-file-utils)")
def test_desktop_entry_validates():
    result = subprocess.run(["desktop-file-validate", str(INSTALLER / "linux" / "huatuo-vision.desktop")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def test_entitlements_are_a_valid_property_list_granting_no_exception():
    with open(INSTALLER / "macos" / "entitlements.plist", "rb") as f:
        entitlements = plistlib.load(f)
    assert entitlements == {}  # the reasons for each exception not granted are in the file


def test_release_workflow_calls_only_existing_steps():
    workflow = yaml.safe_load((INSTALLER / "ci" / "release.yml").read_text())
    assert set(workflow["jobs"]) == {"linux", "windows-freeze", "windows-installer", "macos", "sign"}
    runs = "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])
    steps = {line.split("installer/release.sh ")[1].split()[0] for line in runs.splitlines()
             if "installer/release.sh " in line}
    assert steps == {"linux", "freeze", "windows", "macos", "sign"}
    usage = (INSTALLER / "release.sh").read_text()
    for step in steps:
        assert f"\n    {step})\n" in usage, step
    assert workflow["jobs"]["sign"]["needs"] == ["linux", "windows-installer", "macos"]


def test_no_private_key_material_in_the_installer_folder():
    for path in INSTALLER.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"PRIVATE KEY" not in text.replace(b"GPG_PRIVATE_KEY", b""), path
            assert path.suffix not in (".pfx", ".p12", ".key", ".pem"), path


def test_frozen_entry_point_runs_only_the_app_s_own_modules():
    code = ("import runpy, sys; sys.argv = ['huatuo', '-m', 'os']; "
            "sys.exit(runpy.run_path('installer/frozen_main.py')['main']())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "-m os: not a module this app runs" in result.stderr
