"""Push to (and read from) any OCI registry through the distribution HTTP API, with the standard library only.

Blobs the registry has (HEAD) are skipped; a declared base's layers are cross-mounted from the base's repository
when on the same registry; the rest go up monolithically (small) or in PATCH chunks (large), then the manifest
is PUT under its tag. Plain HTTP is used for loopback hosts or when asked; credentials come from
MLFN_REGISTRY_USERNAME / MLFN_REGISTRY_PASSWORD (Basic, or exchanged for a Bearer token when challenged).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from . import oci
from .progress import Progress, PushReport, Say
from .source import CHUNK, PushError, PushSource

MONOLITHIC_MAX = 16 << 20
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
ACCEPT = ", ".join([oci.MANIFEST, oci.DOCKER_MANIFEST, oci.INDEX, oci.DOCKER_LIST])
TIMEOUT_S = 60


@dataclass(frozen=True)
class Reference:
    """`[scheme://]host[:port]/repository[:tag][@digest]`."""

    scheme: str
    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str, plain_http: bool = False) -> Reference:
        scheme = ""
        if "://" in text:
            scheme, text = text.split("://", 1)
        host, sep, rest = text.partition("/")
        if not sep or not rest or ("." not in host and ":" not in host and host != "localhost"):
            raise PushError(f"{text!r}: expected HOST[:PORT]/REPOSITORY[:TAG] (for example 127.0.0.1:5000/iris:v1)")
        rest, _, digest = rest.partition("@")
        repo, _, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
        if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", repo):
            raise PushError(f"{repo!r}: a repository name is lowercase letters, digits, '.', '_', '-' and '/'")
        if not scheme:
            scheme = "http" if plain_http or host.split(":")[0] in LOOPBACK or host.startswith("[::1]") else "https"
        return cls(scheme, host, repo, tag, digest)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else "") + (
            f"@{self.digest}" if self.digest else "")


class Response:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


class RegistryClient:
    """A small client for the registry HTTP API (https://github.com/opencontainers/distribution-spec)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = os.environ.get("MLFN_REGISTRY_USERNAME", "")
        self.password = os.environ.get("MLFN_REGISTRY_PASSWORD", "")
        self._auth: str = ""
        self.requests = 0

    def request(self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                ok: tuple[int, ...] = (200,)) -> Response:
        url = url if url.startswith("http") else self.base_url + url
        for attempt in range(2):
            hdrs = dict(headers or {})
            if self._auth:
                hdrs["Authorization"] = self._auth
            req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
            self.requests += 1
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                    return self._checked(method, url, Response(resp.status, resp.headers, resp.read()), ok)
            except urllib.error.HTTPError as err:
                response = Response(err.code, err.headers, err.read())
                if err.code == 401 and attempt == 0 and self._authenticate(response.headers):
                    continue
                return self._checked(method, url, response, ok)
            except urllib.error.URLError as err:
                raise PushError(f"cannot reach registry {self.base_url}: {err.reason}") from None
        raise PushError(f"registry {self.base_url} refused the credentials")  # pragma: no cover

    @staticmethod
    def _checked(method: str, url: str, response: Response, ok: tuple[int, ...]) -> Response:
        if response.status in ok:
            return response
        detail = response.body[:300].decode(errors="replace").strip()
        raise PushError(f"registry answered {response.status} to {method} {urllib.parse.urlsplit(url).path}: {detail}")

    def _authenticate(self, headers: Any) -> bool:
        challenge = headers.get("WWW-Authenticate", "")
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if challenge.lower().startswith("basic") and self.user:
            self._auth = basic
            return True
        if challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
            req = urllib.request.Request(f"{params.get('realm', '')}?{query}",
                                         headers={"Authorization": basic} if self.user else {})
            try:
                with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                    token = json.loads(resp.read())
            except (urllib.error.URLError, ValueError) as err:
                raise PushError(f"registry token request to {params.get('realm')} failed: {err}") from None
            self._auth = "Bearer " + (token.get("token") or token.get("access_token") or "")
            return True
        return False

    # ------------------------------------------------------------------ blobs and manifests

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.request("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404)).status == 200

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        q = urllib.parse.urlencode({"mount": digest, "from": from_repo})
        return self.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", b"", ok=(201, 202)).status == 201

    def upload_blob(self, repo: str, source: PushSource, desc: oci.Descriptor, progress: Progress) -> None:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", b"", ok=(202,))
        location = self._location(resp)
        if desc.size <= MONOLITHIC_MAX:
            data = source.path(desc).read_bytes()
            self.request("PUT", self._with_digest(location, desc.digest), data,
                         {"Content-Type": "application/octet-stream"}, ok=(201,))
            progress.advance(len(data))
            return
        offset = 0
        for chunk in source.chunks(desc, CHUNK):
            resp = self.request("PATCH", location, chunk, {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Length": str(len(chunk)),
            }, ok=(202,))
            location = self._location(resp)
            offset += len(chunk)
            progress.advance(len(chunk))
        self.request("PUT", self._with_digest(location, desc.digest), b"", ok=(201,))

    def _location(self, resp: Response) -> str:
        location = str(resp.headers.get("Location", ""))
        if not location:
            raise PushError("registry started an upload without a Location header")
        return location if location.startswith("http") else self.base_url + location

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return location + ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})

    def manifest_digest(self, repo: str, ref: str) -> str | None:
        resp = self.request("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, ok=(200, 404))
        return str(resp.headers.get("Docker-Content-Digest", "")) if resp.status == 200 else None

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type}, ok=(201,))
        return str(resp.headers.get("Docker-Content-Digest", ""))

    def get_manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        resp = self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
        return resp.body, str(resp.headers.get("Content-Type", ""))

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}").body


