"""The [Validation] rows of the settings table, in the order of the man page."""

from __future__ import annotations

from imagebuild.config.enums import SecureBootSignTool
from imagebuild.config.setting import Files, Kind, Setting
from imagebuild.config.table.parsers import key_parser
from imagebuild.config.table.shorthands import boolean, choice, feature, path, string
from imagebuild.config.values import KeySource, parse_key_source

ROWS: tuple[Setting, ...] = (
    boolean("SecureBoot", "Validation", label="UEFI SecureBoot",
            help="Sign systemd-boot and unified kernel images for UEFI SecureBoot."),
    boolean("SecureBootAutoEnroll", "Validation", default=True, label="UEFI SecureBoot AutoEnroll",
            help="Enroll the SecureBoot keys automatically in virtual machines."),
    Setting("SecureBootKey", "Validation", Kind.SCALAR, key_parser, paths=("mkosi.key",), metavar="PATH",
            label="SecureBoot Signing Key",
            files=Files.CONTENT,
            help="The private key for SecureBoot signing (mkosi.key)."),
    Setting("SecureBootKeySource", "Validation", Kind.SCALAR, parse_key_source, default=KeySource(),
            metavar="SOURCE[:ENGINE]", label="SecureBoot Signing Key Source",
            help="Where SecureBootKey= comes from: file, or engine:NAME."),
    path("SecureBootCertificate", "Validation", paths=("mkosi.crt",),
         files=Files.CONTENT,
         help="The X.509 certificate for SecureBoot signing (mkosi.crt)."),
    choice("SecureBootSignTool", "Validation", SecureBootSignTool, default=SecureBootSignTool.auto,
           help="The tool signing PE binaries: auto, sbsign or pesign."),
    Setting("VerityKey", "Validation", Kind.SCALAR, key_parser, paths=("mkosi.key",), metavar="PATH",
            label="Verity Signing Key",
            files=Files.CONTENT,
            help="The private key for the verity signature (mkosi.key)."),
    Setting("VerityKeySource", "Validation", Kind.SCALAR, parse_key_source, default=KeySource(),
            metavar="SOURCE[:ENGINE]", label="Verity Signing Key Source",
            help="Where VerityKey= comes from: file, or engine:NAME."),
    path("VerityCertificate", "Validation", paths=("mkosi.crt",),
         files=Files.CONTENT,
         help="The X.509 certificate for the verity signature (mkosi.crt)."),
    feature("SignExpectedPcr", "Validation", label="Sign Expected PCRs",
            help="Embed a signature of the expected PCR values in UKIs."),
    path("Passphrase", "Validation", required=False, secret=True, paths=("mkosi.passphrase",),
         files=Files.CONTENT,
         help="A file with the LUKS passphrase (mkosi.passphrase); mode 0600 or stricter."),
    boolean("Checksum", "Validation", help="Write a SHA256SUMS file."),
    boolean("Sign", "Validation", help="Sign the SHA256SUMS file with gpg (implies Checksum=)."),
    string("Key", "Validation", metavar="KEY", label="GPG Key", help="The gpg key to sign with."),
)
