"""Write the demo's corpus, query images and labels file (see `make demo`)."""

import sys
from pathlib import Path

from xmore_db.synthetic import write_corpus, write_labels, write_queries

root = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data")
write_corpus(root / "corpus", 400, seed=0)
paths, truth = write_queries(root / "queries", 6, seed=1)
write_labels(root / "labels.txt", "shape")
print(f"wrote 400 captioned images to {root / 'corpus'}, {len(paths)} queries to {root / 'queries'}", file=sys.stderr)
