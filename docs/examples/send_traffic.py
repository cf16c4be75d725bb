"""Send the rows of a CSV to a deployment as production traffic, one row per request (docs/your-own-model.md).

    .venv/bin/python docs/examples/send_traffic.py URL .work/cancer.csv [--repeat 4] [--shift FEATURE=FACTOR]

Each request carries its own X-Request-Id (the prediction log keys rows by it). --shift multiplies one feature, to
see `modelops drift` flag it.
"""

import argparse
import csv
import uuid

import httpx

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("csv")
parser.add_argument("--label-column", default="label")
parser.add_argument("--repeat", type=int, default=4)
parser.add_argument("--shift", default=None, help="FEATURE=FACTOR: multiply one feature")
args = parser.parse_args()

with open(args.csv, newline="") as handle:
    records = list(csv.DictReader(handle))
features = [name for name in records[0] if name != args.label_column]
feature, factor = args.shift.split("=") if args.shift else (None, "1")
sent = failed = 0
with httpx.Client(base_url=args.url, timeout=30) as client:
    for _ in range(args.repeat):
        for record in records:
            row = [float(record[f]) * (float(factor) if f == feature else 1.0) for f in features]
            answer = client.post("/predict", json={"rows": [row]}, headers={"x-request-id": uuid.uuid4().hex})
            sent, failed = sent + 1, failed + (answer.status_code != 200)
print(f"{sent} requests, {failed} failed")
