"""Function URL ports belong to the data plane, which binds them: the control plane asks it for a URL when a Function
URL is created, and it reports the port it bound (nobody picks a port for another process to bind). The port is kept
for the URL's life (saved; rebound on a restart, where a port another process took meanwhile is an error, never a
different port), and while nothing runs there the port answers with a clear error instead of refusing connections.
"""

from __future__ import annotations

from collections.abc import Callable

from .function_urls import url_id
from .gateway import MAX_REQUEST_BYTES, GatewayRequest, json_reply
from .payload_v2 import Caller, HttpReply


def url_key(function_name: str, qualifier: str | None) -> str:
    """The data plane's key of a function alias (what its Function URL serves)."""
    return f"lambda:{function_name}:{qualifier or '$LATEST'}"


class UnservedUrl:
    """A Function URL's port while its function is not served: every request gets 503 and the reason."""

    signing_service: str | tuple[str, ...] = "lambda"
    max_request_bytes = MAX_REQUEST_BYTES
    auth_type = "NONE"  # nothing to protect: the answer is the same for everyone

    def __init__(self, key: str, account: str, region: str, reason: Callable[[], str | None]) -> None:
        _, name, qualifier = key.split(":", 2)
        self.key, self.region, self.reason = key, region, reason
        self.url_id = url_id("lambda", account, region, name, qualifier)

    def preflight(self, request: GatewayRequest) -> HttpReply | None:
        return None

    async def handle(self, request: GatewayRequest, caller: Caller | None) -> HttpReply:
        why = self.reason() or "the local data plane has not started serving it yet (it follows the control plane " \
                               "within a second; an image is unpacked once)"
        return json_reply(503, {"Message": f"The local emulator cannot serve {self.key[7:]} at this Function URL: "
                                           f"{why}"}, ("x-mlfn-error", why))
