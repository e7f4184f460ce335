"""Write the demo's data (see `make demo`): the proof domain's corpus, test sets and a few query images.

    python scripts/make_demo_data.py demo-data [--corpus 3000] [--test 300] [--test-seed 1000]

demo-data/corpus/          images + captions.csv: the external corpus to ingest (a quarter are sketches),
                           and attributes.csv: each pair's drawn attributes (for `xmore eval --corpus-attributes`)
demo-data/tests/<task>/    ImageFolder test sets with labels.txt: shape, colour, texture, shape-sketch
demo-data/queries/         a few images for `xmore classify`, with demo-data/labels.txt (shapes)
demo-data/textbanks/<task>.json  CODER text banks from the generator's vocabulary (for `xmore eval --textbank`)
"""

import argparse
import sys
import time
from pathlib import Path

from xmore_db.toy import TASKS, write_corpus, write_test_set
from xmore_db.toy.render import SHAPES
from xmore_db.toy.textbank import write_toy_banks

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("root", nargs="?", type=Path, default=Path("demo-data"))
parser.add_argument("--corpus", type=int, default=3000, help="corpus pairs")
parser.add_argument("--test", type=int, default=300, help="images per test set")
parser.add_argument("--queries", type=int, default=6, help="query images for the classify step")
parser.add_argument("--test-seed", type=int, default=1000,
                    help="seed of the first test set (the others follow: +1, +2, +3); change it for fresh test sets")
args = parser.parse_args()

started = time.perf_counter()
root = args.root
write_corpus(root / "corpus", args.corpus, seed=0, sketch_fraction=0.25)
for i, name in enumerate(TASKS):
    write_test_set(root / "tests" / name, name, args.test, seed=args.test_seed + i)
write_test_set(root / "queries", "shape", args.queries, seed=999)
(root / "labels.txt").write_text("\n".join(SHAPES) + "\n", encoding="utf-8")
write_toy_banks(root / "textbanks")
print(f"wrote {args.corpus} captioned images to {root / 'corpus'}, test sets {', '.join(TASKS)} "
      f"({args.test} images each) to {root / 'tests'}, {args.queries} queries to {root / 'queries'}, "
      f"text banks to {root / 'textbanks'} "
      f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
