"""SimConfig.compile's device default and what maybe_compile hands torch.compile."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from dhal.envs import compilation
from dhal.envs.compilation import CompileError, compiles, maybe_compile


@pytest.mark.parametrize(("setting", "device", "expected"), [
    (None, "cpu", False), (None, "cuda", True), (None, torch.device("cuda", 1), True),
    (True, "cpu", True), (False, "cuda:0", False),
])
def test_compile_defaults_to_on_for_cuda_devices_only(setting, device, expected) -> None:
    assert compiles(setting, device) is expected


def test_the_cuda_inductor_options_go_to_cuda_compiles_only() -> None:
    def double(x):
        return 2 * x

    with mock.patch.object(torch, "compile", return_value=double) as compile_:
        maybe_compile(double, True, "cuda:0")
        maybe_compile(double, True, "cpu")
    (cuda_call, cpu_call) = compile_.call_args_list
    assert cuda_call.kwargs["options"] == compilation.CUDA_INDUCTOR_OPTIONS != {}
    assert cpu_call.kwargs["options"] is None
    assert cuda_call.kwargs["fullgraph"] and cpu_call.kwargs["fullgraph"]


def test_disabled_returns_the_function_itself_and_compiled_runs_eagerly_outside_inference() -> None:
    def double(x):
        return 2 * x

    assert maybe_compile(double, False, "cuda") is double
    calls = []

    def compiled(x):
        calls.append(x)
        return 2 * x

    with mock.patch.object(torch, "compile", return_value=compiled):
        wrapped = maybe_compile(double, True, "cpu")
    x = torch.ones(2)
    assert torch.equal(wrapped(x), 2 * x) and not calls  # not under inference mode: eager
    with torch.inference_mode():
        wrapped(x)  # the first rollout call is eager too
        assert not calls
        wrapped(x)
    assert len(calls) == 1


def test_a_failed_compile_names_the_function_and_the_override_that_avoids_it() -> None:
    def double(x):
        return 2 * x

    def failing(x):
        raise torch._dynamo.exc.TorchDynamoException("Cannot find a working triton installation")

    with mock.patch.object(torch, "compile", return_value=failing):
        wrapped = maybe_compile(double, True, "cuda")
    with torch.inference_mode():
        wrapped(torch.ones(1))  # eager first call
        with pytest.raises(CompileError, match=r"double failed on cuda .*triton.*--override sim\.compile=false") as info:
            wrapped(torch.ones(1))
    assert isinstance(info.value.__cause__, torch._dynamo.exc.TorchDynamoException)


def test_a_function_dynamo_cannot_trace_whole_fails_with_the_same_clear_error() -> None:
    def reads_the_host(x):
        return x * len(x.tolist())  # a host read: a graph break, an error under fullgraph

    wrapped = maybe_compile(reads_the_host, True, "cpu")
    with torch.inference_mode():
        wrapped(torch.ones(2))
        with pytest.raises(CompileError, match=r"reads_the_host failed on cpu"):
            wrapped(torch.ones(2))
