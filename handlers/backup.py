"""Durable file writes and timestamped backups that `fix-env --undo` restores byte for byte.

A write never leaves a half-written file: the new bytes go to a temporary file in the same
folder (same file system, so the rename is atomic), are fsynced, get the original file's mode
and owner, replace the target with one rename, and the folder is fsynced so the rename itself
survives a power cut. A symlinked file is written at its target, the link stays a link.

A backup is a folder `<BACKUP_DIR>/<UTC timestamp>-<id>/` (0700) holding copies of the files
(0600) and of the database rows a fix is about to change, plus `manifest.json` written last,
atomically: a backup without a manifest is an aborted one and is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from handlers.results import HandlerError

MANIFEST = "manifest.json"
ROWS = "rows.json"
# States of a backup: prepared (saved, changes may be under way or interrupted), applied,
# failed (the fix was rolled back: nothing to undo), undone.
UNDOABLE = ("prepared", "applied")


def sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def utc_stamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    micro = int((now % 1) * 1_000_000)
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{micro:06d}Z"


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == 30:  # EROFS
        return "read-only file system"
    if exc.errno == 28:  # ENOSPC
        return "no space left on device"
    return exc.strerror or str(exc)


def resolve_target(path: Path) -> Path:
    """The file a write to `path` must change: a symlinked `.env` is edited at its target."""
    return Path(os.path.realpath(path))


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, None when it does not exist; other errors are a HandlerError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HandlerError(f"cannot read {path}: {_why(exc)}") from None


@dataclass(frozen=True)
class Ownership:
    mode: int
    uid: int
    gid: int

    @classmethod
    def of(cls, st: os.stat_result) -> Ownership:
        return cls(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def atomic_write(
    path: Path,
    data: bytes,
    *,
    like: Ownership | None = None,
    exact: Ownership | None = None,
    validate: Callable[[Path], None] | None = None,
) -> Path:
    """Replace the file at `path` (its symlink target) with `data`, all or nothing.

    Mode and owner are the existing file's (or `like`'s for a new file; else 0644 and ours);
    `exact` imposes them (undo puts back the mode and owner a backup recorded).
    `validate(temp_path)` may inspect the finished temporary file and raise to abort.
    On any failure the original file is untouched and a HandlerError says what happened.
    Returns the path actually written.
    """
    target = resolve_target(path)
    folder = target.parent
    try:
        current = Ownership.of(os.stat(target))
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise HandlerError(f"cannot inspect {target}: {_why(exc)}; nothing was changed") from None
    wanted = exact or current or like or Ownership(0o644, os.geteuid(), os.getegid())
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise HandlerError(
            f"cannot write in {folder} ({_why(exc)}); {target.name} was not changed"
        ) from None
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
                os.fchmod(handle.fileno(), wanted.mode)
                if (wanted.uid, wanted.gid) != (os.geteuid(), os.getegid()):
                    try:
                        os.fchown(handle.fileno(), wanted.uid, wanted.gid)
                    except PermissionError:
                        raise HandlerError(
                            f"{target} belongs to uid {wanted.uid}/gid {wanted.gid} and this user "
                            "cannot keep that owner on a rewritten file: run as root or as that "
                            f"user; {target.name} was not changed"
                        ) from None
        except OSError as exc:
            raise HandlerError(
                f"writing {target.name} failed ({_why(exc)}); the original is unchanged"
            ) from None
        if validate is not None:
            validate(tmp)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise HandlerError(
                f"replacing {target} failed ({_why(exc)}); the original is unchanged"
            ) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The rename is done; a failed folder fsync only weakens its durability on power loss.
    with contextlib.suppress(OSError):
        fsync_dir(folder)
    return target


def remove_file(path: Path) -> None:
    """Delete a file a fix created (undo), fsyncing the folder."""
    target = resolve_target(path)
    try:
        target.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HandlerError(f"cannot remove {target}: {_why(exc)}") from None
    with contextlib.suppress(OSError):
        fsync_dir(target.parent)


def _ours_and_private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0


def _backup_root(root: Path) -> None:
    """BACKUP_DIR, created private when missing. An existing folder is never chmod'ed (it may
    be /tmp or a share): what keeps a backup private is its own 0700 folder inside."""
    try:
        root.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not root.is_dir():
            raise HandlerError(f"BACKUP_DIR {root} is not a folder; nothing was changed") from None


def _private_folder(folder: Path) -> None:
    """A new folder only this user can enter; refused (and removed) if it is not."""
    folder.mkdir(mode=0o700)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or not _ours_and_private(st):
        with contextlib.suppress(OSError):
            folder.rmdir()
        raise HandlerError(
            f"the backup folder {folder} would be readable by others (mode "
            f"{stat.S_IMODE(st.st_mode):o}, owner uid {st.st_uid}); nothing was changed. "
            "Check the umask and BACKUP_DIR's file system"
        )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class SavedFile:
    """One file as it was before a fix: `existed=False` means undo deletes it."""

    role: str  # env | override
    path: str  # as the project names it
    target: str  # the resolved file (symlink target)
    existed: bool
    copy: str | None  # file name inside the backup folder
    sha256: str | None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    # What the fix writes, recorded before it writes: undo restores only a file that still
    # holds exactly that (or the original), and shows what changed since otherwise.
    written_sha256: str | None = None
    written_copy: str | None = None  # file name inside the backup folder


@dataclass
class Backup:
    id: str
    dir: Path
    created_at: str
    project: str
    dify_dir: str
    user: str
    operation: str
    state: str = "prepared"
    files: list[SavedFile] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # db rows, see db_fix
    restart_services: list[str] = field(default_factory=list)
    db_changed: bool = False
    plan_id: str | None = None
    notes: list[str] = field(default_factory=list)
    undone_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["dir"] = str(self.dir)
        data.pop("rows")  # in rows.json, not in the manifest
        data["row_count"] = len(self.rows)
        return data

    def file(self, role: str) -> SavedFile | None:
        return next((f for f in self.files if f.role == role), None)

    def saved_bytes(self, saved: SavedFile) -> bytes | None:
        if not saved.existed or saved.copy is None:
            return None
        data = (self.dir / saved.copy).read_bytes()
        if sha256(data) != saved.sha256:
            raise HandlerError(f"backup {self.id}: copy of {saved.path} is damaged (checksum)")
        return data

    def written_bytes(self, saved: SavedFile) -> bytes | None:
        """What the fix wrote to this file (None: not recorded, e.g. an older backup)."""
        if saved.written_copy is None:
            return None
        data = (self.dir / saved.written_copy).read_bytes()
        if sha256(data) != saved.written_sha256:
            raise HandlerError(
                f"backup {self.id}: the copy of what was written to {saved.path} is damaged"
            )
        return data

    def record_written(self, role: str, data: bytes) -> None:
        """Keep what the fix is about to write to the file of `role` (a private copy and its
        checksum); the caller saves the manifest before writing."""
        for index, saved in enumerate(self.files):
            if saved.role == role:
                name = f"{index:02d}-{role}-written"
                _write_private(self.dir / name, data)
                self.files[index] = replace(saved, written_sha256=sha256(data), written_copy=name)

    def restore(self, saved: SavedFile) -> None:
        """Put one saved file back byte for byte, with the mode and owner it had; a file the
        fix created is removed."""
        data = self.saved_bytes(saved)
        if data is None:
            remove_file(Path(saved.target))
            return
        exact = None
        if saved.mode is not None and saved.uid is not None and saved.gid is not None:
            exact = Ownership(saved.mode, saved.uid, saved.gid)
        atomic_write(Path(saved.target), data, exact=exact)

    def put_back(self, roles: list[str]) -> list[str]:
        """Restore the saved files of these roles, last first; what could not be restored."""
        failed = []
        for role in reversed(roles):
            saved = self.file(role)
            if saved is None:
                continue
            try:
                self.restore(saved)
            except (HandlerError, OSError) as exc:
                failed.append(f"{saved.path}: {exc}")
        return failed

    def save_manifest(self) -> None:
        body = json.dumps(self.to_json(), indent=2, sort_keys=True).encode()
        atomic_write(self.dir / MANIFEST, body, like=Ownership(0o600, os.geteuid(), os.getegid()))

    def mark(self, state: str, **changes: Any) -> None:
        self.state = state
        for key, value in changes.items():
            setattr(self, key, value)
        self.save_manifest()


def create_backup(
    root: Path,
    *,
    project: str,
    dify_dir: Path,
    user: str,
    operation: str,
    files: list[tuple[str, Path]],
    rows: list[dict[str, Any]] | None = None,
    plan_id: str | None = None,
    prefix: str = "",
) -> Backup:
    """Copy `files` (role, path) and `rows` into a new private folder; manifest written last."""
    backup_id = f"{prefix}{utc_stamp()}-{secrets.token_hex(3)}"
    folder = root / backup_id
    try:
        _backup_root(root)
        _private_folder(folder)
        saved: list[SavedFile] = []
        for index, (role, path) in enumerate(files):
            target = resolve_target(path)
            data = read_bytes(target)
            if data is None:
                saved.append(SavedFile(role, str(path), str(target), False, None, None))
                continue
            st = os.stat(target)
            name = f"{index:02d}-{role}-{target.name.lstrip('.') or 'file'}"
            _write_private(folder / name, data)
            own = Ownership.of(st)
            saved.append(
                SavedFile(
                    role,
                    str(path),
                    str(target),
                    True,
                    name,
                    sha256(data),
                    own.mode,
                    own.uid,
                    own.gid,
                )
            )
        if rows:
            _write_private(folder / ROWS, json.dumps(rows, indent=2, sort_keys=True).encode())
        fsync_dir(folder)
    except HandlerError:
        raise
    except OSError as exc:
        raise HandlerError(
            f"cannot create the backup in {root} ({_why(exc)}); nothing was changed"
        ) from None
    backup = Backup(
        id=backup_id,
        dir=folder,
        created_at=utc_stamp(),
        project=project,
        dify_dir=str(dify_dir),
        user=user,
        operation=operation,
        files=saved,
        rows=list(rows or []),
        plan_id=plan_id,
    )
    backup.save_manifest()
    with contextlib.suppress(OSError):
        fsync_dir(root)
    return backup


def load_backup(folder: Path) -> Backup:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise HandlerError(f"backup {folder.name} has no readable manifest ({exc})") from None
    rows: list[dict[str, Any]] = []
    if (folder / ROWS).exists():
        rows = json.loads((folder / ROWS).read_text())
    files = [SavedFile(**f) for f in data.get("files", [])]
    return Backup(
        id=data["id"],
        dir=folder,
        created_at=data["created_at"],
        project=data["project"],
        dify_dir=data["dify_dir"],
        user=data.get("user", "?"),
        operation=data.get("operation", "?"),
        state=data.get("state", "prepared"),
        files=files,
        rows=rows,
        restart_services=list(data.get("restart_services", [])),
        db_changed=bool(data.get("db_changed", False)),
        plan_id=data.get("plan_id"),
        notes=list(data.get("notes", [])),
        undone_at=data.get("undone_at"),
    )


def _is_backup_folder(path: Path) -> bool:
    """Ours and private: in a shared BACKUP_DIR (/tmp) anyone could plant a folder with a
    manifest, and undo would write its files into Dify's folder."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _ours_and_private(st)


