"""The GPT-2 language model, written to be read top to bottom (after nanoGPT).

References:
1) OpenAI's GPT-2 (TensorFlow): https://github.com/openai/gpt-2/blob/master/src/model.py
2) HuggingFace's GPT-2 (PyTorch): transformers/models/gpt2/modeling_gpt2.py
3) nanoGPT: https://github.com/karpathy/nanoGPT/blob/master/model.py

Parameter names follow nanoGPT and HuggingFace (`transformer.h.0.attn.c_attn.weight`),
so GPT-2 checkpoints map over with a transpose and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn as nn
from torch.nn import functional as F

from workbench.config import ModelConfig

from .loss import linear_cross_entropy, plain_cross_entropy


class RMSNormFunction(torch.autograd.Function):
    """x / rms(x) (* weight) over the last dimension, in float32 at least, with its backward written out.

    torch's RMSNorm is a chain of small ops on the CPU, each kept for autograd:
    ~5x a fused LayerNorm there (and QK-norm runs it on every head). Written out,
    the backward is one short formula over the saved normalised input.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # bf16/fp16 in float32
        rstd = torch.rsqrt(xf.square().mean(-1, keepdim=True).add_(eps))
        normed = xf * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return (normed if weight is None else normed * weight).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        normed, rstd, weight = ctx.saved_tensors
        grad_n = grad.to(normed.dtype)
        g = grad_n if weight is None else grad_n * weight
        # d/dx of x*rstd: the component of g along the normalised input is removed, then scaled
        grad_x = (g - normed * (g * normed).mean(-1, keepdim=True)) * rstd
        grad_w = None if weight is None else (grad_n * normed).flatten(0, -2).sum(0).to(weight.dtype)
        return grad_x.to(grad.dtype), grad_w, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-5) -> torch.Tensor:
    return RMSNormFunction.apply(x, weight, eps)


class RMSNorm(nn.Module):
    """RMSNorm (https://arxiv.org/abs/1910.07467): no mean subtracted and no bias; a gain."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def make_norm(config: ModelConfig) -> nn.Module:
    """GPT-2's LayerNorm, or RMSNorm: no mean subtracted and no bias (cheaper, and as good)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd)
    return nn.LayerNorm(config.n_embd, bias=config.bias)


class Rotary(nn.Module):
    """Rotary position embeddings (RoFormer, https://arxiv.org/abs/2104.09864).

    Instead of adding a position vector to the input, each query and key is
    rotated by an angle proportional to its position, pair of dimensions by
    pair at different frequencies, so q.k depends on how far apart two tokens
    are. Pairs are (i, i + head_dim/2), the "rotate half" layout Llama and
    GPT-NeoX use, so the weights need no permutation to move there.
    """

    def __init__(self, config: ModelConfig, base: float = 10000.0):
        super().__init__()
        head_dim = config.n_embd // config.n_head
        freqs = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), freqs)
        # derived from the config: rebuilt, never saved in checkpoints
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """x (B, n_head, T, head_dim) at positions (T,) -> x rotated."""
        cos, sin = self.cos[positions].to(x.dtype), self.sin[positions].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


