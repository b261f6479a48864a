"""numba kernels of the ingestion hot paths: the segment format's batch framing (see
segment.py) and the Kafka record codec (see kafka/records.py for the mapping).

``encode_frames``: serialized ``EventData`` messages -> a stored batch's frames.
``records_to_events``: the records of an uncompressed record batch v2 -> serialized
``EventData`` messages back to back. ``frames_to_records``: stored ``ReceivedEvent``
frames -> the records of one record batch. ``count_frames``, ``frames_to_columns``,
``gather``, ``same_spans``: stored frames -> the columns of a packed read. Each is one pass over the bytes; every
length read from the input is checked against the end of its buffer before it is
used (the input comes from the network or from publishers), and the output buffers
are sized by the bounds noted at the callers. What the Kafka kernels do not handle
(a string that is not ASCII, a key kept in base64, bytes that do not parse) they
report with a status, and the caller takes the Python path, which gives the same
result or the precise error.

One module on purpose: numba's cache is checked against the source file of each
function, so kernels that inline helpers from another file would keep stale code.
Imported through :data:`headwater.services.ingestion.log.jit.KERNELS` only (numba is
imported here, and compiling takes a moment).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["CORRUPT", "OK", "OTHER", "count_frames", "encode_frames", "frames_to_columns", "frames_to_records", "gather",
           "records_to_events", "same_spans", "warm_up"]

OK, OTHER, CORRUPT = 0, 1, 2


@numba.njit(cache=True, inline="always")
def copy_bytes(out, q, src, at, n):
    """out[q:q+n] = src[at:at+n] as a loop over views, which LLVM vectorises (numba's slice
    assignment, or indexing with ``q + k``, is about 10-20x slower)."""
    o = out[q:q + n]
    s = src[at:at + n]
    for k in range(n):
        o[k] = s[k]


@numba.njit(cache=True, inline="always")
def uvarint_len(v):
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


@numba.njit(cache=True, inline="always")
def put_uvarint(out, q, v):
    while v >= 0x80:
        out[q] = (v & 0x7F) | 0x80
        v >>= 7
        q += 1
    out[q] = v
    return q + 1


@numba.njit(cache=True, inline="always")
def _put_bytes(out, q, tag, src, at, n):
    """A length-delimited protobuf field: tag, length, ``src[at:at+n]``; returns the new end."""
    out[q] = tag
    q = put_uvarint(out, q + 1, n)
    copy_bytes(out, q, src, at, n)
    return q + n


@numba.njit(cache=True, inline="always")
def _put_fixed(out, q, tag, v):
    """tag + a 9-byte (non-minimal) varint of a non-negative int below 2**63."""
    out[q] = tag
    for k in range(8):
        out[q + 1 + k] = ((v >> (7 * k)) & 0x7F) | 0x80
    out[q + 9] = (v >> 56) & 0x7F
    return q + 10


@numba.njit(cache=True)
def encode_frames(events, event_ends, const, base_sequence, base_offset, out, ends_at, payload_at):
    """Write each event's ``ReceivedEvent`` frame at ``out[payload_at:]`` and the frames'
    end positions (u32, little-endian) at ``out[ends_at:]``; returns the payload length.

    ``events`` holds the serialized ``EventData`` messages back to back, ``event_ends``
    where each ends; ``const`` is the partition id and enqueued time fields.
    """
    n = event_ends.shape[0]
    clen = const.shape[0]
    q = payload_at
    prev = 0
    for i in range(n):
        e = event_ends[i]
        elen = e - prev
        body_len = 1 + uvarint_len(elen) + elen + clen + 20
        start = q - payload_at
        out[q] = 0x0A
        q = put_uvarint(out, q + 1, body_len)
        q = _put_bytes(out, q, 0x0A, events, prev, elen)
        copy_bytes(out, q, const, 0, clen)
        q += clen
        q = _put_fixed(out, q, 0x18, base_sequence + i)
        q = _put_fixed(out, q, 0x20, base_offset + start)
        end = q - payload_at
        w = ends_at + 4 * i
        out[w] = end & 0xFF
        out[w + 1] = (end >> 8) & 0xFF
        out[w + 2] = (end >> 16) & 0xFF
        out[w + 3] = (end >> 24) & 0xFF
        prev = e
    return q - payload_at



@numba.njit(cache=True, inline="always")
def _uvarint(buf, p, end):
    """(value, next position); next position -1 when the varint runs past ``end`` or 10 bytes."""
    result = np.int64(0)
    shift = 0
    while p < end and shift < 64:
        b = np.int64(buf[p])
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7
    return result, -1


@numba.njit(cache=True, inline="always")
def _zigzag(u):
    return (u >> 1) ^ -(u & 1)


@numba.njit(cache=True, inline="always")
def _put_zigzag(out, q, v):
    return put_uvarint(out, q, (v << 1) ^ (v >> 63))


@numba.njit(cache=True, inline="always")
def _zigzag_len(v):
    return uvarint_len((v << 1) ^ (v >> 63))


@numba.njit(cache=True, inline="always")
def _ascii(buf, lo, hi):
    for k in range(lo, hi):
        if buf[k] >= 0x80:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _field(buf, p, end):
    """A key, value or header string (zigzag length, -1 = null = empty): (start, length, next
    position); next position -1 when it runs past ``end``."""
    u, p = _uvarint(buf, p, end)
    if p < 0:
        return 0, 0, -1
    n = max(_zigzag(u), 0)
    if n > end - p:
        return 0, 0, -1
    return p, n, p + n


@numba.njit(cache=True)
def records_to_events(src, count, out, ends):
    """Kafka records -> EventData messages in ``out``, event i ending at ``ends[i]``.

    Returns (bytes written, status): OTHER when a key or header is not ASCII (protobuf
    strings must be UTF-8: the Python path checks and replaces), CORRUPT when the
    records do not parse.
    """
    n = src.shape[0]
    p = 0
    q = 0
    for i in range(count):
        u, p = _uvarint(src, p, n)
        if p < 0:
            return q, CORRUPT
        end = p + _zigzag(u)
        if end <= p or end > n:
            return q, CORRUPT
        p += 1  # attributes: unused
        _, p = _uvarint(src, p, end)  # timestamp delta: Headwater stamps the enqueued time
        if p < 0:
            return q, CORRUPT
        _, p = _uvarint(src, p, end)  # offset delta: the log numbers events itself
        if p < 0:
            return q, CORRUPT
        kat, klen, p = _field(src, p, end)
        if p < 0:
            return q, CORRUPT
        vat, vlen, p = _field(src, p, end)
        if p < 0:
            return q, CORRUPT
        u, p = _uvarint(src, p, end)
        if p < 0:
            return q, CORRUPT
        hcount = _zigzag(u)
        if vlen > 0:
            q = _put_bytes(out, q, 0x0A, src, vat, vlen)
        for _ in range(hcount):
            hkat, hklen, p = _field(src, p, end)
            if p < 0:
                return q, CORRUPT
            hvat, hvlen, p = _field(src, p, end)
            if p < 0:
                return q, CORRUPT
            if not (_ascii(src, hkat, hkat + hklen) and _ascii(src, hvat, hvat + hvlen)):
                return q, OTHER
            entry = 2 + uvarint_len(hklen) + hklen + uvarint_len(hvlen) + hvlen
            out[q] = 0x12
            q = put_uvarint(out, q + 1, entry)
            q = _put_bytes(out, q, 0x0A, src, hkat, hklen)
            q = _put_bytes(out, q, 0x12, src, hvat, hvlen)
        if p != end:
            return q, CORRUPT
        if klen > 0:
            if not _ascii(src, kat, kat + klen):
                return q, OTHER
            q = _put_bytes(out, q, 0x22, src, kat, klen)
        ends[i] = q
    if p != n:
        return q, CORRUPT
    return q, OK


@numba.njit(cache=True, inline="always")
def _skip(buf, p, end, wire):
    """Past a field's value of wire type ``wire``; -1 when it does not parse."""
    if wire == 0:
        _, p = _uvarint(buf, p, end)
        return p
    if wire == 2:
        ln, p = _uvarint(buf, p, end)
        if p < 0 or ln > end - p:
            return -1
        return p + ln
    if wire == 1:
        return p + 8 if p + 8 <= end else -1
    if wire == 5:
        return p + 4 if p + 4 <= end else -1
    return -1


