"""The prices a plan uses: a dated snapshot per region shipped with mlfn, a file, or AWS's Price List API.

A snapshot (`prices-<region>.json` next to this module) holds one row per price: `key`, `usd` (null when the
price was not found: that row is unpriced, never guessed), `unit`, `source`, `basis` (`aws-page`, `aws-sample`,
`third-party`, `not-found`, `price-list-api`: the report names every row not from an AWS price page), and for
instances `vcpus`, `memory_gib`, `arch`, `gpu`.
Keys: `lambda.request`, `lambda.<arch>.gb_second`, `lambda.<arch>.provisioned_gb_second`,
`lambda.<arch>.provisioned_duration_gb_second`, `lambda.free_requests`, `lambda.free_gb_seconds`,
`apigateway.http.request`, `apigateway.rest.request`, `sagemaker.serverless.gb_second`,
`sagemaker.serverless.data_gb`,
`sagemaker.<instance type>` and `ec2.<instance type>` (per hour).

`refresh(book, client)` replaces the Lambda request and x86_64 duration rows, the EC2 instance rows (on-demand,
Linux, shared tenancy) and the SageMaker instance rows (`component` Hosting, `instanceName`, `regionCode`: the
filters of AWS's awslabs/llmeter) with `pricing.get_products` answers (first tier). moto (5.2.5) does not implement the
Price List API; the refresh is tested against a local HTTP server that answers in the API's documented shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from ..console import CliError

SNAPSHOT_PACKAGE = "mlfn.cli.plan"
SNAPSHOT_PREFIX = "prices-"
# Price List API location names (the API filters on these, not on region codes)
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-2": "US West (Oregon)",
             "eu-west-1": "EU (Ireland)", "eu-central-1": "EU (Frankfurt)"}


@dataclass(frozen=True)
class Price:
    """One price: dollars per unit (None: not found, so unpriced) and where it came from."""

    key: str
    usd: float | None
    unit: str
    source: str
    vcpus: int | None = None
    memory_gib: float | None = None
    arch: str | None = None
    gpu: str | None = None
    basis: str | None = None  # aws-page | aws-sample | third-party | not-found | price-list-api


@dataclass
class PriceBook:
    """Every price of one region, with the date and the origin the report names."""

    region: str
    date: str
    origin: str  # "snapshot <file>", "file <path>", "AWS Price List API"
    source: str
    rows: dict[str, Price] = field(default_factory=dict)

    def usd(self, key: str) -> float | None:
        row = self.rows.get(key)
        return None if row is None else row.usd

    def instances(self, prefix: str) -> list[Price]:
        """Instance rows under `prefix` ("sagemaker.ml." or "ec2."), priced or not."""
        return [p for k, p in self.rows.items() if k.startswith(prefix) and p.vcpus is not None]

    def not_from_aws_pages(self) -> dict[str, list[str]]:
        """Keys by basis, for every row whose figure is not from an AWS price page or the Price List API."""
        out: dict[str, list[str]] = {}
        for key, row in self.rows.items():
            basis = "not-found" if row.usd is None else (row.basis or "unstated")
            if basis not in ("aws-page", "price-list-api"):
                out.setdefault(basis, []).append(key)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "date": self.date, "origin": self.origin, "source": self.source,
                "prices": [{k: v for k, v in vars(p).items() if v is not None or k == "usd"}
                           for p in self.rows.values()]}


def _book(doc: dict[str, Any], origin: str) -> PriceBook:
    try:
        rows = {r["key"]: Price(**r) for r in doc["prices"]}
        return PriceBook(doc["region"], doc["date"], origin, doc.get("source", ""), rows)
    except (KeyError, TypeError) as exc:
        raise CliError(f"{origin}: not a price file ({exc}); expected region, date and prices [{{key, usd, unit, "
                       "source}}] as in mlfn's snapshot") from None


def snapshot(region: str) -> PriceBook:
    """The snapshot shipped with mlfn for `region`."""
    name = f"{SNAPSHOT_PREFIX}{region}.json"
    folder = resources.files(SNAPSHOT_PACKAGE)
    if not folder.joinpath(name).is_file():
        have = sorted(p.name.removeprefix(SNAPSHOT_PREFIX).removesuffix(".json") for p in folder.iterdir()
                      if p.name.startswith(SNAPSHOT_PREFIX) and p.name.endswith(".json"))
        raise CliError(f"no price snapshot for region {region}; mlfn ships {', '.join(have)}: "
                       "pass --prices FILE or --region")
    return _book(json.loads(folder.joinpath(name).read_text()), f"snapshot {name}")


def from_file(path: str | Path) -> PriceBook:
    """A price file in the snapshot's format (`--prices FILE`)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"--prices {path}: cannot read it as JSON ({exc})") from None
    return _book(doc, f"file {path}")


