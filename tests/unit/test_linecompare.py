"""Logged lines beside computed lines (oomdrgn.core.linecompare), on two Mem-Info
blocks that the real 7.x kernel printed one after the other (tests/data/logs)."""

from pathlib import Path

from oomdrgn.core.linecompare import compare_lines, line_shape, line_values
from oomdrgn.core.logparse import split_prefix

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"


def _meminfo_blocks(name):
    texts = [split_prefix(i, raw).text
             for i, raw in enumerate(LOGS.joinpath(name).read_text().splitlines(), 1)]
    blocks, block = [], None
    for text in texts:
        if text == "Mem-Info:":
            block = []
            blocks.append(block)
        elif block is not None:
            if text.startswith("Tasks state") or text.startswith("Memory cgroup min"):
                block = None
            else:
                block.append(text)
    return blocks


def test_a_block_beside_itself_is_all_same():
    first = _meminfo_blocks("7.x-oom.log")[0]
    assert first and all(c.verdict == "same" for c in compare_lines(first, first))


def test_two_blocks_of_one_kernel_align_line_by_line_and_name_what_moved():
    first, second = _meminfo_blocks("7.x-oom.log")[:2]
    result = compare_lines(first, second)
    assert [c.verdict for c in result].count("only in the log") == 0
    assert len(result) == len(first) == len(second)
    for c in result:
        if c.verdict == "same":
            assert c.logged == c.now
            continue
        assert c.verdict == "moved" and line_shape(c.logged) == line_shape(c.now)
        before, after = dict(line_values(c.logged)), dict(line_values(c.now))
        for m in c.moved:
            assert before[m.label] == m.logged and after[m.label] == m.now != m.logged
    moved_labels = {m.label for c in result for m in c.moved}
    assert "free_pcp" in moved_labels  # the logs differ there


def test_values_are_named_by_their_labels():
    line = "Node 0 DMA: 2*4kB (UM) 0*8kB 1*16kB (M) = 48kB"
    assert line_values(line) == [("Node", 0), ("4kB blocks", 2), ("8kB blocks", 0),
                                 ("16kB blocks", 1), ("total", 48)]
    assert line_shape(line) == line_shape("Node 0 DMA: 9*4kB (E) 1*8kB (UM) 0*16kB = 44kB")


def test_a_missing_line_does_not_shift_the_rest():
    logged = ["a:1", "Node 0 DMA free:4kB", "b:2"]
    now = ["a:1", "b:3"]
    verdicts = [c.verdict for c in compare_lines(logged, now)]
    assert verdicts == ["same", "only in the log", "moved"]


def test_a_flag_that_flipped_is_the_same_line_moved():
    # The node line the real 7.x kernel printed at a panic (CI run of
    # 2026-12-06), and the dump's: kswapd gave up on the node in between.
    logged = ("Node 0 active_anon:136020kB inactive_anon:0kB active_file:0kB "
              "inactive_file:0kB unevictable:0kB isolated(anon):0kB isolated(file):0kB "
              "mapped:15392kB dirty:0kB writeback:0kB shmem:17664kB shmem_thp:0kB "
              "shmem_pmdmapped:0kB anon_thp:0kB kernel_stack:1280kB pagetables:1256kB "
              "sec_pagetables:0kB all_unreclaimable? no Balloon:0kB gpu_active:0kB "
              "gpu_reclaim:0kB")
    now = logged.replace("all_unreclaimable? no", "all_unreclaimable? yes")
    result = compare_lines(["Mem-Info:", logged], ["Mem-Info:", now])
    assert [c.verdict for c in result] == ["same", "moved"]
    assert result[1].moved == [] and result[1].notes == ["all_unreclaimable? no -> yes"]
