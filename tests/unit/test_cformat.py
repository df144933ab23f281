from oomdrgn.core.cformat import cformat, ctype_cast


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


ROW = "[%7d] %5d %7d %8lu %8lu %8ld %8lu         %5hd %s\n"


def test_cformat_many_equals_one_call_per_row():
    from oomdrgn.core.cformat import cformat_many
    rows = [(1, 0, 1, 100, 2, 4096, 0, 0, "init"),
            (4242, 1000, 4242, 5000, 300, 40960, 7, -1000, "oom victim")]
    assert cformat_many(ROW, rows) == "".join(cformat(ROW, r) for r in rows)


def test_cformat_many_wraps_out_of_range_values():
    from oomdrgn.core.cformat import cformat_many
    # uid (kuid_t)-1 printed with %5d, a garbage negative total_vm with %8lu,
    # a short that overflows: the batched path must not print them raw.
    rows = [(2, 0xFFFFFFFF, 2, -1, 0, 0, 0, 0x18000, "x"), (3, 0, 3, 1, 1, 1, 1, 1, "y")]
    out = cformat_many(ROW, rows)
    assert out == "".join(cformat(ROW, r) for r in rows)
    assert "   -1" in out and "18446744073709551615" in out and "-32768" in out


def test_cformat_many_edge_cases():
    from oomdrgn.core.cformat import cformat_many
    assert cformat_many(ROW, []) == ""
    try:
        cformat_many(ROW, [(1, 2)])
    except TypeError as e:
        assert "9 arguments" in str(e)
    else:
        raise AssertionError("a short row was accepted")
