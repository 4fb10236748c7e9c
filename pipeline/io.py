"""Writing outputs atomically and hashing inputs.

Every output is written to a temporary file OUTSIDE its destination folder and renamed into
place (``os.replace``, atomic on one file system), so a crash -- even ``kill -9`` -- never leaves
a half-written file or a stray temporary file in ``reports/`` or ``data/processed/``. The
temporary files live in a per-process folder of ``.backpain-tmp/`` in the project (the working
directory), or of the system temporary folder for outputs elsewhere; the next run deletes the
folders of processes that are no longer alive (:func:`clean_stale_staging`).
Bytes are deterministic: JSON keys are sorted, ZIP-based files (xlsx) get fixed timestamps.
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# A fixed timestamp for the members of ZIP containers (xlsx), so the same data give the same bytes.
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)
_OFFICE_TIMESTAMP = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


# Temporary files of atomic writes go to a per-process folder under this name (never into the
# destination folder); the folder of a process that died is removed by the next run.
STAGING_DIR = ".backpain-tmp"
_staging: dict[Path, Path] = {}
_staging_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_staging(root: str | Path) -> list[Path]:
    """Delete the staging folders under ``root`` whose process is no longer running.

    Folders are named ``<pid>-<random>`` (:func:`write_atomic`); a folder whose process was
    killed holds the temporary file it was writing. Returns the folders removed.
    """
    removed = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for folder in root.iterdir():
        pid = folder.name.split("-", 1)[0]
        if (
            folder.is_dir()
            and pid.isdigit()
            and int(pid) != os.getpid()
            and not _pid_alive(int(pid))
        ):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _staging_root(path: Path) -> Path:
    """Where the temporary file for ``path`` goes: ``.backpain-tmp`` in the working directory
    for outputs under it, else the system temporary folder if it is on the same file system
    (so the rename stays atomic), else the destination folder itself (a hidden file, last resort)."""
    parent = path.parent.resolve()
    cwd = Path.cwd().resolve()
    if parent.is_relative_to(cwd):
        return cwd / STAGING_DIR
    system = Path(tempfile.gettempdir()).resolve() / f"{STAGING_DIR}-{os.getuid()}"
    try:
        if system.parent.stat().st_dev == parent.stat().st_dev:
            return system
    except OSError:
        pass
    return parent


def _staging_folder(path: Path) -> Path:
    """This process's staging folder for ``path`` (created, and stale ones cleaned, once)."""
    root = _staging_root(path)
    if root == path.parent.resolve():
        return root
    with _staging_lock:
        folder = _staging.get(root)
        if folder is None or not folder.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            clean_stale_staging(root)
            folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
            _staging[root] = folder
    return folder


def _remove_staging_folders() -> None:
    """At exit: remove this process's staging folders (the shared root stays: others may use it)."""
    for folder in list(_staging.values()):
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_staging_folders)


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the temporary file onto ``path``.

    The temporary file is outside the destination folder (see the module docstring), so a
    crash or a killed process leaves nothing in it; leftovers ``.<name>.*.tmp`` of older
    versions, which wrote beside the destination, are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=_staging_folder(path)
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give outputs the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically with Unix newlines."""
    return write_bytes(path, text.encode("utf-8"))


def to_json_text(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, NaN written as null)."""
    return json.dumps(_json_safe(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically (see :func:`to_json_text`)."""
    return write_text(path, to_json_text(obj))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a data frame to Parquet atomically, without the pandas index."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_csv_frame(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write a data frame to CSV atomically (no index, Unix newlines)."""
    return write_text(path, frame.to_csv(index=False, lineterminator="\n"))


def normalise_zip(data: bytes) -> bytes:
    """Rewrite a ZIP container (xlsx) with fixed timestamps, for byte-identical files.

    Both the ZIP members' dates and the document's own created/modified properties
    (``docProps/core.xml``, which openpyxl stamps with the time of saving) are fixed.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _OFFICE_TIMESTAMP.sub(rb"\g<1>2020-01-01T00:00:00Z\g<2>", content)
            target.writestr(member, content)
    return out.getvalue()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One SHA-256 over several files (names and bytes, in sorted name order)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def raw_data_sha256(ingest_report: dict) -> str:
    """One hash of a study's raw inputs: the SHA-256 of every input file and of its study.yaml.

    Unlike a hash of the processed tables it does not depend on the pseudonymisation key, so
    the same raw data give the same hash on every machine.
    """
    provenance = ingest_report["provenance"]
    parts = sorted(f"{name}:{entry['sha256']}" for name, entry in provenance["input_files"].items())
    parts.append(f"study.yaml:{provenance['study_yaml_sha256']}")
    return sha256_text("\n".join(parts))


def sha256_text(text: str) -> str:
    """SHA-256 of a string (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_safe(obj: Any) -> Any:
    """Convert numpy/pandas scalars, NaN and paths into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return obj.as_posix()
    if obj is pd.NA or obj is pd.NaT:
        return None
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and obj != obj:  # NaN
        return None
    return obj
