"""Seconds that scripts/gpu/run.sh gives its training run and its evaluation, so that both end
before the device call's own limit (CALL_LIMIT) and their results are packed: a call that hits
its limit brings back only what was packed by then (on 2026-11-27 an evaluation was lost so).

    python3 scripts/gpu/budget.py train --call-limit 500 --elapsed 230 --train 150 --eval 60
    python3 scripts/gpu/budget.py eval --call-limit 500 --elapsed 420 --eval 60

prints the seconds to use, never more than asked for. A call limit of 0 means none. Standard
library only: run.sh runs it with the GPU machine's bare python3.
"""

from __future__ import annotations

import argparse

# dhal train's imports, env build, Warp kernel load and final checkpoint, outside --time-limit,
# plus the last iteration it finishes after the limit (about 1 s at paper sizes; a compiled run's
# first iteration takes longer, so give such a run more than this).
TRAIN_OVERHEAD_S = 30
AFTER_TRAIN_S = 30  # the run summary, its plot, packing the results and splitting the checkpoint
AFTER_EVAL_S = 15  # packing the evaluation
MIN_TRAIN_S = 1  # --time-limit 1: one iteration, so there is a checkpoint to evaluate
MIN_EVAL_S = 5


def train_seconds(call_limit: float, elapsed: float, train: float, evaluation: float) -> int:
    """The training budget: `train`, cut so that training, the summary, the evaluation (at its
    own budget) and the packing all end within `call_limit` seconds of the script's start."""
    if call_limit <= 0:
        return int(train)
    room = call_limit - elapsed - TRAIN_OVERHEAD_S - AFTER_TRAIN_S - evaluation - AFTER_EVAL_S
    return int(max(MIN_TRAIN_S, min(train, room)))


def eval_seconds(call_limit: float, elapsed: float, evaluation: float) -> int:
    """The evaluation's budget: `evaluation`, cut to end with its packing within `call_limit`."""
    if call_limit <= 0:
        return int(evaluation)
    return int(max(MIN_EVAL_S, min(evaluation, call_limit - elapsed - AFTER_EVAL_S)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("train", "eval"))
    parser.add_argument("--call-limit", type=float, required=True, help="the call's limit in seconds; 0: none")
    parser.add_argument("--elapsed", type=float, required=True, help="seconds since the script started")
    parser.add_argument("--train", type=float, default=150.0)
    parser.add_argument("--eval", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.stage == "train":
        print(train_seconds(args.call_limit, args.elapsed, args.train, args.eval))
    else:
        print(eval_seconds(args.call_limit, args.elapsed, args.eval))


if __name__ == "__main__":
    main()
