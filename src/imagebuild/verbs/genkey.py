"""genkey: make mkosi.key (mode 0600) and mkosi.crt in the configuration directory.

The settings SecureBootKey=/SecureBootCertificate=, VerityKey=/VerityCertificate= and SshKey=/SshCertificate=
pick these files up by default (the rows in config/table/: paths=("mkosi.key",) / ("mkosi.crt",)).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.errors import ImageBuildError
from imagebuild.log import logger

if TYPE_CHECKING:
    from imagebuild.config import Args, Config

NEEDS_CONFIG = False


def _common_name(template: str) -> str:
    # %u is the only specifier mkosi documents for --genkey-common-name; %% is a literal percent.
    return template.replace("%%", "\0").replace("%u", getpass.getuser()).replace("\0", "%")


def run(args: Args, images: list[Config]) -> int:
    from imagebuild.boot.keys import make_key_pair, write_key_pair

    directory = Path(args.directory) if args.directory is not None else Path.cwd()
    if not directory.is_dir():
        raise ImageBuildError(f"-C {directory}: not a directory")
    try:
        days = int(args.genkey_valid_days)
    except ValueError:
        raise ImageBuildError(
            f"--genkey-valid-days={args.genkey_valid_days}: not a number of days"
        ) from None
    key_path, certificate_path = directory / "mkosi.key", directory / "mkosi.crt"
    # Refuse before the (slow) key generation.
    write_check = [p for p in (key_path, certificate_path) if p.exists() or p.is_symlink()]
    if write_check and not args.force:
        raise ImageBuildError(
            f"{', '.join(str(p) for p in write_check)} already exist(s); use -f to replace them with a new key"
        )
    common_name = _common_name(args.genkey_common_name)
    pair = make_key_pair(common_name, days)
    write_key_pair(pair, key_path, certificate_path, force=bool(args.force))
    logger.info("Wrote %s and %s (CN=%s, valid for %d days)", key_path, certificate_path, common_name, days)
    return 0
