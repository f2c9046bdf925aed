#!/usr/bin/env python3
"""Run torchattacks on the same ConvNet weights and images as the beard-rs agent.

Reads a model checkpoint the agent saved (safetensors, PyTorch state-dict names) and an images
file (safetensors: `images` float32 [n, 3, h, w] in [0, 1], `labels` int64 [n], optionally
`targets` int64 [n]), rebuilds the DC-bench ConvNet with the normalization inside the model, runs
each requested torchattacks attack chunk by chunk, and writes one safetensors file with, per
attack run `KEY` (the attack spec, plus `@targeted` for targeted runs):

- `KEY/adversarial` float32 [n, 3, h, w]: the adversarial images;
- `KEY/correct` uint8 [n]: 1 where the model still predicts the true label (judged chunk by
  chunk, and image by image for DeepFool, which judges its iterates so);
- `KEY/seconds` float64 [1]: wall time of the attack and of the forward pass judging its images,
  over all chunks (the best of `--repeat`).

It also prints one line per run: robust accuracy and images per second. Attack specs are written
`NAME:key=value,...` with torchattacks' parameter names (`pgd:eps=0.0314,alpha=0.0078,steps=10`);
numbers may be fractions (`8/255`). AutoAttack's parts `apgd-ce`, `apgd-t`, `fab-t` and `square`
run torchattacks' `APGD` (cross-entropy), `APGDT`, `FAB` (multi-targeted) and `Square`, whose
`n_classes - 1` is our `n_target_classes`; `autoattack` runs torchattacks' `AutoAttack`
('standard', with `--classes` classes, seed 0 unless the spec gives one; its parts run 10
iterations, so a spec's `steps`, ours, may only say 10). Only the standard library, numpy, torch
and torchattacks are needed: the safetensors format is read and written here.

`--beard-compat` runs both sides the way BEARD's reference code does (our `beard-compat`
evaluation mode): images normalized with `--mean`/`--std` and attacked with the model without its
normalization (every step clamped to [0, 1] in normalized units), PGD's step 2/225 without random
start whatever the spec says, targets (y + 1) % 10, and ours as `agent eval --mode beard-compat`.

Example:
  .venv/bin/python scripts/parity/torchattacks_parity.py --checkpoint model.safetensors \
      --images images.safetensors --out results.safetensors --width 16 --classes 10 \
      --mean 0.4506,0.4493,0.4530 --std 0.1912,0.1904,0.1910 --attack fgsm:eps=8/255 \
      --attack deepfool:steps=50,overshoot=0.02
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import torch
from torch import nn

try:
    import torchattacks
except ImportError:  # pragma: no cover - reported to the caller
    sys.exit("torchattacks is not installed in this Python: run `make venv` (it installs torchattacks==3.5.1)")

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        array = np.ascontiguousarray(tensor.detach().cpu().numpy())
        raw = array.tobytes()
        header[name] = {"dtype": NAMES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


class ConvNet(nn.Module):
    """DC-bench ConvNet (conv 3x3 -> norm -> ReLU -> 2x2 pool, `depth` times; then linear), with
    the dataset's normalization as its first operation, as the agent's model."""

    def __init__(self, width, depth, norm, pool, classes, image_size, mean, std):
        super().__init__()
        layers, channels, size = [], 3, image_size
        for _ in range(depth):
            layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
            if norm == "instance":
                layers.append(nn.GroupNorm(width, width, affine=True))
            elif norm == "batch":
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            layers.append(nn.AvgPool2d(2, 2) if pool == "avg" else nn.MaxPool2d(2, 2))
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        x = self.features((x - self.mean) / self.std)
        return self.classifier(x.flatten(1))


def number(text):
    return float(Fraction(text)) if "/" in text else float(text)


def parse_spec(spec):
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key in ("steps", "n_queries", "seed", "top_k", "n_restarts", "n_target_classes", "nb_iter", "nb_sample",
                   "max_batch_size"):
            params[key] = int(value)
        elif key in ("random_start", "per_image", "torchattacks_margin"):
            params[key] = value.lower() in ("true", "1", "yes")
        elif key == "version":
            params[key] = value
        else:
            params[key] = number(value)
    return name, params


ATTACKS = {
    "fgsm": torchattacks.FGSM,
    "pgd": torchattacks.PGD,
    "pgdl2": torchattacks.PGDL2,
    "cw": torchattacks.CW,
    "deepfool": torchattacks.DeepFool,
    "apgd-ce": torchattacks.APGD,
    "apgd-t": torchattacks.APGDT,
    "fab-t": torchattacks.FAB,
    "square": torchattacks.Square,
    "autoattack": torchattacks.AutoAttack,
    "spsa": torchattacks.SPSA,
}


# BEARD's defaults (DESIGN.md, the agent's attack specs) where torchattacks' differ, so that a spec
# that leaves a parameter out runs the same attack on both sides.
BEARD_DEFAULTS = {
    "pgd": {"random_start": False},
    "pgdl2": {"eps": 128 / 255, "alpha": 15 / 255, "random_start": False},
    "cw": {"steps": 100},
    "autoattack": {"seed": 0},  # torchattacks' default None seeds every part with the clock
    "spsa": {"eps": 8 / 255},  # torchattacks' default is 0.3
}
# The iterations torchattacks' AutoAttack runs in APGD-CE, APGD-T and FAB-T (its parts'
# defaults; it has no parameter for them): a spec may ask for these and no other.
AUTOATTACK_STEPS = 10


def build_attack(model, spec, classes):
    name, params = parse_spec(spec)
    if name not in ATTACKS:
        sys.exit(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    params = {**BEARD_DEFAULTS.get(name, {}), **params}
    params.pop("top_k", None)  # torchattacks' DeepFool always considers every class
    params.pop("per_image", None)  # and always runs image by image
    params.pop("torchattacks_margin", None)  # torchattacks' CW always reads its own margin
    if name in ("apgd-t", "fab-t"):
        # torchattacks' APGDT and multi-targeted FAB target the n_classes - 1 most likely others
        params["n_classes"] = params.pop("n_target_classes", 9) + 1
    if name == "fab-t":
        params["multi_targeted"] = True
    if name == "spsa":
        # torchattacks' SPSA draws its signs from torch's global generator: the seed goes there.
        torch.manual_seed(params.pop("seed", 0))
    if name == "autoattack":
        steps = params.pop("steps", AUTOATTACK_STEPS)
        if steps != AUTOATTACK_STEPS:
            sys.exit(f"torchattacks' AutoAttack runs {AUTOATTACK_STEPS} iterations per part, not {steps}")
        params["n_classes"] = classes
    return ATTACKS[name](model, **params)


def reference_spec(spec):
    """`spec` as BEARD's reference code runs it: PGD with the step 2/225 and no random start."""
    name, params = parse_spec(spec)
    if name != "pgd":
        return spec
    params.update(alpha="2/225", random_start="false")
    return "pgd:" + ",".join(f"{key}={value}" for key, value in params.items())


