"""The fused LM-head + cross-entropy (engine/loss.py) against the plain computation,
its chunks on a GPU, and its shape under torch.compile."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from workbench.config import ModelConfig
from workbench.engine import loss as fused_loss
from workbench.engine.model import GPT


def reference(x, w, t, vocab, softcap=0.0):
    logits = (x @ w.t())[:, :vocab].float()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits, t, ignore_index=-1)


# 2.0: raw logits of std ~5.7 (randn weights over 32 dims) are capped hard
SOFTCAPS = pytest.mark.parametrize("softcap", [0.0, 2.0], ids=["uncapped", "softcap"])


@SOFTCAPS
@pytest.mark.parametrize("vocab,padded", [(65, 128), (1000, 1024)])
def test_chunked_loss_and_gradients_match_cross_entropy(monkeypatch, vocab, padded, softcap):
    # 256 rows per chunk: a 700-row batch is cut into three uneven chunks
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", 256 * padded)
    torch.manual_seed(0)
    x = torch.randn(700, 32, requires_grad=True)
    w = torch.randn(padded, 32, requires_grad=True)
    t = torch.randint(0, vocab, (700,))
    t[:50] = -1
    t[300:310] = -1  # ignored rows inside a chunk too
    loss = fused_loss.linear_cross_entropy(x, w, t, vocab, softcap)
    (loss * 3).backward()  # a scaled loss scales the stored gradients too
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    expected = reference(x, w, t, vocab, softcap)
    (expected * 3).backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gw, w.grad)
    assert torch.all(gw[vocab:] == 0)  # padding rows are no token: no gradient
    assert torch.all(gx[t == -1] == 0)  # ignored rows: no gradient
    with torch.no_grad():  # evals: the loss alone, chunk by chunk
        torch.testing.assert_close(fused_loss.linear_cross_entropy(x, w, t, vocab, softcap), expected)


@SOFTCAPS
def test_bf16_autocast_tracks_float32(softcap):
    torch.manual_seed(0)
    x = torch.randn(300, 64, requires_grad=True)
    w = (torch.randn(128, 64) * 0.3).requires_grad_()
    t = torch.randint(0, 100, (300,))
    t[:20] = -1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fused_loss.linear_cross_entropy(x, w, t, 100, softcap)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    ref_x, ref_w = x.detach().requires_grad_(), w.detach().requires_grad_()
    expected = reference(ref_x, ref_w, t, 100, softcap)  # float32 throughout
    expected.backward()
    assert abs(loss.item() - expected.item()) < 2e-2
    # bf16 keeps 8 bits of mantissa: gradients within a few percent of their scale
    for got, want in ((x.grad, ref_x.grad), (w.grad, ref_w.grad)):
        assert ((got - want).norm() / want.norm()).item() < 2e-2


class Ops(TorchDispatchMode):
    """The aten ops run under it, with the shapes of the tensors they return."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        self.seen.append((func.overloadpacket.__name__, [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]))
        return out


def test_the_stored_gradients_are_not_tracked_and_backward_builds_no_zeros_for_them():
    """The op returns the gradients only to hand them to backward: autograd must not treat them as
    differentiable outputs, whose missing gradients it would fill with (N, C) and (V, C) zeros."""
    torch.manual_seed(0)
    x = torch.randn(300, 32, requires_grad=True)
    w = torch.randn(1024, 32, requires_grad=True)
    t = torch.randint(0, 1000, (300,))
    loss, grad_x, grad_w = fused_loss._fused(x, w, t, 1000, torch.float32, 0.0)
    assert loss.requires_grad
    assert not grad_x.requires_grad and not grad_w.requires_grad
    with Ops() as ops:
        loss.backward()
    made = [(name, shapes) for name, shapes in ops.seen if name in ("zeros", "zeros_like", "new_zeros", "fill_")]
    assert not made, made
    # what backward does compute: the two scaled gradients (detach: autograd storing them in .grad)
    made = sorted(s for name, shapes in ops.seen if name != "detach" for s in shapes if len(s) == 2)
    assert made == [(300, 32), (1024, 32)], ops.seen
    torch.testing.assert_close(loss, reference(x.detach(), w.detach(), t, 1000))


