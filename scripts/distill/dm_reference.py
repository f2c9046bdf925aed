"""DM's loss and its gradient with respect to the synthetic images, computed by PyTorch on fixed
tensors, for the agent's unit test (agent/tests/distill.rs).

The loss is DM's (VICO-UoE/DatasetCondensation, main_DM.py): for every class, the squared
distance between the mean embedding of the real batch (no gradient) and of the synthetic batch,
summed over classes; the embedding is the DC-bench ConvNet's flattened features before the
classifier, on normalized images.

Input (safetensors): the ConvNet's state dict (`--checkpoint`, as the agent saves it), and per class
c `real.c` and `syn.c` (`--tensors`). Output (safetensors): `loss` (a 1-element tensor) and `grad.c`
per class.

  .venv/bin/python scripts/distill/dm_reference.py --checkpoint net.safetensors \
      --tensors batches.safetensors --out out.safetensors --width 8 --depth 3 --classes 3
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from torchattacks_parity import ConvNet, read_safetensors, write_safetensors  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--tensors", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)

    tensors = read_safetensors(args.tensors)
    # Normalization is the identity: DM works on normalized images.
    net = ConvNet(args.width, args.depth, "instance", "avg", args.classes, args.image_size, [0.0] * 3, [1.0] * 3)
    net.load_state_dict(read_safetensors(args.checkpoint))
    for parameter in net.parameters():
        parameter.requires_grad_(False)

    def embed(images):
        return net.features(images).flatten(1)

    loss = torch.zeros(())
    synthetic = {}
    for c in range(args.classes):
        real = tensors[f"real.{c}"]
        syn = tensors[f"syn.{c}"].clone().requires_grad_(True)
        synthetic[c] = syn
        with torch.no_grad():
            real_mean = embed(real).mean(dim=0)
        loss = loss + ((real_mean - embed(syn).mean(dim=0)) ** 2).sum()
    loss.backward()
    out = {"loss": loss.detach().reshape(1)}
    out.update({f"grad.{c}": syn.grad for c, syn in synthetic.items()})
    write_safetensors(args.out, out)


if __name__ == "__main__":
    main()
