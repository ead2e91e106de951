"""The data folder and everything in it are open to their owner only: on a fresh start, after narrowing an
installation that other users could read, and after real use (a conversation with an image, a practice answer,
settings, the audit log, a model import, the engine worker). `--selftest` reports what another user could reach."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app import privacy

ROOT = Path(__file__).resolve().parents[2]
posix = pytest.mark.skipif(os.name == "nt", reason="POSIX modes (Windows: the ACL tests at the end)")


@pytest.fixture(autouse=True)
def umask_restored(monkeypatch):
    """The app sets its umask for the whole process on purpose; a test must give it back."""
    before = os.umask(0o022)  # the usual desktop default, so 'wide' below means what it says
    monkeypatch.setattr(privacy, "_user_umask", None)
    yield
    os.umask(before)


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    return folder


def png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def open_to_others(folder: Path) -> dict[str, str]:
    """Every path under folder (itself included) with a group or other permission bit, and its mode."""
    found = {}
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o077:
            found[str(path.relative_to(folder))] = f"{mode:04o}"
    return found


def make_wide_installation(folder: Path) -> None:
    """What an earlier version left behind under umask 022: 0755 folders, 0644 files, a real conversation."""
    from app.settings import Settings
    from app.store import Store

    (folder / "models" / "old-model").mkdir(parents=True)
    with Store(folder / "conversations.sqlite3") as store:
        cid = store.create_conversation("earlier")
        store.add_turn(cid, "What is shown?", [store.add_image(cid, png(1), "earlier image")])
    Settings().save(folder)
    (folder / "models" / "old-model" / "manifest.json").write_text("{}")
    (folder / "practice.sqlite3").write_bytes(b"")
    (folder / "audit.jsonl").write_bytes(b"")
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def use_the_app(folder: Path, converted) -> None:
    """Real use of everything that writes into the data folder, checking SQLite's companions while open."""
    from app.audit import AskedQuestion, AuditLog, sha256_text
    from app.paths import models_dir
    from app.practice import Progress, load_deck, sample_deck_path
    from app.settings import Settings
    from app.store import Store
    from inference.store.models import import_pair, set_default_model

    with Store.open_default() as store:
        cid = store.create_conversation("CT chest", store.study_key("1.2.3"), {}, {}, {})
        turn = store.add_turn(cid, "Describe the image.", [store.add_image(cid, png(2), "slice 12")])
        store.append_answer(turn, "A grey")
        assert (folder / "conversations.sqlite3-wal").exists() and (folder / "conversations.sqlite3-shm").exists()
        assert open_to_others(folder) == {}, "while the conversation database is open"
        store.finish_answer(turn, "stop", [1, 2], {}, text="A grey square.")
    progress = Progress()
    deck = load_deck(sample_deck_path())
    progress.record(deck, deck.items[0], "a bright region on the left", choice=0)
    assert (folder / "practice.sqlite3-wal").exists()
    assert open_to_others(folder) == {}, "while the practice database is open"
    progress.close()
    settings = Settings.load()
    settings.theme = "dark"
    settings.save()
    AuditLog().record_answer(AskedQuestion(None, (sha256_text("image"),), {}, {}, "q"), "a", "stop")
    source = converted("qwen2", "original", "F32")
    text = next(p for p in source.glob("*.gguf") if "mmproj" not in p.name)
    model = import_pair(text, next(source.glob("*mmproj*.gguf")), models_dir(), name="tiny")
    set_default_model(models_dir(), model.folder)


