"""Flattened Device Tree reader: what the hypervisor needs at boot from the DTB OpenSBI passes in a1.

Format: Devicetree Specification v0.4, chapter 5 ("Flattened Devicetree (DTB) Format").  Everything is big-endian
(5.1); the header (5.2) gives the offsets of the structure block (5.4) and the strings block (5.5).  The structure
block is a sequence of 4-byte aligned tokens:

    FDT_BEGIN_NODE (1)  followed by the NUL-terminated unit name, padded to 4 bytes
    FDT_END_NODE   (2)
    FDT_PROP       (3)  followed by u32 len, u32 nameoff (into the strings block), then len bytes, padded to 4
    FDT_NOP        (4)  ignored
    FDT_END        (9)  end of the structure block

Read-only but for /chosen/rng-seed (at the end), no heap, no recursion: every walk is a loop over tokens with an
explicit depth counter.  Node handles are the absolute addresses of their FDT_BEGIN_NODE tokens (0: none); property
handles the addresses of their FDT_PROP tokens (0: none).  Every public function first checks `fdt_valid`, so a bad
a1 gives 0 / False answers.
"""

from compiler.prelude import Array, Final, Ptr, addr_of, cstr, null, u8, u32, u64

FDT_MAGIC: Final = u32(0xD00DFEED)  # 5.2 magic
FDT_BEGIN_NODE: Final = u32(1)  # 5.4.1 tokens
FDT_END_NODE: Final = u32(2)
FDT_PROP: Final = u32(3)
FDT_NOP: Final = u32(4)
FDT_END: Final = u32(9)
FDT_HEADER_SIZE: Final = u64(40)  # 5.2: ten u32 fields (version 17)
FDT_LAST_COMP_VERSION: Final = u32(16)  # 5.2: version 17 is backwards compatible with version 16
FDT_BAD: Final = u64(0xFFFF_FFFF_FFFF_FFFF)  # "no such value" for results that are addresses or ids

# Header field offsets (5.2, struct fdt_header).
FDT_H_TOTALSIZE: Final = u64(4)
FDT_H_OFF_DT_STRUCT: Final = u64(8)
FDT_H_OFF_DT_STRINGS: Final = u64(12)
FDT_H_VERSION: Final = u64(20)
FDT_H_LAST_COMP_VERSION: Final = u64(24)
FDT_H_SIZE_DT_STRINGS: Final = u64(32)
FDT_H_SIZE_DT_STRUCT: Final = u64(36)

# ----------------------------------------------------------------------------------------------------------------
# Bytes and strings


def fdt_be32(addr: u64) -> u32:
    """The big-endian u32 at addr (5.1: all header and structure words are big-endian), read bytewise."""
    p = Ptr[u8](addr)
    return (u32(p[0]) << 24) | (u32(p[1]) << 16) | (u32(p[2]) << 8) | u32(p[3])


def fdt_cells(addr: u64, cells: u64) -> u64:
    """A value of `cells` 32-bit big-endian cells at addr (2.3.5: 1 or 2 cells; more keep the low 64 bits)."""
    v = u64(0)
    for i in range(cells):
        v = (v << 32) | u64(fdt_be32(addr + i * 4))
    return v


def fdt_align4(x: u64) -> u64:
    """5.4.1: every token starts on a 4-byte boundary."""
    return (x + 3) & ~u64(3)


def fdt_strnlen(addr: u64, limit: u64) -> u64:
    """The length of the string at addr, looking at no more than limit bytes (limit if no NUL among them).
    Always bounded: the bytes end where the block or the property does (and an unbounded loop is turned into a
    call to libc strlen by LLVM, which the hypervisor does not have)."""
    p = Ptr[u8](addr)
    n = u64(0)
    while n < limit and p[n] != 0:
        n += 1
    return n


def fdt_is_digit(c: u8) -> bool:
    return c >= 0x30 and c <= 0x39


