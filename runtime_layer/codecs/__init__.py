"""Wire protocols, one module each: bytes in, numpy feeds out; outputs in, bytes out.

`tensors` holds what they share (JSON <-> numpy with checks per input), `v1` KServe v1, `v2` and
`v2_binary` the Open Inference Protocol with its binary tensor extension, `csv` SageMaker's text/csv.
"""
