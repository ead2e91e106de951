"""The data folder is its owner's alone: conversations, images, practice answers, settings and models are kept
where no other account on a shared workstation can read, change or list them. Qt-free.

On Linux and macOS the folder is 0700 and everything in it 0600/0700: the app sets its process umask to 077 before
it opens anything (SQLite, the engine worker and the quantizer it starts inherit it; SQLite gives its -wal, -shm and
-journal files the mode of their database), and an installation found wider is narrowed on start. On Windows the
folder is under the user's own profile (%LOCALAPPDATA%), private by its inherited ACL; the check reads that ACL.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.paths import data_dir

PRIVATE_UMASK = 0o077
OPEN_TO_OTHERS = 0o077  # the group's and everyone else's permission bits
_user_umask: int | None = None  # the umask the process started with: what the user wants outside the data folder


def restrict_new_files() -> None:
    """From now on every file and folder this process, and every process it starts, creates is its owner's only."""
    global _user_umask
    previous = os.umask(PRIVATE_UMASK)
    if _user_umask is None:
        _user_umask = previous


def user_file_mode() -> int:
    """The mode the user's own umask gives a new file: for what is saved where the user chooses (exports)."""
    return 0o666 & ~_starting_umask()


def user_folder_mode() -> int:
    return 0o777 & ~_starting_umask()


def _starting_umask() -> int:
    if _user_umask is not None:
        return _user_umask
    current = os.umask(PRIVATE_UMASK)  # the only way to read it: set, then put back
    os.umask(current)
    return current