# ------------------------------------------------------------------ AWS Price List API


def _first_tier_usd(item: str | dict[str, Any]) -> float | None:
    """The on-demand price of one PriceList entry: the dimension that begins at 0 (the first tier)."""
    doc = json.loads(item) if isinstance(item, str) else item
    for term in doc.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            if str(dim.get("beginRange", "0")) in ("0", "0.0"):
                return float(dim["pricePerUnit"]["USD"])
    return None


def _get(client: Any, service: str, filters: dict[str, str]) -> float | None:
    answer = client.get_products(
        ServiceCode=service, FormatVersion="aws_v1", MaxResults=10,
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
    )
    for item in answer.get("PriceList", []):
        usd = _first_tier_usd(item)
        if usd is not None:
            return usd
    return None


def refresh(book: PriceBook, client: Any) -> PriceBook:
    """`book` with the rows the Price List API answers replaced (see the module docstring)."""
    location = LOCATIONS.get(book.region)
    if location is None:
        raise CliError(f"the Price List API refresh knows no location name for {book.region}")
    wanted: dict[str, tuple[str, dict[str, str], float]] = {
        "lambda.request": ("AWSLambda", {"location": location, "group": "AWS-Lambda-Requests"}, 1.0),
        "lambda.x86_64.gb_second": ("AWSLambda", {"location": location, "group": "AWS-Lambda-Duration"}, 1.0),
    }
    for row in book.instances("ec2."):
        wanted[row.key] = ("AmazonEC2", {"location": location, "instanceType": row.key.removeprefix("ec2."),
                                         "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                                         "capacitystatus": "Used"}, 1.0)
    for row in book.instances("sagemaker.ml."):
        # the filters AWS's own awslabs/llmeter uses for SageMaker hosting (real-time) instances
        wanted[row.key] = ("AmazonSageMaker", {"component": "Hosting", "instanceName": row.key.removeprefix(
            "sagemaker."), "regionCode": book.region}, 1.0)
    rows = dict(book.rows)
    found = 0
    for key, (service, filters, scale) in wanted.items():
        usd = _get(client, service, filters)
        if usd is not None and key in rows:
            rows[key] = replace(rows[key], usd=usd * scale, source=f"AWS Price List API {service} {filters}",
                                basis="price-list-api")
            found += 1
    today = date.today().isoformat()
    return PriceBook(book.region, today, f"AWS Price List API ({found} rows) over {book.origin}",
                     f"pricing.get_products on {today}; other rows: {book.source}", rows)


def load(region: str, prices_file: str | None = None, *, client: Any = None) -> PriceBook:
    """`--prices FILE` when given, else the region's snapshot, refreshed through `client` when one is given."""
    book = from_file(prices_file) if prices_file else snapshot(region)
    if client is not None and not prices_file:
        book = refresh(book, client)
    return book


def pricing_client(profile: str | None = None) -> Any:
    """A Price List API client when credentials are present, else None (the snapshot is used as shipped).

    The Price List API answers from us-east-1 (it has a few other endpoints; one is enough here).
    """
    import boto3

    session = boto3.Session(profile_name=profile) if profile else boto3.Session()
    if session.get_credentials() is None:
        return None
    return session.client("pricing", region_name="us-east-1")
