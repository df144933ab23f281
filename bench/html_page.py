#!/usr/bin/env python3
"""How fast the page of a 10k-process dump opens in headless chromium.

Usage: bench/html_page.py [--kernel 6.1] [--processes 10000] [--repeat 5]
                          [--vmcore FILE --vmlinux FILE] [--keep DIR]
Makes a vmcore of a real guest with that many idle processes after a sysrq-f OOM
kill (its printk ring holds the whole table, so the page also sets 10k logged rows
beside memory), times ``oomdrgn html`` on it, then opens the page in Debian's
headless chromium --repeat times (a fresh load each time) and prints the
browser's own navigation timing (load event), the page size and the time one
click on a column header takes to sort the table.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))

from oomdrgn.testing.harness import Member, kernel_paths, sysrq_table  # noqa: E402
from tests.browser.chromium import Browser  # noqa: E402

_SORT = """
var name=arguments[0];
var th=[].slice.call(document.querySelectorAll('table.tasks th')).filter(function(h){
  return h.textContent.trim()===name;})[0];
var t0=performance.now();th.click();
return performance.now()-t0;"""


def make_dump(kernel: str, processes: int, workdir: Path) -> Path:
    art = sysrq_table(kernel, workdir, population=[Member("idle", fork=processes - 1)],
                      fmt="kdump-zlib", memory_mb=256 + processes * 130 // 1024,
                      append="log_buf_len=8M", timeout=1200)
    return Path(art.vmcores["kdump-zlib"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernel", default="6.1")
    parser.add_argument("--processes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vmcore", type=Path, help="use this dump (no guest made)")
    parser.add_argument("--vmlinux", type=Path)
    parser.add_argument("--keep", type=Path, help="keep the dump and page here")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="oomdrgn-bench-html-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        vmlinux = args.vmlinux or kernel_paths(args.kernel).vmlinux
        t0 = time.monotonic()
        vmcore = args.vmcore or make_dump(args.kernel, args.processes, workdir / "guest")
        if args.vmcore is None:
            print(f"dump of {args.processes} processes ({args.kernel}): "
                  f"{time.monotonic() - t0:.0f} s")
        page = workdir / "page.html"
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "oomdrgn.cli", "-q", "-c", str(vmcore), "-s",
                        str(vmlinux), "html", "-o", str(page)], check=True,
                       stdout=subprocess.DEVNULL)
        made = time.monotonic() - t0
        size = page.stat().st_size
        loads, sorts = [], []
        with Browser() as b:
            for _ in range(args.repeat):
                loads.append(b.open(page))
                rows = b.js("return document.querySelectorAll('table.tasks tbody tr').length;")
                sorts.append(b.js(_SORT, "rss") / 1000.0)
                assert not [u for u in b.requests() if u != page.resolve().as_uri()]
        print(f"oomdrgn html: {made:.2f} s, page {size / 1e6:.1f} MB, {rows} task rows")
        print(f"opens in headless chromium (load event, {args.repeat} fresh loads): "
              f"median {statistics.median(loads):.3f} s, max {max(loads):.3f} s")
        print(f"one click on the rss header sorts {rows} rows in: "
              f"median {statistics.median(sorts):.3f} s")
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
