"""Red Hat Enterprise Linux: the subscription CDN (with the host's entitlement) or a mirror, and EPEL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imagebuild.distributions.centos import CentOS, major_version
from imagebuild.errors import BuildError
from imagebuild.installers.common import package_manager_dir
from imagebuild.installers.rpm import RpmRepository, find_gpgkey, join_mirror

if TYPE_CHECKING:
    from imagebuild.context import Context

CDN = "https://cdn.redhat.com/content/dist/"
# Where a build first downloads from (the host the plugin checks it can reach before building).
DOWNLOAD_URL = CDN
# Red Hat's release key (https://access.redhat.com/security/team/key).
GPG_URL = "https://access.redhat.com/security/data/fd431d51.txt"
# Where subscription-manager leaves the CA and the entitlement certificate of a registered host.
HOST_ROOT = Path("/")
CA_CERT = Path("etc/rhsm/ca/redhat-uep.pem")
ENTITLEMENTS = Path("etc/pki/entitlement")

REGISTER_HINT = "register this host with subscription-manager, or set Mirror= to a repository mirror"


def _first(candidates: list[Path]) -> Path | None:
    return next(iter(sorted(candidates)), None)


class Entitlement:
    """The client certificate, its key and the CA that authenticate this host to Red Hat's CDN.

    The package manager directory (PackageManagerTrees=) is searched before the host, like mkosi does.
    """

    def __init__(self, context: Context) -> None:
        places = [package_manager_dir(context), HOST_ROOT]
        self.ca = next((p / CA_CERT for p in places if (p / CA_CERT).exists()), None)
        if self.ca is None:
            raise BuildError(f"RHEL: the CDN's CA certificate /{CA_CERT} was not found; {REGISTER_HINT}")
        key = cert = None
        for place in places:
            pems = list((place / ENTITLEMENTS).glob("*.pem"))
            key = key or _first([p for p in pems if p.name.endswith("-key.pem")])
            cert = cert or _first([p for p in pems if not p.name.endswith("-key.pem")])
        if key is None or cert is None:
            raise BuildError(f"RHEL: no entitlement certificate and key in /{ENTITLEMENTS}; {REGISTER_HINT}")
        self.key, self.cert = key, cert


def redhat_gpgurls(context: Context) -> tuple[str, ...]:
    """Red Hat's release key for the release's major version (RHEL and UBI sign with the same one)."""
    major = major_version(context.config.release)
    key = find_gpgkey(context, f"RPM-GPG-KEY-redhat{major}-release", GPG_URL)
    return (key,) if key else ()


class RHEL(CentOS):
    name = "rhel"
    pretty_name = "RHEL"
    release_pattern = r"[0-9]+(\.[0-9]+)?"

    def gpgurls(self, context: Context) -> tuple[str, ...]:
        return redhat_gpgurls(context)

    def repository_variants(self, context: Context, repo: str) -> Iterator[RpmRepository]:
        config = context.config
        gpgurls = self.gpgurls(context)
        if config.local_mirror:
            yield RpmRepository(repo, f"baseurl={config.local_mirror}", gpgurls)
            return
        # A mirror of the CDN needs no client certificate; the CDN itself does.
        entitlement = None if config.mirror else Entitlement(context)
        mirror = config.mirror or CDN
        v = config.release
        base = f"rhel{major_version(v)}/{v}/$basearch/{repo}"
        for suffix, path, enabled in (("rpms", "os", True), ("debug-rpms", "debug", False),
                                      ("source", "source", False)):
            yield RpmRepository(
                f"rhel-{v}-{repo}-{suffix}",
                f"baseurl={join_mirror(mirror, f'{base}/{path}')}",
                gpgurls,
                enabled=enabled,
                sslcacert=entitlement.ca if entitlement else None,
                sslclientkey=entitlement.key if entitlement else None,
                sslclientcert=entitlement.cert if entitlement else None,
            )

    def repositories(self, context: Context) -> list[RpmRepository]:
        repos: list[RpmRepository] = []
        for repo in ("baseos", "appstream", "codeready-builder"):
            repos += self.repository_variants(context, repo)
        repos += self.epel_repositories(context)
        return repos


DISTRIBUTION = RHEL()
