#!/usr/bin/env python3
"""Check a node (a GPU, or the CPU as a smoke test) in one run, and print one markdown table.

1. The device is the one asked for (`agent eval` reports `cuda:N` and torch sees the GPU).
2. Clean accuracy of the reference checkpoints on the device equals the CPU's (DC 54.31 %,
   DM 62.06 % on the 10,000 CIFAR-10 test images: 5,431 and 6,206 correct).
3. Images per second, ours (`agent eval`) against torchattacks 3.5.1 on the same device, weights
   and images, both in fp32, and on a GPU both with TF32 (ours `--tf32 all`).
4. DeepFool's robust accuracy on the first `--deepfool-n` test images (DM checkpoint) on the
   device, in fp32, is within 0.4 points of the CPU's, computed in the same run.
5. Training images per second, ours (`agent bench --adversarial-training`, its standard row)
   against a plain PyTorch loop training the same ConvNet on as many images with the same batch.
6. AutoAttack's wall seconds per task on the weak models of DC's released IPC-1 set, through a
   sweep (Square's sequential queries on the few points still robust: the tail that launch
   overhead dominates on a GPU), and whether the agent replayed CUDA graphs; then AutoAttack on
   one of those models by `agent eval` with graphs (the default) and without
   (`BEARD_CUDA_GRAPHS=0`): the ratio, and that both give the same robust accuracy. Needs
   `distilled/` in `--data`.
7. A small sweep through `coordinator serve` and `agent run` on the device completes, and its
   report names the device and precision.

Checks 1, 2, 4, 6 (same results) and 7 pass or fail (the exit status says so); speeds are reported as ratios, not
judged. Run it through `check.sh`, which finds the binaries and torchattacks.
"""

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "parity"))
from torchattacks_parity import ConvNet, load_checkpoint, read_cifar10_test, run_torchattacks  # noqa: E402

REFERENCE = {"DC_ConvNet_CIFAR10_50_None.pth": 5431, "DM_ConvNet_CIFAR10_50_None.pth": 6206}
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]


class Table:
    """The rows of the final markdown table, and whether every check passed."""

    def __init__(self):
        self.rows, self.failed = [], False

    def check(self, what, ok, detail):
        self.rows.append((what, "pass" if ok else "FAIL", detail))
        self.failed |= not ok
        print(f"[{'pass' if ok else 'FAIL'}] {what}: {detail}", flush=True)

    def measure(self, what, detail):
        self.rows.append((what, "", detail))
        print(f"[ -- ] {what}: {detail}", flush=True)

    def markdown(self, title):
        lines = [f"## {title}", "", "| check | result | figures |", "| :-- | :-- | :-- |"]
        lines += [f"| {what} | {result} | {detail} |" for what, result, detail in self.rows]
        return "\n".join(lines) + "\n"


def agent_eval(args, checkpoint, extra, device=None, env=None):
    command = [str(args.bin / "agent"), "eval", "--checkpoint", str(checkpoint), "--dataset", "cifar10",
               "--data-dir", str(args.cifar10), "--device", device or args.device, "--json", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout,
                          env=dict(os.environ, **(env or {})))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def check_device_and_clean_accuracy(args, table):
    for name, correct in REFERENCE.items():
        report = agent_eval(args, args.pool / name, [])
        if name == next(iter(REFERENCE)):
            uses = report["device"].startswith(args.device.split(":")[0])
            if args.device.startswith("cuda"):
                uses &= torch.cuda.is_available()
            table.check("device used", uses, f"agent: `{report['device']}`; torch {torch.__version__}, "
                        f"CUDA {torch.version.cuda} ({torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'})")
        table.check(f"clean accuracy {name.split('_')[0]}", report["correct"] == correct,
                    f"{report['correct']}/{report['n']} = {report['clean_accuracy']:.2f} % (CPU: {correct / 100:.2f} %)")


def theirs_model(args, checkpoint, device):
    model = ConvNet(128, 3, "instance", "avg", 10, 32, CIFAR10_MEAN, CIFAR10_STD)
    model.load_state_dict(load_checkpoint(str(checkpoint)))
    return model.to(device).eval()


def set_tf32(allowed):
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed


