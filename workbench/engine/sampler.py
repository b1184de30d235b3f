"""Sampling: turn a prompt into streamed `sample` events.

Used two ways:
- by the trainer, between steps, on the live model (the `sample` command);
- as a subprocess on a checkpoint: `python -m workbench.engine.sampler
  --run-dir D --prompt "..."` answers once, `--serve` answers one JSON command
  per stdin line with the model loaded once (the app's console for finished runs).

Either way the output is the same events: `sample` pieces with `done: false`
as tokens arrive, then one with `done: true` (the full text, token count,
decode speed; for addition also the answer and whether it is right), or an
`error` of kind `prompt` that says what was wrong with the prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from ..config import Config, ConfigError, DataConfig, TrainConfig
from ..data.tokenizers import Tokenizer, load_tokenizer
from ..process_frame import run_process
from ..run_files import BEST_CKPT, CONFIG_FILE, LAST_CKPT, read_json
from ..runs import require_run_dir
from ..weights_source import is_pretrained
from . import pretrained, train_state
from .device import DeviceSetup, setup_device
from .model import GPT, Decoder
from .tasks import Task
from .tasks.perplexity import Perplexity

Emit = Callable[..., dict]

READ_EVERY_S = 0.05  # streamed text reaches the host (one device sync) at most this often


@dataclass
class SampleRequest:
    id: str = "0"
    prompt: str = ""
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_k: int | None = 200
    top_p: float | None = None
    num_samples: int = 1
    seed: int | None = None

    @classmethod
    def from_command(cls, cmd: dict) -> SampleRequest:
        known = {f.name for f in fields(cls)}
        req = cls(**{k: v for k, v in cmd.items() if k in known and v is not None})
        req.id = str(req.id)
        if "top_k" in cmd and (cmd["top_k"] is None or cmd["top_k"] <= 0):
            req.top_k = None  # 0 or null: no top-k cut
        return req


class SampleSession:
    """One sampling request, decoded a few tokens at a time.

    The trainer answers prompts between training steps without stopping to
    generate the whole answer: it calls `advance` with a small time budget at
    every micro-step boundary, so training keeps its pace while the answer
    streams (the KV cache is kept between slices; the weights may move on
    between two slices, which is what "the live model" means). The checkpoint
    sampler simply advances until done. Bad prompts become an `error` event,
    never an exception.
    """

    def __init__(
        self,
        model: GPT,
        tokenizer,
        task: Task,
        req: SampleRequest,
        setup: DeviceSetup,
        emit: Emit,
        decoder: Decoder | None = None,
    ):
        """decoder: a (maybe compiled) decoding step of batch 1 to reuse; default a fresh eager one per sample."""
        self.model, self.tokenizer, self.task, self.req, self.setup, self.emit = (
            model,
            tokenizer,
            task,
            req,
            setup,
            emit,
        )
        self.decoder = decoder
        # The task formats the prompt and judges the answer; one with a fixed
        # answer_length (addition) is decoded greedily to exactly that many tokens.
        self.judged = task.answer_length is not None
        self.done = False
        try:
            self.prompt_ids = self._prompt_ids()
        except ConfigError as exc:
            emit("error", kind="prompt", id=req.id, message=exc.message, hint=exc.hint)
            self.done = True
            return
        self.generator = torch.Generator(device=setup.device)
        self.generator.manual_seed(req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little"))
        self.max_new = task.answer_length if self.judged else req.max_new_tokens
        self.temperature = 0.0 if self.judged else req.temperature  # one right answer: the likeliest
        self.index = -1
        self._next_sample()

    def _prompt_ids(self) -> list[int]:
        req = self.req
        ids = self.task.format_prompt(req.prompt)
        if (
            req.max_new_tokens < 1
            or req.temperature < 0
            or req.num_samples < 1
            or (req.top_p is not None and not 0 < req.top_p <= 1)
        ):
            raise ConfigError(
                "max_new_tokens and num_samples must be >= 1, temperature >= 0 and top_p in (0, 1].",
                "e.g. max_new_tokens=200 temperature=0.8 top_k=200 (0 = off) top_p=0.95",
            )
        return ids

    def _next_sample(self) -> None:
        self.index += 1
        idx = torch.tensor([self.prompt_ids], dtype=torch.long, device=self.setup.device)
        self.tokens = self.model.generate(
            idx,
            self.max_new,
            temperature=self.temperature,
            top_k=self.req.top_k,
            top_p=self.req.top_p,
            generator=self.generator,
            cache_dtype=self.setup.compute_dtype,
            decoder=self.decoder,
        )
        self.out: list[int] = []
        self.unread: list[torch.Tensor] = []  # tokens still on the device
        self.sent = ""
        self.seconds = 0.0  # decode time of this sample in earlier slices

    def advance(self, budget_s: float = float("inf")) -> bool:
        """Decode tokens for about budget_s seconds (at least one). True once all samples are done."""
        if self.done:
            return True
        start = self.clock_mark = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        try:
            last_read = start
            while not self.done:
                with torch.no_grad(), self.setup.autocast():
                    token = next(self.tokens, None)
                if token is None:
                    self._read_tokens()
                    self._finish_sample()
                    continue
                self.unread.append(token)
                now = time.perf_counter()
                # Reading a token back waits for the device. Text is read for the person
                # watching, a few times a second; a judged answer only once it is complete.
                if not self.judged and now - last_read >= READ_EVERY_S:
                    self._read_tokens()
                    last_read = now
                if now - start >= budget_s:
                    self._read_tokens()
                    break
        finally:
            self.model.train(was_training)
            self.seconds += time.perf_counter() - self.clock_mark
        return self.done

    def _read_tokens(self) -> None:
        """Bring the decoded tokens to the host (one sync for all of them) and stream the new text."""
        if self.unread:
            self.out += torch.cat(self.unread).tolist()
            self.unread = []
            self._emit_new_text()

    def _emit_new_text(self) -> None:
        if self.judged:
            return  # the answer is judged once all its tokens are there
        text = self.tokenizer.decode(self.out)
        if text.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the rest
        if len(text) > len(self.sent):
            self.emit("sample", id=self.req.id, index=self.index, text=text[len(self.sent) :], done=False)
            self.sent = text

    def _finish_sample(self) -> None:
        # decode time of this sample: earlier slices + this slice so far
        seconds = self.seconds + time.perf_counter() - self.clock_mark
        final = {
            "tokens": len(self.out),
            "tokens_per_sec": len(self.out) / max(seconds, 1e-9),
            "prompt": self.req.prompt,
        }
        if self.judged:
            verdict = self.task.judge(self.req.prompt, self.out)
            final.update(verdict, full_text=str(verdict["answer"]))
            self.emit("sample", id=self.req.id, index=self.index, text=str(verdict["answer"]), done=True, **final)
        else:
            text = self.tokenizer.decode(self.out)
            self.emit(
                "sample",
                id=self.req.id,
                index=self.index,
                text=text[len(self.sent) :],
                done=True,
                full_text=text,
                **final,
            )
        if self.index + 1 < self.req.num_samples:
            self._next_sample()
            self.clock_mark = time.perf_counter()  # the next sample's clock starts now
        else:
            self.done = True

    def cancel(self) -> None:
        """Stop decoding; the reader gets a last piece marked cancelled."""
        if not self.done:
            self._read_tokens()
            text = "" if self.judged else self.tokenizer.decode(self.out)
            self.emit(
                "sample",
                id=self.req.id,
                index=self.index,
                text="",
                done=True,
                cancelled=True,
                full_text=text,
                tokens=len(self.out),
                prompt=self.req.prompt,
            )
            self.done = True


def stream_sample(
    model: GPT,
    tokenizer,
    task: Task,
    req: SampleRequest,
    setup: DeviceSetup,
    emit: Emit,
    decoder: Decoder | None = None,
) -> None:
    """Generate a whole request, emitting events as text arrives. Never raises for bad prompts."""
    SampleSession(model, tokenizer, task, req, setup, emit, decoder).advance()


# ------------------------------------------------------------------ subprocess


@dataclass
class LoadedRun:
    """A trained model, ready to answer: what `gptbench sample` and `gptbench eval` start from."""

    model: GPT
    cfg: Config
    tokenizer: Tokenizer
    setup: DeviceSetup
    step: int  # 0 for pretrained weights
    path: Path  # the checkpoint, or the pretrained source

    def task(self) -> Task:
        """The model's own task: addition for the adder, free text (perplexity) for a language model."""
        if self.cfg.data.kind == "addition":
            from .data import build_dataset

            return build_dataset(self.cfg, self.setup.device).task
        return Perplexity(self.tokenizer)


