"""Exported models: a trained model with its support set as one ONNX file, run by ONNX Runtime.

`fewshot-export` (and `fewshot-predict --runtime onnx`, which exports on first use into a cache)
writes the graph `inputs` (N, ...) -> `logits` (N, n_way) of a trained model whose support set has
been processed: backbone, head and what the method kept of the support set (prototypes, support
embeddings, class texts) in one file. Answering queries then needs ONNX Runtime and the modality's
reader only: no PyTorch weights, text model or support images. The file's metadata (key
`fewshot`) records what inference needs and where the model came from: the modality and its
settings, the input's dtype, the classes, the calibrated temperature, the model's provenance, the
support set's hash, the quantisation and the versions that exported it.

Quantisation: `static` int8 (weights and activations of the layers' convolutions and matrix
products, QDQ form, per channel; the first and last convolutions and the method's arithmetic with
the support set stay fp32), calibrated on inputs the caller gives: the support folder's files by
default. ONNX Runtime's dynamic quantisation is not offered: it computes int8 convolutions 11x
slower than fp32 here (ConvInteger) and does not quantise `Gemm`, the heads' linear layers, so it
could only make these models slower or leave them as they are. What static int8 costs in accuracy
on the test episodes and gives in speed and size: benchmarks/onnx_inference.py, docs/results.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fewshot.core.errors import UserError
from fewshot.core.fileio import atomic_path
from fewshot.inference.predict import Processed
from fewshot.inference.support import SupportSet
from fewshot.inference.trained import Trained, read_files
from fewshot.modalities import Modality, modality_of
from fewshot.models.backbones.runtime import OPSET, graph_of, quietly, session_options

FORMAT = 1
META_KEY = "fewshot"
QUANTIZE = ("static",)
CACHE_ENV = "FEWSHOT_CACHE_DIR"


class _Graph(nn.Module):
    """What is exported: raw inputs -> logits, the support set already in the method."""

    def __init__(self, trained: Trained):
        super().__init__()
        self.backbone, self.method = trained.backbone, trained.method

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        features = inputs if self.backbone is None else self.backbone(inputs).float()
        return self.method(features)


def export(trained: Trained, support: SupportSet, out: Path, quantize: str | None = None,
           calibration: np.ndarray | None = None) -> dict:
    """Write the ONNX model of `trained` with `support` processed to `out` (atomically); return
    its metadata. `calibration`: raw inputs (N, ...) for static quantisation."""
    import onnx

    Processed(trained, support)  # gives the method the support set, refusing one it cannot use
    graph, exporter = _traced(trained)
    if quantize is not None:
        graph = quantized(graph, quantize, calibration)
    meta = {"format": FORMAT, "provenance": trained.provenance, "classes": support.classes,
            "temperature": trained.temperature, "input_dtype": str(trained.modality.blank(
                trained.settings).dtype), "support_sha256": support_sha256(support),
            "quantize": quantize or "none",
            "calibration_inputs": 0 if calibration is None or quantize != "static" else len(calibration),
            "exported_with": {"exporter": exporter, "opset": OPSET} | {
                package: version(package) for package in ("torch", "onnx", "onnxruntime")}}
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    with atomic_path(out) as tmp:
        onnx.save(graph, str(tmp))
    return meta


def _traced(trained: Trained):
    """(the model as an ONNX graph, the exporter that made it), batch size and the modality's
    varying axes left free.

    The TorchScript exporter, with the symbolics of `backbones.runtime`. The dynamo exporter,
    measured beside it (torch 2.14): 7 s per export against 0.4 s, the same outputs to 1e-5, one
    image 1.8 ms against 2.2 ms for the backbone alone; but it translates neither `cdist`
    (protonet, siamese) nor
    `cummax` (the light-curve encoders)."""
    blank = trained.modality.blank(trained.settings)
    example = torch.as_tensor(np.concatenate([blank, blank]))  # batch 2: nothing specialises to 1
    try:
        graph = graph_of(_Graph(trained), example, (0, *trained.modality.varying_axes))
    except Exception as err:  # the exporter raises many types for an operator it cannot express
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserError(f"model '{trained.name}' ({trained.spec['method']}, "
                        f"{trained.spec['backbone']}) cannot be exported to ONNX: "
                        f"{type(err).__name__}: {first[:200]}") from None
    return graph, "torchscript"


def quantized(graph, quantize: str, calibration: np.ndarray | None):
    """`graph` with int8 weights and activations (`static`: calibrated on `calibration`)."""
    import onnx
    from onnxruntime import quantization as q

    if quantize not in QUANTIZE:
        raise UserError(f"quantize '{quantize}' is not one of {', '.join(QUANTIZE)}")
    if quantize == "static" and (calibration is None or len(calibration) == 0):
        raise UserError("static quantisation needs calibration inputs: give --support DIR (its "
                        "files are used) or --calibration DIR")
    with tempfile.TemporaryDirectory() as folder:
        plain, prepared, done = (Path(folder) / name for name in ("a.onnx", "b.onnx", "c.onnx"))
        onnx.save(graph, str(plain))
        q.quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
        # The layers only: nodes of submodules (the exporter names a node by its module path,
        # /backbone/net/.../Conv, /method/head/Gemm). The method's own arithmetic with the support
        # set stays fp32: int8 distances to the prototypes lost everything to cancellation (10% of
        # the worked example's labels right when the whole graph was quantised).
        nodes = onnx.load(str(prepared)).graph.node
        encoder = [n.name for n in nodes if n.name.count("/") >= 3]
        # The first and last convolutions stay fp32 (the input's and the features' layer): on the
        # default protonet the accuracy cost of static int8 fell from 2.1 to 0.1 points
        # (calibrating by percentile or entropy instead: 1.5 and 2.1; docs/results.md).
        convolutions = [n.name for n in nodes if n.op_type == "Conv" and n.name in set(encoder)]
        kept = set(convolutions[:1] + convolutions[-1:]) if len(convolutions) > 1 else set()
        # Only the convolutions and matrix products: quantising the shape arithmetic of "same"
        # padding breaks the graph (QLinearConv fed a (4, 4) tensor).
        quietly(lambda: q.quantize_static(str(prepared), str(done), _calibration_reader(calibration),
                                           quant_format=q.QuantFormat.QDQ, per_channel=True,
                                           op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                                           nodes_to_quantize=[n for n in encoder if n not in kept]))
        return onnx.load(str(done))


def _calibration_reader(inputs: np.ndarray, batch: int = 16):
    """An ONNX Runtime calibration reader over `inputs` in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"inputs": inputs[s : s + batch]} for s in range(0, len(inputs), batch)])

        def get_next(self):
            return next(self.batches, None)

    return Reader()


