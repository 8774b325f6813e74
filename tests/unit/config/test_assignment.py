"""Assignment rules: later wins, lists append, empty assignments reset, @defaults, the command line wins."""

from __future__ import annotations

import pytest

from imagebuild.config import CacheOnly, Compression, ConfigFeature, OutputFormat

from .conftest import Tree


def test_later_scalar_assignment_wins(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nFormat=tar\nFormat=cpio\n")
    assert tree.one().format == OutputFormat.cpio


def test_lists_append_across_assignments_and_separators(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nPackages=a,b\nPackages=c\n    d,e\n")
    assert tree.one().packages == ["a", "b", "c", "d", "e"]


def test_empty_assignment_empties_a_list(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nPackages=a\n")
    tree.write("mkosi.conf.d/10.conf", "[Content]\nPackages=\nPackages=b\n")
    assert tree.one().packages == ["b"]


def test_empty_assignment_drops_a_list_default(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nKernelCommandLine=\n")
    assert tree.one().kernel_command_line == []


def test_explicit_list_replaces_its_default(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nKernelCommandLine=quiet splash\n")
    assert tree.one().kernel_command_line == ["quiet", "splash"]


def test_kernel_command_line_default_follows_the_architecture(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nArchitecture=arm64\n")
    assert tree.one().kernel_command_line == ["console=ttyAMA0"]


def test_empty_scalar_assignment_restores_the_default(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nFormat=tar\nImageId=x\n")
    tree.write("mkosi.conf.d/10.conf", "[Output]\nFormat=\nImageId=\n")
    c = tree.one()
    assert c.format == OutputFormat.disk and c.image_id is None


def test_at_default_is_used_when_nothing_explicit(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\n@Format=tar\n[Content]\n@Packages=x\n")
    c = tree.one()
    assert c.format == OutputFormat.tar
    assert c.packages == ["x"]


def test_explicit_value_beats_at_default_in_any_order(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nFormat=cpio\n")
    tree.write("mkosi.conf.d/10.conf", "[Output]\n@Format=tar\n[Content]\n@Packages=x\n")
    tree.write("mkosi.conf.d/20.conf", "[Content]\nPackages=y\n")
    c = tree.one()
    assert c.format == OutputFormat.cpio
    assert c.packages == ["y"]


def test_command_line_beats_at_default(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\n@Format=tar\n")
    assert tree.one("--format=directory").format == OutputFormat.directory


def test_command_line_wins_over_files(tree: Tree) -> None:
    # The deliberate change from v22, which refused this combination.
    tree.write("mkosi.conf", "[Distribution]\nDistribution=fedora\nRelease=40\n[Output]\nFormat=tar\n")
    c = tree.one("-d", "debian", "--release=trixie", "-t", "directory")
    assert (c.distribution, c.release, c.format) == ("debian", "trixie", OutputFormat.directory)


def test_command_line_value_is_what_matches_see(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Distribution]\nDistribution=fedora\n")
    tree.write("mkosi.conf.d/10.conf", "[Match]\nDistribution=debian\n[Content]\nPackages=apt\n")
    assert tree.one("--distribution=debian").packages == ["apt"]


def test_command_line_lists_come_first_and_survive_file_resets(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nPackages=a\nPackages=\nPackages=b\n")
    assert tree.one("-p", "x", "--package=y,z").packages == ["x", "y", "z", "b"]


def test_empty_command_line_list_drops_the_files_values(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nPackages=a\n")
    assert tree.one("--package=", "--package=x").packages == ["x"]


def test_empty_command_line_scalar_means_the_default(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nFormat=tar\n")
    assert tree.one("--format=").format == OutputFormat.disk


def test_command_line_list_drops_the_list_default(tree: Tree) -> None:
    assert tree.one("--kernel-command-line=quiet").kernel_command_line == ["quiet"]


def test_environment_later_wins_and_command_line_wins(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSED", "through")
    tree.write("mkosi.conf", "[Content]\nEnvironment=A=1 B=2\nEnvironment=A=3 PASSED 'Q=a b'\n")
    env = tree.one("--environment=B=cli").environment
    assert (env["A"], env["B"], env["PASSED"], env["Q"]) == ("3", "cli", "through", "a b")


def test_environment_files_then_environment(tree: Tree) -> None:
    tree.write("mkosi.env", "# comment\nA=file\nB=file\n\nexport C=file\n")
    tree.write("mkosi.conf", "[Content]\nEnvironment=B=setting\n")
    env = tree.one().environment
    assert (env["A"], env["B"], env["C"]) == ("file", "setting", "file")


def test_empty_environment_resets(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Content]\nEnvironment=A=1\nEnvironment=\n")
    assert "A" not in tree.one().environment


def test_source_date_epoch_from_environment(tree: Tree, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert tree.one().source_date_epoch is None
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert tree.one().source_date_epoch == 1700000000
    tree.write("mkosi.conf", "[Content]\nEnvironment=SOURCE_DATE_EPOCH=5\n")
    assert tree.one().source_date_epoch == 5
    tree.write("mkosi.conf", "[Content]\nEnvironment=SOURCE_DATE_EPOCH=5\nSourceDateEpoch=7\n")
    c = tree.one()
    assert c.source_date_epoch == 7


def test_minimum_version_keeps_the_highest(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Config]\nMinimumVersion=19\nMinimumVersion=21\nMinimumVersion=20\n")
    assert tree.one().minimum_version == "21"


def test_include_is_not_reset_by_an_empty_assignment(tree: Tree) -> None:
    tree.write("a.conf", "")
    tree.write("mkosi.conf", "[Config]\nInclude=a.conf\nInclude=\n")
    assert tree.one().include == [tree.root / "a.conf"]


@pytest.mark.parametrize(
    ("setting", "value", "attr", "expected"),
    [
        ("[Distribution]\nCacheOnly", "yes", "cache_only", CacheOnly.always),
        ("[Distribution]\nCacheOnly", "metadata", "cache_only", CacheOnly.metadata),
        ("[Output]\nCompressOutput", "yes", "compress_output", Compression.zstd),
        ("[Output]\nCompressOutput", "xz", "compress_output", Compression.xz),
        ("[Content]\nBootable", "no", "bootable", ConfigFeature.disabled),
        ("[Host]\nQemuMem", "4G", "qemu_mem", "4G"),
        ("[Host]\nQemuSmp", "4", "qemu_smp", "4"),
        ("[Host]\nRuntimeSize", "8G", "runtime_size", 8 * 1024**3),
        ("[Host]\nToolsTree", "default", "tools_tree", "default"),
        ("[Host]\nQemuFirmwareVariables", "microsoft", "qemu_firmware_variables", "microsoft"),
        ("[Output]\nSectorSize", "4096", "sector_size", 4096),
        ("[Output]\nSeed", "random", "seed", None),
        ("[Output]\nManifestFormat", "json,changelog", "manifest_format", ["json", "changelog"]),
        ("[Host]\nQemuArgs", "-device 'virtio-rng-pci,id=rng0' -m 1G", "qemu_args",
         ["-device", "virtio-rng-pci,id=rng0", "-m", "1G"]),
        ("[Content]\nRemoveFiles", "/usr/share/doc/*,/var/cache", "remove_files", ["/usr/share/doc/*", "/var/cache"]),
        ("[Host]\nKernelCommandLineExtra", "a=1 b", "kernel_command_line_extra", ["a=1", "b"]),
    ],
)
def test_value_types(tree: Tree, setting: str, value: str, attr: str, expected: object) -> None:
    tree.write("mkosi.conf", f"{setting}={value}\n")
    assert getattr(tree.one(), attr) == expected


def test_compression_default_follows_the_format(tree: Tree) -> None:
    for fmt, expected in [("tar", "zstd"), ("cpio", "zstd"), ("uki", "zstd"), ("esp", "zstd"),
                          ("disk", "none"), ("directory", "none")]:
        tree.write("mkosi.conf", f"[Output]\nFormat={fmt}\n")
        assert tree.one().compress_output == expected, fmt
    tree.write("mkosi.conf", "[Distribution]\nDistribution=centos\nRelease=8\n[Output]\nFormat=tar\n")
    assert tree.one().compress_output == Compression.xz


def test_sign_implies_checksum(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Validation]\nSign=yes\n")
    c = tree.one()
    assert c.sign and c.checksum


def test_output_name_from_image_id_and_version(tree: Tree) -> None:
    tree.write("mkosi.conf", "[Output]\nImageId=os\nImageVersion=7.8\n")
    assert tree.one().output == "os_7.8"
    tree.write("mkosi.conf", "[Output]\nImageId=os\nImageVersion=7.8\nOutput=custom\n")
    assert tree.one().output == "custom"


def test_non_default_lists_changed_settings(tree: Tree) -> None:
    from imagebuild.config import changed_settings, unsupported_settings

    # (Include=mkosi-initrd: a value the builder does not act on yet; UseSubvolumes=yes was that example before.)
    tree.write("mkosi.conf", "[Config]\nInclude=mkosi-initrd\n[Content]\nWithDocs=yes\nPackages=a\n")
    c = tree.one()
    assert changed_settings(c) == ["Include", "Packages"]
    assert unsupported_settings(c) == ["Include"]
    assert unsupported_settings(c, supported={"Include"}) == ["Packages"]
