"""SystemMonitor: what the machine does while a trainer runs, as `system` event fields.

The trainer calls `poll()` at its log points and while paused. The monitor
answers at most once every `interval_s` of wall time, and only when a reading
changed at the precision it is shown with, so system events cost nothing per
step and a quiet machine sends nothing new.

Readings: CPU % of all cores, RAM used and total, the trainer's resident
memory, and per NVIDIA GPU its utilisation, memory, power and temperature
through NVML (`nvidia-ml-py`). NVML is optional: without the library, the
driver or a GPU, `gpus` is empty and `gpu_note` says why.

Plain Python (psutil, pynvml): no torch, so it is tested without a trainer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

INTERVAL_S = 5.0
GB = 2**30


class NvmlGpus:
    """The NVIDIA GPUs this process may use, read through NVML."""

    def __init__(self):
        self.handles: list = []
        self.note: str | None = None  # why there are no readings
        try:
            import pynvml
        except ImportError:
            self.note = "nvidia-ml-py is not installed"
            return
        self.nvml = pynvml
        try:
            pynvml.nvmlInit()
            indices = visible_gpu_indices(pynvml.nvmlDeviceGetCount())
            self.handles = [(i, pynvml.nvmlDeviceGetHandleByIndex(i)) for i in indices]
        except pynvml.NVMLError as exc:
            self.note = f"no NVIDIA driver ({exc})"
            return
        if not self.handles:
            self.note = "no NVIDIA GPU"

    def read(self) -> list[dict]:
        return [self._read_one(index, handle) for index, handle in self.handles]

    def _read_one(self, index: int, handle) -> dict:
        nvml = self.nvml

        def ask(call: Callable, *args):
            try:
                return call(handle, *args)
            except nvml.NVMLError:  # e.g. power on a GPU that does not report it
                return None

        name = ask(nvml.nvmlDeviceGetName)
        util = ask(nvml.nvmlDeviceGetUtilizationRates)
        memory = ask(nvml.nvmlDeviceGetMemoryInfo)
        power_mw = ask(nvml.nvmlDeviceGetPowerUsage)
        return {
            "index": index,
            "name": name.decode() if isinstance(name, bytes) else name,
            "util_percent": util.gpu if util else None,
            "mem_used_gb": round(memory.used / GB, 1) if memory else None,
            "mem_total_gb": round(memory.total / GB, 1) if memory else None,
            "power_w": round(power_mw / 1000) if power_mw is not None else None,
            "temp_c": ask(nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU),
        }


def visible_gpu_indices(count: int) -> list[int]:
    """The NVML indices CUDA_VISIBLE_DEVICES leaves this process (all when unset or not numeric)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    try:
        return [i for i in (int(part) for part in visible.split(",") if part.strip()) if 0 <= i < count]
    except ValueError:  # GPU UUIDs: not worth mapping here
        return list(range(count))


class SystemMonitor:
    def __init__(
        self, pid: int | None = None, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ):
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.clock = clock
        self.gpus = NvmlGpus()
        self._next = clock()  # the first poll reads at once
        self._last: dict | None = None
        psutil.cpu_percent(None)  # CPU % is measured between calls: start the first interval now

    def read(self) -> dict:
        """The `system` event's fields now (see events.py)."""
        memory = psutil.virtual_memory()
        fields = {
            "cpu_percent": round(psutil.cpu_percent(None)),
            "cpu_count": psutil.cpu_count(),
            "ram_used_gb": round((memory.total - memory.available) / GB, 1),
            "ram_total_gb": round(memory.total / GB, 1),
            "rss_gb": round(self.process.memory_info().rss / GB, 2),
            "gpus": self.gpus.read(),
        }
        if self.gpus.note:
            fields["gpu_note"] = self.gpus.note
        return fields

    def poll(self) -> dict | None:
        """Fields to emit now, or None: not due yet, or nothing changed since the last ones."""
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.interval_s
        fields = self.read()
        if fields == self._last:
            return None
        self._last = fields
        return fields
