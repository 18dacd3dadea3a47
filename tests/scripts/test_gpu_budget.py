"""scripts/gpu/budget.py: run.sh's training and evaluation end, packed, before the call's limit."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts/gpu/budget.py"
spec = importlib.util.spec_from_file_location("gpu_budget_under_test", SCRIPT)
assert spec is not None and spec.loader is not None
budget = importlib.util.module_from_spec(spec)
spec.loader.exec_module(budget)


def test_without_a_call_limit_the_budgets_are_as_asked():
    assert budget.train_seconds(0, 400, 150, 60) == 150
    assert budget.eval_seconds(0, 590, 60) == 60


def test_training_is_cut_to_leave_room_for_the_evaluation_and_the_packing():
    overhead = budget.TRAIN_OVERHEAD_S + budget.AFTER_TRAIN_S + budget.AFTER_EVAL_S
    assert budget.train_seconds(500, 100, 150, 60) == 150  # fits
    assert budget.train_seconds(500, 300, 150, 60) == 500 - 300 - overhead - 60
    assert budget.train_seconds(500, 480, 150, 60) == budget.MIN_TRAIN_S  # one iteration at least


def test_the_evaluation_is_cut_to_end_before_the_limit():
    assert budget.eval_seconds(500, 300, 60) == 60
    assert budget.eval_seconds(500, 450, 60) == 500 - 450 - budget.AFTER_EVAL_S
    assert budget.eval_seconds(500, 499, 60) == budget.MIN_EVAL_S


def test_run_sh_calls_it_with_the_bare_python():
    done = subprocess.run([sys.executable, "-S", str(SCRIPT), "train", "--call-limit", "500", "--elapsed", "300",
                           "--train", "150", "--eval", "60"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(budget.train_seconds(500, 300, 150, 60))
