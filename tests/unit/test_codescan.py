from oomdrgn.core.codescan import calls_target


def test_x86_call_rel32_found():
    func = 0xFFFFFFFF81000000
    target = 0xFFFFFFFF81500000
    rel = target - (func + 3 + 5)
    code = b"\x90\x90\x90\xe8" + rel.to_bytes(4, "little", signed=True) + b"\xc3"
    assert calls_target(code, func, target)
    assert not calls_target(code, func, target + 0x1000)


def test_x86_call_to_depth_tracking_thunk_counts():
    func, target = 0x1000, 0x9000
    rel = (target - 16) - (func + 5)
    assert calls_target(b"\xe8" + rel.to_bytes(4, "little", signed=True), func, target)


def test_aarch64_bl_found():
    func, target = 0xFFFFFFC008000000, 0xFFFFFFC008100000
    imm = ((target - (func + 4)) // 4) & 0x3FFFFFF
    insn = (0b100101 << 26) | imm
    code = b"\x1f\x20\x03\xd5" + insn.to_bytes(4, "little")
    assert calls_target(code, func, target, "aarch64")
    assert not calls_target(code, func, target, "x86_64")
