from oomdrgn.cformat import cformat, ctype_cast


def test_unsigned_of_negative_wraps_like_c():
    assert cformat("%u", [-1]) == "4294967295"
    assert cformat("%lu", [-1]) == "18446744073709551615"


def test_short_truncates_like_c():
    assert cformat("%5hd", [-1000]) == "-1000"
    assert cformat("%hd", [0x18000]) == "-32768"


def test_int_of_uid_minus_one():
    # from_kuid() returns (uid_t)-1 for an unmapped uid; %5d shows it as -1.
    assert cformat("%5d", [0xFFFFFFFF]) == "   -1"


def test_widths_string_and_percent():
    assert cformat("[%7d] %s 100%%", [42, "x y"]) == "[     42] x y 100%"


def test_ctype_cast():
    assert ctype_cast(2**63, "l", True) == -(2**63)
    assert ctype_cast(-5, "l", False) == 2**64 - 5