@numba.njit(cache=True, inline="always")
def _fixed9(buf, at):
    """Whether ``buf[at:at+9]`` is one 9-byte varint (the log's fixed-width numbers)."""
    for k in range(8):
        if buf[at + k] < 0x80:
            return False
    return buf[at + 8] < 0x80


@numba.njit(cache=True, inline="always")
def _same(buf, a, b, n):
    for k in range(n):
        if buf[a + k] != buf[b + k]:
            return False
    return True


@numba.njit(cache=True, inline="always")
def _log_layout(src, p, fend):
    """Where the event field's value starts and ends when the frame ``src[p:fend]`` has the layout
    the log writes (event, partition id and time, then sequence number and offset as 9-byte
    varints: see ``encode_frames``); (-1, -1) when it has not."""
    if fend - p < 22 or src[p] != 0x0A or src[fend - 20] != 0x18 or src[fend - 10] != 0x20:
        return -1, -1
    if not (_fixed9(src, fend - 19) and _fixed9(src, fend - 9)):
        return -1, -1
    ln, e = _uvarint(src, p + 1, fend)
    if e < 0 or ln > fend - 20 - e:
        return -1, -1
    return e, e + ln


@numba.njit(cache=True, inline="always")
def _only_fields_2_and_5(src, p, end):
    """Whether ``src[p:end]`` holds only length-delimited fields 2 and 5 (partition id, time)."""
    while p < end:
        tag, p = _uvarint(src, p, end)
        if p < 0 or (tag != 0x12 and tag != 0x2A):
            return False
        ln, p = _uvarint(src, p, end)
        if p < 0 or ln > end - p:
            return False
        p += ln
    return p == end


