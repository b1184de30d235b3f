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

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> torch.Tensor:
        """Attend causally over x, or, with kv = (k_cache, v_cache, pos), over the cache too.

        x holds the tokens at absolute positions pos..pos+T-1. Their keys and values
        are written into the cache, then the queries attend over positions 0..pos+T-1.
        """
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim): each head attends independently
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if kv is None:
            # flash attention on GPU; the causal mask is built in
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            k_cache, v_cache, pos = kv
            k_cache[:, :, pos : pos + T] = k
            v_cache[:, :, pos : pos + T] = v
            k, v = k_cache[:, :, : pos + T], v_cache[:, :, : pos + T]
            # Prefill (pos == 0) is ordinary causal attention over the new tokens. A
            # single new token may see every cached position, so it needs no mask.
            # (SDPA aligns is_causal to the top-left corner, which is only right
            # when queries and keys start together, hence the two cases.)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=pos == 0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        # GPT-2 was trained with the tanh approximation, and its weights need it;
        # the exact GELU is cheaper on CPUs and just as good for a model trained here.
        self.gelu = nn.GELU(approximate="tanh" if config.activation == "gelu_tanh" else "none")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: the residual stream is never normalized itself."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv)
        x = x + self.mlp(self.ln_2(x))
        return x


class KVCache:
    """Keys and values of every layer for the tokens decoded so far.

    Preallocated for a whole block (B, n_head, block_size, head_dim) per layer, so
    a decoding step writes one slot instead of concatenating. `pos` is how many
    positions are filled; GPT.forward_cached advances it.
    """

    def __init__(self, config: ModelConfig, batch_size: int, device: torch.device, dtype: torch.dtype):
        shape = (batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.pos = 0

    def reset(self) -> None:
        # the old entries are simply overwritten by the next prefill
        self.pos = 0


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
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        # Weight tying (https://paperswithcode.com/method/weight-tying): the token
        # embedding and the LM head are one matrix, as in GPT-2.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2 scales the projections into the residual stream by 1/sqrt(2*n_layer):
        # each block adds to the stream twice, and the sum should not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. The token embedding counts (it is also the LM head, so
        it does real work); position embeddings are left out when non_embedding."""
        n = sum(p.numel() for p in self.parameters())  # the tied matrix is counted once
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """idx (B, T) token ids -> (logits (B, T, vocab_size), None), or with targets (None, loss).

        targets (B, T) uses -1 for positions that must not count in the loss.
        Training never needs the logits themselves, so with targets the LM head
        and the loss run fused, a chunk of positions at a time (see loss.py):
        the (B, T, vocab) logits are never held in memory (unless loss="plain").
        """
        B, T = idx.size()
        assert T <= self.config.block_size, f"sequence of length {T} is longer than block_size {self.config.block_size}"
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            # float32 softmax inside: bf16 logits lose the small probabilities
            if self.loss == "plain":
                return None, plain_cross_entropy(self.lm_head(x), targets, self.config.vocab_size)
            return None, linear_cross_entropy(x, self.lm_head.weight, targets, self.config.vocab_size)
        return self.lm_head(x)[..., : self.config.vocab_size], None

    def forward_cached(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Run new tokens through the model, appending their keys/values to the cache.

        Either a prefill (many tokens into an empty cache) or one decoding step (one
        token after the cached ones). Returns the logits of the last position only,
        (B, vocab_size).
        """
        B, T = idx.size()
        assert cache.pos == 0 or T == 1, "forward_cached takes a prefill into an empty cache, or one token"
        assert cache.pos + T <= self.config.block_size, "the KV cache is full; reset it and prefill a cropped context"
        # the new tokens sit after the cached ones: absolute positions pos..pos+T-1
        pos = torch.arange(cache.pos, cache.pos + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block, k_cache, v_cache in zip(self.transformer.h, cache.k, cache.v):
            x = block(x, (k_cache, v_cache, cache.pos))
        cache.pos += T
        # only the last position predicts the next token: skip the head for the rest
        logits = self.lm_head(self.transformer.ln_f(x[:, -1, :]))
        return logits[:, : self.config.vocab_size]

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
    ) -> Iterator[torch.Tensor]:
        """Continue the prompts idx (B, T), yielding each next token (B,) as it is chosen.

        temperature 0 is greedy decoding. top_k keeps the k likeliest tokens; top_p
        keeps the smallest set of tokens whose probability adds up to top_p (None,
        top_k=0 and top_p=1 are off). Call model.eval() first if the model has
        dropout. cache_dtype is the dtype keys and values are computed in (the
        autocast dtype; default the weights'): a bf16 cache is half the memory
        and bandwidth of a float32 one.

        The context is cropped to the last block_size tokens, exactly as without a
        cache. Once the sequence is longer than block_size the window slides by one
        token per step and every position embedding shifts, so the cached keys and
        values go stale: the cached path then re-prefills the cropped window each
        step. That costs as much as no cache, and gives the same tokens.
        """
        assert temperature >= 0, "temperature must be >= 0 (0 means greedy)"
        block_size = self.config.block_size
        dtype = cache_dtype or self.lm_head.weight.dtype
        cache = KVCache(self.config, idx.size(0), idx.device, dtype) if use_cache else None
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = self(idx[:, -block_size:])
                logits = logits[:, -1, :]
            elif cache.pos in (0, block_size):
                # the first step, or the window is full and about to slide
                cache.reset()
                logits = self.forward_cached(idx[:, -block_size:], cache)
            else:
                # the cache holds every token but the last one: feed just that
                logits = self.forward_cached(idx[:, -1:], cache)
            idx_next = sample(logits, temperature, top_k, top_p, generator)
            idx = torch.cat((idx, idx_next[:, None]), dim=1)
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
        lm_head.weight                              skipped: tied to transformer.wte.weight
        transformer.h.N.attn.bias, .masked_bias     skipped: causal-mask buffers, not weights
        ==========================================  ==========================================

        HuggingFace's Conv1D stores its weight as (in, out); nn.Linear stores
        (out, in), hence the transposes.
        """
        ours = self.state_dict()  # tensors that share storage with the parameters
        copied = set()
        with torch.no_grad():
            for key, w in hf_state_dict.items():
                if key == "lm_head.weight" or key.endswith((".attn.bias", ".attn.masked_bias")):
                    continue
                if key not in ours:
                    raise ValueError(f"HuggingFace key {key!r} has no counterpart in this GPT (is model.bias true?)")
                if key.endswith(HF_CONV1D_WEIGHTS):
                    w = w.t()
                target = ours[key]
                if key == "transformer.wte.weight":
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
        missing = set(ours) - copied - {"lm_head.weight"}
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
