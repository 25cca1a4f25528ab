"""sentence-transformers' side of scripts/bench-embeddings.

    python3 bench_embeddings_st.py MODEL_DIR CHUNKS_JSONL OUT_F32 [BATCH] [ROUNDS]

Embeds every chunk (one JSON string per line) with the sentence-transformers model in
MODEL_DIR on the CPU, writes the vectors to OUT_F32 (little-endian f32, row after row) and
prints one Markdown table row like embed_bench's: the best of ROUNDS passes after a warm-up on
the first 16 chunks, and the peak RSS of this process.
"""

import json
import resource
import sys
import time

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def main():
    model_dir, chunks_path, out = sys.argv[1:4]
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    chunks = [json.loads(line) for line in open(chunks_path, encoding="utf-8") if line.strip()]
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(chunks[:16], batch_size=batch)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        vectors = model.encode(chunks, batch_size=batch, convert_to_numpy=True, normalize_embeddings=True)
        best = min(best, time.perf_counter() - start)
    np.ascontiguousarray(vectors, dtype="<f4").tofile(out)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    label = f"sentence-transformers {sentence_transformers.__version__} (torch {torch.__version__})"
    print(
        f"| {label} | {len(chunks)} | {batch} | {torch.get_num_threads()} | {len(chunks) / best:.1f} "
        f"| {peak_mib:.0f} | reference | reference |"
    )


if __name__ == "__main__":
    main()