def load_run(source: Path, which: str, device: str = "auto") -> LoadedRun:
    """The model in a run directory's best.pt or last.pt, or from a pretrained source
    (gpt2, gpt2-medium, ..., a Hugging Face folder), in eval mode on `device`."""
    if is_pretrained(str(source)):
        setup = setup_device(TrainConfig(device=device, compile=False))
        model, tokenizer = pretrained.for_sampling(str(source), setup.device)
        cfg = Config(model=model.config, data=DataConfig(tokenizer=tokenizer.name))
        return LoadedRun(model, cfg, tokenizer, setup, 0, source)
    run_dir = require_run_dir(source)
    cfg = Config.from_dict(read_json(run_dir / CONFIG_FILE))
    # the sampling device may differ from the training one (bf16 is not everywhere): its own dtype
    cfg.train.device, cfg.train.compile, cfg.train.dtype = device, False, "auto"
    setup = setup_device(cfg.train)
    path = run_dir / (BEST_CKPT if which == "best" else LAST_CKPT)
    ckpt = train_state.read(path)  # on the CPU
    cfg = Config.from_dict(train_state.saved_config(ckpt))
    model = GPT(cfg.model)
    model.load_state_dict(train_state.saved_weights(ckpt))
    step = train_state.saved_step(ckpt)
    del ckpt  # the optimizer's moments (last.pt) stay off the device and are freed now
    model.to(setup.device).eval()
    return LoadedRun(model, cfg, load_tokenizer(run_dir), setup, step, path)


