"""Example: with these oom_score_adj settings and this memcg limit, the OOM
killer picks the batch job, not the database, on a real kernel.

Run: pytest examples/ [--oomdrgn-kernel 6.1]   (oomdrgn installed: the plugin
comes with it)
"""

import pytest


@pytest.mark.timeout(600)
def test_batch_job_is_killed_not_the_database(oom_guest):
    g = oom_guest
    g.cgroup("app", memory_max=64 << 20)  # a 64 MiB memcg with two children
    database, = g.spawn("database", anon_mb=16, adj=-500, cgroup="app/db")
    batch, = g.spawn("batchjob", anon_mb=6, adj=1000, uid=1000, cgroup="app/batch")

    # oomdrgn's prediction, from the paused guest's memory.
    choice = g.victim(memcg="/app")
    assert choice.chosen_pid == batch
    predicted = g.kill_line(batch, memcg=True)

    # Now for real: a hog in the same memcg runs it out of memory.
    event = g.trigger_oom(cgroup="app/hog")
    assert event.victim_pid == batch
    assert event.kill_line + "\n" == predicted
    assert "oom_memcg=/app" in event.summary_line
    assert database in [int(p) for p in g.run("cat /sys/fs/cgroup/app/db/cgroup.procs").split()]