def load_checkpoint(path):
    """A safetensors checkpoint saved by the agent, or a PyTorch state-dict file."""
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_cifar10_test(directory, n):
    """The first `n` images (in [0, 1]) and labels of CIFAR-10's `test_batch.bin`."""
    raw = np.fromfile(f"{directory}/test_batch.bin", dtype=np.uint8).reshape(-1, 3073)[:n]
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    return images, labels


def synchronize(device):
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torchattacks(model, spec, targeted, images, labels, targets, batch_size, classes):
    """One attack run chunk by chunk: the adversarial images, correctness and wall seconds.

    The seconds cover the attack and the forward pass that judges its images, the work behind a
    robust accuracy, as ours (`agent eval` times the attack with the verdicts it returns, after a
    warm-up forward pass and with CUDA synchronized at both clock reads)."""
    attack = build_attack(model, spec, classes)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    # Judged in the batches the attack judges its own iterates in: DeepFool stops at the first
    # iterate its per-image forward pass calls misclassified, often by a float32 hair, and a
    # forward pass over a batch rounds differently (on the CIFAR-10 reference checkpoint it read
    # 7 of 500 such images back as correct, never the other way round).
    size = 1 if parse_spec(spec)[0] == "deepfool" else batch_size
    chunks, predictions = [], []
    # As ours: one untimed forward pass over a chunk first, and the device idle at both clock
    # reads (CUDA runs kernels asynchronously; the last chunk's would otherwise go unclocked).
    with torch.no_grad():
        model(images[:batch_size])
    synchronize(images.device)
    started = time.perf_counter()
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        adversarial = attack(images[chunk], (targets if targeted else labels)[chunk])
        with torch.no_grad():
            predictions += [model(adversarial[at:at + size]).argmax(1) for at in range(0, len(adversarial), size)]
        chunks.append(adversarial)
    synchronize(images.device)
    seconds = time.perf_counter() - started
    return torch.cat(chunks), torch.cat(predictions) == labels, seconds


