"""Cold start and warm latency of a model run from its pushed image (chroot) against the host runtime.

    .venv/bin/python bench/image_sandbox.py --base ~/.mlfn/images/base-lambda [--model-dir functions/iris] [--cold 5]

Builds the model on the Lambda runtime base (`mlfn runtime build --flavour lambda` makes it), pushes it to an
in-process emulator's ECR, registers it twice (isolated in its image, and with MLFN_LOCAL_ISOLATION=host) and reports
the time to unpack the image, then per mode the median first request after scale-to-zero (a cold start) and the
median warm request through the HTTPS gateway. Needs root for the image mode. Loops are bounded by counts.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from mlfn.cli.image_contents import unpack_model
    from mlfn.cli.local.control_plane import ControlPlane
    from mlfn.cli.local.data_plane import DataPlane
    from mlfn.cli.packaging import ecr
    from mlfn.cli.packaging.base import from_layout
    from mlfn.cli.packaging.model_image import build_model_image
    from mlfn.cli.packaging.source import PushSource
    from mlfn.runtime.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the Lambda runtime base's OCI layout")
    parser.add_argument("--model-dir", default=str(ROOT / "functions" / "iris"))
    parser.add_argument("--cold", type=int, default=5, help="cold starts per mode")
    parser.add_argument("--warm", type=int, default=20, help="warm requests after each cold start")
    args = parser.parse_args()
    example = json.loads((Path(args.model_dir) / "example.json").read_text())
    with tempfile.TemporaryDirectory(prefix="mlfn-bench-") as tmp_name, \
            ControlPlane(state_dir=Path(tmp_name) / "s") as cp:
        tmp = Path(tmp_name)
        plane = DataPlane(tmp / "s", persist=False)
        plane.start()
        built = build_model_image(load_spec(Path(args.model_dir)), from_layout(Path(args.base), "lambda"), tmp / "img")
        client = boto3.client("ecr", endpoint_url=cp.url, region_name="us-east-1", aws_access_key_id="mlfn-local",
                              aws_secret_access_key="mlfn-local-secret")
        uri = ecr.push(PushSource.from_layout(built.layout.root, built.ref), client, "mlfn-bench", "latest",
                       lambda _line: None).reference
        contents = unpack_model(built, tmp / "models")
        started = time.perf_counter()
        image = plane.register_lambda("image", contents, image=uri, auth_type="NONE", memory_mb=1024, idle_s=0.2)
        print(f"unpack + register: {time.perf_counter() - started:.1f} s ({image.isolation[:40]}...)")
        os.environ["MLFN_LOCAL_ISOLATION"] = "host"
        host = plane.register_lambda("host", contents, image=uri, auth_type="NONE", memory_mb=1024, idle_s=0.2)
        del os.environ["MLFN_LOCAL_ISOLATION"]
        with httpx.Client(verify=ssl.create_default_context(cafile=str(plane.ca_path)), timeout=120) as http:
            for label, ep in (("image (chroot)", image), ("host runtime", host)):
                cold: list[float] = []
                warm: list[float] = []
                for _ in range(args.cold):
                    time.sleep(1.0)  # idle_s 0.2: the sandbox is reclaimed, the next request starts one
                    for samples in [cold] + [warm] * args.warm:
                        t = time.perf_counter()
                        answer = http.post(f"{ep.url}v1/models/iris:predict", json=example)
                        samples.append((time.perf_counter() - t) * 1000)
                        if answer.status_code != 200:
                            sys.exit(f"{label}: {answer.status_code} {answer.text[:200]}")
                print(f"{label}: cold start p50 {statistics.median(cold):.0f} ms, "
                      f"warm p50 {statistics.median(warm):.1f} ms")
        plane.stop()


if __name__ == "__main__":
    main()
