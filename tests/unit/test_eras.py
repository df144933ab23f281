from oomdrgn.core.eras import detect_eras
from oomdrgn.core.formats import KILL_FORMATS, TABLE_FORMATS


def _rodata(table, kill):
    return (b"junk\0\x016" + table.title.encode() if table.title else b"") + \
        b"\0\x016" + table.header.encode() + b"\0\x016" + table.row.encode() + \
        b"\0\x013" + kill.line.encode() + b"\0"


def test_each_era_is_found_by_its_own_strings():
    for t in TABLE_FORMATS:
        for k in KILL_FORMATS:
            eras = detect_eras(_rodata(t, k), "T4", "K4")
            assert (eras.table.name, eras.kill.name) == (t.name, k.name)
            assert "found in the kernel's .rodata" in eras.evidence


def test_k3_is_not_mistaken_for_k2_suffix():
    k3 = [k for k in KILL_FORMATS if k.name == "K3"][0]
    t3 = [t for t in TABLE_FORMATS if t.name == "T3"][0]
    assert detect_eras(_rodata(t3, k3), "T4", "K4").kill.name == "K3"


def test_fallback_is_reported():
    eras = detect_eras(None, "T3", "K4")
    assert eras.table.name == "T3" and "guessed" in eras.evidence
