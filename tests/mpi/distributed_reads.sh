#!/usr/bin/env bash
# Each rank reads only its own blocks' tensors (DESIGN.md §3, issue 5: "byte ranges of the
# mmapped shards, never a whole shard"). A random model of 4 blocks of hidden 512 is written with
# every block, and the embedding + final norm, in a file of its own (12 MiB per block, 8 MiB of
# embedding: far more than the 2 MiB page-cache folio the kernel may map on a first read; numpy
# makes the weights, the pure-Python scripts/make_tiny_bloom.py would take minutes). A 2-stage
# job logs (debug) how many kB of each file are resident in each rank (/proc/self/smaps): its
# own files entirely, another stage's files at most the folio around the header.
source "$(dirname "$0")/../cli/lib.bash"
[[ -r /proc/self/smaps ]] || { echo "SKIP: no /proc/self/smaps"; exit 77; }

/usr/bin/python3 - "$WORK/model" <<'PY'
import json, os, struct, sys
import numpy as np
dst = sys.argv[1]
layers, h, heads, vocab = 4, 512, 8, 4096
os.makedirs(dst)
json.dump({"model_type": "bloom", "architectures": ["BloomForCausalLM"], "hidden_size": h,
           "n_head": heads, "n_layer": layers, "vocab_size": vocab, "layer_norm_epsilon": 1e-5,
           "torch_dtype": "float32"}, open(f"{dst}/config.json", "w"))
rng = np.random.default_rng(0)
def normal(*shape): return rng.normal(0, 0.02, shape).astype(np.float32)
files = {"embedding.safetensors": {"word_embeddings.weight": normal(vocab, h),
                                   "word_embeddings_layernorm.weight": np.ones(h, np.float32),
                                   "word_embeddings_layernorm.bias": np.zeros(h, np.float32),
                                   "ln_f.weight": np.ones(h, np.float32),
                                   "ln_f.bias": np.zeros(h, np.float32)}}
for i in range(layers):
    p = f"h.{i}."
    files[f"block-{i}.safetensors"] = {
        p + "input_layernorm.weight": np.ones(h, np.float32), p + "input_layernorm.bias": np.zeros(h, np.float32),
        p + "self_attention.query_key_value.weight": normal(3 * h, h), p + "self_attention.query_key_value.bias": np.zeros(3 * h, np.float32),
        p + "self_attention.dense.weight": normal(h, h), p + "self_attention.dense.bias": np.zeros(h, np.float32),
        p + "post_attention_layernorm.weight": np.ones(h, np.float32), p + "post_attention_layernorm.bias": np.zeros(h, np.float32),
        p + "mlp.dense_h_to_4h.weight": normal(4 * h, h), p + "mlp.dense_h_to_4h.bias": np.zeros(4 * h, np.float32),
        p + "mlp.dense_4h_to_h.weight": normal(h, 4 * h), p + "mlp.dense_4h_to_h.bias": np.zeros(h, np.float32)}
weight_map, total = {}, 0
for f, tensors in files.items():
    head, off, blobs = {}, 0, []
    for name, a in tensors.items():
        b = a.tobytes()
        head["transformer." + name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
        weight_map["transformer." + name] = f
    text = json.dumps(head).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(f"{dst}/{f}", "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    total += off
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(f"{dst}/model.safetensors.index.json", "w"))
PY
make_tokens "$WORK/tokens.safetensors" 4000  # ids < 512 < vocab
write_config "$WORK/job.yaml" "$WORK/model" "$WORK/ckpt.h5" "parallel:
  stages: 2"
GPTQD_LOG_LEVEL=debug "${MPIRUN[@]}" -np 2 "$BIN" quantize "$WORK/job.yaml" --threads 1 >"$WORK/run.out" 2>"$WORK/run.err" ||
  { cat "$WORK/run.err"; fail "quantize failed"; }

python3 - "$WORK/run.err" "$WORK/model" <<'PY' || { grep "resident" "$WORK/run.err"; fail "a rank touched another stage's tensors"; }
import os, re, sys
log, model = sys.argv[1:]
size = {f: os.path.getsize(os.path.join(model, f)) // 1024 for f in os.listdir(model) if f.endswith(".safetensors")}
owned = {0: {"embedding.safetensors", "block-0.safetensors", "block-1.safetensors"},
         1: {"block-2.safetensors", "block-3.safetensors"}}
seen = {0: {}, 1: {}}
for rank, path, kb in re.findall(r"\[rank (\d)\] \[debug\] model file (\S+): (\d+) kB resident", open(log).read()):
    seen[int(rank)][os.path.basename(path)] = int(kb)
for rank in (0, 1):
    for f, kb in sorted(size.items()):
        got = seen[rank].get(f, 0)
        print(f"rank {rank}: {f:24s} {got:6d} of {kb:6d} kB resident")
        if f in owned[rank]:
            assert got >= 0.9 * kb, f"rank {rank} did not read its own {f}"
        else:
            assert got <= 2048 + 64, f"rank {rank} touched {got} kB of {f}, which belongs to another stage"
PY
echo "reads: ok"
