"""An exported policy under ONNX Runtime: one thread, metadata checked, warmed up, outputs checked.

ONNX Runtime's default session spins a thread pool that keeps a second core busy and has the worst
latency tails on a loaded computer (DEPLOY.md §3); a deploy loop calls a sub-millisecond graph once
per 20 ms, so one intra-op and one inter-op thread is both faster and steadier.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from dhal.envs.contract import Contract

REQUIRED_METADATA = ("dhal.format_version", "dhal.contract", "dhal.contract_digest", "dhal.config_sha256")
SUPPORTED_FORMATS = ("1",)


class PolicyFileError(ValueError):
    """The policy file is unreadable, is not a DHAL export, or does not match what was expected."""


@dataclass
class PolicyOutput:
    actions: np.ndarray  # [B, A] or [A]
    mode_probs: np.ndarray  # [B, K] or [K]
    latent: np.ndarray  # [B, L] or [L]

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.actions).all() and np.isfinite(self.mode_probs).all()
                    and np.isfinite(self.latent).all())


def session_options(threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: ORT warns about unused initialisers on every load
    return options


def contract_differences(expected: Contract, actual: Contract) -> list[str]:
    """Field-by-field differences, e.g. ["kp: 40.0 expected, 30.0 in the policy file"]."""
    differences = []
    for f in fields(Contract):
        a, b = getattr(expected, f.name), getattr(actual, f.name)
        if a != b:
            differences.append(f"{f.name}: {a!r} expected, {b!r} in the policy file")
    return differences


class OnnxPolicy:
    """A DHAL policy file. `expected` (optional) is the contract the caller was configured with; a
    file with a different contract is refused with the differing fields named."""

    def __init__(self, path: str | Path, expected: Contract | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise PolicyFileError(f"policy file {self.path} does not exist")
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        try:
            self.session = ort.InferenceSession(data, sess_options=session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types for every kind of bad file
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PolicyFileError(f"{self.path} is not a loadable ONNX model: {first_line}") from error
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in self.metadata]
        if missing:
            raise PolicyFileError(f"{self.path} lacks the DHAL metadata {missing}; export it with `dhal export`")
        if self.metadata["dhal.format_version"] not in SUPPORTED_FORMATS:
            raise PolicyFileError(f"{self.path} has export format {self.metadata['dhal.format_version']!r}; "
                                  f"this code reads {SUPPORTED_FORMATS}")
        try:
            self.contract = Contract.from_dict(json.loads(self.metadata["dhal.contract"]))
        except (ValueError, KeyError, TypeError) as error:
            raise PolicyFileError(f"{self.path}: its contract metadata cannot be read: {error}") from error
        if self.contract.digest() != self.metadata["dhal.contract_digest"]:
            raise PolicyFileError(f"{self.path}: the contract digest does not match its contract (edited file?)")
        self._check_signature()
        if expected is not None:
            differences = contract_differences(expected, self.contract)
            if differences:
                raise PolicyFileError(f"{self.path} was trained under another contract:\n  - " + "\n  - ".join(differences))

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or inputs[0].shape[-1] != self.contract.history_size:
            shapes = [(i.name, i.shape) for i in inputs]
            raise PolicyFileError(f"{self.path}: inputs {shapes}, expected one history of {self.contract.history_size}")
        if outputs[:3] != ["actions", "mode_probs", "latent"]:
            raise PolicyFileError(f"{self.path}: outputs {outputs}, expected actions, mode_probs, latent")
        self.input_name = inputs[0].name
        # Output widths may be symbolic in the graph, so probe them with one run.
        probe = self.run_batch(np.zeros((1, self.contract.history_size), dtype=np.float32))
        if probe.actions.shape != (1, self.contract.num_joints):
            raise PolicyFileError(f"{self.path}: actions of shape {probe.actions.shape[1:]} for "
                                  f"{self.contract.num_joints} joints")
        modes = self.metadata.get("dhal.num_modes")
        if modes is not None and probe.mode_probs.shape[-1] != int(modes):
            raise PolicyFileError(f"{self.path}: {probe.mode_probs.shape[-1]} mode probabilities, metadata says "
                                  f"{self.metadata['dhal.num_modes']} modes")

    @property
    def config_sha256(self) -> str:
        return self.metadata["dhal.config_sha256"]

    def run_batch(self, histories: np.ndarray) -> PolicyOutput:
        """histories [B, H*F] float32 -> outputs [B, ...]."""
        histories = np.ascontiguousarray(histories, dtype=np.float32)
        if histories.ndim != 2 or histories.shape[1] != self.contract.history_size:
            raise ValueError(f"histories have shape {histories.shape}, expected [B, {self.contract.history_size}]")
        actions, probs, latent = self.session.run(None, {self.input_name: histories})[:3]
        return PolicyOutput(actions=actions, mode_probs=probs, latent=latent)

    def __call__(self, history: np.ndarray) -> PolicyOutput:
        """One history [H*F] -> outputs without the batch axis."""
        out = self.run_batch(np.asarray(history, dtype=np.float32).reshape(1, -1))
        return PolicyOutput(actions=out.actions[0], mode_probs=out.mode_probs[0], latent=out.latent[0])

    def warm_up(self, calls: int = 20) -> None:
        """First runs allocate and pick kernels (0.1-15 ms); do them before the policy may act."""
        zeros = np.zeros(self.contract.history_size, dtype=np.float32)
        for _ in range(calls):
            self(zeros)
