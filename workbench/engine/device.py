"""Pick the device and the numeric settings that go with it.

The same training code runs everywhere; only these defaults differ, and every
choice is reported in the `run_started` event so a run says how it ran.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..config import ConfigError, TrainConfig

# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, from the vendors' data
# sheets, for MFU. Matched against the device name in order, so the more
# specific names come first ("H100 PCIe" before "H100").
PEAK_BF16_FLOPS = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("4090", 165e12),
    ("3090", 71e12),
    ("V100", 125e12),  # fp16: V100 has no bf16; MFU against its fp16 peak
    ("T4", 65e12),
]


def peak_flops(device_name: str) -> float | None:
    for key, flops in PEAK_BF16_FLOPS:
        if key in device_name:
            return flops
    return None


@dataclass
class DeviceSetup:
    device: torch.device
    name: str  # human-readable, e.g. "NVIDIA H100 80GB HBM3" or "cpu (2 threads)"
    dtype: str  # float32 | bfloat16: the autocast dtype of the forward pass
    compile: bool
    peak_flops: float | None  # None: MFU is not reported

    @property
    def kind(self) -> str:
        return self.device.type

    def autocast(self):
        """bf16 autocast on accelerators; plain fp32 (no context) otherwise."""
        if self.dtype == "bfloat16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()


def detect_kind(requested: str = "auto") -> str:
    """cuda > mps > cpu, without building anything."""
    if requested != "auto":
        return requested.split(":")[0]
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def setup_device(train: TrainConfig, local_rank: int = 0) -> DeviceSetup:
    kind = detect_kind(train.device)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device asks for CUDA but no CUDA GPU is visible.", "use --device cpu, or check nvidia-smi.")
        index = int(train.device.split(":")[1]) if ":" in train.device else local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
        # TF32 matmuls: ~free speed for the fp32 parts (optimizer, loss).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
        bf16_ok = torch.cuda.is_bf16_supported()
    elif kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("train.device asks for MPS but it is not available here.", "use --device cpu.")
        device, name, bf16_ok = torch.device("mps"), "Apple MPS", False
    else:
        device, name, bf16_ok = torch.device("cpu"), f"cpu ({torch.get_num_threads()} threads)", False

    dtype = train.dtype
    if dtype == "auto":
        dtype = "bfloat16" if bf16_ok else "float32"
    elif dtype == "bfloat16" and kind != "cuda":
        raise ConfigError(f"train.dtype=bfloat16 is only supported on CUDA here, not {kind}.", "use --set train.dtype=float32")
    compile_ = train.compile if train.compile is not None else kind == "cuda"
    peak = peak_flops(name) if kind == "cuda" else None
    return DeviceSetup(device=device, name=name, dtype=dtype, compile=compile_, peak_flops=peak)