def iter_backups(root: Path) -> Iterator[Backup]:
    """Backups with a manifest, newest first (only folders of this user, private to it)."""
    try:
        # Names start with a UTC timestamp (after an optional "pre-undo-" prefix).
        names = sorted(
            (p for p in root.iterdir() if _is_backup_folder(p)),
            key=lambda p: p.name.removeprefix("pre-undo-"),
        )
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HandlerError(f"cannot list backups in {root}: {_why(exc)}") from None
    for folder in reversed(names):
        if (folder / MANIFEST).exists():
            try:
                yield load_backup(folder)
            except HandlerError:
                continue


def latest_undoable(root: Path, dify_dir: Path | None = None) -> Backup | None:
    wanted = str(dify_dir) if dify_dir is not None else None
    for backup in iter_backups(root):
        if backup.operation != "fix-env":
            continue
        if wanted is not None and backup.dify_dir != wanted:
            continue
        if backup.state in UNDOABLE:
            return backup
    return None


def find_backup(root: Path, backup_id: str) -> Backup:
    if "/" in backup_id or backup_id in ("", ".", ".."):
        raise HandlerError(f"not a backup id: {backup_id!r}")
    folder = root / backup_id
    if not (folder / MANIFEST).exists() or not _is_backup_folder(folder):
        raise HandlerError(f"no backup {backup_id} in {root}")
    return load_backup(folder)
