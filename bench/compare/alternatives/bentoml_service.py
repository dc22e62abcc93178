"""A BentoML service with adaptive batching over onnxruntime (runs in its own venv).

    cd THIS_FOLDER && BENCH_MODEL_DIR=D bentoml serve bentoml_service:OnnxService --host 127.0.0.1 --port P

BentoML's route is the API's name: POST /predict {"instances": [...]} (the parameter's name as the JSON key,
as KServe v1's body has it), answered with a bare JSON array of rows (no "predictions" wrapper). Requests are
batched adaptively along the first dimension (up to 32 rows; a 5 s latency budget, past which BentoML
answers 503 "process is overloaded"). A model with several
outputs answers its last output (for the forest: the class probabilities).
"""

from __future__ import annotations

import os
from pathlib import Path

import bentoml
import numpy as np
import onnxruntime as ort

MODEL_DIR = Path(os.environ.get("BENCH_MODEL_DIR", "."))


@bentoml.service(workers=1, resources={"cpu": "1"}, logging={"access": {"enabled": False}})
class OnnxService:
    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(MODEL_DIR / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.first = self.session.get_inputs()[0]
        self.dtype = np.int64 if self.first.type == "tensor(int64)" else np.float32

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=5000)
    def predict(self, instances: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.first.name: instances.astype(self.dtype, copy=False)})[-1]
