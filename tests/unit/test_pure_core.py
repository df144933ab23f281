"""The pure core imports neither drgn nor gdb."""

import subprocess
import sys

CORE = ["cformat", "report", "eras", "model", "mmcounters", "kernelinfo", "codescan",
        "elffile", "oom", "commands", "errors", "badness", "decision", "logparse",
        "logreport", "report_commands", "klist", "diskdump"]


def test_core_imports_without_drgn_or_gdb():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('drgn', 'gdb', '_drgn'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        + "".join(f"import oomdrgn.{m}\n" for m in CORE)
        + "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