def fdt_lower(c: u8) -> u8:
    if c >= 0x41 and c <= 0x5A:  # 'A'..'Z'
        return c + 0x20
    return c


def fdt_streq(addr: u64, s: Ptr[u8]) -> bool:
    """The NUL-terminated string at addr equals s."""
    p = Ptr[u8](addr)
    i = u64(0)
    while p[i] == s[i]:
        if p[i] == 0:
            return True
        i += 1
    return False


def fdt_tokeq(addr: u64, n: u64, s: Ptr[u8]) -> bool:
    """The n bytes at addr equal the NUL-terminated s, ignoring ASCII case."""
    p = Ptr[u8](addr)
    for i in range(n):
        if s[i] == 0 or fdt_lower(p[i]) != fdt_lower(s[i]):
            return False
    return s[n] == 0


def fdt_name_is(addr: u64, base: Ptr[u8]) -> bool:
    """A node's unit name ("memory@80000000") has this node-name part (2.2.1: node-name@unit-address)."""
    p = Ptr[u8](addr)
    i = u64(0)
    while base[i] != 0:
        if p[i] != base[i]:
            return False
        i += 1
    return p[i] == 0 or p[i] == 0x40  # '@'


# ----------------------------------------------------------------------------------------------------------------
# Header


def fdt_valid(dtb: u64) -> bool:
    """5.2: the magic, a version this reader understands and blocks inside totalsize."""
    if dtb == 0 or (dtb & 3) != 0:  # 5.2: the DTB is at an 8-byte aligned address; 4 is all the reader needs
        return False
    if fdt_be32(dtb) != FDT_MAGIC:
        return False
    if fdt_be32(dtb + FDT_H_LAST_COMP_VERSION) > FDT_LAST_COMP_VERSION:
        return False
    total = u64(fdt_be32(dtb + FDT_H_TOTALSIZE))
    off_struct = u64(fdt_be32(dtb + FDT_H_OFF_DT_STRUCT))
    off_strings = u64(fdt_be32(dtb + FDT_H_OFF_DT_STRINGS))
    if total < FDT_HEADER_SIZE or (off_struct & 3) != 0:
        return False
    if off_struct < FDT_HEADER_SIZE or off_struct >= total or off_strings > total:
        return False
    if fdt_be32(dtb + FDT_H_VERSION) >= 17:  # size_dt_struct / size_dt_strings exist from version 17
        if off_struct + u64(fdt_be32(dtb + FDT_H_SIZE_DT_STRUCT)) > total:
            return False
        if off_strings + u64(fdt_be32(dtb + FDT_H_SIZE_DT_STRINGS)) > total:
            return False
    return True


def fdt_total_size(dtb: u64) -> u64:
    """5.2 totalsize: the whole blob, header to the end of the strings block (0 if not a valid DTB)."""
    if not fdt_valid(dtb):
        return 0
    return u64(fdt_be32(dtb + FDT_H_TOTALSIZE))


def fdt_struct_end(dtb: u64) -> u64:
    """The first address after the structure block (version < 17: totalsize bounds it)."""
    if fdt_be32(dtb + FDT_H_VERSION) >= 17:
        return dtb + u64(fdt_be32(dtb + FDT_H_OFF_DT_STRUCT)) + u64(fdt_be32(dtb + FDT_H_SIZE_DT_STRUCT))
    return dtb + u64(fdt_be32(dtb + FDT_H_TOTALSIZE))


# ----------------------------------------------------------------------------------------------------------------
# Tokens, nodes and properties