def warm_up(decoder: Decoder, setup: DeviceSetup) -> None:
    """Compile a decoding step (CUDA graphs record on the second and third call) before any prompt.

    Its keys and values land in cache slot 0, which every request's prefill overwrites.
    """
    token = torch.zeros((1, 1), dtype=torch.long, device=setup.device)
    position = torch.zeros((), dtype=torch.long, device=setup.device)
    with torch.no_grad(), setup.autocast():
        for _ in range(3):
            decoder(token, position)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m workbench.engine.sampler", description="Sample from a run's checkpoint; events on stdout."
    )
    p.add_argument(
        "--run-dir", required=True, help="a run directory, or a pretrained source (gpt2, a Hugging Face folder)"
    )
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--device", default="auto")
    p.add_argument("--serve", action="store_true", help="answer JSON sample commands from stdin, one per line")
    p.add_argument("--prompt", default="")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=200)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    return run_process(lambda events: serve(args, events.emit), bad_input="checkpoint")


def serve(args: argparse.Namespace, emit) -> None:
    """Answer the prompt on the command line, or (--serve) every sample command on stdin."""
    run = load_run(Path(args.run_dir), args.checkpoint, args.device)
    model, tokenizer, task, setup = run.model, run.tokenizer, run.task(), run.setup
    # One decoding step for every request. Serving (the app's console) on CUDA, it
    # is compiled as a CUDA graph that replays the whole step in one launch, while
    # the user types the first prompt; a single answer, or a CPU, would wait longer
    # for the compile than it saves.
    decoder = model.decoder(1, setup.device, setup.compute_dtype, compile=args.serve and setup.kind == "cuda")
    if args.serve and setup.kind == "cuda":
        warm_up(decoder, setup)
    if not args.serve:
        req = SampleRequest(
            prompt=args.prompt,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k if args.top_k > 0 else None,
            top_p=args.top_p,
            num_samples=args.num_samples,
            seed=args.seed,
        )
        stream_sample(model, tokenizer, task, req, setup, emit, decoder)
        return
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
        except ValueError:
            continue
        if isinstance(cmd, dict) and cmd.get("cmd") == "sample":
            stream_sample(model, tokenizer, task, SampleRequest.from_command(cmd), setup, emit, decoder)


if __name__ == "__main__":
    sys.exit(main())
