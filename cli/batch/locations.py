"""S3 locations of a batch: `s3://bucket/prefix` parsing, and where an input object's results go.

As a SageMaker Batch Transform job names them, the output of an input object is the object's name with an `.out`
suffix under the output prefix (mlfn keeps the object's path below the input prefix, so two inputs never share an
output); its error records go beside it with an `.err` suffix.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..console import CliError

OUT_SUFFIX = ".out"
ERR_SUFFIX = ".err"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3(uri: str, option: str) -> S3Location:
    """`s3://bucket/prefix` (prefix may be empty or one object's key); anything else is a CliError naming `option`."""
    if not uri.startswith("s3://"):
        raise CliError(f"{option} {uri!r}: expected an S3 location s3://BUCKET/PREFIX")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise CliError(f"{option} {uri!r}: the bucket name is missing; expected s3://BUCKET/PREFIX")
    return S3Location(bucket, prefix)


def relative_key(key: str, source: S3Location) -> str:
    """The object's path below the input prefix (its own name when the input is one object)."""
    if key == source.prefix:
        return key.rsplit("/", 1)[-1]
    base = source.prefix if not source.prefix or source.prefix.endswith("/") else source.prefix + "/"
    return key[len(base):] if key.startswith(base) else key.rsplit("/", 1)[-1]


def output_key(key: str, source: S3Location, target: S3Location, suffix: str = OUT_SUFFIX) -> str:
    """Where the results (`.out`) or error records (`.err`) of input object `key` go."""
    base = target.prefix if not target.prefix or target.prefix.endswith("/") else target.prefix + "/"
    return f"{base}{relative_key(key, source)}{suffix}"
