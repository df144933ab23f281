"""The layout cache: answers kept per build, symbols without the KASLR offset."""

import pytest

from oomdrgn.core.layoutcache import Layout, btf_check, load_layout, save_layout
from oomdrgn.core.port import Member


def test_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    layout = Layout("ab12", 0xffffffff82e00000, btf_check(b"\x9f\xeb" + b"\0" * 100))
    layout.put_member("struct task_struct", "comm", Member(2976, 16, "array", False, 16))
    layout.put_member("struct mm_struct", "nr_ptes", None)
    layout.put_size("struct zone", 1664)
    layout.constants["MM_SHMEMPAGES"] = 3
    layout.put_symbol("init_task", (0xffffffff9e612940, 9728), 0x1c000000)  # KASLR'd
    layout.put_symbol("current_task", (0x32d40, 8), 0x1c000000)  # zero-based per-CPU
    layout.put_symbol("no_such", None, 0x1c000000)
    assert save_layout(layout) == str(tmp_path / "ab12.json")
    again = load_layout("ab12")
    assert again is not None and again.btf_check == layout.btf_check
    assert again.member("struct task_struct", "comm") == Member(2976, 16, "array", False, 16)
    with pytest.raises(LookupError):
        again.member("struct mm_struct", "nr_ptes")
    assert again.member("struct mm_struct", "mmap") is None  # not asked yet
    assert again.size("struct zone") == 1664
    # Another boot of the build: another offset.
    assert again.symbol("init_task", 0x2a000000) == (True, (0xffffffff9e612940 + 0x0e000000,
                                                            9728))
    assert again.symbol("current_task", 0x2a000000) == (True, (0x32d40, 8))
    assert again.symbol("no_such", 0) == (True, None)
    assert again.symbol("never_asked", 0) == (False, None)


def test_other_build_or_damage_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    save_layout(Layout("cd34", 0, "x"))
    (tmp_path / "ef56.json").write_text((tmp_path / "cd34.json").read_text())
    assert load_layout("ef56") is None  # its build_id says cd34
    (tmp_path / "cd34.json").write_text("{not json")
    assert load_layout("cd34") is None
    assert load_layout("../etc/passwd") is None


def test_rodata_strings_kept(tmp_path, monkeypatch):
    # The era's printk formats: asked once of .rodata, then answered by the cache.
    from oomdrgn.core.evidence import RodataStrings

    class Target:
        reads = 0

        def vmlinux_path(self):
            return None

        def symbol(self, name):
            return {"__start_rodata": (0x1000, 0), "__end_rodata": (0x1010, 0)}.get(name)

        def read(self, address, size):
            Target.reads += 1
            return b"\x016[  pid  ]  uid"[:size]

    monkeypatch.setenv("OOMDRGN_LAYOUT_CACHE", str(tmp_path))
    layout = Layout("ab12", 0, "x")
    view = RodataStrings(Target(), layout.strings)
    assert b"\x016[  pid  ]" in view and b"\x013Killed" not in view
    assert layout.changed and Target.reads == 1
    save_layout(layout)
    again = load_layout("ab12")
    assert again is not None and not again.changed
    view = RodataStrings(Target(), again.strings)
    assert b"\x016[  pid  ]" in view and b"\x013Killed" not in view
    assert Target.reads == 1 and not again.changed  # nothing read, nothing new