@numba.njit(cache=True)
def frames_to_records(src, out, q, i, b64_name, meta):
    """The stored frames in ``src`` -> Kafka records written at ``out[q:]``, numbered from
    record ``i`` of the batch; returns (end of what was written, next record number, status).

    ``meta`` holds the first sequence number and the first and last timestamps (ms): set
    by record 0, read and updated by the others. OTHER when an event keeps its key in the
    property named ``b64_name``.

    Two fast paths give the same result as the general parse: a frame laid out as the log
    writes it whose partition id and time bytes are those of a frame before it (frames of
    one stored batch share them) takes that frame's time without parsing, and an event
    with a body only (no key, no properties) is copied without walking its fields.
    """
    n = src.shape[0]
    p = 0
    first_ts = meta[1]
    nb64 = b64_name.shape[0]
    c_at = -1  # the partition id and time bytes of the last frame in the log's layout, and their time
    c_len = 0
    c_ts = np.int64(0)
    while p < n:
        if src[p] != 0x0A:
            return q, i, CORRUPT
        flen, p = _uvarint(src, p + 1, n)
        if p < 0 or flen > n - p:
            return q, i, CORRUPT
        fend = p + flen
        ev_at, ev_end = _log_layout(src, p, fend)
        if ev_at >= 0 and c_at >= 0 and fend - 20 - ev_end == c_len and _same(src, ev_end, c_at, c_len):
            ts = c_ts
            seq = np.int64(0)
            if i == 0:
                for k in range(9):
                    seq |= np.int64(src[fend - 19 + k] & 0x7F) << (7 * k)
        else:
            layout_at = ev_end
            ev_at = ev_end = -1
            seq = np.int64(-1)
            secs = np.int64(0)
            nanos = np.int64(0)
            while p < fend:
                tag, p = _uvarint(src, p, fend)
                if p < 0:
                    return q, i, CORRUPT
                field = tag >> 3
                wire = tag & 7
                if field == 3 and wire == 0:
                    seq, p = _uvarint(src, p, fend)
                elif (field == 1 or field == 5) and wire == 2:
                    ln, p = _uvarint(src, p, fend)
                    if p < 0 or ln > fend - p:
                        return q, i, CORRUPT
                    if field == 1:
                        ev_at, ev_end = p, p + ln
                    else:
                        t = p
                        while t < p + ln:
                            ttag, t = _uvarint(src, t, p + ln)
                            if t < 0:
                                return q, i, CORRUPT
                            if ttag == 0x08:
                                secs, t = _uvarint(src, t, p + ln)
                            elif ttag == 0x10:
                                nanos, t = _uvarint(src, t, p + ln)
                            else:
                                t = _skip(src, t, p + ln, ttag & 7)
                            if t < 0:
                                return q, i, CORRUPT
                    p += ln
                else:
                    p = _skip(src, p, fend, wire)
                if p < 0:
                    return q, i, CORRUPT
            if ev_at < 0 or seq < 0:
                return q, i, CORRUPT
            ts = secs * 1000 + nanos // 1_000_000
            if layout_at >= 0 and _only_fields_2_and_5(src, layout_at, fend - 20):
                c_at, c_len, c_ts = layout_at, fend - 20 - layout_at, ts
        if i == 0:
            first_ts = ts
            meta[0] = seq
            meta[1] = ts
        meta[2] = ts
        # The event: body (last one wins, as in protobuf), partition key, properties (headers).
        body_at = body_len = key_at = key_len = 0
        hcount = 0
        hbytes = 0
        e = ev_at
        if ev_end > ev_at and src[ev_at] == 0x0A:  # a body first: alone?
            ln, e = _uvarint(src, ev_at + 1, ev_end)
            if e < 0 or ln > ev_end - e:
                return q, i, CORRUPT
            body_at, body_len = e, ln
            e += ln
        while e < ev_end:
            tag, e = _uvarint(src, e, ev_end)
            if e < 0:
                return q, i, CORRUPT
            if tag & 7 != 2:
                e = _skip(src, e, ev_end, tag & 7)
                if e < 0:
                    return q, i, CORRUPT
                continue
            ln, e = _uvarint(src, e, ev_end)
            if e < 0 or ln > ev_end - e:
                return q, i, CORRUPT
            field = tag >> 3
            if field == 1:
                body_at, body_len = e, ln
            elif field == 4:
                key_at, key_len = e, ln
            elif field == 2:
                hk_at = hk_len = hv_at = hv_len = 0
                t = e
                while t < e + ln:
                    ttag, t = _uvarint(src, t, e + ln)
                    if t < 0 or ttag & 7 != 2:
                        return q, i, CORRUPT
                    sl, t = _uvarint(src, t, e + ln)
                    if t < 0 or sl > e + ln - t:
                        return q, i, CORRUPT
                    if ttag == 0x0A:
                        hk_at, hk_len = t, sl
                    elif ttag == 0x12:
                        hv_at, hv_len = t, sl
                    t += sl
                if hk_len == nb64:
                    same = True
                    for k in range(nb64):
                        if src[hk_at + k] != b64_name[k]:
                            same = False
                            break
                    if same:
                        return q, i, OTHER
                hcount += 1
                hbytes += _zigzag_len(hk_len) + hk_len + _zigzag_len(hv_len) + hv_len
            e += ln
        delta = ts - first_ts
        key_field = _zigzag_len(key_len) + key_len if key_len > 0 else 1
        rec_len = (1 + _zigzag_len(delta) + _zigzag_len(i) + key_field + _zigzag_len(body_len) + body_len
                   + _zigzag_len(hcount) + hbytes)
        q = _put_zigzag(out, q, rec_len)
        out[q] = 0  # attributes
        q = _put_zigzag(out, q + 1, delta)
        q = _put_zigzag(out, q, i)
        if key_len > 0:
            q = _put_zigzag(out, q, key_len)
            copy_bytes(out, q, src, key_at, key_len)
            q += key_len
        else:
            out[q] = 1  # null key
            q += 1
        q = _put_zigzag(out, q, body_len)
        copy_bytes(out, q, src, body_at, body_len)
        q += body_len
        q = _put_zigzag(out, q, hcount)
        if hcount:
            e = ev_at
            while e < ev_end:
                tag, e = _uvarint(src, e, ev_end)
                if tag & 7 != 2:
                    e = _skip(src, e, ev_end, tag & 7)
                    continue
                ln, e = _uvarint(src, e, ev_end)
                if tag >> 3 == 2:
                    hk_at = hk_len = hv_at = hv_len = 0
                    t = e
                    while t < e + ln:
                        ttag, t = _uvarint(src, t, e + ln)
                        sl, t = _uvarint(src, t, e + ln)
                        if ttag == 0x0A:
                            hk_at, hk_len = t, sl
                        elif ttag == 0x12:
                            hv_at, hv_len = t, sl
                        t += sl
                    q = _put_zigzag(out, q, hk_len)
                    copy_bytes(out, q, src, hk_at, hk_len)
                    q += hk_len
                    q = _put_zigzag(out, q, hv_len)
                    copy_bytes(out, q, src, hv_at, hv_len)
                    q += hv_len
                e += ln
        p = fend
        i += 1
    return q, i, OK


