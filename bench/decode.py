"""Decode speed: eager decoding against one compiled decoding step (static KV cache, tensor position).

    OMP_NUM_THREADS=2 python bench/decode.py [--size gpt2] [--tokens 256] [--repeats 5] [--device cpu]
    python bench/decode.py --size tiny --tokens 16 --repeats 1     # a smoke run (seconds + one compile)

A single prompt (batch 1), greedy, `--tokens` new tokens per repeat, the two
sides alternating repeat by repeat so a busy neighbour slows both alike. The
compiled side is compiled (and warmed up) once before the clock starts: on
CUDA with `reduce-overhead`, i.e. one CUDA graph per step; on the CPU with
inductor. Tokens stay on the device until the end of a repeat, as the sampler
reads them (one sync per printed piece, not per token). Both sides must
produce the same greedy tokens, or the script says so and fails.
Writes `results/<date>-decode-<device>-<size>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.config import ModelConfig  # noqa: E402
from workbench.engine.model import GPT  # noqa: E402

SIZES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257, bias=True),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=65, bias=False),
}


def decode(model: GPT, prompt: torch.Tensor, tokens: int, decoder) -> tuple[list[int], float]:
    """(greedy tokens, tokens per second) of one request; the clock includes the prefill and the one final sync."""
    sync = torch.cuda.synchronize if prompt.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        out = torch.stack(list(model.generate(prompt, tokens, temperature=0, decoder=decoder)), dim=1)
    ids = out[0].tolist()  # the one read back
    return ids, tokens / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, default="gpt2")
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = ModelConfig(**SIZES[args.size])
    if args.tokens + 8 > cfg.block_size:
        p.error(f"--tokens must leave room for the 8-token prompt in block_size {cfg.block_size}")
    model = GPT(cfg).to(device).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 8), device=device)
    eager = model.decoder(1, device, torch.float32)
    compile_start = time.perf_counter()
    compiled = model.decoder(1, device, torch.float32, compile=True)
    expected, _ = decode(model, prompt, args.tokens, eager)
    warm, _ = decode(model, prompt, args.tokens, compiled)  # compiles (and records the CUDA graph)
    compile_s = time.perf_counter() - compile_start
    if warm != expected:
        print("compiled decoding chose other tokens than eager decoding", file=sys.stderr)
        return 1

    speeds = {"eager": [], "compiled": []}
    for _ in range(args.repeats):  # alternating: both sides see the same neighbours
        for name, decoder in (("eager", eager), ("compiled", compiled)):
            ids, tok_s = decode(model, prompt, args.tokens, decoder)
            assert ids == expected, f"{name} decoding changed its tokens"
            speeds[name].append(tok_s)
    result = {
        "size": args.size,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "tokens": args.tokens,
        "repeats": args.repeats,
        "compile_mode": "reduce-overhead" if device.type == "cuda" else "default",
        "compile_and_first_request_s": round(compile_s, 2),
        "eager_tok_s": round(statistics.median(speeds["eager"]), 1),
        "compiled_tok_s": round(statistics.median(speeds["compiled"]), 1),
        "eager_tok_s_all": [round(s, 1) for s in speeds["eager"]],
        "compiled_tok_s_all": [round(s, 1) for s in speeds["compiled"]],
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{date.today()}-decode-{device.type}-{args.size}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.size} on {result['device_name']}: eager {result['eager_tok_s']} tok/s, "
        f"compiled {result['compiled_tok_s']} tok/s (median of {args.repeats}); {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
