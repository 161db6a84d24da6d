"""The GPTQ paper's perplexity (IST-DASLab/gptq bloom.py bloom_eval / llama.py llama_eval): the
token stream cut into non-overlapping windows of seqlen tokens (the remainder dropped), each
window's mean next-token cross-entropy computed by the whole model in fp32, perplexity
exp(sum(nll * seqlen) / (nwindows * seqlen)). The one copy the fixture and reference scripts
share (make_fixtures.py, make_family_fixtures.py, smollm2_reference.py)."""
import torch


@torch.no_grad()
def window_nlls(model, tokens, seqlen, log=None):
    """tokens: int tensor [1, n]. Returns (per-window NLL as Python floats, perplexity tensor)."""
    nsamples = tokens.numel() // seqlen
    nlls, window_nll = [], []
    for i in range(nsamples):
        batch = tokens[:, i * seqlen:(i + 1) * seqlen]
        lm_logits = model(input_ids=batch, use_cache=False).logits
        shift_logits = lm_logits[:, :-1, :].contiguous()
        shift_labels = batch[:, 1:]
        loss = torch.nn.CrossEntropyLoss()(shift_logits.view(-1, shift_logits.size(-1)),
                                           shift_labels.reshape(-1))
        nlls.append(loss.float() * seqlen)
        window_nll.append(loss.item())
        if log:
            log(f"window {i + 1}/{nsamples}: nll {loss.item():.6f}")
    ppl = torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen))
    return window_nll, ppl


def perplexity_fixture(model, tokens, seqlen):
    """The tensors of a perplexity.safetensors fixture (tests/unit/test_perplexity.cpp)."""
    window_nll, ppl = window_nlls(model, tokens, seqlen)
    return {
        "tokens": tokens.reshape(-1).to(torch.int32).contiguous(),
        "seqlen": torch.tensor([seqlen], dtype=torch.int64),
        "window_nll": torch.tensor(window_nll, dtype=torch.float64),
        "ppl": torch.tensor([ppl.item()], dtype=torch.float64),
    }