# -- the packed read (ReadEventsRequest.packed, see ../packed.py): stored ``ReceivedEvent``
# frames -> per event where its body and content type are, its sequence number, offset and
# enqueued time in us; then the bodies one after the other. A frame that does not parse gives
# CORRUPT and the caller takes the numpy path, which gives the precise error.


@numba.njit(cache=True, inline="always")
def _delimited(buf, p, end):
    """A length-delimited value at ``p``: (start, length, next position); start -1 when it
    runs past ``end``."""
    n, p = _uvarint(buf, p, end)
    if p < 0 or n > end - p:
        return -1, 0, -1
    return p, n, p + n


@numba.njit(cache=True)
def count_frames(buf):
    """How many frames ``buf`` holds (walking the length prefixes); -1 when one runs past the end."""
    end = len(buf)
    p = 0
    i = 0
    while p < end:
        n, p = _uvarint(buf, p + 1, end)
        if p < 0 or n > end - p:
            return -1
        p += n
        i += 1
    return i


@numba.njit(cache=True)
def frames_to_columns(buf, body_off, body_len, ct_off, ct_len, seqs, offsets, times_us):
    """Fill the per-event columns (arrays of at least as many entries as frames); returns
    (events, status). A missing field reads as 0 / empty, the last occurrence wins."""
    end = len(buf)
    p = 0
    i = 0
    while p < end:
        if i >= len(seqs):
            return i, CORRUPT
        if buf[p] != 0x0A:
            return i, CORRUPT
        n, p = _uvarint(buf, p + 1, end)
        if p < 0 or n > end - p:
            return i, CORRUPT
        fend = p + n
        body_off[i] = 0
        body_len[i] = 0
        ct_off[i] = 0
        ct_len[i] = 0
        seqs[i] = 0
        offsets[i] = 0
        times_us[i] = 0
        while p < fend:
            tag, p = _uvarint(buf, p, fend)
            if p < 0:
                return i, CORRUPT
            field, wire = tag >> 3, tag & 7
            if field == 1 and wire == 2:  # EventData
                p, m, _ = _delimited(buf, p, fend)
                if p < 0:
                    return i, CORRUPT
                mend = p + m
                while p < mend:
                    t2, p = _uvarint(buf, p, mend)
                    if p < 0:
                        return i, CORRUPT
                    f2, w2 = t2 >> 3, t2 & 7
                    if (f2 == 1 or f2 == 3) and w2 == 2:
                        at, k, p = _delimited(buf, p, mend)
                        if p < 0:
                            return i, CORRUPT
                        if f2 == 1:
                            body_off[i] = at
                            body_len[i] = k
                        else:
                            ct_off[i] = at
                            ct_len[i] = k
                    else:
                        p = _skip(buf, p, mend, w2)
                        if p < 0:
                            return i, CORRUPT
            elif (field == 3 or field == 4) and wire == 0:
                v, p = _uvarint(buf, p, fend)
                if p < 0:
                    return i, CORRUPT
                if field == 3:
                    seqs[i] = v
                else:
                    offsets[i] = v
            elif field == 5 and wire == 2:  # Timestamp
                p, m, _ = _delimited(buf, p, fend)
                if p < 0:
                    return i, CORRUPT
                mend = p + m
                secs = np.int64(0)
                nanos = np.int64(0)
                while p < mend:
                    t2, p = _uvarint(buf, p, mend)
                    if p < 0:
                        return i, CORRUPT
                    f2, w2 = t2 >> 3, t2 & 7
                    if (f2 == 1 or f2 == 2) and w2 == 0:
                        v, p = _uvarint(buf, p, mend)
                        if p < 0:
                            return i, CORRUPT
                        if f2 == 1:
                            secs = v
                        else:
                            nanos = v  # a negative int32 comes sign-extended to 64 bits
                    else:
                        p = _skip(buf, p, mend, w2)
                        if p < 0:
                            return i, CORRUPT
                times_us[i] = secs * 1_000_000 + nanos // 1000
            else:
                p = _skip(buf, p, fend, wire)
                if p < 0:
                    return i, CORRUPT
        if p != fend:
            return i, CORRUPT
        i += 1
    return i, OK


