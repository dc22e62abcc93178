"""Function URL response mapping and event details that the HTTP tests do not reach."""

from __future__ import annotations

import base64
import json

from mlfn.cli.local.payload_v2 import http_response, request_event


def test_results_without_status_code_are_200_json():
    assert http_response(b'{"a": 1}').body == b'{"a": 1}'
    assert http_response(b'"hello"').body == b"hello"  # AWS answers a string result without its quotes
    assert http_response(b"[1, 2]").headers == [("content-type", "application/json")]
    assert http_response(b"null").status == 200


def test_structured_results_keep_status_headers_cookies_and_decode_base64():
    reply = http_response(json.dumps({"statusCode": 201, "headers": {"X-A": "1"}, "cookies": ["c=1"],
                                      "body": base64.b64encode(b"\x00\x01").decode(),
                                      "isBase64Encoded": True}).encode())
    assert reply.status == 201 and reply.body == b"\x00\x01"
    assert ("x-a", "1") in reply.headers and ("set-cookie", "c=1") in reply.headers


def test_multi_value_headers_are_not_part_of_format_2():
    reply = http_response(json.dumps({"statusCode": 200, "headers": {"x-a": "1"},
                                      "multiValueHeaders": {"x-b": ["1", "2"]}}).encode())
    assert reply.headers == [("x-a", "1")]


def test_malformed_results_are_502():
    assert http_response(b"not json").status == 502
    assert http_response(b'{"statusCode": "200"}').status == 502
    assert http_response(b'{"statusCode": 200, "body": "%%%", "isBase64Encoded": true}').status == 502


def test_event_for_binary_bodies_and_repeated_headers():
    event = request_event(method="PUT", raw_path="/p", raw_query="", body=b"\xff\x00",
                          headers=[("Content-Type", "image/png"), ("X-A", "1"), ("x-a", "2")], source_ip="127.0.0.1",
                          url_id="abc", domain="abc.lambda-url.us-east-1.localhost", request_id="r", caller=None)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert event["headers"]["x-a"] == "1,2"
    assert "queryStringParameters" not in event and event["requestContext"]["domainPrefix"] == "abc"