@posix
@pytest.mark.parametrize("installation", ["fresh", "wide"])
def test_nothing_in_the_data_folder_is_open_to_others_after_start_and_use(installation, data, converted):
    if installation == "wide":
        make_wide_installation(data)
        assert open_to_others(data)["conversations.sqlite3"] == "0644"
    tightening = privacy.start()
    if installation == "fresh":
        assert tightening.narrowed == [] and tightening.notice() is None
    else:
        narrowed = {str(path.relative_to(data)): (before, after) for path, before, after in tightening.narrowed}
        assert narrowed["."] == (0o755, 0o700) and narrowed["models/old-model"] == (0o755, 0o700)
        assert narrowed["conversations.sqlite3"] == (0o644, 0o600)
        assert len(narrowed) == len([data, *data.rglob("*")])
        assert f"{len(narrowed)} files and folders are now readable by you only" in tightening.notice()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    use_the_app(data, converted)
    assert open_to_others(data) == {}
    assert {p.name for p in data.iterdir()} >= {"conversations.sqlite3", "practice.sqlite3", "settings.json",
                                                 "audit.jsonl", "models"}
    assert privacy.exposures(data)[0] == []
    assert privacy.secure_data_folder().notice() is None  # said once: nothing is left to narrow


@posix
def test_the_engine_worker_inherits_the_private_umask(data, converted):
    from inference.engine import Engine

    privacy.start()
    with Engine.from_folder(converted("qwen2", "original", "F32")) as engine:
        status = Path(f"/proc/{engine.pid}/status")
        if not status.exists():
            pytest.skip("no /proc to read another process's umask")
        umask = next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("Umask:"))
    assert int(umask, 8) == 0o077


@posix
def test_links_are_never_followed_out_of_the_folder(data, tmp_path):
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "file.txt").write_text("someone else's")
    (outside / "folder" / "inside.txt").write_text("also")
    data.mkdir()
    (data / "link-to-file").symlink_to(outside / "file.txt")
    (data / "link-to-folder").symlink_to(outside / "folder", target_is_directory=True)
    privacy.secure_data_folder()
    assert open_to_others(outside) == {".": "0755", "folder": "0755", "file.txt": "0644", "folder/inside.txt": "0644"}
    assert privacy.exposures(data)[0] == []


@posix
def test_a_hard_linked_model_file_keeps_the_mode_it_shares_with_the_users_own_file(data, tmp_path):
    """Narrowing it would change the user's own file outside too; the 0700 folder keeps others away from it."""
    source = tmp_path / "model.gguf"
    source.write_bytes(b"GGUF")
    os.chmod(source, 0o644)
    (data / "models" / "linked").mkdir(parents=True)
    os.link(source, data / "models" / "linked" / "model.gguf")
    tightening = privacy.secure_data_folder()
    assert sorted(p.name for p, _, _ in tightening.narrowed) == ["data", "linked", "models"]  # folders only
    assert stat.S_IMODE(source.stat().st_mode) == 0o644
    assert privacy.exposures(data)[0] == []


@posix
def test_a_missing_folder_is_created_private_only_when_the_app_starts(data):
    assert privacy.secure_data_folder(create=False).notice() is None and not data.exists()
    privacy.secure_data_folder()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


@posix
def test_what_the_user_saves_elsewhere_keeps_the_users_own_permissions():
    privacy.restrict_new_files()
    assert os.umask(0o077) == 0o077
    assert privacy.user_file_mode() == 0o644 and privacy.user_folder_mode() == 0o755


def _secure_as_nobody(folder: Path, conn) -> None:
    os.setgid(65534)
    os.setuid(65534)
    tightening = privacy.secure_data_folder(folder)
    conn.send((len(tightening.narrowed), tightening.notice()))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs a second account: run as root")
def test_what_cannot_be_narrowed_is_reported_not_fatal():
    """Files of another account (here: root's, seen by `nobody`) cannot be changed; the start says which."""
    base = Path(tempfile.mkdtemp())
    try:
        os.chmod(base, 0o755)
        folder = base / "data"
        folder.mkdir(mode=0o755)
        (folder / "notes.json").write_text("{}")
        os.chmod(folder / "notes.json", 0o644)
        parent, child = multiprocessing.get_context("fork").Pipe(duplex=False)
        process = multiprocessing.get_context("fork").Process(target=_secure_as_nobody, args=(folder, child))
        process.start()
        child.close()
        narrowed, notice = parent.recv()
        process.join()
        assert narrowed == 0
        assert notice.startswith(f"2 paths in {folder} could not be made private (the folder itself: ")
        assert "notes.json: Operation not permitted (mode 0644)" in notice
        assert stat.S_IMODE((folder / "notes.json").stat().st_mode) == 0o644
    finally:
        shutil.rmtree(base)


