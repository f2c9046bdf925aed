"""BACON's matching term computed as its reference code does, on fixed features, for the agent's
unit test (agent/tests/distill.rs).

The term is the one of zhouzhengqd/BACON `Code/BACON_cifar10.py` (L310-321) with the helpers of
`Code/utils.py` (L189-207), written out here: the negative log of the Gaussian density of the
synthetic mean features under N(real mean, exp(real std)), taken as exp and then log (which gives
infinity where the density underflows), plus 0.8 x the total variation of the mean features, plus
0.2 x the clip term on their softmax.

Input (safetensors, `--tensors`): feature pairs `real.k` `[n, d]` and `syn.k` `[m, d]`. Output
(safetensors, `--out`): `loss.k`, a 1-element tensor per pair (inf where the reference
overflows), and `grad.k`, its gradient with respect to `syn.k` where it is finite.

  .venv/bin/python scripts/distill/bacon_reference.py --tensors in.safetensors --out out.safetensors
"""

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from torchattacks_parity import read_safetensors, write_safetensors  # noqa: E402


def gaussian_density(syn, real):
    sigma = torch.exp(torch.std(real, dim=0))
    scaled = (torch.mean(syn, dim=0) - torch.mean(real, dim=0)) / sigma
    return 1 / (torch.sqrt(2 * torch.tensor(math.pi)) * sigma) * torch.exp(-0.5 * scaled**2)


def clip(x, y):
    unnormalized = (torch.mean(x, dim=0) - torch.mean(y, dim=0)) / torch.std(y, dim=0)
    return torch.sum(torch.mean(torch.square(unnormalized - torch.clamp(unnormalized, 0.0, 1.0)), dim=0))


def bacon(real, syn):
    nll = -torch.sum(torch.log(gaussian_density(syn, real)))
    tv = 0.5 * torch.sum(torch.abs(torch.mean(syn, dim=0) - torch.mean(real, dim=0)))
    prob_real = F.softmax(real.mean(dim=0), dim=-1)
    prob_syn = F.softmax(syn.mean(dim=0), dim=-1)
    return nll + 0.8 * tv + 0.2 * clip(prob_syn, prob_real)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tensors", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    tensors = read_safetensors(args.tensors)
    out = {}
    for name in sorted(tensors):
        if not name.startswith("real."):
            continue
        key = name[len("real."):]
        syn = tensors["syn." + key].clone().requires_grad_(True)
        loss = bacon(tensors[name], syn)
        out["loss." + key] = loss.detach().reshape(1)
        if torch.isfinite(loss):
            (grad,) = torch.autograd.grad(loss, syn)
            out["grad." + key] = grad
    write_safetensors(args.out, out)


if __name__ == "__main__":
    main()