def fdt_next(dtb: u64, tok: u64) -> u64:
    """The token after the one at tok; 0 at FDT_END, on an unknown token or past the structure block."""
    end = fdt_struct_end(dtb)
    if tok + 4 > end:
        return 0
    tag = fdt_be32(tok)
    nxt = u64(0)
    if tag == FDT_BEGIN_NODE:  # 5.4.1: name, NUL, padding
        name_len = fdt_strnlen(tok + 4, end - (tok + 4))
        if tok + 4 + name_len >= end:
            return 0  # the name runs past the block
        nxt = fdt_align4(tok + 4 + name_len + 1)
    elif tag == FDT_PROP:  # 5.4.1: struct { u32 len; u32 nameoff; } then len bytes, padding
        if tok + 12 > end:
            return 0
        nxt = fdt_align4(tok + 12 + u64(fdt_be32(tok + 4)))
    elif tag == FDT_END_NODE or tag == FDT_NOP:
        nxt = tok + 4
    else:  # FDT_END or garbage
        return 0
    if nxt > end:
        return 0
    return nxt


def fdt_root(dtb: u64) -> u64:
    """The root node: the first FDT_BEGIN_NODE of the structure block (5.4.2), after any FDT_NOP."""
    tok = dtb + u64(fdt_be32(dtb + FDT_H_OFF_DT_STRUCT))
    while tok != 0 and fdt_be32(tok) == FDT_NOP:
        tok = fdt_next(dtb, tok)
    if tok == 0 or fdt_be32(tok) != FDT_BEGIN_NODE:
        return 0
    return tok


def fdt_child(dtb: u64, node: u64, name: Ptr[u8], index: u64) -> u64:
    """The index-th direct child of node whose node-name is name (any name if name is null); 0 if none."""
    tok = fdt_next(dtb, node)
    depth = u64(0)  # nesting below node's children: 0 while reading node's own properties and child tokens
    n = u64(0)
    while tok != 0:
        tag = fdt_be32(tok)
        if tag == FDT_BEGIN_NODE:
            if depth == 0 and (name.addr() == 0 or fdt_name_is(tok + 4, name)):
                if n == index:
                    return tok
                n += 1
            depth += 1
        elif tag == FDT_END_NODE:
            if depth == 0:
                return 0  # node's own FDT_END_NODE
            depth -= 1
        tok = fdt_next(dtb, tok)
    return 0


def fdt_prop(dtb: u64, node: u64, name: Ptr[u8]) -> u64:
    """node's property called name: its FDT_PROP token, or 0 (5.4.2: properties precede subnodes)."""
    if node == 0:
        return 0
    strings = dtb + u64(fdt_be32(dtb + FDT_H_OFF_DT_STRINGS))
    tok = fdt_next(dtb, node)
    while tok != 0:
        tag = fdt_be32(tok)
        nxt = fdt_next(dtb, tok)
        if tag == FDT_PROP:
            if nxt != 0 and fdt_streq(strings + u64(fdt_be32(tok + 8)), name):
                return tok  # (only a property that ends inside the structure block)
        elif tag != FDT_NOP:
            return 0  # a subnode or node's end: no more properties
        tok = nxt
    return 0


def fdt_prop_len(prop: u64) -> u64:
    return u64(fdt_be32(prop + 4))


def fdt_prop_data(prop: u64) -> u64:
    return prop + 12