# --- the command line and the window say so once -------------------------------------------------------------------
def huatuo(*args: str, data: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HUATUO_DATA_DIR": str(data), "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@posix
def test_a_command_narrows_an_installation_says_so_once_and_leaves_its_own_output_to_the_user(data, tmp_path):
    data.mkdir(mode=0o755)
    (data / "settings.json").write_text("{}")
    os.chmod(data / "settings.json", 0o644)
    Image.open(io.BytesIO(png(3))).save(tmp_path / "in.png")
    first = huatuo("render", str(tmp_path / "in.png"), "--out", str(tmp_path / "out.png"), data=data)
    assert first.returncode == 0, first.stderr
    notes = [line for line in first.stderr.splitlines() if line.startswith("note:")]
    assert notes == [f"note: Other users of this computer could read your data folder ({data}): 2 files and "
                     f"folders are now readable by you only."]
    assert open_to_others(data) == {}
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o644  # where the user pointed it: their umask
    again = huatuo("render", str(tmp_path / "in.png"), "--out", str(tmp_path / "out.png"), data=data)
    assert again.returncode == 0 and "note:" not in again.stderr


# The desktop app as `huatuo` starts it, in a process of its own: every dialog it shows at start is noted and
# closed, then the window is closed once the app's event loop runs (noting whether Python collects reference cycles
# automatically then: the app leaves that to its GUI thread, app/ui/gui_gc.py).
START_THE_WINDOW = """
import gc, json, sys
from PySide6.QtCore import QThread, QTimer
from PySide6.QtWidgets import QApplication
import app.cpu_check
from app.ui.main import run_gui

app.cpu_check.unsupported_cpu_message = lambda: None  # only the data folder's notice here, on any processor
seen, running = [], {}

def step():
    box = QApplication.activeModalWidget()
    if box is not None:
        seen.append([box.windowTitle(), box.text()])
        box.accept()
    elif QThread.currentThread().loopLevel() == 1:  # the app's own loop: the start is over
        running["automatic_gc"] = gc.isenabled()
        for widget in QApplication.topLevelWidgets():
            widget.close()
        QApplication.quit()

QApplication(sys.argv[:1])
timer = QTimer()
timer.timeout.connect(step)
timer.start(20)
code = run_gui([])
print(json.dumps({"code": code, "seen": seen, **running}))
"""


@posix
def test_the_window_says_once_that_the_data_folder_was_made_private(data):
    from app.settings import Settings

    data.mkdir(mode=0o755)
    Settings(acknowledged="2025-01-01T00:00:00+00:00").save(data)
    os.chmod(data / "settings.json", 0o644)
    env = {**os.environ, "HUATUO_DATA_DIR": str(data), "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}

    def start_the_window() -> list[list[str]]:
        result = subprocess.run([sys.executable, "-c", START_THE_WINDOW], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert report["code"] == 0 and report["automatic_gc"] is False
        return report["seen"]

    assert start_the_window() == [["Your data folder is now private",
                                   f"Other users of this computer could read your data folder ({data}): 2 files "
                                   f"and folders are now readable by you only."]]
    assert (data / "conversations.sqlite3").exists()  # opened by the window, after the folder was narrowed
    assert open_to_others(data) == {}
    assert start_the_window() == []


# --- `huatuo --selftest` ---------------------------------------------------------------------------------------------
def selftest(data: Path) -> dict:
    env = {**os.environ, "HUATUO_DATA_DIR": str(data), "QT_QPA_PLATFORM": "offscreen"}
    code = "import sys; from app.selftest import main; sys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "--selftest", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == (0 if report["passed"] else 1)
    return report


@posix
def test_selftest_fails_on_a_file_others_can_read_and_passes_once_the_app_narrowed_it(data):
    privacy.secure_data_folder()
    (data / "conversations.sqlite3").write_bytes(b"")
    os.chmod(data / "conversations.sqlite3", 0o644)
    before = selftest(data)
    failed = [c for c in before["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["data folder private"]
    assert failed[0]["detail"] == ("RuntimeError: other users can reach 1 path(s): conversations.sqlite3 0644: its "
                                   "group and other users can read (the app narrows its data folder when it next "
                                   "starts)")
    assert stat.S_IMODE((data / "conversations.sqlite3").stat().st_mode) == 0o644  # the self-test changes nothing

    assert [p.name for p, _, _ in privacy.start().narrowed] == ["conversations.sqlite3"]
    after = selftest(data)
    assert after["passed"]
    check = next(c for c in after["checks"] if c["name"] == "data folder private")
    assert check["detail"].startswith(f"{data}: 2 paths, owner only; the ")


# --- Windows: the folder's ACL, read from its security descriptor ----------------------------------------------------
USER = "S-1-5-21-1004336348-1177238915-682003330-1001"
PROFILE_DEFAULT = f"O:{USER}G:{USER}D:PAI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIID;FA;;;{USER})"


def test_the_default_profile_acl_is_private():
    assert privacy.acl_problems(PROFILE_DEFAULT, USER) == []
    assert privacy.acl_problems(PROFILE_DEFAULT, None) == []  # `whoami` gave nothing: the owner is the user
    # a conditional ACE (parentheses of its own) and a SACL after the DACL are read correctly
    conditional = PROFILE_DEFAULT + f"(XA;;FR;;;{USER};(Member_of {{SID(BA)}}))S:AI(AU;SA;FA;;;WD)"
    assert privacy.acl_problems(conditional, USER) == []


@pytest.mark.parametrize("ace, who", [
    ("(A;OICI;FA;;;WD)", "Everyone"),
    ("(A;OICIID;0x1200a9;;;BU)", "Users"),
    ("(A;;FR;;;AU)", "Authenticated Users"),
    ("(A;OICIIO;GR;;;S-1-5-21-1-2-3-1002)", "S-1-5-21-1-2-3-1002"),  # inherited by what the folder holds
    ("(A;;CCLC;;;S-1-5-32-545)", "Users"),  # list the folder, add a folder
])
def test_another_principal_with_read_or_list_access_is_named(ace, who):
    problems = privacy.acl_problems(PROFILE_DEFAULT + ace, USER)
    assert len(problems) == 1 and problems[0].startswith(f"{who} may read or change it")


@pytest.mark.parametrize("ace", [
    "(D;OICI;FA;;;WD)",  # a deny entry takes access away
    "(A;;FX;;;BU)",  # traverse only: cannot list or read
    "(A;OICIIO;FA;;;CO)",  # creator owner: the user again
])
def test_entries_that_grant_no_one_else_read_access_pass(ace):
    assert privacy.acl_problems(PROFILE_DEFAULT + ace, USER) == []


def test_no_access_control_list_is_reported():
    no_list = ["the folder has no access control list: everyone may open it"]
    assert privacy.acl_problems(f"O:{USER}D:NO_ACCESS_CONTROL", USER) == no_list
    assert privacy.acl_problems(f"O:{USER}G:DU", USER) == no_list


def test_the_users_sid_is_read_from_whoami():
    assert privacy.parse_whoami_sid(f'"desktop-7\\dr li","{USER}"\r\n') == USER
    assert privacy.parse_whoami_sid("ERROR: access denied") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux location")
def test_the_data_folder_is_the_users_data_folder_unless_one_is_named(monkeypatch, tmp_path):
    from app.paths import data_dir

    monkeypatch.delenv("HUATUO_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert data_dir() == tmp_path / "home" / ".local" / "share" / "HuatuoVision"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "HuatuoVision"
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "named"))
    assert data_dir() == tmp_path / "named"
