"""ManifestFormat=: what the image contains, read from its package database.

json: mkosi's manifest (manifest_version 1): the image's name, version, distribution, release and
architecture, and one entry per installed package (type, name, version, architecture, size in bytes).
changelog: per source package its version, binary packages and Debian changelog, for diffing two images.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagebuild.outputs.naming import changelog_name, manifest_name

if TYPE_CHECKING:
    from imagebuild.config import Config
    from imagebuild.context import Context

DPKG_STATUS = Path("var/lib/dpkg/status")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    architecture: str
    size: int  # bytes (dpkg records KiB)
    source: str
    source_version: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": "deb", "name": self.name, "version": self.version,
                "architecture": self.architecture, "size": self.size}


def _paragraphs(text: str) -> list[dict[str, str]]:
    result: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                result.append(fields)
            fields, key = {}, None
        elif line[0] in " \t":
            if key is not None:
                fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        result.append(fields)
    return result


def parse_dpkg_status(text: str) -> list[Package]:
    """The installed packages of a dpkg status file, sorted by name and architecture."""
    packages = []
    for p in _paragraphs(text):
        if p.get("Status", "").split()[-1:] != ["installed"]:
            continue
        version = p.get("Version", "")
        # "Source: name (version)" when the source's version differs from the binary's.
        source, _, source_version = p.get("Source", p["Package"]).partition(" ")
        packages.append(Package(
            name=p["Package"], version=version, architecture=p.get("Architecture", ""),
            size=int(p.get("Installed-Size", "0") or 0) * 1024,
            source=source, source_version=source_version.strip("()") or version,
        ))
    return sorted(packages, key=lambda p: (p.name, p.architecture))


def installed_packages(root: Path) -> list[Package]:
    status = root / DPKG_STATUS
    if not status.exists():
        return []
    return parse_dpkg_status(status.read_text(errors="replace"))


def json_manifest(config: Config, packages: list[Package]) -> str:
    document = {
        "manifest_version": MANIFEST_VERSION,
        "config": {
            "name": config.image_id or "image",
            "version": config.image_version or "unknown",
            "architecture": str(config.architecture),
            "distribution": str(config.distribution),
            "release": config.release,
        },
        "packages": [p.as_dict() for p in packages],
    }
    return json.dumps(document, indent=2) + "\n"


def _changelog_text(root: Path, binaries: list[str]) -> str | None:
    for name in binaries:
        path = root / "usr/share/doc" / name / "changelog.Debian.gz"
        # Doc directories may be symlinks to another package's: stay inside the image.
        if path.is_file() and root.resolve() in path.resolve().parents:
            with gzip.open(path, "rt", errors="replace") as f:
                return f.read()
    return None


def deb_file(archives: Path, package: Package) -> Path:
    """Where apt keeps a package's .deb (it writes the epoch's colon as %3a)."""
    return archives / f"{package.name}_{package.version.replace(':', '%3a')}_{package.architecture}.deb"


def changelog_from_deb(deb: Path, name: str) -> str | None:
    """The Debian changelog inside a .deb (for images built with WithDocs=no), or None."""
    if not deb.is_file() or shutil.which("dpkg-deb") is None:
        return None
    wanted = f"./usr/share/doc/{name}/changelog.Debian.gz"
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", os.fspath(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                if member.name == wanted and member.isfile():
                    data = tar.extractfile(member)
                    return gzip.decompress(data.read()).decode(errors="replace") if data else None
    except (tarfile.TarError, OSError, EOFError):
        return None
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    return None


def changelog(root: Path, packages: list[Package], archives: Path | None = None) -> str:
    sources: dict[tuple[str, str], list[str]] = {}
    by_source: dict[tuple[str, str], list[Package]] = {}
    for p in packages:
        sources.setdefault((p.source, p.source_version), []).append(p.name)
        by_source.setdefault((p.source, p.source_version), []).append(p)
    lines = [f"Packages: {len(packages)}", f"Size: {sum(p.size for p in packages)} bytes", ""]
    for (source, version), binaries in sorted(sources.items()):
        lines.append(f"{source} {version} ({', '.join(sorted(binaries))})")
        text = _changelog_text(root, sorted(binaries))
        if text is None and archives is not None:
            # Not in the image (WithDocs=no): read it from the packages apt downloaded.
            for p in by_source[(source, version)]:
                text = changelog_from_deb(deb_file(archives, p), p.name)
                if text is not None:
                    break
        lines.append(text.rstrip("\n") if text is not None else "  (no changelog in the image or the package cache)")
        lines.append("")
    return "\n".join(lines)


def write_manifests(context: Context) -> list[Path]:
    """Write the manifests ManifestFormat= asks for into the staging directory."""
    config = context.config
    formats = [str(f) for f in config.manifest_format]
    if not formats:
        return []
    packages = installed_packages(context.root)
    written = []
    if "json" in formats:
        path = context.staging / manifest_name(config)
        path.write_text(json_manifest(config, packages))
        written.append(path)
    if "changelog" in formats:
        path = context.staging / changelog_name(config)
        path.write_text(changelog(context.root, packages, context.package_cache / "debian" / "archives"))
        written.append(path)
    return written