# --- narrowing an installation ---------------------------------------------------------------------------------
@dataclass
class Tightening:
    """What securing the data folder did: paths narrowed (path, mode before, mode after) and paths left as they were
    because they could not be changed (path, why)."""

    folder: Path
    narrowed: list[tuple[Path, int, int]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def notice(self) -> str | None:
        """What to tell the user, once; None when there was nothing to do."""
        lines = []
        if self.narrowed:
            lines.append(f"Other users of this computer could read your data folder ({self.folder}): "
                         f"{_count(len(self.narrowed), 'file or folder', 'files and folders')} "
                         f"{'is' if len(self.narrowed) == 1 else 'are'} now readable by you only.")
        if self.skipped:
            shown = "; ".join(f"{_name(path, self.folder)}: {why}" for path, why in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            lines.append(f"{_count(len(self.skipped), 'path', 'paths')} in {self.folder} could not be made private "
                         f"({shown}{more}); change their permissions by hand or ask an administrator.")
        return " ".join(lines) or None


def secure_data_folder(folder: Path | None = None, *, create: bool = True) -> Tightening:
    """Create the data folder 0700, or narrow an existing one: every folder wider than 0700 and every file wider
    than 0600 loses its group and other bits. Symbolic links are never followed; what cannot be changed is
    reported, not fatal."""
    folder = Path(folder) if folder is not None else data_dir()
    result = Tightening(folder)
    if not folder.exists():
        if create:
            try:
                folder.mkdir(mode=0o700, parents=True)
                if os.name != "nt":
                    os.chmod(folder, 0o700)  # whatever the umask: the folder is never open to others
            except OSError as exc:
                result.skipped.append((folder, f"cannot be created: {exc.strerror or exc}"))
        return result
    if os.name == "nt":  # modes mean nothing there; the profile's ACL keeps the folder private (checked by selftest)
        return result
    for path, info in _everything(folder, result.skipped):
        if not _narrowable(info):
            continue
        before = stat.S_IMODE(info.st_mode)
        if before & OPEN_TO_OTHERS:
            after = before & 0o700
            try:
                os.chmod(path, after)  # not a link (checked with lstat), so nothing outside is reached
            except OSError as exc:
                result.skipped.append((path, f"{exc.strerror or exc} (mode {before:04o})"))
            else:
                result.narrowed.append((path, before, after))
    return result


def start() -> Tightening:
    """The app's start: private new files, then a private data folder (created or narrowed)."""
    restrict_new_files()
    return secure_data_folder()


# --- checking (read-only) --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Exposure:
    path: Path
    problem: str


def exposures(folder: Path) -> tuple[list[Exposure], int]:
    """Every path under folder (itself included) that another user could read, write or list, and how many paths
    were checked. Windows: the folder's ACL."""
    if os.name == "nt":
        problems = acl_problems(windows_sddl(folder), windows_user_sid())
        return [Exposure(folder, problem) for problem in problems], 1
    found: list[Exposure] = []
    unreadable: list[tuple[Path, str]] = []
    checked = 0
    for path, info in _everything(folder, unreadable):
        if not _narrowable(info):
            continue
        checked += 1
        mode = stat.S_IMODE(info.st_mode)
        if mode & OPEN_TO_OTHERS:
            found.append(Exposure(path, f"{mode:04o}: {_who_can(mode, stat.S_ISDIR(info.st_mode))}"))
        elif info.st_uid != os.getuid():
            found.append(Exposure(path, f"belongs to another user (uid {info.st_uid})"))
    found += [Exposure(path, why) for path, why in unreadable]
    return found, checked


def _everything(folder: Path, problems: list[tuple[Path, str]]) -> Iterator[tuple[Path, os.stat_result]]:
    """folder itself, then everything under it, each folder before what it holds (so a folder is narrowed before
    it is listed). Symbolic links are yielded, never followed."""
    try:
        yield folder, folder.stat()
    except OSError as exc:
        problems.append((folder, f"cannot be read: {exc.strerror or exc}"))
        return
    pending = [folder]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            problems.append((directory, f"cannot be listed: {exc.strerror or exc}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problems.append((path, f"cannot be read: {exc.strerror or exc}"))
                continue
            yield path, info
            if stat.S_ISDIR(info.st_mode):
                pending.append(path)


def _narrowable(info: os.stat_result) -> bool:
    """Links are not followed. A model imported as a hard link shares its mode with the user's own file outside
    (changing one changes both), so it is left as it is: the 0700 folder is what keeps others away from it."""
    if stat.S_ISLNK(info.st_mode):
        return False
    return not (stat.S_ISREG(info.st_mode) and info.st_nlink > 1)


def _who_can(mode: int, is_folder: bool) -> str:
    """E.g. 'its group and other users can read' for 0644."""
    words = ((4, "list" if is_folder else "read"), (2, "write"), (1, "enter" if is_folder else "run"))
    group, others = ("/".join(verb for bit, verb in words if bits & bit) for bits in ((mode >> 3) & 7, mode & 7))
    if group == others:
        return f"its group and other users can {group}"
    return " and ".join(f"{who} can {verbs}" for who, verbs in (("its group", group), ("other users", others))
                        if verbs)


def _count(n: int, one: str, many: str) -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"


def _name(path: Path, folder: Path) -> str:
    return "the folder itself" if path == folder else str(path.relative_to(folder))


# --- Windows: the folder's ACL ---------------------------------------------------------------------------------
# Who may hold rights on the folder besides the user: the system, administrators, and the owner / creator-owner
# placeholders that stand for the user.
TRUSTED_SIDS = {"SY": "S-1-5-18", "BA": "S-1-5-32-544", "OW": "S-1-3-4", "CO": "S-1-3-0"}
ALIASES = {"WD": "Everyone", "AU": "Authenticated Users", "BU": "Users", "IU": "interactive users",
           "AN": "anonymous", "BG": "Guests", "NU": "network users", "S-1-1-0": "Everyone",
           "S-1-5-11": "Authenticated Users", "S-1-5-32-545": "Users", "S-1-5-4": "interactive users"}
# Access masks by SDDL right: reading or listing, writing or adding, changing the ACL or the owner.
RIGHTS = {"GA": 0x10000000, "GX": 0x20000000, "GW": 0x40000000, "GR": 0x80000000, "RC": 0x20000, "SD": 0x10000,
          "WD": 0x40000, "WO": 0x80000, "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "RP": 0x10, "WP": 0x20,
          "DT": 0x40, "LO": 0x80, "CR": 0x100, "FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0}
READ_WRITE_LIST = 0x1 | 0x2 | 0x4 | 0x40000 | 0x80000 | 0x2000000 | 0x10000000 | 0x40000000 | 0x80000000
ALLOW_TYPES = {"A", "OA", "XA", "ZA"}


def acl_problems(sddl: str, user_sid: str | None) -> list[str]:
    """Who besides the user (and the system and administrators) may read, write or list the folder, from its
    security descriptor in SDDL (as GetNamedSecurityInfo gives it: locale-independent SIDs and rights)."""
    parts = re.fullmatch(r"(?:O:(S-[0-9-]+|[A-Z]{2}))?(?:G:(?:S-[0-9-]+|[A-Z]{2}))?(?:D:([A-Z_]*)(.*?))?"
                         r"(?:S:.*)?", sddl.strip(), re.DOTALL)
    if parts is None or parts.group(2) is None or "NO_ACCESS_CONTROL" in parts.group(2):
        return ["the folder has no access control list: everyone may open it"]
    user = user_sid or parts.group(1)  # the user unknown: the folder's owner stands for them
    trusted = set(TRUSTED_SIDS) | set(TRUSTED_SIDS.values()) | ({user} if user else set())
    problems = []
    for ace in _aces(parts.group(3)):
        kind, _flags, rights, _object, _inherited, sid, *_ = ace.split(";") + [""] * 6
        if kind in ALLOW_TYPES and sid not in trusted and _mask(rights) & READ_WRITE_LIST:
            problems.append(f"{ALIASES.get(sid, sid)} may read or change it ({rights})")
    return problems


def _aces(text: str) -> list[str]:
    """The top-level parenthesised ACEs of a DACL (a conditional ACE holds parentheses of its own)."""
    aces, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if depth == 0 and char != "(":
            break
        if char == "(":
            depth += 1
            if depth == 1:
                start = i + 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                aces.append(text[start:i])
    return aces


def _mask(rights: str) -> int:
    if rights.lower().startswith("0x"):
        return int(rights, 16)
    mask = 0
    for code in (rights[i:i + 2] for i in range(0, len(rights), 2)):
        mask |= RIGHTS.get(code, READ_WRITE_LIST)  # a right not known here counts as access
    return mask


def windows_sddl(folder: Path) -> str:
    """The folder's owner and DACL in SDDL, through advapi32 (Windows only)."""
    import ctypes
    from ctypes import wintypes

    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    se_file_object, owner_and_dacl = 1, 0x1 | 0x4
    descriptor = ctypes.c_void_p()
    error = advapi32.GetNamedSecurityInfoW(wintypes.LPCWSTR(str(folder)), se_file_object, owner_and_dacl,
                                           None, None, None, None, ctypes.byref(descriptor))
    if error:
        raise OSError(error, ctypes.FormatError(error), str(folder))
    try:
        text = ctypes.c_wchar_p()
        if not advapi32.ConvertSecurityDescriptorToStringSecurityDescriptorW(
                descriptor, 1, owner_and_dacl, ctypes.byref(text), None):
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            return text.value or ""
        finally:
            kernel32.LocalFree(ctypes.cast(text, ctypes.c_void_p))
    finally:
        kernel32.LocalFree(descriptor)


def windows_user_sid() -> str | None:
    """The SID of the user running the app (`whoami /user`, present on every Windows)."""
    try:
        output = subprocess.run(["whoami", "/user", "/fo", "csv", "/nh"], capture_output=True, text=True,
                                timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_whoami_sid(output)


def parse_whoami_sid(output: str) -> str | None:
    match = re.search(r'"(S-1-[0-9-]+)"', output)
    return match.group(1) if match else None
