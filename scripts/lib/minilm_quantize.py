"""Writes the int8 copy of model.onnx that the in-process embedder runs by default.

    python3 minilm_quantize.py MODEL_DIR   (reads MODEL_DIR/model.onnx, writes MODEL_DIR/model-int8.onnx)

ONNX Runtime's own dynamic quantisation (onnxruntime.quantization): the weights of every
MatMul and of the fused Attention become int8 with one scale per output channel (a scale per
tensor loses too much: the cosine to the f32 vectors drops to about 0.8 on some texts); the
activations are quantised per batch at run time (DynamicQuantizeMatMul, QAttention).
LayerNorm, GELU and the pooling stay f32. The graph's contrib operators defeat shape
inference, so tensors of unknown type are taken as float.
"""

import os
import sys

from onnx import TensorProto
from onnxruntime.quantization import QuantType, quantize_dynamic


def main():
    model_dir = sys.argv[1]
    source = os.path.join(model_dir, "model.onnx")
    out = os.path.join(model_dir, "model-int8.onnx")
    tmp = out + ".tmp"
    quantize_dynamic(
        source,
        tmp,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul", "Attention"],
        extra_options={"DefaultTensorType": TensorProto.FLOAT},
    )
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
