"""H.264 and HEVC bitstream facts read without decoding: the NAL units of a length-prefixed packet (MP4,
MOV, Matroska), whether a packet is a picture no other picture refers to, and the parameter sets of the
stream's `avcC` / `hvcC` record."""

from __future__ import annotations

from typing import NamedTuple

H264_PARAMS = frozenset({7, 8, 13, 15})  # sequence and picture parameter sets, their extensions, subset SPS
HEVC_PARAMS = frozenset({32, 33, 34})    # video, sequence and picture parameter sets
# HEVC pictures no picture of their own sub-layer refers to: TRAIL_N, TSA_N, STSA_N, RADL_N (RASL_N not:
# FFmpeg drops those after a CRA it starts from, so they are decoded to see whether they come out).
HEVC_NONREF = frozenset({0, 2, 4, 6})


class Layout(NamedTuple):
    hevc: bool
    size: int                # bytes of each NAL unit's length field
    pps: frozenset[int]      # picture parameter set ids of the record
    params: frozenset[bytes]  # the record's parameter sets, byte for byte


def _ue(data: bytes, count: int, skip: int = 0) -> list[int] | None:
    """The first `count` unsigned Exp-Golomb values of a NAL unit's payload after `skip` bits (None where it
    runs out)."""
    bits = "".join(f"{b:08b}" for b in data.replace(b"\x00\x00\x03", b"\x00\x00"))
    pos, out = skip, []
    for _ in range(count):
        one = bits.find("1", pos)
        zeros = one - pos
        if one < 0 or zeros > 31 or one + zeros + 1 > len(bits):
            return None
        out.append(int(bits[one:one + zeros + 1], 2) - 1)
        pos = one + zeros + 1
    return out


def _units(record: bytes, i: int, count: int) -> tuple[list[bytes], int]:
    """`count` NAL units of a record, each after a 2-byte length, from offset `i`; and the offset after them."""
    units = []
    for _ in range(count):
        n = int.from_bytes(record[i:i + 2], "big")
        units.append(bytes(record[i + 2:i + 2 + n]))
        if len(units[-1]) != n or n < 3:
            raise IndexError("a truncated parameter set")
        i += 2 + n
    return units, i


def layout(codec: str, extradata: bytes | None) -> Layout | None:
    """The stream's layout from its `avcC` (H.264) or `hvcC` (HEVC) record; None for another codec, Annex B
    streams (no record) or an HEVC stream with several temporal sub-layers (a sub-layer non-reference
    picture may then be referred to by a higher sub-layer)."""
    rec = bytes(extradata or b"")
    try:
        if codec == "h264" and len(rec) >= 7 and rec[0] == 1:
            sps, i = _units(rec, 6, rec[5] & 31)
            pps, _ = _units(rec, i + 1, rec[i])
            ids, size, params = [_ue(p[1:9], 1) for p in pps], (rec[4] & 3) + 1, sps + pps
        elif codec == "hevc" and len(rec) >= 23 and rec[0] == 1 and (rec[21] >> 3) & 7 == 1:
            i, params, ids, size = 23, [], [], (rec[21] & 3) + 1
            for _ in range(rec[22]):
                kind, count = rec[i] & 63, int.from_bytes(rec[i + 1:i + 3], "big")
                units, i = _units(rec, i + 3, count)
                params += units
                ids += [_ue(u[2:10], 1) for u in units if kind == 34]
        else:
            return None
    except IndexError:
        return None
    if not ids or None in ids or size not in (1, 2, 4):
        return None
    return Layout(codec == "hevc", size, frozenset(i[0] for i in ids), frozenset(params))


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


def new_parameter_sets(data: bytes | memoryview, lay: Layout) -> bool:
    """Whether a packet carries a parameter set that is not byte for byte one of the record's (the stream's
    decoding may change from there)."""
    kinds = HEVC_PARAMS if lay.hevc else H264_PARAMS
    for i, n in nal_units(data, lay.size) or ():
        kind = (data[i] >> 1) & 63 if lay.hevc else data[i] & 31
        if kind in kinds and bytes(data[i:i + n]) not in lay.params:
            return True
    return False


def _nonref_slice(data: bytes | memoryview, i: int, n: int, lay: Layout) -> bool | None:
    """True for a non-reference slice, False for another unit that may go with one (a delimiter, filler),
    None for anything else."""
    if lay.hevc:
        kind, layer, tid = (data[i] >> 1) & 63, ((data[i] & 1) << 5) | (data[i + 1] >> 3), (data[i + 1] & 7) - 1
        if kind in HEVC_NONREF and layer == 0 and tid == 0:
            return True
        return False if kind in (35, 38) and not data[i] & 0x80 else None
    head = data[i]
    if head & 0x1F == 1 and not head & 0xE0:
        return True
    return False if head & 0x1F in (9, 12) and not head & 0x80 else None


def _sane_header(data: bytes | memoryview, i: int, n: int, lay: Layout) -> bool:
    """The first slice's header starts a picture and names a known picture parameter set (H.264: first_mb 0,
    a P, B or I slice; HEVC: first_slice_segment_in_pic_flag)."""
    if lay.hevc:
        body = bytes(data[i + 2:i + min(n, 12)])
        fields = _ue(body, 1, skip=1) if body and body[0] & 0x80 else None
        return fields is not None and fields[0] in lay.pps
    fields = _ue(bytes(data[i + 1:i + min(n, 12)]), 3)
    return fields is not None and fields[0] == 0 and fields[1] % 5 in (0, 1, 2) and fields[2] in lay.pps


def disposable(data: bytes | memoryview, lay: Layout) -> bool:
    """Whether a packet is one picture that no other picture refers to (its slices non-reference; access unit
    delimiters and filler aside), whose first slice header reads sanely."""
    units = nal_units(data, lay.size)
    if not units:
        return False
    slices = [_nonref_slice(data, i, n, lay) for i, n in units]
    if None in slices or not any(slices):
        return False
    i, n = units[slices.index(True)]
    return _sane_header(data, i, n, lay)