def push(source: PushSource, ref: Reference, say: Say) -> PushReport:
    started = time.perf_counter()
    client = RegistryClient(ref.base_url)
    tag = ref.tag or "latest"
    report = PushReport(reference=f"{ref.host}/{ref.repository}@{source.image.digest}", digest=source.image.digest)
    progress = Progress(say, report)
    base_repo = _same_registry_repo(source.base_reference, ref.host)
    base_layers = {d.digest for d in source.image.layers[: source.base_layers]}
    for desc, kind in source.blobs():
        if client.has_blob(ref.repository, desc.digest):
            progress.skip(desc, kind)
            continue
        if base_repo and desc.digest in base_layers and client.mount_blob(ref.repository, desc.digest, base_repo):
            progress.mounted(desc, kind, base_repo)
            continue
        if not source.has(desc):
            raise PushError(f"{kind} {desc.digest} of base {source.base_reference or '?'} is neither in the local "
                            f"layout nor in {ref.host}/{ref.repository}: push the base there first "
                            "(`mlfn runtime publish`) or build on a local base")
        progress.start(desc, kind)
        client.upload_blob(ref.repository, source, desc, progress)
        progress.finish(desc.digest)
    if client.manifest_digest(ref.repository, tag) == source.image.digest:
        say(f"  manifest {source.image.digest[:19]} already tagged {tag}: nothing to do")
    else:
        got = client.put_manifest(ref.repository, tag, source.image.manifest_bytes, source.image.manifest_media_type)
        if got and got != source.image.digest:
            raise PushError(f"registry stored the manifest as {got}, expected {source.image.digest}")
        report.manifest_put = True
        say(f"  manifest {source.image.digest[:19]} tagged {tag}")
    report.seconds = time.perf_counter() - started
    return report


def _same_registry_repo(base_reference: str, host: str) -> str:
    if not base_reference:
        return ""
    base_host, _, rest = base_reference.partition("/")
    return rest.split("@", 1)[0].rsplit(":", 1)[0] if base_host == host else ""
