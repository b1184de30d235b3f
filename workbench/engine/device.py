"""Pick the device and the numeric settings that go with it.

The same training code runs everywhere; only these defaults differ, and every
choice is reported in the `run_started` event so a run says how it ran.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..config import ConfigError, TrainConfig
from .cpu_threads import fair_threads

# Dense (no sparsity) 16-bit tensor-core peak, FLOP/s, from the vendors' data
# sheets, for MFU: bf16 with fp32 accumulation where the GPU has it (what autocast
# runs), fp16 on V100/T4 (which lack bf16). Data sheets quote "with sparsity"
# figures: the dense ones are half. GeForce cards accumulate in fp32 at half
# their fp16-accumulate rate: the RTX 4090's 165 (not 330), the 3090's 71 (not 142).
# A device name is matched by the longest key it contains, so "L40S" wins over
# "L40" and "L4", "H200 NVL" over "H200", "A100" over "A10". None: a variant that
# would match a shorter key but has no vendor figure of its own; like a GPU that
# matches nothing, it gets no MFU (shown as a dash) rather than a guess.
PEAK_FLOPS = {
    "B200": 2250e12,
    "GB200": 2500e12,
    "B100": 1750e12,
    "H200": 989e12,  # SXM
    "H200 NVL": 835e12,
    "GH200": 989e12,
    "H100": 989e12,  # SXM
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H800": 989e12,  # SXM
    "H800 PCIe": 756e12,
    "A100": 312e12,  # SXM and PCIe alike
    "A800": 312e12,
    "A10G": None,  # AWS's variant of the A10, no published tensor figure
    "A10": 125e12,
    "A30": 165e12,
    "A40": 149.7e12,
    "A6000": 154.8e12,  # RTX A6000
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "4090": 165.2e12,
    "4090 D": None,  # fewer cores than the 4090
    "3090": 71e12,
    "3090 Ti": None,  # higher clocks than the 3090
    "Laptop": None,  # mobile GPUs run far below their desktop namesakes
    "V100": 125e12,  # SXM2, fp16
    "V100-PCIE": 112e12,
    "V100S": 130e12,
    "T4": 65e12,  # fp16
    "MI300X": 1307.4e12,
    "MI325X": 1307.4e12,
}

# torch.compile takes tens of seconds (a minute for GPT-2); below this size a
# typical run is over before compiling has paid for itself.
COMPILE_MIN_PARAMS = 5_000_000


def peak_flops(device_name: str) -> float | None:
    """The device's dense 16-bit peak; None (MFU unknown) for a GPU the table has no figure for."""
    matches = [key for key in PEAK_FLOPS if key in device_name]
    return PEAK_FLOPS[max(matches, key=len)] if matches else None


AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class DeviceSetup:
    device: torch.device
    name: str  # human-readable, e.g. "NVIDIA H100 80GB HBM3" or "cpu (2 threads)"
    dtype: str  # float32 | bfloat16 | float16: the autocast dtype of the forward pass
    compile: bool
    peak_flops: float | None  # None: MFU is not reported
    compile_mode: str = "default"
    note: str = ""  # why a choice was made, for the run header (e.g. fp16 on a pre-Ampere GPU)

    @property
    def kind(self) -> str:
        return self.device.type

    @property
    def compute_dtype(self) -> torch.dtype:
        return AUTOCAST_DTYPES.get(self.dtype, torch.float32)

    def autocast(self):
        """Autocast to bf16/fp16 when asked; plain fp32 (no context) otherwise."""
        if self.dtype in AUTOCAST_DTYPES:
            return torch.autocast(device_type=self.device.type, dtype=AUTOCAST_DTYPES[self.dtype])
        return nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16 gradients underflow without loss scaling; bf16 and fp32 need none (disabled scaler)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.dtype == "float16")


def detect_kind(requested: str = "auto") -> str:
    """cuda > mps > cpu, without building anything."""
    if requested != "auto":
        return requested.split(":")[0]
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def setup_device(train: TrainConfig, local_rank: int = 0, n_params: int = 0) -> DeviceSetup:
    """The device and its numeric settings. n_params (an estimate) decides compile=auto."""
    kind = detect_kind(train.device)
    capability = None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "train.device asks for CUDA but no CUDA GPU is visible.", "use --device cpu, or check nvidia-smi."
            )
        index = int(train.device.split(":")[1]) if ":" in train.device else local_rank
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
        # TF32 for the float32 matmuls that autocast leaves (optimizer, loss): ~free speed.
        torch.set_float32_matmul_precision("high")
        name = torch.cuda.get_device_name(device)
        capability = torch.cuda.get_device_capability(device)
    elif kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError("train.device asks for MPS but it is not available here.", "use --device cpu.")
        device, name = torch.device("mps"), "Apple MPS"
    else:
        torch.set_num_threads(fair_threads(train.threads))
        threads = torch.get_num_threads()
        device, name = torch.device("cpu"), f"cpu ({threads} thread{'s' if threads != 1 else ''})"

    dtype, note = autocast_dtype(train.dtype, kind, capability)
    # Triton (torch.compile's GPU backend) needs compute capability 7.0 (Volta) or newer: not a P100.
    compile_ = (
        train.compile
        if train.compile is not None
        else (kind == "cuda" and n_params >= COMPILE_MIN_PARAMS and capability >= (7, 0))
    )
    peak = peak_flops(name) if kind == "cuda" else None
    return DeviceSetup(
        device=device,
        name=name,
        dtype=dtype,
        compile=compile_,
        peak_flops=peak,
        compile_mode=train.compile_mode,
        note=note,
    )


def autocast_dtype(requested: str, kind: str, capability: tuple[int, int] | None) -> tuple[str, str]:
    """(dtype, note). bf16 needs compute capability 8.0 (Ampere) or newer.

    `torch.cuda.is_bf16_supported()` also says yes on older GPUs, where bf16 is
    emulated: T4 and V100 (Colab, Kaggle) would get bf16 kernels they cannot run
    fast, or at all in Triton. So we decide from the capability, and give those
    GPUs fp16 autocast with a gradient scaler instead (as nanoGPT does).
    """
    bf16_ok = capability is not None and capability >= (8, 0)
    if requested == "auto":
        if kind != "cuda":
            return "float32", ""
        if bf16_ok:
            return "bfloat16", ""
        return (
            "float16",
            f"float16 with loss scaling: compute capability {capability[0]}.{capability[1]} has no bfloat16",
        )
    if requested == "bfloat16" and kind == "cuda" and not bf16_ok:
        raise ConfigError(
            f"train.dtype=bfloat16 needs a GPU of compute capability 8.0 or newer; "
            f"this one is {capability[0]}.{capability[1]}.",
            "use --set train.dtype=float16 (with loss scaling) or auto",
        )
    return requested, ""
