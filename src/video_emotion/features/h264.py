"""H.264 bitstream facts read without decoding: the NAL units of a length-prefixed (MP4, Matroska) packet,
whether a packet is a non-reference picture, and the parameter sets of an `avcC` record."""

from __future__ import annotations


def _ue(data: bytes, count: int) -> list[int] | None:
    """The first `count` unsigned Exp-Golomb values of a NAL unit's payload (None where it runs out)."""
    bits = "".join(f"{b:08b}" for b in data.replace(b"\x00\x00\x03", b"\x00\x00"))
    pos, out = 0, []
    for _ in range(count):
        one = bits.find("1", pos)
        zeros = one - pos
        if one < 0 or zeros > 31 or one + zeros + 1 > len(bits):
            return None
        out.append(int(bits[one:one + zeros + 1], 2) - 1)
        pos = one + zeros + 1
    return out


def avcc(extradata: bytes | None) -> tuple[int, frozenset[int]] | None:
    """(NAL length size, picture parameter set ids) from an `avcC` record; None for another layout."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    size, i, ids = (extradata[4] & 3) + 1, 6, set()
    try:
        for _ in range(extradata[5] & 31):
            i += 2 + int.from_bytes(extradata[i:i + 2], "big")
        count, i = extradata[i], i + 1
        for _ in range(count):
            n = int.from_bytes(extradata[i:i + 2], "big")
            pps = _ue(extradata[i + 3:i + 2 + min(n, 8)], 1)
            if pps is None:
                return None
            ids.add(pps[0])
            i += 2 + n
    except IndexError:
        return None
    return (size, frozenset(ids)) if ids and size in (1, 2, 4) else None


def nal_units(data: bytes | memoryview, size: int) -> list[tuple[int, int]] | None:
    """(offset, length) of each NAL unit of a length-prefixed packet; None where the lengths do not add up."""
    units, i, end = [], 0, len(data)
    while i < end:
        n = int.from_bytes(data[i:i + size], "big")
        i += size
        if n == 0 or i + n > end:
            return None
        units.append((i, n))
        i += n
    return units


def disposable(data: bytes | memoryview, size: int, pps: frozenset[int]) -> bool | None:
    """Whether a packet is one picture of non-reference slices only (access unit delimiters and filler
    aside), whose first slice header reads sanely; None where the packet carries a parameter set (the
    stream's decoding may change: nothing more is skipped)."""
    units = nal_units(data, size)
    if units is None:
        return False
    slices = 0
    for i, n in units:
        head, kind = data[i], data[i] & 31
        if kind in (7, 8, 13, 15):
            return None
        if kind == 1 and not head & 0xE0:
            if not slices:  # first_mb_in_slice 0, a P, B or I slice, a known picture parameter set
                fields = _ue(bytes(data[i + 1:i + min(n, 12)]), 3)
                if fields is None or fields[0] != 0 or fields[1] % 5 not in (0, 1, 2) or fields[2] not in pps:
                    return False
            slices += 1
        elif kind not in (9, 12):
            return False
    return slices > 0
