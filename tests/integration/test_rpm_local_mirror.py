"""Real dnf (Fedora's code path) and zypper (openSUSE's) installs from a LocalMirror= built here.

Their mirrors are out of reach, so the repository is made on the spot: two noarch rpms (rpmbuild) and
their metadata (createrepo_c). Needs the host packages dnf, zypper, rpm and createrepo-c.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import imagebuild, write_config

pytestmark = pytest.mark.integration

FILESYSTEM_SPEC = """\
Name: filesystem
Version: 1
Release: 1
Summary: the directory layout
License: MIT
BuildArch: noarch
%description
The directory layout.
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/etc
ln -s usr/bin %{buildroot}/bin
echo layout > %{buildroot}/etc/layout
%files
/usr/bin
/bin
/etc/layout
"""

# The scriptlet is Lua (run by rpm itself): the tree has no /bin/sh to run a shell scriptlet with.
HELLO_SPEC = """\
Name: hello
Version: 2
Release: 1
Summary: a program
License: MIT
BuildArch: noarch
Requires: filesystem
AutoReqProv: no
%description
A program.
%install
mkdir -p %{buildroot}/usr/bin
printf '#!/bin/sh\\necho hello\\n' > %{buildroot}/usr/bin/hello
chmod 755 %{buildroot}/usr/bin/hello
%post -p <lua>
local f = io.open("/etc/hello-installed", "w")
f:write("yes\\n")
f:close()
%files
/usr/bin/hello
"""


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rpms")
    for name, spec in (("filesystem", FILESYSTEM_SPEC), ("hello", HELLO_SPEC)):
        (work / f"{name}.spec").write_text(spec)
        subprocess.run(["rpmbuild", "--define", f"_topdir {work / 'top'}", "-bb", str(work / f"{name}.spec")],
                       check=True, capture_output=True)
    repo = work / "repo"
    repo.mkdir()
    for rpm in (work / "top/RPMS/noarch").glob("*.rpm"):
        rpm.rename(repo / rpm.name)
    subprocess.run(["createrepo_c", str(repo)], check=True, capture_output=True)
    return repo


def config(directory: Path, repo: Path, packages: str, distribution: str = "fedora\nRelease=39") -> Path:
    return write_config(directory, f"""\
[Distribution]
Distribution={distribution}
LocalMirror=file://{repo}
RepositoryKeyCheck=no
[Output]
Format=directory
Output=image
[Content]
Packages={packages}
CleanPackageMetadata=no
""")


@pytest.fixture(scope="module")
def built(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    work = tmp_path_factory.mktemp("build")
    conf = config(work / "conf", repository, "hello")
    cache = work / "cache"
    result = imagebuild("-C", str(conf), f"--output-dir={work / 'out'}", f"--package-cache-dir={cache}",
                        "--debug", "build")
    assert result.returncode == 0, result.stderr
    return work / "out/image", cache, result.stderr


def test_packages_and_scriptlets_are_installed(built: tuple[Path, Path, str]) -> None:
    tree, _, log = built
    assert (tree / "usr/bin/hello").read_text() == "#!/bin/sh\necho hello\n"
    assert (tree / "bin").is_symlink() and (tree / "etc/layout").read_text() == "layout\n"
    assert (tree / "etc/hello-installed").read_text() == "yes\n"
    # filesystem on its own first, then Packages= with the API file systems mounted.
    assert "install filesystem" in log and "--proc" in log and "makecache --refresh" in log


def installed_packages(tree: Path) -> list[str]:
    for dbpath in ("/var/lib/rpm", "/usr/lib/sysimage/rpm"):
        query = subprocess.run(["rpm", "--root", str(tree), "--dbpath", dbpath, "-qa", "--qf", "%{NAME}\\n"],
                               capture_output=True, text=True, check=False)
        if query.stdout.strip():
            return sorted(query.stdout.split())
    return []


def test_rpm_database_is_where_the_image_looks(built: tuple[Path, Path, str]) -> None:
    tree = built[0]
    assert installed_packages(tree) == ["filesystem", "hello"]
    # Neither dnf's logs nor its repository configuration end up in the image.
    assert not list(tree.glob("var/log/dnf*")) and not (tree / "etc/yum.repos.d").exists()


def test_metadata_goes_to_the_package_cache(built: tuple[Path, Path, str]) -> None:
    cache = built[1]
    assert any((cache / "fedora").glob("fedora-*/repodata/repomd.xml"))


def test_missing_package_is_one_clear_line(repository: Path, tmp_path: Path) -> None:
    conf = config(tmp_path / "conf", repository, "hello,no-such-program")
    out = tmp_path / "out"
    result = imagebuild("-C", str(conf), f"--output-dir={out}", f"--package-cache-dir={tmp_path / 'cache'}", "build")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Packages=: no package named no-such-program in Fedora Linux 39 (x86_64)" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_opensuse_with_zypper(repository: Path, tmp_path: Path) -> None:
    conf = config(tmp_path / "conf", repository, "hello", distribution="opensuse")
    cache = tmp_path / "cache"
    result = imagebuild("-C", str(conf), f"--output-dir={tmp_path / 'out'}", f"--package-cache-dir={cache}",
                        "--debug", "build")
    assert result.returncode == 0, result.stderr
    tree = tmp_path / "out/image"
    assert "/zypper --installroot=" in result.stderr
    assert (tree / "usr/bin/hello").exists() and (tree / "etc/hello-installed").read_text() == "yes\n"
    assert installed_packages(tree) == ["filesystem", "hello"]
    # The packages stay in the cache (keeppackages); zypper's solver cache stays out of the image.
    assert sorted(p.name for p in (cache / "opensuse").rglob("*.rpm")) == [
        "filesystem-1-1.noarch.rpm", "hello-2-1.noarch.rpm"]
    assert not (tree / str(cache).lstrip("/")).exists()
    assert not (tree / "etc/zypp/repos.d").exists()