def check_attack_speed(args, table):
    checkpoint = args.pool / "DM_ConvNet_CIFAR10_50_None.pth"
    device = torch.device(args.device)
    model = theirs_model(args, checkpoint, device)
    modes = [False, True] if device.type == "cuda" else [False]
    for entry in args.attacks:
        spec, _, count = entry.partition("@")
        n = int(count) if count else args.n
        images, labels = read_cifar10_test(args.cifar10, n)
        images, labels = images.to(device), labels.to(device)
        cells = []
        for tf32 in modes:
            ours = agent_eval(args, checkpoint, ["--limit", str(n), "--batch-size", str(args.batch_size),
                                                 "--tf32", "all" if tf32 else "off", "--attack", spec])["attacks"][0]
            set_tf32(tf32)
            _, correct, seconds = run_torchattacks(model, spec, False, images, labels, labels, args.batch_size, 10)
            theirs = 100.0 * correct.float().mean().item()
            cells.append(f"{'tf32' if tf32 else 'fp32'}: ours {ours['accuracy']:.1f} % at {n / ours['seconds']:.0f} "
                         f"img/s ({ours['seconds']:.2f} s), torchattacks {theirs:.1f} % at {n / seconds:.0f} img/s, "
                         f"ratio {seconds / ours['seconds']:.2f}x")
        set_tf32(False)
        table.measure(f"attack `{spec}`, {n} images", "; ".join(cells))


DEEPFOOL = "deepfool:steps=50,overshoot=0.02"
DEEPFOOL_TOLERANCE = 0.4


def check_deepfool_against_cpu(args, table):
    """DeepFool stops at the first iterate a forward pass calls misclassified, for a few images
    within float32 ulps of the boundary, so a device's rounding may move those few: within 0.4
    points of the CPU's robust accuracy, not more (a CPU node compares its one run with itself)."""
    checkpoint = args.pool / "DM_ConvNet_CIFAR10_50_None.pth"
    extra = ["--limit", str(args.deepfool_n), "--attack", DEEPFOOL]
    on_device = agent_eval(args, checkpoint, [*extra, "--batch-size", str(args.batch_size), "--tf32", "off"])
    on_cpu = on_device if args.device == "cpu" else agent_eval(args, checkpoint, extra, device="cpu")
    ours, cpu = on_device["attacks"][0]["accuracy"], on_cpu["attacks"][0]["accuracy"]
    table.check(f"DeepFool robust accuracy, {args.deepfool_n} images", abs(ours - cpu) <= DEEPFOOL_TOLERANCE,
                f"`{on_device['device']}` {ours:.2f} %, `{on_cpu['device']}` {cpu:.2f} % "
                f"(at most {DEEPFOOL_TOLERANCE} points apart)")


def plain_training_rate(device, images, epochs, batch):
    """Images per second of a plain PyTorch loop: the DC-bench ConvNet, SGD, on random images."""
    torch.manual_seed(0)
    model = ConvNet(128, 3, "instance", "avg", 10, 32, CIFAR10_MEAN, CIFAR10_STD).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    data = torch.rand(images, 3, 32, 32, device=device)
    targets = torch.randint(0, 10, (images,), device=device)
    started = time.perf_counter()
    for _ in range(epochs):
        for order in torch.randperm(images, device=device).split(batch):
            loss = torch.nn.functional.cross_entropy(model(data[order]), targets[order])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return images * epochs / (time.perf_counter() - started)


def check_training_speed(args, table):
    command = [str(args.bin / "agent"), "bench", "--adversarial-training", "--ipc", str(args.ipc),
               "--epochs", str(args.epochs), "--device", args.device, "--attacks", "pgd:steps=1,random_start=true"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=True).stdout
    header = next(line for line in output.splitlines() if "batch" in line)
    batch = int(re.search(r"batch (\d+)", header).group(1))
    standard = next(line for line in output.splitlines() if " standard (" in line)
    ours = float(standard.split()[0])
    set_tf32(False)
    theirs = plain_training_rate(torch.device(args.device), args.ipc * 10, args.epochs, batch)
    table.measure(f"training, IPC {args.ipc} x {args.epochs} epochs, batch {batch}",
                  f"ours {ours:.0f} img/s, plain PyTorch fp32 loop {theirs:.0f} img/s: ratio {ours / theirs:.2f}x")


SWEEP = """name: gpu-check
datasets:
  synthetic: {}
methods:
  random: random
ipc: [1, 10]
attacks:
  fgsm: { eps: 2/255 }
  pgd: { eps: 2/255, alpha: 0.5/255, steps: 10 }
targeted: [false]
seeds: 2
training: { optimizer: adam, lr: 0.001, weight_decay: 0, epochs: 20, batch_size: 128, lr_schedule: constant, aug: none }
model: { width: 32 }
evaluation: { test_samples: 500 }
"""