def run_agent(agent, args, specs, targeted):
    """Our robust accuracy and seconds per spec, from `agent eval --json` on the same data."""
    if not specs:
        return []
    command = [agent, "eval", "--checkpoint", args.checkpoint, "--dataset", "cifar10", "--data-dir", args.cifar10,
               "--limit", str(args.n), "--width", str(args.width), "--batch-size", str(args.batch_size), "--json",
               "--mode", "beard-compat" if args.beard_compat else "standard"]
    for spec in specs:
        command += ["--attack", spec]
    if targeted:
        command += ["--targeted", "next"]
    environment = dict(os.environ)
    if args.threads > 0:
        environment["OMP_NUM_THREADS"] = str(args.threads)
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout)
    return [(attack["accuracy"], attack["seconds"]) for attack in report["attacks"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="safetensors (agent) or PyTorch state-dict file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="safetensors file with images, labels and optionally targets")
    source.add_argument("--cifar10", help="directory with CIFAR-10's test_batch.bin (first --n images)")
    parser.add_argument("--n", type=int, default=500, help="with --cifar10: how many test images")
    parser.add_argument("--out", help="write adversarial images, correctness and seconds here (safetensors)")
    parser.add_argument("--agent", help="with --cifar10: also run ours (`AGENT eval`) and print both with the ratio")
    parser.add_argument("--attack", action="append", default=[], help="NAME:key=value,... (repeatable)")
    parser.add_argument("--targeted", action="append", default=[], help="an attack spec to run targeted (repeatable)")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--norm", choices=["instance", "batch", "none"], default="instance")
    parser.add_argument("--pool", choices=["avg", "max"], default="avg")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--mean", default="0.4914,0.4822,0.4465")
    parser.add_argument("--std", default="0.2023,0.1994,0.2010")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="best of this many timings, ours and torchattacks alternating (a shared machine)")
    parser.add_argument("--beard-compat", action="store_true",
                        help="BEARD's reference protocol: normalized images, PGD step 2/225, targets (y+1) %% 10")
    args = parser.parse_args()
    if args.agent and not args.cifar10:
        parser.error("--agent needs --cifar10 (ours reads the same test images from there)")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.images:
        data = read_safetensors(args.images)
        images, labels = data["images"].float(), data["labels"].long()
        targets = data["targets"].long() if "targets" in data else None
    else:
        images, labels = read_cifar10_test(args.cifar10, args.n)
        targets = (labels + 1) % args.classes  # the `next` target policy
    if args.targeted and targets is None:
        sys.exit("targeted runs need `targets` in the images file")
    mean = [float(v) for v in args.mean.split(",")]
    std = [float(v) for v in args.std.split(",")]
    if args.beard_compat:
        # The reference attacks the normalized tensor with a model that does not normalize again.
        images = (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        mean, std = [0.0] * 3, [1.0] * 3
        targets = (labels + 1) % 10
        args.attack = [reference_spec(spec) for spec in args.attack]
        args.targeted = [reference_spec(spec) for spec in args.targeted]
    model = ConvNet(args.width, args.depth, args.norm, args.pool, args.classes, images.shape[-1], mean, std)
    model.load_state_dict(load_checkpoint(args.checkpoint), strict=True)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)

    runs = [(spec, False) for spec in args.attack] + [(spec, True) for spec in args.targeted]
    results = {}
    with torch.no_grad():
        clean = (model(images).argmax(1) == labels).float().mean().item()
    print(f"clean accuracy {100 * clean:.2f}% on {len(images)} images, {torch.get_num_threads()} threads")
    # Best of --repeat rounds, ours and torchattacks alternating, so that the load of a shared
    # machine weighs on both sides alike; the outcomes are deterministic and kept from round 1.
    ours, theirs = [None] * len(runs), [None] * len(runs)
    for _ in range(args.repeat):
        if args.agent:
            mine = run_agent(args.agent, args, args.attack, False) + run_agent(args.agent, args, args.targeted, True)
            ours = [m if o is None else (o[0], min(o[1], m[1])) for o, m in zip(ours, mine)]
        for index, (spec, targeted) in enumerate(runs):
            adversarial, correct, seconds = run_torchattacks(
                model, spec, targeted, images, labels, targets, args.batch_size, args.classes)
            if theirs[index] is None:
                theirs[index] = (adversarial, correct, seconds)
            else:
                theirs[index] = (*theirs[index][:2], min(theirs[index][2], seconds))
    if args.agent:
        print(f"{'attack':<48} {'ours%':>7} {'ta%':>7} {'ours img/s':>11} {'ta img/s':>9} {'ratio':>7}")
    for (spec, targeted), mine, (adversarial, correct, seconds) in zip(runs, ours, theirs):
        key = spec + ("@targeted" if targeted else "")
        results[f"{key}/adversarial"] = adversarial.float()
        results[f"{key}/correct"] = correct.to(torch.uint8)
        results[f"{key}/seconds"] = torch.tensor([seconds], dtype=torch.float64)
        accuracy, rate = 100 * correct.float().mean().item(), len(images) / seconds
        if mine is None:
            print(f"{key}: robust accuracy {accuracy:.2f}%, {rate:.1f} images/s")
        else:
            our_accuracy, our_rate = mine[0], len(images) / mine[1]
            print(f"{key:<48} {our_accuracy:>7.2f} {accuracy:>7.2f} {our_rate:>11.1f} {rate:>9.1f} "
                  f"{our_rate / rate:>6.2f}x")
    if args.out:
        write_safetensors(args.out, results)


if __name__ == "__main__":
    main()
