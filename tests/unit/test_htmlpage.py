"""The HTML page renderer (pure): every kernel string escaped, nothing fetched,
the records laid out as given."""

import re

from oomdrgn.core.htmlpage import (LoggedReport, MemcgNode, MemoryView, Page, TaskTable, View,
                                   render_page)
from oomdrgn.core.htmlpage.escape import json_blob, text

HOSTILE = '</script><script>alert(1)</script>&"\'<b>'


def _page() -> Page:
    rows = [{"pid": 10, "uid": 0, "tgid": 10, "rss": 5, "name": HOSTILE, "badness": 7,
             "rank": 1, "verdict": "chosen"},
            {"pid": 11, "uid": 0, "tgid": 11, "rss": 3, "name": "bad\udcffbyte", "badness": None,
             "rank": 2, "verdict": "skipped: oom_score_adj is -1000"},
            {"pid": 12, "unreadable": "page not in the dump <x>"}]
    table = TaskTable(("pid", "uid", "tgid", "rss", "name"), rows, victim_pid=10,
                      victim_why="(chosen)", era="T4", text=f"[ 10] {HOSTILE}\n",
                      explain={10: HOSTILE})
    memcg = {"memory": {"usage_kb": 100, "limit_kb": 100, "failcnt": 3},
             "swap": {"usage_kb": 0, "limit_kb": 9007199254740988, "failcnt": 0},
             "memcg": "/a<b>", "stats": {"anon": 90 * 1024, "file": 4096, "shmem": 0}}
    view = View("now", MemoryView(memcg=memcg, lines=[HOSTILE]), table,
                lines=[("kill", f"Killed process 10 ({HOSTILE})")], notes=[HOSTILE])
    return Page(title=HOSTILE, command=f"oomdrgn html -o '{HOSTILE}'", source=HOSTILE,
                kernel=[("kernel", HOSTILE)], views=[view],
                memcgs=[MemcgNode("/", 0, 1, 2), MemcgNode(f"/{HOSTILE}", 1, 50, 100,
                                                           victim=(10, HOSTILE, 7))],
                reports=[LoggedReport(1, "report 1", [HOSTILE + "\n"],
                                      rows=[{"status": "gone", "pid": 10, "name": HOSTILE}],
                                      memory={"memcg": [("moved", HOSTILE, HOSTILE, HOSTILE)]})],
                missing=[HOSTILE])


def test_every_kernel_string_is_escaped():
    page = render_page(_page())
    assert HOSTILE not in page
    assert "<script>alert" not in page
    assert page.count("<script") == 2  # the explain JSON slot and the page's script
    assert page.count("</script>") == 2
    assert text(HOSTILE) in page
    assert "bad\\xffbyte" in page  # a byte that is not UTF-8, shown, not dropped
    page.encode("utf-8")  # no lone surrogate left


def test_nothing_is_fetched():
    page = render_page(_page())
    assert not re.search(r"https?:|//[a-z]", page.replace("http-equiv", "")), \
        re.findall(r".{20}https?:.{20}", page)
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1)
    assert not re.search(r"<(?:link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\b(?:src|href)=\"(?!#)", page)


def test_json_slot_cannot_end_its_element():
    blob = json_blob({"1": HOSTILE})
    assert "<" not in blob and ">" not in blob and "&" not in blob
    import json
    assert json.loads(blob) == {"1": HOSTILE}


def test_rows_victim_and_sort_keys():
    page = render_page(_page())
    assert re.search(r'<tr data-pid="10" class="victim">', page)
    assert '<tr data-pid="12" class="unreadable">' in page
    # a cell sorts by its text, or by data-v where the text is not the value
    assert "<td>5</td>" in page and '<td data-v="">-</td>' in page
    for col in ("pid", "uid", "tgid", "rss", "name", "badness", "rank", "verdict"):
        assert f'title="sort by {col}"' in page
    assert 'data-key="memcg.memory.usage_kb">100<' in page
    assert "max (no limit)" in page  # PAGE_COUNTER_MAX is no limit
