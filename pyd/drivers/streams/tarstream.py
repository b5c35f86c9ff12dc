"""Write a tar of part of a container's root to stdout, from inside a chroot (layer: drivers).

C{python -m pyd.drivers.streams.tarstream ROOT SOURCE_DIR SOURCE_BASE REBASE}: C{chroot(ROOT)},
C{chdir(SOURCE_DIR)}, then archive C{SOURCE_BASE} (C{.} for a directory's content) with entry
names starting with C{REBASE} instead, as moby's C{TarResourceRebaseOpts}. Symlinks are stored as
links, never followed. C{REBASE} C{/} (export) names entries relative to the root. Numeric owners
and names from the container's own passwd/group files (we are inside its root).
"""

from __future__ import annotations

import os
import sys
import tarfile


def _name(rebase: str, rel: str) -> str:
    if rebase in ("/", ""):
        return rel
    if rel in (".", ""):
        return rebase
    return f"{rebase}/{rel}" if rebase != "." else f"./{rel}"


def write(source_base: str, rebase: str, out: object) -> None:
    """Archive C{source_base} (relative to the cwd) into C{out}."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        if source_base == ".":
            top = "."
            if rebase not in ("/", ""):
                tf.add(".", arcname=_name(rebase, "."), recursive=False)
        else:
            top = source_base
            tf.add(source_base, arcname=_name(rebase, "."), recursive=False)
            if not os.path.isdir(source_base) or os.path.islink(source_base):
                return
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, top)
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.normpath(os.path.join(rel_dir, name))
                try:
                    tf.add(full, arcname=_name(rebase, rel), recursive=False)
                except (FileNotFoundError, PermissionError):
                    continue  # vanished or unreadable while archiving
            # os.walk does not descend into symlinked directories (followlinks=False).


def main(argv: list[str]) -> int:
    """Entry point; see the module docstring."""
    if len(argv) != 4:
        sys.stderr.write("usage: tarstream ROOT SOURCE_DIR SOURCE_BASE REBASE\n")
        return 2
    root, source_dir, source_base, rebase = argv
    os.chroot(root)
    os.chdir(source_dir)
    out = os.fdopen(1, "wb", buffering=1 << 20, closefd=False)
    write(source_base, rebase, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