def support_sha256(support: SupportSet) -> str:
    """Hash of what a support set tells a model: its classes, their texts, its inputs and labels."""
    digest = hashlib.sha256(json.dumps([support.provenance, support.classes], sort_keys=True).encode())
    for tensor in (support.class_text, support.inputs, support.labels):
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Exported:
    """An exported model loaded into ONNX Runtime; answers as `Processed` does."""

    path: Path
    meta: dict
    session: object
    modality: Modality
    settings: object
    temperature: float

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def name(self) -> str:
        return self.meta["provenance"]["model"]

    @property
    def provenance(self) -> dict:
        return self.meta["provenance"] | {"runtime": "onnx", "quantize": self.meta["quantize"],
                                          "exported": str(self.path),
                                          "support_sha256": self.meta["support_sha256"]}

    def read(self, files: list[Path]) -> tuple[np.ndarray, list[int], dict[int, str]]:
        return read_files(self.modality, self.settings, files)

    def logits(self, raw: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        inputs = np.ascontiguousarray(raw, dtype=self.meta["input_dtype"])
        chunks = [self.session.run(["logits"], {"inputs": inputs[s : s + batch_size]})[0]
                  for s in range(0, len(inputs), batch_size)]
        return torch.from_numpy(np.concatenate(chunks)) if chunks else torch.zeros(0, len(self.classes))


def load(path: Path, temperature: float | None = None) -> Exported:
    """An exported model from its file; the temperature defaults to the one it was exported with."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise UserError(f"exported model '{path}' does not exist; write one with fewshot-export")
    try:
        session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime raises its own error types for a foreign file
        raise UserError(f"'{path}' is not an ONNX model ONNX Runtime can load "
                        f"({type(err).__name__})") from None
    raw = session.get_modelmeta().custom_metadata_map.get(META_KEY)
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != FORMAT:
        raise UserError(f"'{path}' was not written by fewshot-export (format {meta.get('format')!r}, "
                        f"expected {FORMAT})")
    modality = modality_of(meta["provenance"]["modality"])
    settings = modality.settings(meta["provenance"]["settings"])
    return Exported(path, meta, session, modality, settings,
                    float(meta["temperature"] if temperature is None else temperature))


def cached(trained: Trained, support: SupportSet, quantize: str | None = None,
           calibration: np.ndarray | None = None) -> Path:
    """The exported model of `trained` + `support` in the cache (written on first use): the same
    model, support set, quantisation (and calibration inputs) and versions give the same file."""
    key = hashlib.sha256(json.dumps([FORMAT, OPSET, trained.sha256, support_sha256(support),
                                     quantize, [version(p) for p in ("torch", "onnxruntime")]]
                                    ).encode())
    if quantize == "static" and calibration is not None:
        key.update(np.ascontiguousarray(calibration).tobytes())
    path = cache_dir() / f"{trained.name}-{key.hexdigest()[:20]}.onnx"
    if not path.is_file():
        export(trained, support, path, quantize, calibration)
    return path


def inputs_of_folder(modality: Modality, settings, folder: Path) -> np.ndarray:
    """Every readable input file under `folder` (any depth), as one batch (calibration data)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"calibration folder '{folder}' does not exist; expected a folder of inputs")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in modality.suffixes)
    raw, ok, _ = read_files(modality, settings, files)
    if not ok:
        raise UserError(f"calibration folder '{folder}' has no readable {modality.name} files "
                        f"({', '.join(sorted(modality.suffixes))})")
    return raw


def cache_dir() -> Path:
    """$FEWSHOT_CACHE_DIR, else $XDG_CACHE_HOME/fewshot/onnx, else ~/.cache/fewshot/onnx."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fewshot" / "onnx"
