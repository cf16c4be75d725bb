"""Train a gradient-boosting classifier on scikit-learn's breast cancer data, save it to the BentoML store and write
its held-out rows as the reference CSV (docs/your-own-model.md).

    BENTOML_HOME=.work/bentoml .venv/bin/python docs/examples/save_cancer.py [--max-depth 3] [--out .work/cancer.csv]
"""

import argparse
import csv

import bentoml
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--max-depth", type=int, default=3)
parser.add_argument("--out", default=".work/cancer.csv")
args = parser.parse_args()

data = load_breast_cancer()
x_train, x_test, y_train, y_test = train_test_split(data.data, data.target, random_state=0)
model = GradientBoostingClassifier(max_depth=args.max_depth, random_state=0).fit(x_train, y_train)
print(bentoml.sklearn.save_model("cancer_gb", model).tag)

# The reference: a header naming the features (the API's names: the model was fitted on a plain array) and a label.
with open(args.out, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow([name.replace(" ", "_") for name in data.feature_names] + ["label"])
    writer.writerows([*row, label] for row, label in zip(x_test.tolist(), y_test.tolist(), strict=True))
