"""Are trained weights the same on another machine? The same seeded training (a small 1-D CNN,
100 Adam steps: the shape of the light-curve models) run under several floating-point paths a CI
machine may take, and under other CPUs emulated by qemu-user when `qemu-x86_64` is installed
(`apt-get install qemu-user`). Prints a table and writes benchmarks/results/float_paths.json.

  python benchmarks/float_paths.py [--no-qemu]

Each row is a fresh process; the weights' SHA-256 tells whether two paths agree bit for bit. This
is why scripts/baseline.sh records machine noise instead of demanding identical numbers on every
machine (docs/experiments.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

TRAIN = r"""
import hashlib, os, torch
torch.backends.mkldnn.enabled = os.environ.get("BENCH_ONEDNN", "1") == "1"
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv1d(6, 32, 5, padding=2), torch.nn.ReLU(),
                          torch.nn.Conv1d(32, 64, 5, padding=2), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(64, 16))
opt = torch.optim.Adam(net.parameters(), 1e-3)
x, y = torch.randn(40, 6, 128), torch.randint(0, 4, (40,))
for _ in range(100):
    z = net(x)
    protos = torch.stack([z[y == c].mean(0) for c in range(4)])
    loss = torch.nn.functional.cross_entropy(-torch.cdist(z, protos), y)
    opt.zero_grad(); loss.backward(); opt.step()
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters()))
print(digest.hexdigest()[:16], f"{loss.item():.8f}")
"""

CAPPED = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
PATHS = [  # label, CPU (None = this machine), environment
    ("this machine, defaults", None, {}),
    ("1 thread", None, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}),
    ("oneDNN held to AVX2", None, {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("MKL held to AVX2 (MKL_CBWR)", None, {"MKL_CBWR": "AVX2"}),
    ("all held to AVX2", None, CAPPED),
    ("all held to AVX2, no oneDNN, MKL strict", None,
     CAPPED | {"BENCH_ONEDNN": "0", "MKL_CBWR": "AVX2,STRICT"}),
    ("EPYC-Milan (qemu), defaults", "EPYC-Milan", {}),
    ("EPYC-Milan (qemu), all held to AVX2", "EPYC-Milan", CAPPED),
    ("Haswell (qemu), all held to AVX2", "Haswell-v4", CAPPED),
    ("EPYC-Milan (qemu), AVX2, no oneDNN, MKL strict", "EPYC-Milan",
     CAPPED | {"BENCH_ONEDNN": "0", "MKL_CBWR": "AVX2,STRICT"}),
]


def run(cpu: str | None, env: dict) -> str:
    python = os.path.realpath(sys.executable)
    command = [python, "-c", TRAIN] if cpu is None else ["qemu-x86_64", "-cpu", cpu, python, "-c", TRAIN]
    site = [p for p in sys.path if p.endswith("site-packages")]
    full = dict(os.environ, PYTHONPATH=os.pathsep.join(site), **env)
    done = subprocess.run(command, capture_output=True, text=True, env=full, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"error: {command[:3]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.split()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-qemu", action="store_true", help="only this machine's paths")
    args = parser.parse_args()
    qemu = shutil.which("qemu-x86_64") and not args.no_qemu
    rows = []
    for label, cpu, env in PATHS:
        if cpu and not qemu:
            continue
        rows.append({"path": label, "cpu": cpu or platform.processor() or platform.machine(),
                     "env": env, "weights_sha256": run(cpu, env)})
        print(f"| {label} | {rows[-1]['weights_sha256']} |", flush=True)
    distinct = len({row["weights_sha256"] for row in rows})
    print(f"{distinct} distinct weight sets from {len(rows)} float paths")
    out = Path(__file__).parent / "results" / "float_paths.json"
    out.write_text(json.dumps({"machine": platform.platform(), "rows": rows, "distinct": distinct},
                              indent=1) + "\n")


if __name__ == "__main__":
    main()
