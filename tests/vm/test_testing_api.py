"""The public test API (oomdrgn.testing / the pytest plugin) on a real kernel."""

import os

import pytest

from oomdrgn.testing import OomGuest

# x86-64 only: the OomGuest API's default kernels.
pytestmark = [pytest.mark.vm, pytest.mark.arch("x86_64")]


@pytest.mark.timeout(600)
def test_guest_answers_and_leaves_nothing_behind(kernel):
    with OomGuest(kernel.name) as g:
        pid = g.guest._tty.pid  # the QEMU process
        workdir = g.guest.workdir
        user, = g.spawn("api-user", anon_mb=2, adj=700, uid=1000)
        table = g.tasks()
        assert any(l.endswith(" api-user") and f"[{user:7d}]" in l for l in table.splitlines())
        scores = g.scores()
        assert scores[user] == int(g.run(f"cat /proc/{user}/oom_score").strip())
        assert g.victim().chosen_pid == user
    assert not os.path.exists(workdir)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.timeout(600)
@pytest.mark.oomdrgn_kernel("6.1")
def test_plugin_fixture_with_marker(oom_guest):
    assert oom_guest.kernel.name == "6.1"
    assert oom_guest.run("uname -r").strip() == oom_guest.kernel.release