def test_no_counted_target_gives_nan_like_cross_entropy():
    x, w = torch.randn(4, 8), torch.randn(64, 8)
    t = torch.full((4,), -1)
    assert torch.isnan(fused_loss.linear_cross_entropy(x, w, t, 10))
    assert torch.isnan(reference(x, w, t, 10))


# ------------------------------------------------------------ GPU-shaped chunks


def test_cuda_chunks_are_whole_tiles_or_the_whole_micro_batch():
    gpt2 = 50304
    budget_rows = fused_loss.CUDA_CHUNK_ELEMENTS // gpt2  # 5336 rows of float32 logits in 1 GiB
    # a micro-batch that fits the budget is one chunk
    assert fused_loss.chunk_rows(4 * 1024, gpt2, "cuda") == 4096
    assert fused_loss.chunk_rows(300, gpt2, "cuda") == 300
    for batch in (6, 16, 32, 64, 128):
        n = batch * 1024
        rows = fused_loss.chunk_rows(n, gpt2, "cuda")
        assert rows % 128 == 0 and budget_rows // 2 < rows <= budget_rows, (batch, rows)
        chunks = -(-n // rows)
        assert chunks * rows - n < chunks * 128  # equal chunks: no tiny last one
    # small vocabularies: any micro-batch up to the budget in one chunk
    assert fused_loss.chunk_rows(64 * 256, 128, "cuda") == 64 * 256
    # the CPU keeps its ~64 MiB chunks
    assert fused_loss.chunk_rows(16 * 1024, gpt2, "cpu") == 333


# ------------------------------------------------------- one op for torch.compile


def tiny_gpt(loss="fused", vocab=1000, softcap=0.0):
    torch.manual_seed(0)
    cfg = ModelConfig(
        n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=vocab, dropout=0.0, bias=True, logit_softcap=softcap
    )
    return GPT(cfg, loss=loss)


def traced_graphs(model, batch, grad=True):
    """The FX graphs torch.compile hands its compiler for a forward (+ backward) at this batch size."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=aot_autograd(fw_compiler=keep, bw_compiler=keep), fullgraph=True)
    x = torch.randint(0, 1000, (batch, 32))
    with torch.set_grad_enabled(grad):
        _, loss = compiled(x, x)
        if grad:
            loss.backward()
    return graphs, loss


def calls(graph, name):
    return sum(1 for node in graph.graph.nodes if name in str(node.target))


@pytest.mark.parametrize("grad", [True, False], ids=["train", "eval"])
def test_compiled_graph_holds_the_loss_once_whatever_the_batch(monkeypatch, grad):
    """A Python chunk loop would be unrolled by torch.compile: one copy per chunk, compile time growing with B."""
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", 64 * 1024)  # 64-row chunks: 2 at B=4, 16 at B=32
    sizes = {}
    for batch in (4, 32):
        graphs, loss = traced_graphs(tiny_gpt(), batch, grad)
        op = "linear_cross_entropy" if grad else "linear_cross_entropy_value"
        assert calls(graphs[0], f"workbench.{op}.") == 1
        sizes[batch] = [len(g.graph.nodes) for g in graphs]
    assert sizes[4] == sizes[32], sizes


@pytest.mark.parametrize("softcap", [0.0, 15.0], ids=["uncapped", "softcap"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["float32", "bf16-autocast"])
def test_compiled_fused_loss_and_gradients_match_eager(monkeypatch, dtype, softcap):
    monkeypatch.setattr(fused_loss, "CHUNK_ELEMENTS", 64 * 1024)
    x = torch.randint(0, 1000, (8, 32))
    models, losses = [tiny_gpt(softcap=softcap), tiny_gpt(softcap=softcap)], []
    torch._dynamo.reset()
    for model in (models[0], torch.compile(models[1], backend="aot_eager", fullgraph=True)):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            _, loss = model(x, x)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0])
    for (name, p), q in zip(models[1].named_parameters(), models[0].parameters()):
        assert p.grad.dtype == torch.float32
        torch.testing.assert_close(p.grad, q.grad, msg=name)


# ------------------------------------------------------------- fused vs plain


@pytest.mark.parametrize("softcap", [0.0, 15.0], ids=["uncapped", "softcap"])
@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["float32", "bf16-autocast"])
def test_plain_and_fused_give_the_same_loss_and_gradients(dtype, softcap):
    """Soft-capped logits too: the recipe comparison compares recipes, not loss paths."""
    x = torch.randint(0, 1000, (4, 32))
    y = x.clone()
    y[:, :5] = -1  # ignored positions
    models = {}
    for loss in ("fused", "plain"):
        model = tiny_gpt(loss, softcap=softcap)
        assert model.loss == loss
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            _, value = model(x, y)
        value.backward()
        models[loss] = (model, value)
    (fused, fused_value), (plain, plain_value) = models["fused"], models["plain"]
    tol = {} if dtype is None else {"atol": 2e-2, "rtol": 2e-2}
    torch.testing.assert_close(fused_value, plain_value, **tol)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name, **({} if dtype is None else {"atol": 5e-3, "rtol": 0.1}))


def test_auto_picks_fused_off_cuda_and_the_measured_choice_on_cuda():
    assert fused_loss.resolve_loss("auto", "cpu") == "fused"
    assert fused_loss.resolve_loss("auto", "mps") == "fused"
    assert fused_loss.resolve_loss("auto", "cuda") == fused_loss.CUDA_AUTO_LOSS
    assert fused_loss.resolve_loss("plain", "cuda") == "plain"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_float32_output_matmuls_are_valid_calls_of_this_torch(dtype):
    """CUDA's out_dtype matmuls cannot run on a CPU, but torch checks their arguments on the meta device."""
    x = torch.empty(5120, 768, device="meta", dtype=dtype)
    w = torch.empty(50304, 768, device="meta", dtype=dtype)
    picked = torch.zeros(5120, 1, device="meta", dtype=torch.long)
    for softcap in (0.0, 15.0):
        log_probs, tanh = fused_loss._chunk_log_probs(x, w, 50257, float32_out=True, softcap=softcap, keep_tanh=True)
        assert log_probs.dtype == torch.float32 and log_probs.shape == (5120, 50304)
        grad = fused_loss._softmax_minus_one_hot(log_probs, picked, tanh, dtype)
        assert grad.dtype == dtype and grad.shape == (5120, 50304)
    grad_w = torch.empty(50304, 768, device="meta", dtype=torch.float32)
    fused_loss._add_product(grad_w, grad.t(), x, float32_out=True)
    assert grad_w.dtype == torch.float32


# ------------------------------------------------------------------- CUDA only

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_cuda_head_gradient_is_accumulated_in_float32_by_the_matmul():
    device = torch.device("cuda")
    assert fused_loss._matmul_writes_float32(device, torch.bfloat16), "this torch lacks addmm(out_dtype=float32)"
    torch.manual_seed(0)
    x = torch.randn(3000, 64, device=device, requires_grad=True)
    w = (torch.randn(50304, 64, device=device) * 0.02).requires_grad_()
    t = torch.randint(0, 50257, (3000,), device=device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = fused_loss.linear_cross_entropy(x, w, t, 50257)
    loss.backward()
    assert w.grad.dtype == torch.float32
    expected = reference(x.detach(), w.detach(), t, 50257)
    ref_w = w.detach().requires_grad_()
    reference(x.detach(), ref_w, t, 50257).backward()
    assert abs(loss.item() - expected.item()) < 2e-2
    torch.testing.assert_close(w.grad, ref_w.grad, atol=1e-4, rtol=0.05)


def test_fp16_keeps_the_small_probabilities_of_a_large_batch():
    """The per-row gradient (softmax - one_hot) is cast to fp16 before its matmuls: divided by the
    count first, 1/V-sized probabilities of a 4096-row batch would fall below fp16's range."""
    torch.manual_seed(0)
    x = torch.randn(4096, 32, requires_grad=True)
    w = (torch.randn(1024, 32) * 0.01).requires_grad_()
    t = torch.randint(0, 1000, (4096,))
    with torch.autocast("cpu", dtype=torch.float16):
        fused_loss.linear_cross_entropy(x, w, t, 1000).backward()
    ref_w = w.detach().requires_grad_()
    reference(x.detach(), ref_w, t, 1000).backward()
    assert ((w.grad - ref_w.grad).norm() / ref_w.grad.norm()).item() < 2e-3  # 1e-2 when divided first
