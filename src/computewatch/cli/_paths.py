"""Path options checked when the command line is parsed (private).

Each command declares what a path is for with a Typer ``parser``::

    key: Annotated[Path, typer.Option("--key", parser=input_file())]

so a bad path is refused before any work starts, with one line naming the
option: an empty name (which would mean the working folder), a NUL byte, a
name longer than the file system allows, a missing input, a folder where a
file is read, an input larger than its reader accepts, an output in a missing
folder or on top of a folder. The checks are bound to the parser function as
its `role`, which is how the CLI's bad-input sweep knows what to feed it.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "MAX_INPUT_BYTES",
    "PathRole",
    "input_bytes",
    "input_file",
    "input_folder",
    "output_file",
    "output_folder",
    "role_of",
]

#: Largest input file any command reads unless it says otherwise (64 MiB).
MAX_INPUT_BYTES = 64 << 20
_NAME_MAX = 255  # bytes in one path component (ext4, xfs, btrfs, tmpfs)
_PATH_MAX = 4096


class PathRole(enum.Enum):
    """What a path option is for."""

    INPUT_FILE = "input file"  # parsed by the command: garbage is refused
    INPUT_BYTES = "input bytes"  # read as opaque bytes (firmware code)
    INPUT_FOLDER = "input folder"
    OUTPUT_FILE = "output file"
    OUTPUT_FOLDER = "output folder"


def _name(value: object) -> Path:
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text:
        msg = "expected a path, got an empty name"
        raise ValueError(msg)
    if "\x00" in text:
        msg = "expected a path, got a name with a NUL byte"
        raise ValueError(msg)
    raw = os.fsencode(text)
    longest = max((len(part) for part in raw.split(b"/")), default=0)
    if longest > _NAME_MAX or len(raw) > _PATH_MAX:
        msg = f"expected names of at most {_NAME_MAX} bytes, got one of {longest}"
        raise ValueError(msg)
    return Path(text)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        msg = f"{str(path)!r:.120}: a folder on the way is a file"
        raise ValueError(msg) from None
    except OSError as e:
        msg = f"{str(path)!r:.120}: cannot look at it ({e.strerror})"
        raise ValueError(msg) from None


def _input(path: Path, limit: int) -> Path:
    st = _stat(path)
    if st is None:
        msg = f"{str(path)!r:.120}: no such file"
        raise ValueError(msg)
    if path.is_dir():
        msg = f"{str(path)!r:.120}: expected a file, got a folder"
        raise ValueError(msg)
    if st.st_size > limit:
        msg = f"{str(path)!r:.120}: expected at most {limit} bytes, got {st.st_size}"
        raise ValueError(msg)
    return path


def _tag(role: PathRole, func: Callable[[object], Path]) -> Callable[[object], Path]:
    func.role = role  # type: ignore[attr-defined]  # read by role_of()
    return func


def input_file(max_bytes: int = MAX_INPUT_BYTES) -> Callable[[object], Path]:
    """A file the command parses: it must exist and hold at most `max_bytes`."""
    return _tag(PathRole.INPUT_FILE, lambda value: _input(_name(value), max_bytes))


def input_bytes(max_bytes: int = MAX_INPUT_BYTES) -> Callable[[object], Path]:
    """A file read as opaque bytes: it must exist and hold at most `max_bytes`."""
    return _tag(PathRole.INPUT_BYTES, lambda value: _input(_name(value), max_bytes))


def _input_folder(value: object) -> Path:
    path = _name(value)
    if _stat(path) is None:
        msg = f"{str(path)!r:.120}: no such folder"
        raise ValueError(msg)
    if not path.is_dir():
        msg = f"{str(path)!r:.120}: expected a folder, got a file"
        raise ValueError(msg)
    return path


def input_folder() -> Callable[[object], Path]:
    """A folder the command reads: it must exist."""
    return _tag(PathRole.INPUT_FOLDER, _input_folder)


def _output_file(value: object) -> Path:
    path = _name(value)
    st = _stat(path)
    if st is not None and path.is_dir():
        msg = f"{str(path)!r:.120}: expected a file to write, got a folder"
        raise ValueError(msg)
    parent = path.parent
    if _stat(parent) is None:
        msg = f"{str(path)!r:.120}: the folder {str(parent)!r:.120} does not exist"
        raise ValueError(msg)
    if not parent.is_dir():
        msg = f"{str(path)!r:.120}: {str(parent)!r:.120} is not a folder"
        raise ValueError(msg)
    return path


def output_file() -> Callable[[object], Path]:
    """A file the command writes: its folder must exist; it must not be a folder."""
    return _tag(PathRole.OUTPUT_FILE, _output_file)


def _output_folder(value: object) -> Path:
    path = _name(value)
    if _stat(path) is not None and not path.is_dir():
        msg = f"{str(path)!r:.120}: expected a folder, got a file"
        raise ValueError(msg)
    for ancestor in path.parents:  # made with parents=True: no file on the way
        if _stat(ancestor) is not None:
            if not ancestor.is_dir():
                msg = f"{str(path)!r:.120}: {str(ancestor)!r:.120} is not a folder"
                raise ValueError(msg)
            break
    return path


def output_folder() -> Callable[[object], Path]:
    """A folder the command creates (with its parents) or fills."""
    return _tag(PathRole.OUTPUT_FOLDER, _output_folder)


def role_of(parser: object) -> PathRole | None:
    """The role a parser of this module checks, or None for any other parser."""
    role = getattr(parser, "role", None)
    return role if isinstance(role, PathRole) else None
