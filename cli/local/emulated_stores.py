"""State the emulator keeps for AWS features moto lacks: Function URLs per alias, provisioned concurrency, inference
components. One process-wide `STORES`, keyed by (account, region, ...) like moto's own backends.

Every change is also written to `<state>/function-urls.json` and `<state>/provisioned-concurrency.json` when a state
directory is set, so the data plane in another process can read them without boto3.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .emulator_state import read_json, write_json


def now_iso() -> str:
    """A timestamp in the format Lambda and SageMaker return."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@dataclass
class FunctionUrlRecord:
    """One Function URL: an unqualified function's or one alias's."""

    account: str
    region: str
    function_name: str
    qualifier: str | None
    auth_type: str
    url: str
    invoke_mode: str = "BUFFERED"
    cors: dict[str, Any] | None = None
    created: str = field(default_factory=now_iso)
    last_modified: str = field(default_factory=now_iso)

    @property
    def function_arn(self) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"
        return f"{arn}:{self.qualifier}" if self.qualifier else arn

    def to_api(self) -> dict[str, Any]:
        """The shape of Lambda's FunctionUrlConfig responses."""
        out = {
            "FunctionUrl": self.url,
            "FunctionArn": self.function_arn,
            "AuthType": self.auth_type,
            "InvokeMode": self.invoke_mode,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
        }
        if self.cors:
            out["Cors"] = self.cors
        return out


@dataclass
class ProvisionedConcurrency:
    """Provisioned concurrency of one alias or version; the emulator makes it READY at once."""

    account: str
    region: str
    function_name: str
    qualifier: str
    requested: int
    last_modified: str = field(default_factory=now_iso)

    def to_api(self, with_arn: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "RequestedProvisionedConcurrentExecutions": self.requested,
            "AvailableProvisionedConcurrentExecutions": self.requested,
            "AllocatedProvisionedConcurrentExecutions": self.requested,
            "Status": "READY",
            "LastModified": self.last_modified,
        }
        if with_arn:
            out["FunctionArn"] = (
                f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}:{self.qualifier}"
            )
        return out


@dataclass
class InferenceComponent:
    """A SageMaker inference component: a model hosted on an endpoint with a number of copies."""

    account: str
    region: str
    name: str
    endpoint_name: str
    variant_name: str
    specification: dict[str, Any]
    copy_count: int
    tags: list[dict[str, str]] = field(default_factory=list)
    status: str = "InService"
    created: str = field(default_factory=now_iso)
    last_modified: str = field(default_factory=now_iso)

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:inference-component/{self.name}"

    @property
    def endpoint_arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:endpoint/{self.endpoint_name}"

    def to_api(self) -> dict[str, Any]:
        return {
            "InferenceComponentName": self.name,
            "InferenceComponentArn": self.arn,
            "EndpointName": self.endpoint_name,
            "EndpointArn": self.endpoint_arn,
            "VariantName": self.variant_name,
            "Specification": self.specification,
            "RuntimeConfig": {"DesiredCopyCount": self.copy_count, "CurrentCopyCount": self.copy_count},
            "InferenceComponentStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.last_modified,
        }

    def summary(self) -> dict[str, Any]:
        """The shape of ListInferenceComponents entries."""
        full = self.to_api()
        return {k: v for k, v in full.items() if k not in ("Specification", "RuntimeConfig")}


UrlKey = tuple[str, str, str, str | None]
PcKey = tuple[str, str, str, str]
IcKey = tuple[str, str, str]


class Stores:
    """The emulator's own records, guarded by one lock, mirrored to JSON files in `state_dir` when set."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.urls: dict[UrlKey, FunctionUrlRecord] = {}
        self.provisioned: dict[PcKey, ProvisionedConcurrency] = {}
        self.inference_components: dict[IcKey, InferenceComponent] = {}
        self.state_dir: Path | None = None

    def reset(self) -> None:
        with self.lock:
            self.urls.clear()
            self.provisioned.clear()
            self.inference_components.clear()
            self.save()

    def load(self) -> None:
        """Read the records back from the state directory (a restarted control plane)."""
        if self.state_dir is None:
            return
        with self.lock:
            for entry in read_json(self.state_dir / "function-urls.json") or []:
                url = FunctionUrlRecord(**entry)
                self.urls[(url.account, url.region, url.function_name, url.qualifier)] = url
            for entry in read_json(self.state_dir / "provisioned-concurrency.json") or []:
                pc = ProvisionedConcurrency(**entry)
                self.provisioned[(pc.account, pc.region, pc.function_name, pc.qualifier)] = pc
            for entry in read_json(self.state_dir / "inference-components.json") or []:
                ic = InferenceComponent(**entry)
                self.inference_components[(ic.account, ic.region, ic.name)] = ic

    def save(self) -> None:
        """Mirror URLs and provisioned concurrency to the state directory for the data plane."""
        if self.state_dir is None:
            return
        with self.lock:
            write_json(self.state_dir / "function-urls.json", [asdict(u) for u in self.urls.values()])
            write_json(self.state_dir / "provisioned-concurrency.json", [asdict(p) for p in self.provisioned.values()])
            write_json(
                self.state_dir / "inference-components.json",
                [asdict(c) for c in self.inference_components.values()],
            )


STORES = Stores()
