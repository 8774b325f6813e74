"""Minimal PE32+ files built byte by byte, so that the PE reader is tested against the layout itself."""

from __future__ import annotations

import struct

FILE_ALIGNMENT = 0x200


def fake_pe(sections: list[tuple[str, bytes]], virtual_sizes: dict[str, int] | None = None) -> bytes:
    """A PE32+ image holding `sections` in this order; virtual_sizes overrides a section's VirtualSize."""
    virtual_sizes = virtual_sizes or {}
    pe_offset = 0x80
    optional_size = 240  # PE32+ with 16 data directories
    headers_end = pe_offset + 4 + 20 + optional_size + 40 * len(sections)
    offset = -(-headers_end // FILE_ALIGNMENT) * FILE_ALIGNMENT
    table, body, address = b"", b"", 0x1000
    for name, data in sections:
        raw_size = -(-len(data) // FILE_ALIGNMENT) * FILE_ALIGNMENT
        virtual_size = virtual_sizes.get(name, len(data))
        table += struct.pack("<8sIIIIIIHHI", name.encode(), virtual_size, address, raw_size, offset + len(body),
                             0, 0, 0, 0, 0x40000040)
        body += data + bytes(raw_size - len(data))
        address += -(-max(virtual_size, 1) // 0x1000) * 0x1000
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", pe_offset)
    dos += bytes(pe_offset - len(dos))
    coff = struct.pack("<HHIIIHH", 0x8664, len(sections), 0, 0, 0, optional_size, 0x22)
    optional = struct.pack("<H", 0x20B) + bytes(54) + struct.pack("<I", address) + bytes(optional_size - 60)
    head = dos + b"PE\0\0" + coff + optional + table
    return head + bytes(offset - len(head)) + body
