"""Cost of the default embedding model: time from import to the first vector, memory,
and throughput, each in a fresh process (as a starting RAG service pays it).

Run: .venv/bin/python benchmarks/bench_rag_model_load.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, resource, time
started = time.perf_counter()
from services.rag.embeddings.multilingual import _shared_model
model = _shared_model()
ready = time.perf_counter() - started
texts = [f"Note {i}: 회의에서 예산을 논의했다. The budget was discussed." for i in range(256)]
began = time.perf_counter()
model.encode(texts)
rate = len(texts) / (time.perf_counter() - began)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first_vector_s": ready, "max_rss_mb": rss, "texts_per_s": rate}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
            ).stdout
        )
        for _ in range(args.runs)
    ]
    print("| import to first vector s | max RSS MB | texts/s (256 short, one batch) |")
    print("|---|---|---|")
    print(
        f"| {statistics.median(r['first_vector_s'] for r in runs):.2f} "
        f"| {statistics.median(r['max_rss_mb'] for r in runs):.0f} "
        f"| {statistics.median(r['texts_per_s'] for r in runs):.0f} |"
    )


if __name__ == "__main__":
    main()
