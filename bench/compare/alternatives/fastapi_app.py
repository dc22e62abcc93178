"""The straightforward FastAPI + uvicorn app a user would write around onnxruntime (runs in its own venv).

    python fastapi_app.py MODEL_DIR PORT

A pydantic request model, `session.run` in a sync endpoint (FastAPI runs it in its thread pool), a JSON
response. KServe v1 route and body: POST /v1/models/{name}:predict {"instances": [...]} -> {"predictions": [...]}.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

model_dir = Path(sys.argv[1])
name = tomllib.loads((model_dir / "mlfn.toml").read_text())["name"]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
first = session.get_inputs()[0]
dtype = np.int64 if first.type == "tensor(int64)" else np.float32
output_names = [o.name for o in session.get_outputs()]


class PredictRequest(BaseModel):
    instances: list[list[float]] | list[list[int]]


app = FastAPI()


@app.get("/v1/models/{model}")
def ready(model: str) -> dict[str, Any]:
    return {"name": model, "ready": True}


@app.post("/v1/models/{model}:predict")
def predict(model: str, request: PredictRequest) -> dict[str, Any]:
    outputs = session.run(None, {first.name: np.asarray(request.instances, dtype=dtype)})
    if len(outputs) == 1:
        return {"predictions": outputs[0].tolist()}
    columns = [out.tolist() for out in outputs]
    return {"predictions": [dict(zip(output_names, row, strict=True)) for row in zip(*columns, strict=True)]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), workers=1, access_log=False, log_level="warning")