def fdt_prop_u64(dtb: u64, node: u64, name: Ptr[u8], default: u64) -> u64:
    """A one- or two-cell property's value (2.2.4: <u32> or <u64>), or default if absent or another size."""
    prop = fdt_prop(dtb, node, name)
    if prop == 0:
        return default
    n = fdt_prop_len(prop)
    if n == 4 or n == 8:
        return fdt_cells(fdt_prop_data(prop), n // 4)
    return default


def fdt_prop_is(dtb: u64, node: u64, name: Ptr[u8], value: Ptr[u8]) -> bool:
    """node has a string property name equal to value."""
    prop = fdt_prop(dtb, node, name)
    if prop == 0 or fdt_prop_len(prop) == 0:
        return False
    return fdt_streq(fdt_prop_data(prop), value)


def fdt_prop_cell(dtb: u64, node: u64, name: Ptr[u8], index: u64, default: u64) -> u64:
    """The index-th 32-bit cell of node's property name (2.2.4 <prop-encoded-array>), or default if it has none."""
    prop = fdt_prop(dtb, node, name)
    if prop == 0 or fdt_prop_len(prop) < (index + 1) * 4:
        return default
    return u64(fdt_be32(fdt_prop_data(prop) + index * 4))


def fdt_prop_has_string(dtb: u64, node: u64, name: Ptr[u8], value: Ptr[u8]) -> bool:
    """node's <stringlist> property name (2.2.4: NUL-terminated strings back to back) lists value (ASCII case
    ignored)."""
    prop = fdt_prop(dtb, node, name)
    if prop == 0:
        return False
    data = fdt_prop_data(prop)
    n = fdt_prop_len(prop)
    i = u64(0)
    while i < n:
        k = fdt_strnlen(data + i, n - i)
        if i + k >= n:
            break  # not NUL-terminated inside the property
        if fdt_tokeq(data + i, k, value):
            return True
        i += k + 1
    return False


def fdt_usable(dtb: u64, node: u64) -> bool:
    """2.3.4 status: absent, "okay" (or the legacy "ok") means usable; "disabled", "reserved", "fail" do not."""
    prop = fdt_prop(dtb, node, cstr(b"status"))
    if prop == 0:
        return True
    return fdt_prop_is(dtb, node, cstr(b"status"), cstr(b"okay")) or fdt_prop_is(
        dtb, node, cstr(b"status"), cstr(b"ok")
    )


# ----------------------------------------------------------------------------------------------------------------
# CPUs (3.7, 3.8; RISC-V bindings: reg is the hart id)


def fdt_cpus(dtb: u64) -> u64:
    return fdt_child(dtb, fdt_root(dtb), cstr(b"cpus"), 0)


def fdt_cpu_scan(dtb: u64, index: u64, count: Ptr[u64]) -> u64:
    """Walk the children of /cpus: the index-th usable cpu node (device_type "cpu"; /cpus/cpu-map is not one, nor a
    cpu whose status says disabled), or 0; the number of usable cpu nodes seen goes to count[0] unless null."""
    n = u64(0)
    found = u64(0)
    cpus = fdt_cpus(dtb) if fdt_valid(dtb) else u64(0)
    tok = fdt_next(dtb, cpus) if cpus != 0 else u64(0)
    depth = u64(0)
    while tok != 0:
        tag = fdt_be32(tok)
        if tag == FDT_BEGIN_NODE:
            if depth == 0 and fdt_prop_is(dtb, tok, cstr(b"device_type"), cstr(b"cpu")) and fdt_usable(dtb, tok):
                if n == index:
                    found = tok
                n += 1
            depth += 1
        elif tag == FDT_END_NODE:
            if depth == 0:
                break
            depth -= 1
        tok = fdt_next(dtb, tok)
    if count.addr() != 0:
        count[0] = n
    return found


def fdt_cpu_node(dtb: u64, index: u64) -> u64:
    """The index-th usable cpu node, or 0."""
    return fdt_cpu_scan(dtb, index, null(u64))


def fdt_cpu_count(dtb: u64) -> u64:
    """How many usable cpu nodes /cpus has (status "disabled" ones, e.g. a monitor-only hart, are not counted)."""
    n = Array[u64, 1]()
    fdt_cpu_scan(dtb, FDT_BAD, addr_of(n[0]))
    return n[0]


def fdt_cpu_hartid(dtb: u64, index: u64) -> u64:
    """The hart id of the index-th cpu: its reg, in /cpus #address-cells cells (3.7: 1 or 2); FDT_BAD if none."""
    cpu = fdt_cpu_node(dtb, index)
    if cpu == 0:
        return FDT_BAD
    cells = fdt_prop_u64(dtb, fdt_cpus(dtb), cstr(b"#address-cells"), 1)
    reg = fdt_prop(dtb, cpu, cstr(b"reg"))
    if reg == 0 or cells == 0 or cells > 2 or fdt_prop_len(reg) < cells * 4:
        return FDT_BAD
    return fdt_cells(fdt_prop_data(reg), cells)


def fdt_isa_has(isa: u64, n: u64, ext: Ptr[u8]) -> bool:
    """The riscv,isa string at isa (n bytes, NUL excluded) names ext: a single letter among the base letters after
    "rv32"/"rv64" up to the first '_' ("g" standing for "imafd"), a longer name as a whole '_'-separated token."""
    p = Ptr[u8](isa)
    elen = fdt_strnlen(ext.addr(), 2)  # 0, 1 or more
    if elen == 0 or n < 4 or fdt_lower(p[0]) != 0x72 or fdt_lower(p[1]) != 0x76:  # "rv"
        return False
    i = u64(4)
    if elen == 1:
        e = fdt_lower(ext[0])
        while i < n and p[i] != 0x5F:  # '_'
            c = fdt_lower(p[i])
            if fdt_is_digit(c) or (c == 0x70 and fdt_is_digit(p[i - 1]) and i + 1 < n and fdt_is_digit(p[i + 1])):
                i += 1  # a version ("h1p0": major, 'p', minor) is not an extension
                continue
            if c == e:
                return True
            if c == 0x67 and (e == 0x69 or e == 0x6D or e == 0x61 or e == 0x66 or e == 0x64):  # g = imafd
                return True
            i += 1
        return False
    while i < n and p[i] != 0x5F:  # skip the base letters
        i += 1
    while i < n:
        i += 1  # past the '_'
        start = i
        while i < n and p[i] != 0x5F:
            i += 1
        if fdt_tokeq(isa + start, i - start, ext):
            return True
    return False


def fdt_cpu_has_extension(dtb: u64, index: u64, ext: Ptr[u8]) -> bool:
    """The index-th cpu implements ext ("h", "sstc", ...): listed in riscv,isa-extensions (a string list) or named
    by riscv,isa (RISC-V cpus binding).  Case is ignored."""
    cpu = fdt_cpu_node(dtb, index)
    if cpu == 0:
        return False
    if fdt_prop_has_string(dtb, cpu, cstr(b"riscv,isa-extensions"), ext):
        return True
    prop = fdt_prop(dtb, cpu, cstr(b"riscv,isa"))
    if prop != 0 and fdt_prop_len(prop) > 0:
        n = fdt_strnlen(fdt_prop_data(prop), fdt_prop_len(prop))
        if n < fdt_prop_len(prop) and fdt_isa_has(fdt_prop_data(prop), n, ext):
            return True
    return False


def fdt_timebase(dtb: u64) -> u64:
    """/cpus timebase-frequency (3.7; a cpu node may carry it instead, 3.8), in Hz; 0 if absent."""
    if not fdt_valid(dtb):
        return 0
    f = fdt_prop_u64(dtb, fdt_cpus(dtb), cstr(b"timebase-frequency"), 0)
    if f == 0:
        cpu = fdt_cpu_node(dtb, 0)
        if cpu != 0:
            f = fdt_prop_u64(dtb, cpu, cstr(b"timebase-frequency"), 0)
    return f


# ----------------------------------------------------------------------------------------------------------------
# Memory (3.4)


def fdt_memory(dtb: u64, index: u64, out: Ptr[u64]) -> bool:
    """The index-th (base, size) region of the memory nodes' reg, counted across every usable node with
    device_type "memory" in order, into out[0], out[1]; reg entries are in the root's #address-cells and
    #size-cells (2.3.5, defaults 2 and 1).  False if there is no such region."""
    if not fdt_valid(dtb):
        return False
    root = fdt_root(dtb)
    if root == 0:
        return False
    ac = fdt_prop_u64(dtb, root, cstr(b"#address-cells"), 2)
    sc = fdt_prop_u64(dtb, root, cstr(b"#size-cells"), 1)
    if ac == 0 or ac > 2 or sc > 2:
        return False
    entry = (ac + sc) * 4
    k = u64(0)  # regions seen so far
    tok = fdt_next(dtb, root)
    depth = u64(0)
    while tok != 0:
        tag = fdt_be32(tok)
        if tag == FDT_BEGIN_NODE:
            if depth == 0 and fdt_prop_is(dtb, tok, cstr(b"device_type"), cstr(b"memory")) and fdt_usable(dtb, tok):
                reg = fdt_prop(dtb, tok, cstr(b"reg"))
                if reg != 0:
                    count = fdt_prop_len(reg) // entry
                    if index < k + count:
                        at = fdt_prop_data(reg) + (index - k) * entry
                        out[0] = fdt_cells(at, ac)
                        out[1] = fdt_cells(at + ac * 4, sc)
                        return True
                    k += count
            depth += 1
        elif tag == FDT_END_NODE:
            if depth == 0:
                return False
            depth -= 1
        tok = fdt_next(dtb, tok)
    return False


# ----------------------------------------------------------------------------------------------------------------
# Devices (2.3.1 compatible)


def fdt_compatible(dtb: u64, compat: Ptr[u8], index: u64) -> u64:
    """The index-th usable node, anywhere in the tree and in tree order, whose compatible lists compat; 0 if
    none."""
    if not fdt_valid(dtb):
        return 0
    tok = fdt_root(dtb)
    n = u64(0)
    while tok != 0:
        if fdt_be32(tok) == FDT_BEGIN_NODE and fdt_prop_has_string(dtb, tok, cstr(b"compatible"), compat):
            if fdt_usable(dtb, tok):
                if n == index:
                    return tok
                n += 1
        tok = fdt_next(dtb, tok)
    return 0


def fdt_reg(dtb: u64, node: u64, out: Ptr[u64]) -> bool:
    """node's first reg entry (2.3.6) into out[0] (address) and out[1] (size), read in the root's #address-cells
    and #size-cells (QEMU virt's /soc, the devices' parent, has the root's 2 and 2); False if node has no such
    entry."""
    root = fdt_root(dtb) if fdt_valid(dtb) else u64(0)
    if root == 0 or node == 0:
        return False
    ac = fdt_prop_u64(dtb, root, cstr(b"#address-cells"), 2)
    sc = fdt_prop_u64(dtb, root, cstr(b"#size-cells"), 1)
    reg = fdt_prop(dtb, node, cstr(b"reg"))
    if reg == 0 or ac == 0 or ac > 2 or sc > 2 or fdt_prop_len(reg) < (ac + sc) * 4:
        return False
    out[0] = fdt_cells(fdt_prop_data(reg), ac)
    out[1] = fdt_cells(fdt_prop_data(reg) + ac * 4, sc)
    return True


def fdt_hart_intc(dtb: u64, hartid: u64) -> u64:
    """The phandle of hart hartid's local interrupt controller: its cpu node's interrupt-controller child
    (riscv,cpu-intc binding); FDT_BAD if there is none."""
    i = u64(0)
    while True:
        cpu = fdt_cpu_node(dtb, i)
        if cpu == 0:
            return FDT_BAD
        if fdt_cpu_hartid(dtb, i) == hartid:
            intc = fdt_child(dtb, cpu, cstr(b"interrupt-controller"), u64(0))
            return fdt_prop_u64(dtb, intc, cstr(b"phandle"), FDT_BAD) if intc != 0 else FDT_BAD
        i += 1


def fdt_hart_irq_index(dtb: u64, node: u64, hartid: u64, irq: u64) -> u64:
    """Which entry of node's interrupts-extended is hart hartid's local interrupt irq: entries are a phandle and
    one cell (riscv,cpu-intc has #interrupt-cells 1), and per-hart devices (ACLINT, IMSIC) number their harts'
    registers in this order. FDT_BAD if no entry is."""
    intc = fdt_hart_intc(dtb, hartid)
    prop = fdt_prop(dtb, node, cstr(b"interrupts-extended"))
    if intc == FDT_BAD or prop == 0:
        return FDT_BAD
    data = fdt_prop_data(prop)
    for j in range(fdt_prop_len(prop) // 8):
        if u64(fdt_be32(data + 8 * j)) == intc and u64(fdt_be32(data + 8 * j + 4)) == irq:
            return u64(j)
    return FDT_BAD


# ----------------------------------------------------------------------------------------------------------------
# /chosen/rng-seed (Devicetree Specification v0.4, 3.6 /chosen: rng-seed, "entropy [...] used to seed the kernel's
# random number generator"): the only thing the hypervisor writes into a device tree.  In place, no moves: a
# property is shortened by turning the words it no longer needs into FDT_NOP tokens, or removed by turning all of
# it into FDT_NOP tokens (5.4.1: "a property or node [may] be removed from the tree by overwriting it with FDT_NOP
# tokens").


def fdt_chosen_prop(dtb: u64, name: Ptr[u8]) -> u64:
    """/chosen's property called name: its FDT_PROP token, or 0 (no valid tree, no /chosen, no such property)."""
    if not fdt_valid(dtb):
        return 0
    return fdt_prop(dtb, fdt_child(dtb, fdt_root(dtb), cstr(b"chosen"), 0), name)


def fdt_nop_words(start: u64, end: u64) -> None:
    """FDT_NOP over the 4-byte words [start, end) of the structure block (5.4.1)."""
    a = start
    while a < end:
        p = Ptr[u8](a)
        p[0] = 0
        p[1] = 0
        p[2] = 0
        p[3] = u8(FDT_NOP)
        a += 4


def fdt_rng_seed_take(dtb: u64, buf: Ptr[u8], max_len: u64) -> u64:
    """Take /chosen/rng-seed from dtb: up to max_len of its bytes into buf, then the property's bytes zeroed and
    the property removed (FDT_NOP), so no one can use the same bytes again.  Returns how many bytes were taken
    (0: no seed)."""
    prop = fdt_chosen_prop(dtb, cstr(b"rng-seed"))
    if prop == 0:
        return 0
    n = fdt_prop_len(prop)
    data = Ptr[u8](fdt_prop_data(prop))
    taken = n if n < max_len else max_len
    for i in range(taken):
        buf[i] = data[i]
    for i in range(n):
        data[i] = 0
    fdt_nop_words(prop, fdt_align4(fdt_prop_data(prop) + n))
    return taken


def fdt_rng_seed_fill(dtb: u64, seed: Ptr[u8], n: u64) -> u64:
    """Fill dtb's /chosen/rng-seed (a placeholder the tree's maker reserved) with the n bytes at seed: as many as
    fit, in whole words (the property is shortened to that length, the rest of it becomes FDT_NOP); with no
    bytes to give the property is removed instead, never left holding bytes that are not fresh.  Returns the
    property's new length (0: removed, or dtb has no placeholder)."""
    prop = fdt_chosen_prop(dtb, cstr(b"rng-seed"))
    if prop == 0:
        return 0
    old_end = fdt_align4(fdt_prop_data(prop) + fdt_prop_len(prop))
    k = fdt_prop_len(prop)
    if n < k:
        k = n
    k = k & ~u64(3)  # whole words: the bytes after a shortened property stay on a token boundary
    if k == 0:
        fdt_nop_words(prop, old_end)
        return 0
    data = Ptr[u8](fdt_prop_data(prop))
    for i in range(k):
        data[i] = seed[i]
    lp = Ptr[u8](prop + 4)  # 5.4.1 FDT_PROP: u32 len, big-endian
    lp[0] = u8(k >> 24)
    lp[1] = u8((k >> 16) & 0xFF)
    lp[2] = u8((k >> 8) & 0xFF)
    lp[3] = u8(k & 0xFF)
    fdt_nop_words(fdt_prop_data(prop) + k, old_end)
    return k