def run_sweep(args, text, report_format, keep_checkpoint=None):
    """`coordinator submit --wait` of a sweep through `coordinator serve` and one `agent run` on
    the device: (the submit process, its wall seconds, the report in `report_format`, the agent's
    log lines about CUDA graphs). `keep_checkpoint`: where to copy one trained checkpoint."""
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "sweep.yaml").write_text(text)
        coordinator = subprocess.Popen([str(args.bin / "coordinator"), "serve", "--listen", "127.0.0.1:0",
                                        "--state", str(work / "state"), "--addr-file", str(work / "address")],
                                       stderr=open(work / "coordinator.log", "w"))
        try:
            for _ in range(200):
                if (work / "address").exists() and (work / "address").read_text():
                    break
                time.sleep(0.05)
            url = f"http://{(work / 'address').read_text()}"
            env = dict(os.environ, BEARD_TOKEN_FILE=str(work / "state" / "token"), BEARD_COORDINATOR=url)
            agent = subprocess.Popen([str(args.bin / "agent"), "run", "--device", args.device, "--work-dir",
                                      str(work / "agent"), "--name", "check"], env=env,
                                     stderr=open(work / "agent.log", "w"))
            try:
                started = time.perf_counter()
                submit = subprocess.run([str(args.bin / "coordinator"), "submit", str(work / "sweep.yaml"), "--wait"],
                                        env=env, capture_output=True, text=True, timeout=args.timeout)
                seconds = time.perf_counter() - started
                sweep = re.search(r"submitted (\S+)", submit.stdout)
                report = subprocess.run([str(args.bin / "coordinator"), "report", "--format", report_format,
                                         sweep.group(1) if sweep else "-"],
                                        env=env, capture_output=True, text=True, timeout=60).stdout
            finally:
                agent.terminate()
                agent.wait(timeout=30)
        finally:
            coordinator.terminate()
            coordinator.wait(timeout=30)
        log = re.sub(r"\x1b\[[0-9;]*m", "", (work / "agent.log").read_text(errors="replace"))
        graphs = [line.strip() for line in log.splitlines() if "CUDA graphs" in line]
        trained = sorted((work / "agent" / "checkpoints").glob("*"))
        if keep_checkpoint and trained:
            shutil.copyfile(trained[0], keep_checkpoint)
    return submit, seconds, report, graphs


def check_sweep(args, table):
    submit, seconds, report, _ = run_sweep(args, SWEEP, "md")
    computed = next((line for line in report.splitlines() if line.startswith("Computed on")), "no device line")
    ok = submit.returncode == 0 and f"`{args.device}" in computed and "fp32)`" in computed
    table.check("sweep through coordinator + agent", ok,
                f"4 train and 8 attack tasks in {seconds:.1f} s; {computed}" if ok else submit.stderr[-500:])


WEAK_MODEL_SWEEP = """name: gpu-check-weak-model
pool_dir: {distilled}
datasets:
  cifar10: {{ root: {cifar10} }}
methods:
  DC:
    files: {{ cifar10: {{ 1: DC_CIFAR10_ConvNet_ipc1.res.pt }} }}
    stored: normalized
ipc: [1]
attacks:
  autoattack: {{ targeted: [false] }}
targeted: [false]
seeds: {seeds}
training: {{ optimizer: sgd, lr: 0.01, momentum: 0.9, weight_decay: 5e-4, batch_size: 256, epochs: {epochs}, lr_schedule: half }}
evaluation: {{ test_samples: {images}, batch_size: {batch} }}
metrics: {{ time_basis: wall }}
"""


