"""Backbones in ONNX Runtime: a module as an ONNX graph (the exporter and the symbolics our
encoders need), ONNX Runtime's session options, and features computed by it.

The embed stage's `runtime: onnx` and `fewshot-export` both build graphs here. ONNX Runtime gave
the pretrained backbones' features 2.4x (EfficientNet-Lite0) and 3.5x (MobileNetV2) faster than
eager channels-last PyTorch at 128 px, batch 64, 2 threads, equal within 1e-4
(benchmarks/onnx_inference.py, docs/results.md).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np
import torch
from torch import nn

from fewshot.core.errors import UserError

OPSET = 18


def graph_of(module: nn.Module, example: torch.Tensor, free: tuple[int, ...], output: str = "logits"):
    """`module` (one input `inputs` -> one output) as an ONNX graph, the `free` axes of its input
    (and the first of its output) left variable."""
    import onnx

    _register_symbolics()
    buffer = io.BytesIO()
    quietly(lambda: torch.onnx.export(
        module.eval(), (example,), buffer, input_names=["inputs"], output_names=[output],
        opset_version=OPSET, dynamo=False,
        dynamic_axes={"inputs": {a: f"axis_{a}" for a in free}, output: {0: "axis_0"}}))
    return onnx.load_from_string(buffer.getvalue())


def quietly(export):
    """`export()` without the exporters' progress lines and warnings."""
    with torch.no_grad(), warnings.catch_warnings(), open(os.devnull, "w") as sink, \
            contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        return export()


def _register_symbolics() -> None:
    """ONNX symbolics the light-curve encoders need: an `index_add` that adds, and `cummax` /
    `cummin` (not in ONNX; the encoders interpolate with them). Along `dim` of size B, value i is
    the max (min) of a (..., B, B) tensor holding values 0..i in row i (a lower-triangular mask),
    its index that of the last (first) extremum: exact on integers, O(B^2) memory (B: an
    encoder's time bins)."""
    from torch.onnx import register_custom_op_symbolic, symbolic_helper

    def symbolic(reduce: str, extreme: float, last: int):
        @symbolic_helper.parse_args("v", "i")
        def build(g, values, dim):
            size = g.op("Gather", g.op("Shape", values), g.op("Constant", value_t=torch.tensor([dim])))
            square = g.op("Concat", size, size, axis_i=0)
            ones = g.op("ConstantOfShape", square, value_t=torch.tensor([1], dtype=torch.int64))
            lower = g.op("Cast", g.op("Trilu", ones, upper_i=0), to_i=9)  # bool (B, B)
            rows = g.op("Unsqueeze", _moved(g, values, dim, -1),
                        g.op("Constant", value_t=torch.tensor([-2])))  # (..., 1, B)
            fill = g.op("CastLike", g.op("Constant", value_t=torch.tensor(extreme)), values)
            masked = g.op("Where", lower, rows, fill)  # (..., B, B)
            result = g.op(reduce, masked, g.op("Constant", value_t=torch.tensor([-1])), keepdims_i=0)
            index = g.op("ArgMax" if reduce == "ReduceMax" else "ArgMin", masked, axis_i=-1,
                         keepdims_i=0, select_last_index_i=last)
            return _moved(g, result, -1, dim), _moved(g, index, -1, dim)

        return build

    for name, reduce, extreme, last in (("cummax", "ReduceMax", -2.0**62, 1),
                                        ("cummin", "ReduceMin", 2.0**62, 0)):
        register_custom_op_symbolic(f"aten::{name}", symbolic(reduce, extreme, last), OPSET)

    @symbolic_helper.parse_args("v", "i", "v", "v", "v")
    def index_add(g, values, dim, index, source, alpha=None):
        """1-D `index_add`: a scatter that adds (the stock symbolic overwrites repeated indices,
        so a light-curve bin with several observations kept only one)."""
        if symbolic_helper._get_tensor_rank(values) != 1 or dim != 0:
            raise UserError("index_add is exported for 1-D tensors only")
        return g.op("ScatterElements", values, index, source, axis_i=0, reduction_s="add")

    register_custom_op_symbolic("aten::index_add", index_add, OPSET)


def _moved(g, value, source: int, target: int):
    """`value` with axis `source` moved to `target` (only -1 <-> the last axis is needed here)."""
    if source in (-1, target) and target in (-1, source):
        return value
    raise UserError(f"cumulative extrema along axis {source} -> {target} cannot be exported")


def session_options():
    """ONNX Runtime's options: as many threads as PyTorch uses (its default, the physical cores,
    may be fewer), so the two runtimes compare on the same cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # No busy-waiting between runs: spinning threads took the cores from the next query's reading
    # (and from PyTorch beside it), 68 ms for PyTorch's query instead of 15 ms.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def embed(module: nn.Module, inputs, batch_size: int = 64, desc: str = "embed") -> torch.Tensor:
    """`fewshot.models.backbones.embed` computed by ONNX Runtime: features (N, D) float32 of
    model inputs (N, ...) in batches, with progress; the module exported once (batch size free)."""
    import onnxruntime as ort

    from fewshot.core.progress import progress

    inputs = torch.as_tensor(inputs)
    graph = graph_of(module, inputs[:2], (0,), output="features")
    session = ort.InferenceSession(graph.SerializeToString(), session_options(),
                                   providers=["CPUExecutionProvider"])
    array = inputs.numpy()
    chunks = [session.run(None, {"inputs": array[s : s + batch_size]})[0]
              for s in progress(range(0, len(array), batch_size), desc)]
    return torch.from_numpy(np.concatenate(chunks)).float()
