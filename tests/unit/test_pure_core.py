"""``oomdrgn.core`` is pure: standard library and ``oomdrgn.core`` only.

Two checks: every import statement of every module under ``core/`` (read with
``ast``, lazy imports inside functions included; only what mypy alone reads,
under ``if TYPE_CHECKING:``, left out) names the standard library or the core
itself; and every module imports with ``drgn`` and ``gdb`` made
unimportable.
"""

import ast
import subprocess
import sys
from pathlib import Path

import oomdrgn.core

CORE_DIR = Path(oomdrgn.core.__file__).parent


def _modules():
    for path in sorted(CORE_DIR.rglob("*.py")):
        rel = path.relative_to(CORE_DIR).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield path, ".".join(["oomdrgn", "core", *parts])


def _imports(path: Path, module: str):
    """(line, absolute name) of every import in *path* that runs."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            node.body = []  # never run: mypy's
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield node.lineno, name


def test_core_is_walked():
    names = [m for _, m in _modules()]
    # The core holds the records, formats, questions and the target port.
    for expected in ("oomdrgn.core.model", "oomdrgn.core.formats", "oomdrgn.core.oom",
                     "oomdrgn.core.port", "oomdrgn.core.kernel", "oomdrgn.core.logparse"):
        assert expected in names


def test_core_imports_only_stdlib_and_core():
    stdlib = sys.stdlib_module_names
    bad = []
    for path, module in _modules():
        for line, name in _imports(path, module):
            top = name.split(".")[0]
            if name == "oomdrgn.core" or name.startswith("oomdrgn.core."):
                continue
            if top in stdlib and top != "oomdrgn":
                continue
            bad.append(f"{path.relative_to(CORE_DIR)}:{line}: import {name}")
    assert not bad, "\n".join(bad)


def test_core_imports_without_drgn_or_gdb():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('drgn', 'gdb', '_drgn'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        + "".join(f"import {m}\n" for _, m in _modules())
        + "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
