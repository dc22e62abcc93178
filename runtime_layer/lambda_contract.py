"""What Lambda's synchronous invoke allows, and which bodies travel as text: one place for the runtime and the
emulator (`mlfn.cli.local` imports these).

- `REQUEST_LIMIT`: an invocation's request payload, 6 MB as Lambda counts it (6 * 1024 * 1024 bytes); also the
  default of `server.max_body_bytes` on every target.
- `RESPONSE_LIMIT`: a synchronous invocation's response payload (6,291,556 bytes, the number Lambda's
  `Function.ResponseSizeTooLarge` error names).
- `TEXT_MIME_TYPES`: content types whose bodies go in a payload 2.0 event or response as text; any other body
  is base64 with `isBase64Encoded: true`. Matched as a prefix (`text/`) or a suffix (`+json`) of the media type,
  or anywhere in the Content-Type header by Mangum.
docs/aws-fidelity.md lists the sources (Lambda quotas; Invoke).
"""

from __future__ import annotations

REQUEST_LIMIT = 6 * 1024 * 1024  # 6291456
RESPONSE_LIMIT = 6_291_556
TEXT_MIME_TYPES = ("text/", "application/json", "application/xml", "application/javascript",
                   "application/x-www-form-urlencoded", "application/csv", "+json", "+xml")


def is_text(content_type: str) -> bool:
    """A body of this Content-Type travels as text (a charset parameter also says so)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return any(media.startswith(t) or media.endswith(t) for t in TEXT_MIME_TYPES) or "charset=" in content_type.lower()
