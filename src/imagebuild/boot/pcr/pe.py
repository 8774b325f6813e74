"""The section table of a PE/COFF executable (a UKI), and a section's bytes as the UEFI loader maps them.

Only what PCR prediction needs: section names, sizes and offsets. Our own small reader rather than the
pefile package: it is a few struct layouts, and it keeps the builder free of an untyped dependency.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from imagebuild.errors import ImageBuildError

DOS_MAGIC = b"MZ"
PE_SIGNATURE = b"PE\0\0"
COFF_HEADER = struct.Struct("<HHIIIHH")  # Machine .. Characteristics, after the PE signature
SECTION_HEADER = struct.Struct("<8sIIIIIIHHI")
PE32_MAGIC, PE32_PLUS_MAGIC = 0x10B, 0x20B
SIZE_OF_IMAGE_OFFSET = 56  # in the optional header, the same for PE32 and PE32+


class PeError(ImageBuildError):
    """The file is not a PE executable we can read."""


@dataclass(frozen=True)
class PeSection:
    name: str
    virtual_size: int
    virtual_address: int
    raw_size: int
    raw_offset: int


@dataclass(frozen=True)
class PeImage:
    size_of_image: int
    sections: tuple[PeSection, ...]


def _unpack(what: str, layout: struct.Struct, data: bytes, offset: int, source: str) -> tuple[int | bytes, ...]:
    if offset < 0 or offset + layout.size > len(data):
        raise PeError(f"{source}: truncated PE file (the {what} ends past the end of the file)")
    return layout.unpack_from(data, offset)


def parse_pe(data: bytes, source: str = "PE file") -> PeImage:
    """The section table of the PE image in `data`; `source` names it in errors."""
    if data[:2] != DOS_MAGIC or len(data) < 0x40:
        raise PeError(f"{source}: not a PE executable (no MZ header)")
    (pe_offset,) = struct.unpack_from("<I", data, 0x3C)
    if data[pe_offset:pe_offset + 4] != PE_SIGNATURE:
        raise PeError(f"{source}: not a PE executable (no PE signature at offset {pe_offset:#x})")
    coff = _unpack("COFF header", COFF_HEADER, data, pe_offset + 4, source)
    count, optional_size = int(coff[1]), int(coff[5])
    optional = pe_offset + 4 + COFF_HEADER.size
    if optional + SIZE_OF_IMAGE_OFFSET + 4 > len(data) or optional_size < SIZE_OF_IMAGE_OFFSET + 4:
        raise PeError(f"{source}: truncated PE file (no optional header)")
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic not in (PE32_MAGIC, PE32_PLUS_MAGIC):
        raise PeError(f"{source}: unknown PE optional header magic {magic:#x}")
    (size_of_image,) = struct.unpack_from("<I", data, optional + SIZE_OF_IMAGE_OFFSET)
    sections = []
    for number in range(count):
        fields = _unpack(f"section header {number}", SECTION_HEADER, data,
                         optional + optional_size + number * SECTION_HEADER.size, source)
        raw_name = fields[0]
        assert isinstance(raw_name, bytes)
        sections.append(PeSection(
            name=raw_name.rstrip(b"\0").decode("ascii", errors="replace"),
            virtual_size=int(fields[1]), virtual_address=int(fields[2]),
            raw_size=int(fields[3]), raw_offset=int(fields[4]),
        ))
    return PeImage(size_of_image=int(size_of_image), sections=tuple(sections))


def section_bytes(data: bytes, section: PeSection, source: str = "PE file") -> bytes:
    """The section as mapped in memory: VirtualSize bytes, file data beyond SizeOfRawData read as zeros.

    ukify pads SizeOfRawData to the file alignment and records the real length in VirtualSize; the
    stub measures VirtualSize bytes of the loaded image, so this is exactly what it hashes.
    """
    from_file = min(section.raw_size, section.virtual_size)
    if section.raw_offset + from_file > len(data):
        raise PeError(f"{source}: section {section.name} ends past the end of the file")
    return data[section.raw_offset:section.raw_offset + from_file] + bytes(section.virtual_size - from_file)


def read_pe(path: Path) -> tuple[bytes, PeImage]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PeError(f"{path}: cannot read: {e.strerror}") from None
    return data, parse_pe(data, str(path))
