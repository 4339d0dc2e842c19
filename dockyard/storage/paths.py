"""Distribution's storage layout, written down once. Every path is built here.

::

    /docker/registry/v2/
        blobs/<algorithm>/<first two hex>/<hex>/data          blob and manifest bytes
        repositories/<name>/
            _uploads/<id>/data                                an upload in progress
            _layers/<algorithm>/<hex>/link                    blob linked into the repository
            _manifests/revisions/<algorithm>/<hex>/link       manifest in the repository
            _manifests/tags/<tag>/current/link                what the tag points at
            _manifests/tags/<tag>/index/<algorithm>/<hex>/link  every digest the tag has had

Dockyard keeps repositories, tags and links in its database (the source of truth); it reads
the link files of a ``registry:2`` store on ``dockyard import``, and writes them for
registry:2 on ``dockyard export``.
"""

from __future__ import annotations

from dockyard.oci.digest import Digest
from dockyard.oci.errors import RegistryError

ROOT = "/docker/registry/v2"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def blobs_root() -> str:
    return f"{ROOT}/blobs"


def digest_of_blob_data(path: str) -> Digest | None:
    """The digest whose :func:`blob_data` is ``path`` (``.../blobs/<alg>/<2 hex>/<hex>/data``),
    or None if ``path`` is no blob's data file."""
    parts = path.split("/")
    if len(parts) < 4 or parts[-1] != "data":
        return None
    try:
        digest = Digest.parse(f"{parts[-4]}:{parts[-2]}")
    except RegistryError:
        return None
    return digest if blob_data(digest) == path else None


def blob_dir(digest: Digest) -> str:
    """The directory of one blob, which registry:2's collector deletes whole."""
    return f"{ROOT}/blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def repositories_root() -> str:
    return f"{ROOT}/repositories"


def repository(name: str) -> str:
    return f"{ROOT}/repositories/{name}"


def upload_dir(name: str, upload_id: str) -> str:
    return f"{repository(name)}/_uploads/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/data"


def layer_link(name: str, digest: Digest) -> str:
    return f"{repository(name)}/_layers/{digest.algorithm}/{digest.hex}/link"


def manifest_revision_link(name: str, digest: Digest) -> str:
    return f"{repository(name)}/_manifests/revisions/{digest.algorithm}/{digest.hex}/link"


def tags_dir(name: str) -> str:
    return f"{repository(name)}/_manifests/tags"


def tag_dir(name: str, tag: str) -> str:
    return f"{tags_dir(name)}/{tag}"


def tag_current_link(name: str, tag: str) -> str:
    return f"{tag_dir(name, tag)}/current/link"


def tag_index_link(name: str, tag: str, digest: Digest) -> str:
    return f"{tag_dir(name, tag)}/index/{digest.algorithm}/{digest.hex}/link"
