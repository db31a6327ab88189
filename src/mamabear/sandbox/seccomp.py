"""The jail's seccomp filter: no new user namespace inside, whoever runs mamabear.

bubblewrap's ``--disable-userns`` needs a user namespace of the jail's own, which a root caller's jail has not (its
commands drop to nobody, who is not mapped in one), so every jail gets this filter instead (``--seccomp``), root or
not: ``unshare`` and ``clone`` asking for ``CLONE_NEWUSER`` fail with EPERM, and ``clone3``, whose flags a filter cannot
read, fails with ENOSYS (the C library then falls back to ``clone``, so threads and processes start as before).

The program is classic BPF, assembled here (no library needed): for this machine's architecture and its 32-bit one;
a system call of any other architecture fails with ENOSYS.
"""

from __future__ import annotations

import platform
import struct
import sys
from functools import lru_cache

CLONE_NEWUSER = 0x10000000
EPERM, ENOSYS = 1, 38
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
LD_ABS, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_JMP|BPF_JSET|BPF_K, BPF_RET|BPF_K
X32 = 0x40000000  # x86-64's x32 system calls: the same architecture, their numbers with this bit

# audit architecture: (clone, unshare, clone3) system call numbers
I386, X86_64, ARM, AARCH64 = 0x40000003, 0xC000003E, 0x40000028, 0xC00000B7
CALLS = {
    X86_64: ((56, X32 | 56), (272, X32 | 272), (435, X32 | 435)),
    I386: ((120,), (310,), (435,)),
    AARCH64: ((220,), (97,), (435,)),
    ARM: ((120,), (337,), (435,)),
}
FAMILIES = {"x86_64": (X86_64, I386), "amd64": (X86_64, I386), "aarch64": (AARCH64, ARM), "arm64": (AARCH64, ARM)}

NR, ARCH = 0, 4
FLAGS = 16 if sys.byteorder == "little" else 20  # the low 32 bits of args[0], where clone and unshare take their flags


@lru_cache(maxsize=4)
def program(machine: str | None = None) -> bytes | None:
    """The filter, as bwrap's ``--seccomp`` reads it; None when this machine's architecture is not one it knows."""
    arches = FAMILIES.get((machine or platform.machine()).lower())
    if arches is None:
        return None
    code: list[tuple | str] = []  # (op, jump-if-true label, jump-if-false label, k); a label is an instruction's name or None
    for arch in arches:
        clone, unshare, clone3 = CALLS[arch]
        code += [(LD_ABS, None, None, ARCH), (JEQ, None, f"not-{arch}", arch), (LD_ABS, None, None, NR)]
        code += [(JEQ, "no-clone3", None, nr) for nr in clone3]
        code += [(JEQ, "flags", None, nr) for nr in clone + unshare]
        code += [(RET, None, None, ALLOW), f"not-{arch}"]
    code += [(RET, None, None, ERRNO | ENOSYS)]  # an architecture it does not know
    code += ["flags", (LD_ABS, None, None, FLAGS), (JSET, "no-userns", None, CLONE_NEWUSER), (RET, None, None, ALLOW)]
    code += ["no-userns", (RET, None, None, ERRNO | EPERM), "no-clone3", (RET, None, None, ERRNO | ENOSYS)]
    return _assemble(code)


def _assemble(code: list) -> bytes:
    """sock_filter records from instructions and the labels between them (a label names the instruction after it)."""
    at: dict[str, int] = {}
    position = 0
    for item in code:
        if isinstance(item, str):
            at[item] = position
        else:
            position += 1
    out, position = b"", 0
    for item in code:
        if isinstance(item, str):
            continue
        op, true, false, k = item
        jt = at[true] - position - 1 if true else 0
        jf = at[false] - position - 1 if false else 0
        assert 0 <= jt < 256 and 0 <= jf < 256
        out += struct.pack("=HBBI", op, jt, jf, k)
        position += 1
    return out
