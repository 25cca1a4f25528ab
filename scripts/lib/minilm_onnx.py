"""Writes all-MiniLM-L6-v2 as an ONNX graph, straight from its model.safetensors.

    python3 minilm_onnx.py MODEL_DIR [OUT]   (OUT defaults to MODEL_DIR/model.onnx)

No PyTorch: the BERT encoder of config.json is spelt out with standard ONNX operators (opset
17) by the `onnx` package, reading the weights with numpy. Inputs `input_ids` and
`attention_mask` (int64, [batch, tokens]); output `sentence_embedding` ([batch, hidden]), the
mean of the last hidden states over the attention mask, as sentence-transformers pools it (not
yet L2-normalised). token_type_ids are always 0 for one sentence, so that embedding row is
folded into a constant.
"""

import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def read_safetensors(path):
    dtypes = {"F32": np.float32, "I64": np.int64}
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]])
        tensors[name] = array.reshape(info["shape"])
    return tensors


class Graph:
    def __init__(self, weights):
        self.weights = weights
        self.nodes = []
        self.initializers = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, key, transpose=False):
        array = self.weights[key].astype(np.float32)
        return self.const(key, array.T if transpose else array)

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x, prefix):
        y = self.op("MatMul", [x, self.weight(prefix + ".weight", transpose=True)])
        return self.op("Add", [y, self.weight(prefix + ".bias")])

    def layer_norm(self, x, prefix, eps):
        return self.op(
            "LayerNormalization",
            [x, self.weight(prefix + ".weight"), self.weight(prefix + ".bias")],
            axis=-1,
            epsilon=eps,
        )


def fused_layer(g, x, p, mask_i32, heads, eps):
    """One encoder layer with ONNX Runtime's fused CPU kernels (com.microsoft domain):
    Attention (Q, K and V in one matrix product, mask applied inside), SkipLayerNormalization
    (residual add, bias and LayerNorm in one pass) and BiasGelu (exact erf GELU)."""
    w = g.weights
    qkv_weight = np.concatenate(
        [w[f"{p}.attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
    ).astype(np.float32)
    qkv_bias = np.concatenate([w[f"{p}.attention.self.{n}.bias"] for n in ("query", "key", "value")]).astype(
        np.float32
    )
    context = g.op(
        "Attention",
        [x, g.const("qkv_weight", qkv_weight), g.const("qkv_bias", qkv_bias), mask_i32],
        domain="com.microsoft",
        num_heads=heads,
    )
    attended = g.op("MatMul", [context, g.weight(p + ".attention.output.dense.weight", transpose=True)])
    x = g.op(
        "SkipLayerNormalization",
        [
            attended,
            x,
            g.weight(p + ".attention.output.LayerNorm.weight"),
            g.weight(p + ".attention.output.LayerNorm.bias"),
            g.weight(p + ".attention.output.dense.bias"),
        ],
        domain="com.microsoft",
        epsilon=eps,
    )
    h = g.op("MatMul", [x, g.weight(p + ".intermediate.dense.weight", transpose=True)])
    h = g.op("BiasGelu", [h, g.weight(p + ".intermediate.dense.bias")], domain="com.microsoft")
    out = g.op("MatMul", [h, g.weight(p + ".output.dense.weight", transpose=True)])
    return g.op(
        "SkipLayerNormalization",
        [
            out,
            x,
            g.weight(p + ".output.LayerNorm.weight"),
            g.weight(p + ".output.LayerNorm.bias"),
            g.weight(p + ".output.dense.bias"),
        ],
        domain="com.microsoft",
        epsilon=eps,
    )


def build(model_dir, fused=True):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    assert config["hidden_act"] == "gelu" and config["position_embedding_type"] == "absolute"

    g = Graph(weights)
    ids, mask = "input_ids", "attention_mask"

    # Embeddings: word + position + token type 0, then LayerNorm.
    words = g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), ids], axis=0)
    # The first `tokens` rows of the position table (Slice with 1-D bounds).
    tokens = g.op("Shape", [ids], start=1, end=2)
    pos = g.op(
        "Slice",
        [
            g.weight("embeddings.position_embeddings.weight"),
            g.const("zero", np.array([0], dtype=np.int64)),
            tokens,
            g.const("axis0", np.array([0], dtype=np.int64)),
        ],
    )
    x = g.op("Add", [words, pos])
    x = g.op("Add", [x, g.const("token_type_0", weights["embeddings.token_type_embeddings.weight"][0])])
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    mask_f = g.op("Cast", [mask], to=TensorProto.FLOAT)
    if not fused:
        # Additive attention mask [batch, 1, 1, tokens]: 0 where attended, a large negative elsewhere.
        mask_4d = g.op("Unsqueeze", [mask_f, g.const("axes", np.array([1, 2], dtype=np.int64))])
        inverted = g.op("Sub", [g.const("one_f", np.array(1.0, dtype=np.float32)), mask_4d])
        bias = g.op("Mul", [inverted, g.const("neg", np.array(-1e9, dtype=np.float32))])
        split_heads = g.const("split_heads", np.array([0, 0, heads, head_dim], dtype=np.int64))
        merge_heads = g.const("merge_heads", np.array([0, 0, hidden], dtype=np.int64))
        scale = g.const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
        half = g.const("half", np.array(0.5, dtype=np.float32))
        one = g.const("one_f", np.array(1.0, dtype=np.float32))
        rsqrt2 = g.const("rsqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))

    mask_i32 = g.op("Cast", [mask], to=TensorProto.INT32) if fused else None
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        if fused:
            x = fused_layer(g, x, p, mask_i32, heads, eps)
            continue
        q = g.op("Reshape", [g.linear(x, p + ".attention.self.query"), split_heads])
        k = g.op("Reshape", [g.linear(x, p + ".attention.self.key"), split_heads])
        v = g.op("Reshape", [g.linear(x, p + ".attention.self.value"), split_heads])
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        scores = g.op("Mul", [g.op("MatMul", [q, k]), scale])
        probs = g.op("Softmax", [g.op("Add", [scores, bias])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads])
        attended = g.linear(context, p + ".attention.output.dense")
        x = g.layer_norm(g.op("Add", [attended, x]), p + ".attention.output.LayerNorm", eps)
        # Exact GELU: x * 0.5 * (1 + erf(x / sqrt(2))).
        h = g.linear(x, p + ".intermediate.dense")
        erf = g.op("Erf", [g.op("Mul", [h, rsqrt2])])
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [erf, one])])
        out = g.linear(h, p + ".output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), p + ".output.LayerNorm", eps)

    # Mean pooling over the attention mask.
    mask_3d = g.op("Unsqueeze", [mask_f, g.const("axis2", np.array([2], dtype=np.int64))])
    summed = g.op(
        "ReduceSum", [g.op("Mul", [x, mask_3d]), g.const("axis1", np.array([1], dtype=np.int64))], keepdims=0
    )
    counts = g.op(
        "ReduceSum", [mask_f, g.const("axis1", np.array([1], dtype=np.int64))], keepdims=1
    )
    counts = g.op("Max", [counts, g.const("tiny", np.array(1e-9, dtype=np.float32))])
    g.nodes.append(helper.make_node("Div", [summed, counts], ["sentence_embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="hbi")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    args = [a for a in sys.argv[1:] if a != "--standard-ops"]
    model_dir = args[0]
    out = args[1] if len(args) > 1 else os.path.join(model_dir, "model.onnx")
    model = build(model_dir, fused="--standard-ops" not in sys.argv)
    tmp = out + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