def check_weak_model_autoattack(args, table):
    """AutoAttack's wall seconds per task on the weak models of DC's released IPC-1 set, trained
    with the reference recipe: the launch-bound tail of a sweep (Square's 5,000 sequential queries
    on the few points still robust). On an H200 these tasks took 9 to 20 s on 2,000 images
    without CUDA graphs. Then one of those models under AutoAttack with graphs and without."""
    text = WEAK_MODEL_SWEEP.format(distilled=args.data / "distilled", cifar10=args.cifar10, seeds=args.weak_seeds,
                                   epochs=args.weak_epochs, images=args.weak_n, batch=args.batch_size)
    with tempfile.TemporaryDirectory() as kept:
        checkpoint = Path(kept) / "weak-model.safetensors"
        submit, seconds, report, graphs = run_sweep(args, text, "csv", keep_checkpoint=checkpoint)
        if submit.returncode != 0:
            raise RuntimeError(submit.stderr[-500:])
        board = {row["quantity"]: float(row["value"]) for row in csv.DictReader(io.StringIO(report))
                 if row["table"] == "leaderboard" and row["method"] == "DC" and row["ipc"] == "1"}
        attack, accuracy, clean = board["autoattack_time"], board["autoattack_accuracy"], board["clean_accuracy"]
        replayed = [line.split("replaying ", 1)[1].split(",")[0] for line in graphs if "replaying " in line]
        stopped = [line.split(" WARN ", 1)[-1] for line in graphs if "without CUDA graphs" in line]
        used = "replayed for " + ", ".join(replayed) if replayed else "not replayed"
        reasons = "; ".join(stopped)
        table.measure(f"AutoAttack on weak models (DC IPC-1, {args.weak_epochs} epochs, {args.weak_n} images)",
                      f"{attack:.1f} s per task (mean over {args.weak_seeds} seed{'s' if args.weak_seeds != 1 else ''})"
                      f", robust {accuracy:.1f} % (clean {clean:.1f} %), the sweep took {seconds:.0f} s; "
                      f"CUDA graphs {used}{'; ' + reasons if reasons else ''}")
        extra = ["--limit", str(args.weak_n), "--batch-size", str(args.batch_size), "--attack", "autoattack"]
        runs = {name: agent_eval(args, checkpoint, extra, env=env)["attacks"][0]
                for name, env in (("graphs", {}), ("no graphs", {"BEARD_CUDA_GRAPHS": "0"}))}
    on, off = runs["graphs"], runs["no graphs"]
    table.measure("AutoAttack on one of those models, CUDA graphs (the default) against none",
                  f"{on['seconds']:.2f} s with graphs, {off['seconds']:.2f} s with `BEARD_CUDA_GRAPHS=0`: "
                  f"ratio {off['seconds'] / on['seconds']:.2f}x"
                  + ("" if args.device.startswith("cuda") else " (no graphs off CUDA: the same code twice)"))
    table.check("CUDA graphs change no result", on["accuracy"] == off["accuracy"],
                f"AutoAttack robust accuracy {on['accuracy']:.2f} % with graphs, {off['accuracy']:.2f} % without")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--bin", type=Path, required=True, help="directory with the agent and coordinator binaries")
    parser.add_argument("--data", type=Path, required=True,
                        help="directory with cifar-10-batches-bin/, model_pool/ and distilled/ (as ../shared/data)")
    parser.add_argument("--n", type=int, default=10000, help="test images per attack speed run (SPEC@N overrides)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--attacks", default="fgsm;pgd;pgdl2;cw@2000;deepfool@500;autoattack:steps=10@1000",
                        help="attack specs separated by `;`, each with an optional `@IMAGES`")
    parser.add_argument("--deepfool-n", type=int, default=500, help="test images of the DeepFool check")
    parser.add_argument("--weak-n", type=int, default=2000, help="test images of the weak-model AutoAttack sweep")
    parser.add_argument("--weak-seeds", type=int, default=2, help="seeds (models) of the weak-model AutoAttack sweep")
    parser.add_argument("--weak-epochs", type=int, default=1000, help="training epochs of those models")
    parser.add_argument("--ipc", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--timeout", type=int, default=300, help="seconds any one command may take")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    args.attacks = [spec for spec in args.attacks.split(";") if spec]
    args.cifar10, args.pool = args.data / "cifar-10-batches-bin", args.data / "model_pool"

    table, started = Table(), time.perf_counter()
    steps = (check_device_and_clean_accuracy, check_attack_speed, check_deepfool_against_cpu, check_training_speed,
             check_weak_model_autoattack, check_sweep)
    for step in steps:
        try:
            step(args, table)
        except Exception as error:  # noqa: BLE001 - every step reports, the table still prints
            table.check(step.__name__.replace("_", " "), False, f"{type(error).__name__}: {error}"[:500])
    title = f"beard-rs node check on {args.device} ({time.perf_counter() - started:.0f} s)"
    markdown = table.markdown(title)
    print("\n" + markdown)
    if args.out:
        args.out.write_text(markdown)
    sys.exit(1 if table.failed else 0)


if __name__ == "__main__":
    main()