@numba.njit(cache=True)
def gather(buf, off, lens, n, out, out_offsets):
    """``buf[off[i]:off[i]+lens[i]]`` for i < n one after the other into ``out``, with n + 1
    offsets in ``out_offsets``; returns the bytes written."""
    q = 0
    out_offsets[0] = 0
    for i in range(n):
        o = off[i]
        k = lens[i]
        out[q:q + k] = buf[o:o + k]
        q += k
        out_offsets[i + 1] = q
    return q


@numba.njit(cache=True)
def same_spans(buf, off, lens, n):
    """Whether the n byte ranges ``buf[off[i]:off[i]+lens[i]]`` are all equal to the first."""
    if n == 0:
        return True
    k = lens[0]
    o0 = off[0]
    for i in range(1, n):
        if lens[i] != k:
            return False
        o = off[i]
        for j in range(k):
            if buf[o + j] != buf[o0 + j]:
                return False
    return True


def warm_up() -> None:
    """Compile (or load from the cache) for the argument types the callers pass."""
    ro = np.frombuffer(bytes(8), np.uint8)  # views of bytes are read-only: a type of their own
    out = np.zeros(256, np.uint8)
    for events in (ro, np.zeros(8, np.uint8)):  # events packed in bytes, or in a kernel's output
        encode_frames(events, np.array([2, 4], np.int64), ro[:3], 0, 0, out, 0, 8)
    records_to_events(ro, 0, np.zeros(8, np.uint8), np.zeros(1, np.int64))
    frames_to_records(ro[:0], np.zeros(8, np.uint8), 0, 0, np.frombuffer(bytes(4), np.uint8), np.zeros(3, np.int64))
    z = np.zeros(2, np.int64)
    count_frames(ro[:0])
    frames_to_columns(ro[:0], z, z, z, z, z, z, z)
    gather(ro, z, z, 0, np.zeros(2, np.uint8), np.zeros(3, np.int64))
    same_spans(ro, z, z, 0)
