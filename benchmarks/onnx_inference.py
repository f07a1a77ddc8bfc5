"""ONNX Runtime against eager PyTorch, side by side in one run: embedding throughput of both
pretrained backbones, one query from its file with the exported model (fp32 and int8), and the
accuracy each costs on the default run's 1,000 test episodes.

Usage (after `dvc repro`): python benchmarks/onnx_inference.py [--model protonet] [--queries 200]
                                                              [--repeats 3] [--out FILE.json]

1. Embedding: the test split's images (decoded once) through each backbone at the default size and
   batch (128 px, 64), eager PyTorch (channels-last, what embed@images runs) and ONNX Runtime (the
   backbone exported as fewshot-export exports it), interleaved `--repeats` times: images/s
   (median) and the largest feature difference. ONNX Runtime here is
   `fewshot.models.backbones.runtime.embed`, what the embed stage runs.
2. Accuracy: the trained model (a frozen backbone + its head) scored on the test episodes with the
   features each runtime gives: eager PyTorch's, ONNX Runtime fp32 (what embed@images caches
   with `runtime: onnx`) and static int8 (calibrated on 256 training-split images, never the test split;
   as fewshot-export quantises: the first and last convolutions fp32); paired difference against
   PyTorch per episode with its 95% CI (the gate's test).
   The head runs in PyTorch here; in an exported model it is in the graph (quantised with it).
3. One query: `fewshot-predict`'s `Predictor` on one PNG (read, normalise, model, calibrated
   softmax) with a support set of 5 unseen classes, PyTorch against the exported model (fp32 and
   static int8), interleaved query by query, `--queries` times after 5 warm-ups: p50 /
   p95; labels compared over 300 query files; file sizes.
Both runtimes use the same number of threads (torch's: 2 here).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fewshot.core import paths
from fewshot.core.fileio import write_json
from fewshot.data import curation, features
from fewshot.data.inputs import ItemInputs
from fewshot.data.text import TextFeatures
from fewshot.evaluation import metrics
from fewshot.evaluation.scoring import score
from fewshot.evaluation.timing import device_name
from fewshot.inference import exported
from fewshot.inference import trained as inference
from fewshot.inference.predict import Predictor, Processed
from fewshot.inference.support import from_folder
from fewshot.models import checkpoint
from fewshot.models.backbones import BACKBONES, embed, runtime
from fewshot.tools.example import export as export_example


def _session(graph):
    import onnxruntime as ort

    return ort.InferenceSession(graph.SerializeToString(), runtime.session_options(),
                                providers=["CPUExecutionProvider"])


def _ort_features(session, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([session.run(None, {"inputs": images[s : s + batch]})[0]
                                            for s in range(0, len(images), batch)]))


def embedding(images: torch.Tensor, repeats: int) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """(throughput rows, eager PyTorch features per backbone)."""
    rows, eager_features = [], {}
    for name in ("efficientnet_lite0", "mobilenet_v2"):
        module = BACKBONES.create(name).module
        eager_s, ort_s = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            eager = embed(module, images, 64, desc=f"eager {name}")
            eager_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            onnx = runtime.embed(module, images, 64, desc=f"onnx {name}")
            ort_s.append(time.perf_counter() - started)
        eager_features[name] = eager
        rows.append({"backbone": name, "images": len(images),
                     "eager_images_per_s": len(images) / statistics.median(eager_s),
                     "onnx_images_per_s": len(images) / statistics.median(ort_s),
                     "max_abs_feature_diff": float((eager - onnx).abs().max())})
    return rows, eager_features


def accuracy(model: str, test: pd.DataFrame, images: torch.Tensor, calibration: np.ndarray,
             modality, eager: dict[str, torch.Tensor]) -> tuple[list[dict], dict]:
    where = paths.Domain("images")
    method, info = checkpoint.load(paths.model_file(model), on_features=True)
    backbone = info["spec"]["backbone"]
    table = pd.read_parquet(where.test_episodes)
    text = TextFeatures(where.text)
    module = BACKBONES.create(backbone).module
    plain = runtime.graph_of(module, images[:2], (0,), output="features")
    graphs = {"onnx fp32": plain, "static int8": exported.quantized(plain, "static", calibration)}
    per_episode, rows, features_of = {}, [], {}
    with tempfile.TemporaryDirectory() as folder:
        for variant in ("pytorch", *graphs):
            cache = Path(folder) / variant.replace(" ", "_")
            features_of[variant] = (eager[backbone] if variant == "pytorch" else
                                    _ort_features(_session(graphs[variant]), images.numpy()))
            features.save(features.path_for(backbone, cache), list(test["item_id"]),
                          list(test["sha256"]), features_of[variant])
            results = score(method, ItemInputs(test, backbone, True, text, modality, cache), table)
            per_episode[variant] = [float((r["logits"].argmax(1) == r["labels"]).mean())
                                    for r in results]
    reference = features_of["pytorch"]
    for variant, values in per_episode.items():
        paired = metrics.paired_difference(per_episode["pytorch"], values, 0.95)
        rows.append({"features": variant, "accuracy": float(np.mean(values)),
                     "paired_diff": paired.mean, "ci95": [paired.low, paired.high],
                     "max_abs_feature_diff": float((features_of[variant] - reference).abs().max()),
                     "identical_episodes": int(sum(a == b for a, b in zip(
                         per_episode["pytorch"], values, strict=True)))})
    return rows, {"backbone": backbone, "episodes": len(per_episode["pytorch"])}


def one_query(model: str, queries: int, calibration: np.ndarray) -> list[dict]:
    trained = inference.load(model)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        support_dir, _ = export_example(tmp / "example", 5)
        support = from_folder(trained, support_dir)
        _, pool = export_example(tmp / "pool", 60, seed=1)
        files = sorted(pool.glob("*.png"))
        predictors = {"pytorch": Predictor(Processed(trained, support))}
        sizes = {}
        for variant, mode in (("onnx fp32", None), ("static int8", "static")):
            path = tmp / f"{variant.replace(' ', '_')}.onnx"
            exported.export(trained, support, path, mode, calibration)
            sizes[variant] = path.stat().st_size
            predictors[variant] = Predictor(exported.load(path))
        answers = {variant: predictor(files) for variant, predictor in predictors.items()}
        times: dict[str, list[float]] = {variant: [] for variant in predictors}
        for f in files[:5]:
            for predictor in predictors.values():
                predictor([f])
        for i in range(queries):
            for variant, predictor in predictors.items():
                started = time.perf_counter()
                predictor([files[i % len(files)]])
                times[variant].append((time.perf_counter() - started) * 1000)
    reference = answers["pytorch"]
    rows = []
    for variant, found in answers.items():
        diff = max(abs(a["probabilities"][c] - b["probabilities"][c])
                   for a, b in zip(found, reference, strict=True) for c in a["probabilities"])
        quantiles = statistics.quantiles(times[variant], n=20)
        rows.append({"runtime": variant, "p50_ms": statistics.median(times[variant]),
                     "p95_ms": quantiles[18], "queries": queries, "files_compared": len(files),
                     "same_labels": sum(a["label"] == b["label"]
                                        for a, b in zip(found, reference, strict=True)),
                     "max_abs_prob_diff": diff, "file_bytes": sizes.get(variant)})
    return rows


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_argument("--model", default="protonet")
    cli.add_argument("--queries", type=int, default=200)
    cli.add_argument("--repeats", type=int, default=3)
    cli.add_argument("--out", type=Path)
    args = cli.parse_args()
    torch.manual_seed(0)
    where = paths.Domain("images")
    items = pd.read_parquet(where.items)
    test = items[items["split"] == "test"].reset_index(drop=True)
    modality, _ = curation.curated_kind(where.kind)
    images = modality.decode(list(test["content"]))
    train = items[items["split"] == "train"].sample(256, random_state=0)
    calibration = modality.decode(list(train["content"])).numpy()
    result = {"machine": platform.processor() or platform.machine(), "device": device_name(),
              "threads": torch.get_num_threads(), "model": args.model}
    result["embedding"], eager = embedding(images, args.repeats)
    result["accuracy"], result["scored"] = accuracy(args.model, test, images, calibration, modality,
                                                    eager)
    result["one_query"] = one_query(args.model, args.queries, calibration)
    print(f"Embedding, {len(images)} test images, batch 64, {result['threads']} threads "
          f"({result['device']}):\n| backbone | eager images/s | ONNX Runtime images/s | ratio | "
          "max abs feature diff |\n|---|---|---|---|---|")
    for row in result["embedding"]:
        print(f"| {row['backbone']} | {row['eager_images_per_s']:.0f} | {row['onnx_images_per_s']:.0f}"
              f" | {row['onnx_images_per_s'] / row['eager_images_per_s']:.2f}x | "
              f"{row['max_abs_feature_diff']:.1e} |")
    print(f"\nAccuracy of {args.model} ({result['scored']['backbone']}) on "
          f"{result['scored']['episodes']} test episodes, by the features' runtime:\n"
          "| features | accuracy | paired diff vs PyTorch [95% CI] | identical episodes | max abs "
          "feature diff |\n|---|---|---|---|---|")
    for row in result["accuracy"]:
        print(f"| {row['features']} | {row['accuracy']:.4f} | {row['paired_diff']:+.4f} "
              f"[{row['ci95'][0]:+.4f}, {row['ci95'][1]:+.4f}] | {row['identical_episodes']} | "
              f"{row['max_abs_feature_diff']:.1e} |")
    print(f"\nOne query from its file ({args.model}, 5 classes):\n| runtime | p50 / p95 ms | ratio "
          "(p50) | same labels | max abs prob diff | file MiB |\n|---|---|---|---|---|---|")
    base = result["one_query"][0]["p50_ms"]
    for row in result["one_query"]:
        size = f"{row['file_bytes'] / 2**20:.1f}" if row["file_bytes"] else "–"
        print(f"| {row['runtime']} | {row['p50_ms']:.2f} / {row['p95_ms']:.2f} | "
              f"{base / row['p50_ms']:.2f}x | {row['same_labels']}/{row['files_compared']} | "
              f"{row['max_abs_prob_diff']:.1e} | {size} |")
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
