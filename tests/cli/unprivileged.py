"""Run oomdrgn as an unprivileged user, whatever the mode of the clone's directory.

uid 65534 cannot read a clone (nor its venv) inside a 0700 directory such as
``/root``. :func:`world_readable_site` puts the ``oomdrgn`` package under test and
the distributions it requires (drgn) into a 0755 directory, hard-linked where it
can (else copied); :func:`python_for` finds a python of this same version that the
user can run.
"""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Set

import oomdrgn

__all__ = ["as_user", "python_for", "world_readable_site"]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _required(dist: str, seen: Set[str]) -> List[str]:
    """``dist``'s unconditional requirements, recursively (extras left out)."""
    names = []
    for req in importlib.metadata.requires(dist) or ():
        if "extra" in req.partition(";")[2]:
            continue
        name = re.split(r"[^A-Za-z0-9._-]", req, maxsplit=1)[0]
        if name.lower() not in seen:
            seen.add(name.lower())
            names += [name, *_required(name, seen)]
    return names


def world_readable_site(dest: Path) -> Path:
    """``dest`` (created, mode 0755) holding oomdrgn and what it requires."""
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    pkg = Path(oomdrgn.__file__).parent
    shutil.copytree(pkg, dest / "oomdrgn", copy_function=_link_or_copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in _required("oomdrgn", set()):
        dist = importlib.metadata.distribution(name)
        for rel in dist.files or ():
            if ".." in rel.parts or "__pycache__" in rel.parts:
                continue  # scripts in bin/, bytecode
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(str(dist.locate_file(rel)), str(target))
    for d in [dest, *(p for p in dest.rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    return dest


def as_user(uid: int, cmd: List[str]) -> List[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]


def python_for(uid: int) -> str:
    """A python of this version (X.Y) that ``uid`` can run: this one's real
    executable, else ``pythonX.Y`` from the system's directories."""
    version = "%d.%d" % sys.version_info[:2]
    candidates = [os.path.realpath(sys.executable),
                  shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin")]
    tried = []
    for exe in filter(None, candidates):
        res = subprocess.run(as_user(uid, [exe, "-c", "import sys; print('%d.%d' % "
                                                      "sys.version_info[:2])"]),
                             capture_output=True, text=True, cwd="/")
        if res.returncode == 0 and res.stdout.strip() == version:
            return exe
        tried.append(f"{exe}: {res.stdout.strip() or res.stderr.strip()}")
    raise RuntimeError(f"no python{version} that uid {uid} can run ({'; '.join(tried)})")
