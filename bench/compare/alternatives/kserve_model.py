"""The KServe model server with a custom `kserve.Model` over onnxruntime (runs in its own venv).

    python kserve_model.py MODEL_DIR PORT

KServe's v1 route: POST /v1/models/{name}:predict {"instances": [...]} -> {"predictions": [...]}; one worker,
no gRPC. As for every server in the benchmark, access and per-request latency logs are off. KServe binds
0.0.0.0 unconditionally; here uvicorn's Config is narrowed to 127.0.0.1 (the benchmark stays on loopback).
"""

from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path
from typing import Any

import kserve
import numpy as np
import onnxruntime as ort
import uvicorn


class LoopbackConfig(uvicorn.Config):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["host"] = "127.0.0.1"
        super().__init__(*args, **kwargs)


uvicorn.Config = LoopbackConfig  # type: ignore[misc]


class OnnxModel(kserve.Model):
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.model_dir / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.first = self.session.get_inputs()[0]
        self.dtype = np.int64 if self.first.type == "tensor(int64)" else np.float32
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        feeds = {self.first.name: np.asarray(payload["instances"], dtype=self.dtype)}
        outputs = self.session.run(None, feeds)
        if len(outputs) == 1:
            return {"predictions": outputs[0].tolist()}
        columns = [out.tolist() for out in outputs]
        return {"predictions": [dict(zip(self.output_names, row, strict=True)) for row in zip(*columns, strict=True)]}


if __name__ == "__main__":
    directory = Path(sys.argv[1])
    model_name = tomllib.loads((directory / "mlfn.toml").read_text())["name"]
    server = kserve.ModelServer(http_port=int(sys.argv[2]), workers=1, enable_grpc=False, enable_docs_url=False,
                                enable_latency_logging=False)
    for noisy in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    server.start([OnnxModel(model_name, directory)])
