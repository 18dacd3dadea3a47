#!/usr/bin/env python3
"""What limits DHAL's mode classifier at the switch steps of `dhal bench modes`' system.

Trains DHAL's classifier MLP (256-64-32, ELU) by cross-entropy on the *true* modes of the
switching linear system (`policies/slds.py`, fresh data every 100 steps, Adam 1e-3, batch 256)
from different inputs, and reports accuracy overall and on switch steps (all of them, and the
identifiable ones, i.e. without the Markov jumps no history foretells):

* history: the whole flattened history, as DHAL's classifier sees it;
* guard: only the guard variable s over the history (what decides a switch: its slope gives the
  previous mode, its newest value whether a guard fires);
* guard+newest: the guard column and the newest whole frame.

The other coordinates (y, u) still describe the old mode at a switch step, since the new
mode's dynamics have not acted yet; this measures how much they cost the switch steps.

    python scripts/classifier_inputs.py --steps 5000 --out classifier_inputs.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from dhal.policies.modes import ModesConfig, mlp
from dhal.policies.slds import SLDSConfig, make_dataset, make_system, switch_offsets

INPUTS = ("history", "guard", "guard+newest")


def select(histories: Tensor, inputs: str, cfg: SLDSConfig) -> Tensor:
    frames = histories.view(histories.shape[0], cfg.history_length, cfg.state_dim + cfg.input_dim)
    guard = frames[:, :, 0]  # s is the first state coordinate of every frame
    if inputs == "history":
        return histories
    if inputs == "guard":
        return guard
    if inputs == "guard+newest":
        return torch.cat([guard, frames[:, -1]], dim=1)
    raise KeyError(f"unknown inputs {inputs!r}; known: {', '.join(INPUTS)}")


def train_and_score(inputs: str, steps: int, seed: int = 0) -> dict[str, float]:
    cfg = SLDSConfig()
    system = make_system(cfg, torch.Generator().manual_seed(seed))
    test = make_dataset(cfg, system, cfg.test_sequences, torch.Generator().manual_seed(seed + 123))
    torch.manual_seed(seed)
    # HybridModes' classifier, built the same way, on the selected inputs
    net = mlp(select(test.histories[:1], inputs, cfg).shape[1], 3, ModesConfig.classifier_hidden, nn.ELU)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    draws = torch.Generator().manual_seed(seed + 1)
    started = time.perf_counter()
    for step in range(steps):
        if step % 100 == 0:  # fresh data, as the benchmark's --fresh-data-every 100
            data = make_dataset(cfg, system, cfg.train_sequences, draws)
            x, y = select(data.histories, inputs, cfg), data.modes
        batch = torch.randint(0, x.shape[0], (256,), generator=draws)
        loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        right = net(select(test.histories, inputs, cfg)).argmax(-1) == test.modes
    switch = switch_offsets(test) == 0
    return {
        "accuracy": right.float().mean().item(),
        "switch_step_accuracy": right[switch].float().mean().item(),
        "identifiable_switch_step_accuracy": right[switch & test.identifiable].float().mean().item(),
        "train_seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--inputs", nargs="+", default=list(INPUTS), choices=INPUTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for inputs in args.inputs:
        results[inputs] = r = train_and_score(inputs, args.steps, args.seed)
        print(f"{inputs:>13}: accuracy {r['accuracy']:.3f}, switch steps {r['switch_step_accuracy']:.3f} "
              f"(identifiable ones {r['identifiable_switch_step_accuracy']:.3f}), {r['train_seconds']:.0f} s",
              flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"steps": args.steps, "seed": args.seed, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