# one layer's (keys, values) cache and how many of its positions a decoding step reads (None: all, masked)
CachedLayer = tuple[torch.Tensor, torch.Tensor, "int | None"]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        # key, query and value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.rotary = Rotary(config) if config.position == "rope" else None
        self.qk_norm = config.qk_norm

    def forward(self, x: torch.Tensor, positions: torch.Tensor, kv: CachedLayer | None = None) -> torch.Tensor:
        """Attend causally over x (tokens at `positions`, (T,)), or, with kv = (k_cache, v_cache, span), over the cache.

        With a cache, the keys and values of x are written into it at `positions`
        first. A prefill (T > 1) starts at position 0 and attends causally over
        its own tokens. A decoding step (T == 1) attends over the first `span`
        positions of the cache; span None: over all of them, the unfilled ones
        masked out, so the shapes never change and one compiled step serves
        every position (see Decoder). Eagerly the slice is cheaper: the masked
        form costs GPT-2 ~0.3 ms more per layer and token on a CPU core.
        """
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim): each head attends independently
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.qk_norm:
            # bounded attention logits whatever the weights grow to (no gain: one less thing to tune)
            q, k = rms_norm(q), rms_norm(k)
        if self.rotary is not None:
            q, k = self.rotary(q, positions), self.rotary(k, positions)
        if kv is None:
            # flash attention on GPU; the causal mask is built in
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            k_cache, v_cache, span = kv
            k_cache.index_copy_(2, positions, k.to(k_cache.dtype))
            v_cache.index_copy_(2, positions, v.to(v_cache.dtype))
            if T > 1:  # prefill from position 0: ordinary causal attention over the new tokens
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif span is not None:  # one new token sees every filled position
                y = F.scaled_dot_product_attention(
                    q, k_cache[:, :, :span].to(q.dtype), v_cache[:, :, :span].to(q.dtype)
                )
            else:  # the same, at a fixed shape: 0..positions[0] of the whole cache
                filled = (torch.arange(k_cache.size(2), device=x.device) <= positions)[None, :]  # (1, block)
                y = F.scaled_dot_product_attention(q, k_cache.to(q.dtype), v_cache.to(q.dtype), attn_mask=filled)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class ReLU2(nn.Module):
    """ReLU squared (So et al., Primer, https://arxiv.org/abs/2109.08668), the GPT-2 speedrun's MLP activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 was trained with the tanh approximation, and its weights need it;
        # the exact GELU is cheaper on CPUs and just as good for a model trained here.
        if config.activation == "relu2":
            self.act = ReLU2()
        else:
            self.act = nn.GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: the residual stream is never normalized itself."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, kv: CachedLayer | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), positions, kv)
        x = x + self.mlp(self.ln_2(x))
        return x


class KVCache(nn.Module):
    """Keys and values of every layer for the tokens decoded so far.

    Preallocated for a whole block (B, n_head, block_size, head_dim) per layer:
    a decoding step writes one slot in place, and the tensors never move or
    change shape, which is what lets a compiled step be replayed as a CUDA
    graph. They are buffers (not saved) so that torch.compile treats them as
    the fixed state of the Decoder module, like its weights.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device, dtype: torch.dtype):
        super().__init__()
        shape = (batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        for i in range(config.n_layer):
            self.register_buffer(f"k{i}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
            self.register_buffer(f"v{i}", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.n_layer = config.n_layer

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(getattr(self, f"k{i}"), getattr(self, f"v{i}")) for i in range(self.n_layer)]


class Decoder(nn.Module):
    """One decoding step of a model with its cache: (B, 1) token ids at a 0-d position tensor -> (B, vocab) logits.

    Static (compiled): every input has the same shape and place at every step,
    and the position is a tensor, not a Python int: compiled once, it never
    recompiles, and on CUDA `reduce-overhead` replays it as one CUDA graph
    instead of ~10 kernel launches per layer. Eager: the caller also passes
    how many positions are filled (`span`, a host-side count), and attention
    reads just those.
    """

    def __init__(self, model: GPT, cache: KVCache, static: bool):
        super().__init__()
        self.model, self.cache, self.static = model, cache, static

    def forward(self, idx: torch.Tensor, position: torch.Tensor, span: int | None = None) -> torch.Tensor:
        return self.model.forward_cached(idx, position.view(1), self.cache, span)


# Hugging Face's GPT-2 keeps these weights in Conv1D layers, stored (in, out);
# nn.Linear stores (out, in): they are transposed on the way in and out.
HF_CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, loss: str = "fused"):
        """loss: how forward computes the loss from the last hidden states (see loss.py):
        fused (the LM head a chunk of rows at a time) or plain (full logits)."""
        super().__init__()
        assert config.vocab_size > 0, (
            "ModelConfig.vocab_size must be set (> 0) before building the GPT; take it from the tokenizer"
        )
        assert config.block_size > 0, "ModelConfig.block_size must be at least 1"
        self.config = config
        self.loss = loss
        # The embedding and the head have padded_vocab_size rows (a multiple of 64,
        # for fast matmuls). The extra rows are never a real token: their logits are
        # sliced off before the loss and before anyone can sample them.
        layers = dict(wte=nn.Embedding(config.padded_vocab_size, config.n_embd))
        if config.position == "learned":  # rope: positions act inside attention, no table
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        layers.update(
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=make_norm(config),
        )
        self.transformer = nn.ModuleDict(layers)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            # Weight tying (https://paperswithcode.com/method/weight-tying): the token
            # embedding and the LM head are one matrix, as in GPT-2.
            self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2 scales the projections into the residual stream by 1/sqrt(2*n_layer):
        # each block adds to the stream twice, and the sum should not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if not config.tie_embeddings:
            # An untied head starts at zero (as in the GPT-2 speedrun): every token
            # equally likely, and the first steps shape the head from the data.
            nn.init.zeros_(self.lm_head.weight)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. The token embedding counts (tied, it is also the LM head,
        so it does real work); position embeddings are left out when non_embedding."""
        n = sum(p.numel() for p in self.parameters())  # a tied matrix is counted once
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    def _embed(self, idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(positions)
        return self.transformer.drop(x)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """The LM head over the real vocabulary, soft-capped when model.logit_softcap is on."""
        logits = self.lm_head(x)[..., : self.config.vocab_size]
        cap = self.config.logit_softcap
        if cap:
            # Gemma 2 / the GPT-2 speedrun: logits bounded in (-cap, cap), smoothly,
            # so no token grows overconfident early in training
            logits = cap * torch.tanh(logits.float() / cap)
        return logits

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), None), or with targets (None, loss).

        targets (B, T) uses -1 for positions that must not count in the loss.
        Training never needs the logits themselves, so with targets the LM head
        and the loss run fused, a chunk of positions at a time (see loss.py):
        the (B, T, vocab) logits are never held in memory (unless loss="plain").
        Both paths soft-cap the logits when model.logit_softcap is on.
        """
        B, T = idx.size()
        assert T <= self.config.block_size, f"sequence of length {T} is longer than block_size {self.config.block_size}"
        positions = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self._embed(idx, positions)
        for block in self.transformer.h:
            x = block(x, positions)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self._logits(x), None
        if self.loss == "plain":
            # float32 softmax: bf16 logits lose the small probabilities
            return None, plain_cross_entropy(self._logits(x), targets, self.config.vocab_size)
        # float32 softmax inside, a chunk of rows at a time
        loss = linear_cross_entropy(x, self.lm_head.weight, targets, self.config.vocab_size, self.config.logit_softcap)
        return None, loss

    def forward_cached(
        self, idx: torch.Tensor, positions: torch.Tensor, cache: KVCache, span: int | None = None
    ) -> torch.Tensor:
        """Run new tokens at `positions` (T,) through the model, writing their keys/values into the cache.

        Either a prefill (T tokens at positions 0..T-1) or one decoding step (one
        token after the cached ones; `span`: see CausalSelfAttention). Returns the
        logits of the last position only, (B, vocab_size).
        """
        x = self._embed(idx, positions)
        for block, (k, v) in zip(self.transformer.h, cache.layers()):
            x = block(x, positions, (k, v, span))
        # only the last position predicts the next token: skip the head for the rest
        return self._logits(self.transformer.ln_f(x[:, -1, :]))

    def decoder(self, batch_size: int, device: torch.device, dtype: torch.dtype, compile: bool = False) -> Decoder:
        """A decoding step with a cache of its own; compiled (CUDA: as a CUDA graph) when asked."""
        step = Decoder(self, KVCache(self.config, batch_size, device, dtype), static=compile)
        if compile:
            # The cache stays where it is between steps: a CUDA graph may write it in place
            # (as transformers' StaticCache does) instead of copying it in and out per token.
            for buffer in step.cache.buffers():
                torch._dynamo.mark_static_address(buffer)
            mode = "reduce-overhead" if device.type == "cuda" else None
            step = torch.compile(step, mode=mode, fullgraph=True)
        return step

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        cache_dtype: torch.dtype | None = None,
        decoder: Decoder | None = None,
    ) -> Iterator[torch.Tensor]:
        """Continue the prompts idx (B, T), yielding each next token (B,) as it is chosen.

        temperature 0 is greedy decoding. top_k keeps the k likeliest tokens; top_p
        keeps the smallest set of tokens whose probability adds up to top_p (None,
        top_k=0 and top_p=1 are off). Call model.eval() first if the model has
        dropout. cache_dtype is the dtype keys and values are computed in (the
        autocast dtype; default the weights'): a bf16 cache is half the memory
        and bandwidth of a float32 one. `decoder` (from `self.decoder`, maybe
        compiled) is reused across calls; by default a fresh eager one.

        The tokens stay on the device: nothing here waits for it, so a caller
        that reads them back only when it prints runs the device ahead.

        The context is cropped to the last block_size tokens, exactly as without a
        cache. Once the sequence is longer than block_size the window slides by one
        token per step and every position shifts (for learned positions, their
        embeddings; with rope, the rotations), so the cached keys and values go
        stale: the cached path then re-prefills the cropped window each step.
        That costs as much as no cache, and gives the same tokens.
        """
        assert temperature >= 0, "temperature must be >= 0 (0 means greedy)"
        block_size = self.config.block_size
        if use_cache and decoder is None:
            decoder = self.decoder(idx.size(0), idx.device, cache_dtype or self.lm_head.weight.dtype)
        filled = 0  # positions of the cache that hold the sequence's tokens (host-side count: no sync)
        position = torch.zeros((), dtype=torch.long, device=idx.device)
        last = idx[:, -1:]  # the newest token, (B, 1)
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = self(idx[:, -block_size:])
                logits = logits[:, -1, :]
            elif filled in (0, block_size):
                # the first step, or the window is full and about to slide: prefill, eagerly
                # (its length varies; only the one-token step is worth compiling)
                context = idx[:, -block_size:]
                filled = context.size(1)
                positions = torch.arange(filled, device=idx.device)
                cache = getattr(decoder, "_orig_mod", decoder).cache
                logits = self.forward_cached(context, positions, cache)
            else:
                # the cache holds every token but the last one: feed just that
                position.fill_(filled)
                filled += 1
                logits = decoder(last, position, None if decoder.static else filled)
            idx_next = sample(logits, temperature, top_k, top_p, generator)
            last = idx_next[:, None]  # the same shape and strides at every step: no recompiles
            idx = torch.cat((idx, last), dim=1)
            yield idx_next

    def load_hf_gpt2_state_dict(self, hf_state_dict: dict[str, torch.Tensor]) -> None:
        """Copy weights from a HuggingFace `GPT2LMHeadModel` state dict into this model.

        The config must match the checkpoint (n_layer, n_head, n_embd, bias=True,
        block_size == n_positions, vocab_size == HF vocab_size).

        ==========================================  ==========================================
        HuggingFace key                             this model
        ==========================================  ==========================================
        transformer.wte.weight (V, C)               transformer.wte.weight (padded V, C);
                                                    padded rows are zero-filled
        transformer.wpe.weight                      transformer.wpe.weight
        transformer.h.N.ln_1.{weight,bias}          same name
        transformer.h.N.attn.c_attn.weight          same name, transposed
        transformer.h.N.attn.c_attn.bias            same name
        transformer.h.N.attn.c_proj.weight          same name, transposed
        transformer.h.N.attn.c_proj.bias            same name
        transformer.h.N.ln_2.{weight,bias}          same name
        transformer.h.N.mlp.c_fc.weight             same name, transposed
        transformer.h.N.mlp.c_fc.bias               same name
        transformer.h.N.mlp.c_proj.weight           same name, transposed
        transformer.h.N.mlp.c_proj.bias             same name
        transformer.ln_f.{weight,bias}              same name
        lm_head.weight                              skipped when tied to transformer.wte.weight
                                                    (tie_word_embeddings), else lm_head.weight
        transformer.h.N.attn.bias, .masked_bias     skipped: causal-mask buffers, not weights
        ==========================================  ==========================================

        HuggingFace's Conv1D stores its weight as (in, out); nn.Linear stores
        (out, in), hence the transposes.
        """
        ours = self.state_dict()  # tensors that share storage with the parameters
        copied = set()
        with torch.no_grad():
            for key, w in hf_state_dict.items():
                if (key == "lm_head.weight" and self.config.tie_embeddings) or key.endswith(
                    (".attn.bias", ".attn.masked_bias")
                ):
                    continue
                if key not in ours:
                    raise ValueError(f"HuggingFace key {key!r} has no counterpart in this GPT (is model.bias true?)")
                if key.endswith(HF_CONV1D_WEIGHTS):
                    w = w.t()
                target = ours[key]
                if key in ("transformer.wte.weight", "lm_head.weight"):
                    # only the real vocab rows come from the checkpoint; the padding is no token
                    target[self.config.vocab_size :].zero_()
                    target = target[: self.config.vocab_size]
                if w.shape != target.shape:
                    raise ValueError(
                        f"shape mismatch for {key!r}: checkpoint has {tuple(w.shape)}, this GPT expects "
                        f"{tuple(target.shape)}; check n_layer/n_head/n_embd/block_size/vocab_size"
                    )
                target.copy_(w)
                copied.add(key)
        missing = set(ours) - copied - ({"lm_head.weight"} if self.config.tie_embeddings else set())
        if missing:
            raise ValueError(f"the HuggingFace state dict lacks {sorted(missing)}")


def sample(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of logits (B, V) -> (B,). top_k 0/None and top_p 1/None are off."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:  # off: no sort of the whole vocabulary per token
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        # drop a token once the likelier ones already reach top_p (the top one always stays)
        drop = probs.cumsum(dim=-1) - probs >= top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
