"""Live targets that cannot be read: one line, distinct status, bounded time."""

import os
import socket
import threading

from oomdrgn.core import errors

from ..runner import run_oomdrgn


def oomdrgn(*args, timeout=120):
    return run_oomdrgn(*args, check_status=None, timeout=timeout)


def _one_line(res, status, *words):
    assert res.returncode == status, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oomdrgn: error: "), res.stderr
    for w in words:
        assert w in lines[0]


def test_qemu_socket_that_is_gone(tmp_path):
    _one_line(oomdrgn("--qemu", tmp_path / "gone.sock", "tasks"), errors.EXIT_TARGET,
              "cannot attach to the QEMU guest")


def test_qemu_socket_that_never_answers(tmp_path):
    path = str(tmp_path / "mute.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    conns = []
    t = threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True)
    t.start()
    try:
        res = oomdrgn("--qemu", path, "--timeout", "3", "tasks", timeout=60)
        _one_line(res, errors.EXIT_TARGET, "no answer", "3 s")
    finally:
        srv.close()


def test_no_proc_kcore_or_not_root():
    res = oomdrgn("-k", "tasks")
    if os.geteuid() == 0 and not os.path.exists("/proc/kcore"):
        _one_line(res, errors.EXIT_TARGET, "/proc/kcore does not exist")
    elif os.geteuid() != 0:
        _one_line(res, errors.EXIT_PERMISSION, "needs root")
    else:
        assert res.returncode in (0, errors.EXIT_DEBUGINFO, errors.EXIT_TARGET), res.stderr
        assert "Traceback" not in res.stderr
