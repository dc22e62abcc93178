"""Prices: the shipped snapshot, a --prices file, and the Price List API refresh through real boto3 over HTTP.

moto does not implement the Price List API, so the refresh is tested against a local HTTP server answering
`GetProducts` in the shape AWS documents (the AWS CLI's `pricing get-products` example): `PriceList` is a list
of JSON strings whose OnDemand price dimensions carry `pricePerUnit.USD`.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from mlfn.cli.console import CliError
from mlfn.cli.plan.prices import load, refresh, snapshot


def _entry(usd: str, attributes: dict[str, str]) -> str:
    sku = "SKU123"
    return json.dumps({
        "product": {"productFamily": "Serverless", "attributes": attributes, "sku": sku},
        "serviceCode": "AWSLambda",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"priceDimensions": {
            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {"unit": "Lambda-GB-Second", "endRange": "6000000000",
                                            "beginRange": "0", "pricePerUnit": {"USD": usd}},
            f"{sku}.JRTCKXETXF.TIER2": {"unit": "Lambda-GB-Second", "endRange": "Inf",
                                       "beginRange": "6000000000", "pricePerUnit": {"USD": "0.0000150000"}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF"}}},
        "version": "20261101", "publicationDate": "2026-11-01T00:00:00Z"})


ANSWERS = {"AWS-Lambda-Requests": "0.0000002100", "AWS-Lambda-Duration": "0.0000170000", "g5.xlarge": "1.1000000000",
           "ml.c5.xlarge": "0.2100000000", "ml.g5.xlarge": "1.4100000000"}


class PriceList:
    seen: list[dict[str, Any]] = []

    @staticmethod
    def answer(target: str, body: dict[str, Any]) -> dict[str, Any]:
        assert target == "AWSPriceListService.GetProducts"
        PriceList.seen.append(body)
        filters = {f["Field"]: f["Value"] for f in body["Filters"]}
        key = filters.get("group") or filters.get("instanceType") or filters.get("instanceName", "")
        here = filters.get("location") == "US East (N. Virginia)" or filters.get("regionCode") == "us-east-1"
        items = [_entry(ANSWERS[key], filters)] if key in ANSWERS and here else []
        return {"FormatVersion": "aws_v1", "PriceList": items}


@pytest.fixture()
def price_list(aws_json_server: Any) -> Any:
    PriceList.seen = []
    return boto3.client("pricing", region_name="us-east-1", endpoint_url=aws_json_server(PriceList.answer),
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_refresh_reads_the_price_list_api_over_http(price_list: Any) -> None:
    book = refresh(snapshot("us-east-1"), price_list)
    assert book.usd("lambda.request") == pytest.approx(2.1e-7)
    assert book.usd("lambda.x86_64.gb_second") == pytest.approx(1.7e-5)  # the first tier, not the second
    assert book.usd("ec2.g5.xlarge") == pytest.approx(1.1)
    assert book.usd("ec2.g6.xlarge") is None  # the API had nothing: still unpriced
    assert book.usd("lambda.arm64.gb_second") == snapshot("us-east-1").usd("lambda.arm64.gb_second")
    assert book.usd("sagemaker.ml.c5.xlarge") == pytest.approx(0.21)
    assert book.usd("sagemaker.ml.g5.xlarge") == pytest.approx(1.41)  # unpriced in the snapshot, priced now
    assert book.rows["sagemaker.ml.g5.xlarge"].basis == "price-list-api"
    assert not any("sagemaker.ml.g5.xlarge" in keys for keys in book.not_from_aws_pages().values())
    assert book.origin.startswith("AWS Price List API (5 rows)") and "AWS Price List API" in \
        book.rows["lambda.request"].source
    sagemaker = next(b for b in PriceList.seen if b["ServiceCode"] == "AmazonSageMaker")
    assert {f["Field"]: f["Value"] for f in sagemaker["Filters"]}.items() >= {
        "component": "Hosting", "regionCode": "us-east-1"}.items()
    ec2 = next(b for b in PriceList.seen if b["ServiceCode"] == "AmazonEC2")
    assert {f["Field"] for f in ec2["Filters"]} >= {"instanceType", "location", "operatingSystem", "tenancy"}


def test_a_prices_file_wins_and_is_never_refreshed(tmp_path: Any, price_list: Any) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"region": "us-east-1", "date": "2031-01-01", "prices": [
        {"key": "lambda.request", "usd": 1e-6, "unit": "request", "source": "mine"}]}))
    book = load("us-east-1", str(path), client=price_list)
    assert book.usd("lambda.request") == 1e-6 and book.origin == f"file {path}" and PriceList.seen == []
    path.write_text(json.dumps({"prices": "nope"}))
    with pytest.raises(CliError, match="not a price file"):
        load("us-east-1", str(path))
