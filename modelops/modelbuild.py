"""`modelops build --model NAME:TAG`: any saved tabular model served by the platform's template, no service code.

Steps, each printed:
1. find the model: the project's store ($BENTOML_HOME, .work/bentoml), else a BentoML store the user names
   (--model-store DIR or MODELOPS_MODEL_STORE), from which it is imported with BentoML's own export/import;
2. inspect it (the **profile**): the task (classification when the estimator is a classifier with predict_proba,
   regression when it predicts values), the features (the model's metadata ``feature_names``, else its
   ``feature_names_in_``, else the reference CSV's header when the model was fitted on a plain array, else
   ``x0 … x{n-1}`` from ``n_features_in_``), the classes (metadata ``classes``, else ``classes_``), the input contract
   (bento/contract.py), the drift reference and golden rows (from --reference FILE.csv, or the model's own);
   a model the template cannot serve is refused with what is missing;
3. acceleration (modelops/acceleration.py): compile, prove, measure, choose;
4. record the profile in the model's metadata (in the project store; the bento carries a copy of the model and
   so of it), the compiled model and the labelled reference in the model's directory;
5. ``bentoml build`` the template (bento/service.py) over that model, with a bentofile that adds the model's
   framework and ONNX Runtime (when chosen) to the bento's Python packages.

Where the reference goes: the CSV itself is copied into the model's directory as ``modelops-reference.csv``
(``metadata["reference_file"]``), so it travels with the model into every bento; its statistics go into
``metadata["reference_stats"]`` (what `modelops drift` reads). With a label column it is also the labelled quality
set: point ``gate.quality_data`` at the printed path.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bento import served
from bento.contract import NoInputRangeError, probe_input_dtype
from bento.pinning import ENV_MODEL
from modelops.errors import BentoNotFoundError, UsageError

ENV_MODEL_STORE = "MODELOPS_MODEL_STORE"  # a user's own BentoML store (a BENTOML_HOME), searched after the project's
DEFAULT_LABEL_COLUMN = "label"
REFERENCE_FILE = "modelops-reference.csv"
GOLDEN_ROWS = 8
PROFILE_KEY = "modelops_profile"  # the build that wrote the profile: {"reference": path given, "accelerate": bool}


class ModelRefusedError(UsageError):
    """The template cannot serve this model: the message names what is missing and how to provide it."""


@dataclass(frozen=True)
class Reference:
    features: list[str]
    x: np.ndarray
    labels: list[str] | None  # the label column, when the CSV has one
    path: Path


@dataclass
class Profile:
    task: str
    features: list[str]
    classes: list[str]
    contract: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # printed at build: what was found where, what is off


# ------------------------------------------------------------------------------------------------ finding it
def user_store(explicit: Path | None, environ: dict[str, str] | os._Environ = os.environ) -> Path | None:
    value = explicit or (Path(environ[ENV_MODEL_STORE]) if environ.get(ENV_MODEL_STORE) else None)
    return value.expanduser() if value else None


def locate(tag: str, store: Path | None = None, default_store: Path | None = None) -> Any:
    """The model from the project's store; imported there first from ``store`` (a BentoML home) when given."""
    import bentoml

    from modelops.bentos import bentoml_home

    home = bentoml_home()
    default_store = default_store or Path.home() / "bentoml"
    try:
        return bentoml.models.get(tag)
    except (bentoml.exceptions.NotFound, ValueError):
        pass
    if store is not None:
        if store.resolve() == home.resolve():
            raise BentoNotFoundError(f"model {tag!r} is not in {home / 'models'}: `bentoml models list` shows what is")
        import_model(tag, store, home)
        return bentoml.models.get(tag)
    name = tag.partition(":")[0]
    hint = ""
    if default_store.resolve() != home.resolve() and (default_store / "models" / name).is_dir():
        hint = (
            f"; {default_store / 'models' / name} has it (BentoML's default store): pass --model-store {default_store} "
            f"(or set {ENV_MODEL_STORE}={default_store}) to import it into the project's store"
        )
    raise BentoNotFoundError(
        f"model {tag!r} is not in the project's store {home / 'models'} (BENTOML_HOME){hint or ''}: save it there "
        f"(BENTOML_HOME={home} python your_training.py), or name your own store with --model-store DIR"
    )


def import_model(tag: str, store: Path, home: Path) -> None:
    """Copy ``tag`` from the store at ``store`` into ``home`` with BentoML's own export and import."""
    with tempfile.TemporaryDirectory(prefix="modelops-model-") as folder:
        archive = Path(folder) / "model.bentomodel"
        for argv, where in (
            (["models", "export", tag, str(archive)], store),
            (["models", "import", str(archive)], home),
        ):
            env = {**os.environ, "BENTOML_HOME": str(where), "BENTOML_DO_NOT_TRACK": "true"}
            result = subprocess.run(
                [sys.executable, "-m", "bentoml", *argv], env=env, capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise BentoNotFoundError(
                    f"could not copy model {tag!r} from {store}: `bentoml {' '.join(argv[:2])}` said "
                    f"{(result.stderr or result.stdout).strip()[-600:]}: check the tag with "
                    f"`BENTOML_HOME={store} bentoml models list`"
                )


# ------------------------------------------------------------------------------------------------ reference
def read_reference(path: Path, label_column: str = DEFAULT_LABEL_COLUMN) -> Reference:
    """A CSV with a header: one column per feature (the names the API will use), optionally a label column."""
    if not path.is_file():
        raise UsageError(f"--reference {path}: no such file")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise UsageError(f"--reference {path} is empty: it needs a header naming the features, then rows")
        header = [h.strip() for h in header]
        has_labels = label_column in header
        features = [h for h in header if h != label_column]
        rows, labels = [], []
        for line, values in enumerate(reader, start=2):
            if not values:
                continue
            if len(values) != len(header):
                raise UsageError(f"--reference {path}, line {line}: {len(values)} values for {len(header)} columns")
            record = dict(zip(header, values, strict=True))
            try:
                rows.append([float(record[f]) for f in features])
            except ValueError as exc:
                raise UsageError(f"--reference {path}, line {line}: {exc}: feature values must be numbers") from None
            if has_labels:
                labels.append(record[label_column].strip())
    if len(rows) < 2:
        raise UsageError(f"--reference {path} has {len(rows)} row(s): give at least a few hundred rows for drift")
    x = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(x).all():
        raise UsageError(
            f"--reference {path} holds NaN or infinite values: the API refuses them, so must the reference"
        )
    return Reference(features, x, labels if has_labels else None, path)


# ------------------------------------------------------------------------------------------------ inspection
def inspect(estimator: Any, metadata: dict, reference: Reference | None) -> Profile:
    """The profile of ``estimator``, or ModelRefusedError naming what the template is missing."""
    notes: list[str] = []
    if not callable(getattr(estimator, "predict", None)):
        raise ModelRefusedError(
            f"the model ({type(estimator).__name__}) has no predict method: the template serves objects with "
            "scikit-learn's predict (and predict_proba for a classifier)"
        )
    kind = estimator_kind(estimator)
    if metadata.get(served.TASK) in served.TASKS:
        task = str(metadata[served.TASK])
    elif kind == "classifier" or (kind is None and hasattr(estimator, "classes_")):
        task = served.CLASSIFICATION
    else:
        task = served.REGRESSION
    classes: list[str] = []
    if task == served.CLASSIFICATION:
        if not callable(getattr(estimator, "predict_proba", None)):
            raise ModelRefusedError(
                f"the classifier ({type(estimator).__name__}) has no predict_proba: the API answers each class's "
                "probability; refit it with probabilities on (e.g. SVC(probability=True)) or wrap it in "
                "sklearn.calibration.CalibratedClassifierCV"
            )
        if metadata.get(served.CLASSES):
            classes = [str(c) for c in metadata[served.CLASSES]]
        elif hasattr(estimator, "classes_"):
            classes = [str(c) for c in np.asarray(estimator.classes_).tolist()]
            notes.append(f"classes from the model's classes_: {', '.join(classes)}")
        else:
            raise ModelRefusedError(
                "the classifier has no classes_ and its metadata no 'classes': save it with "
                "metadata={'classes': [...]} (the label of each predict_proba column, in order)"
            )
    features = _features(estimator, metadata, reference, notes)
    if reference is not None:
        missing = [f for f in features if f not in reference.features]
        if missing:
            raise ModelRefusedError(
                f"--reference {reference.path} lacks the feature column(s) {', '.join(missing)}: its header must "
                f"name the model's features ({', '.join(features)})"
            )
    try:
        dtype, bound = probe_input_dtype(served.original_predict(estimator, task), len(features))
    except NoInputRangeError as exc:
        raise ModelRefusedError(f"the model does not predict on rows of {len(features)} numbers: {exc}") from None
    except Exception as exc:  # the model's own error on a plain float array: it wants something else
        raise ModelRefusedError(
            f"the model raised on a row of {len(features)} numbers ({type(exc).__name__}: {str(exc)[:300]}): the "
            "template serves models that take one row of numeric features per sample"
        ) from None
    return Profile(task, features, classes, {"dtype": dtype, "max_abs": bound}, notes)


def estimator_kind(estimator: Any) -> str | None:
    """classifier, regressor or None: scikit-learn's own tags (its estimators and wrappers such as XGBoost's), else
    the older ``_estimator_type`` attribute (bento/served.py's LightGBMBooster keeps it)."""
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_classifier(estimator):
            return "classifier"
        if is_regressor(estimator):
            return "regressor"
    except AttributeError:  # not a scikit-learn estimator: no __sklearn_tags__
        pass
    return getattr(estimator, "_estimator_type", None)


def _features(estimator: Any, metadata: dict, reference: Reference | None, notes: list[str]) -> list[str]:
    count = getattr(estimator, "n_features_in_", None)
    fitted = getattr(estimator, "feature_names_in_", None)
    if metadata.get(served.FEATURES):
        features = [str(f) for f in metadata[served.FEATURES]]
    elif fitted is not None and not _generic_names(list(fitted)):
        features = [str(f) for f in fitted]
        notes.append("features from the model's feature_names_in_")
    elif reference is not None and (count is None or int(count) == len(reference.features)):
        features = list(reference.features)
        notes.append(f"features named by the reference's header ({reference.path.name}): the model has no names")
    elif count is not None:
        features = [f"x{i}" for i in range(int(count))]
        notes.append(
            f"features x0 … x{int(count) - 1}: the model has no names; give --reference with a header to name them"
        )
    else:
        raise ModelRefusedError(
            "cannot tell which features the model takes: it has no n_features_in_ or feature_names_in_ and its "
            "metadata no 'feature_names': save it with metadata={'feature_names': [...]} or pass --reference FILE.csv"
        )
    if count is not None and int(count) != len(features):
        raise ModelRefusedError(
            f"the model takes {int(count)} features but {len(features)} are named ({', '.join(features[:8])}…): "
            "make metadata 'feature_names' or the reference's header match the model"
        )
    if fitted is not None and not _generic_names(list(fitted)) and [str(f) for f in fitted] != features:
        raise ModelRefusedError(
            f"the model was fitted on features {[str(f) for f in fitted]} but is described as {features}: the API "
            "sends values in the fitted order; fix the metadata 'feature_names'"
        )
    return features


def _generic_names(names: list) -> bool:
    """LightGBM names the columns of a plain array Column_0, Column_1 …: not names a user chose."""
    return all(str(n) == f"Column_{i}" for i, n in enumerate(names))


# ------------------------------------------------------------------------------------------------ preparing
def check_rows_for(metadata: dict, reference: Reference | None, features: list[str]) -> np.ndarray:
    """Rows to prove acceleration on: the reference's, else the model's saved reference sample and golden rows."""
    from modelops.acceleration import check_rows

    if reference is not None:
        return check_rows(reference.x[:, [reference.features.index(f) for f in features]])
    base: list[list[float]] = list((metadata.get("golden") or {}).get("rows", []))
    stats = metadata.get("reference_stats") or {}
    if all(f in stats for f in features):
        base += np.column_stack([stats[f]["sample"] for f in features]).tolist()
    if not base:
        base = [[0.0] * len(features), [1.0] * len(features)]
    return check_rows(np.asarray(base, dtype=np.float64))


def prepare(
    model: Any, reference: Reference | None = None, accelerate: bool = True, say=lambda line: None, golden_rows=True
) -> dict[str, Any]:
    """Inspect, accelerate and record: the model's metadata gains its profile (returned). ``golden_rows=False``
    (a profile for a bento of your own, whose answers may be shaped otherwise) records no golden rows."""
    from bento.train import reference_statistics
    from modelops.acceleration import decide

    metadata = dict(model.info.metadata)
    try:
        estimator = served.load_estimator(model)
    except served.NotServableError as exc:  # the framework or the object is not one the template serves
        raise ModelRefusedError(str(exc)) from None
    profile = inspect(estimator, metadata, reference)
    for note in profile.notes:
        say(note)
    update: dict[str, Any] = {
        served.TASK: profile.task,
        served.FEATURES: profile.features,
        served.CONTRACT: profile.contract,
        PROFILE_KEY: {"reference": str(reference.path) if reference else None, "accelerate": accelerate},
    }
    if profile.task == served.CLASSIFICATION:
        update[served.CLASSES] = profile.classes
    model_dir = Path(model.path)
    ordered = reference.x[:, [reference.features.index(f) for f in profile.features]] if reference else None
    if reference is not None and ordered is not None:
        update["reference_stats"] = reference_statistics(ordered, profile.features)
        shutil.copyfile(reference.path, model_dir / REFERENCE_FILE)
        update["reference_file"] = REFERENCE_FILE
        if reference.labels is not None:
            say(f"labelled reference kept at {model_dir / REFERENCE_FILE}: the gate's quality suite judges on it")
    elif "reference_stats" not in metadata:
        say("no drift reference: pass --reference FILE.csv (a header naming the features) to monitor drift")
    rows = check_rows_for(metadata, reference, profile.features)
    (model_dir / served.ACCELERATED_FILE).unlink(missing_ok=True)
    if accelerate:
        decision = decide(estimator, profile.task, len(profile.features), rows, len(profile.classes))
        for line in decision.summary():
            say(line)
        if decision.onnx_bytes is not None:
            (model_dir / served.ACCELERATED_FILE).write_bytes(decision.onnx_bytes)
            if profile.contract["max_abs"] > float(np.finfo(np.float32).max):
                # The compiled model reads float32: a larger finite value would become inf inside it.
                update[served.CONTRACT] = {"dtype": "float32", "max_abs": float(np.finfo(np.float32).max)}
        update[served.ACCELERATION] = decision.record()
    else:
        update[served.ACCELERATION] = {"chosen": served.ORIGINAL, "reason": "--no-accelerate"}
    served_now = served.accelerated_predict(
        estimator, profile.task, update[served.ACCELERATION]["chosen"], model_dir, len(profile.classes)
    )
    labelled = reference is not None and reference.labels is not None and profile.task == served.CLASSIFICATION
    truth = labelled_truth(reference, profile) if labelled and reference is not None else None
    if truth is not None and ordered is not None:
        # The labelled reference is the model's held-out set for the gate's quality suite, as training keeps one for
        # the reference model (bento/train.py): rows with their TRUE labels, and how many the model got right.
        update["holdout"] = holdout(served_now, ordered, truth, profile)
    golden_x = (ordered if ordered is not None else rows)[:GOLDEN_ROWS]
    if golden_rows and (reference is not None or "golden" not in metadata):
        update["golden"] = golden(served_now, golden_x, profile, truth[:GOLDEN_ROWS] if truth else None)
    write_metadata(model, update)
    return {**metadata, **update}


def labelled_truth(reference: Reference, profile: Profile) -> list[str]:
    """The reference's labels, each one of the model's classes (else the model is refused, naming the label)."""
    labels = reference.labels or []
    unknown = sorted(set(labels) - set(profile.classes))
    if unknown:
        raise ModelRefusedError(
            f"the reference's label column holds {', '.join(map(repr, unknown[:5]))}, which are not among the model's "
            f"classes ({', '.join(profile.classes)}): write the labels as the model's classes, or leave the column out"
        )
    return list(labels)


def holdout(predict, rows: np.ndarray, truth: list[str], profile: Profile) -> dict[str, Any]:
    """The labelled reference as a held-out set (at most HOLDOUT_MAX_ROWS, a stratified sample above that), with the
    number of rows the served model answers correctly (a deployed copy must do as well)."""
    from bento.train import kept_holdout

    y = np.asarray([profile.classes.index(label) for label in truth])
    kept_x, kept_y = kept_holdout(rows, y, seed=0)
    predicted = np.asarray(predict(kept_x), dtype=np.float64).argmax(axis=1)
    return {
        "rows": kept_x.tolist(),
        "labels": [profile.classes[int(i)] for i in kept_y],
        "right": int((predicted == kept_y).sum()),
        "of_rows": len(truth),
    }


def golden(predict, rows: np.ndarray, profile: Profile, truth: list[str] | None = None) -> dict[str, Any]:
    """Rows the gate's smoke suite sends to every candidate: their TRUE labels when the reference has them (a model
    that answers wrongly fails smoke), else the served model's own answers; ``predicted`` is always its own."""
    out = np.asarray(predict(rows), dtype=np.float64)
    if profile.task == served.CLASSIFICATION:
        own = [profile.classes[i] for i in out.argmax(axis=1)]
        return {"rows": rows.tolist(), "labels": truth or own, "predicted": own, "probabilities": out.tolist()}
    return {"rows": rows.tolist(), "labels": out.tolist(), "values": out.tolist()}


def write_metadata(model: Any, update: dict[str, Any]) -> None:
    """Add ``update`` to the model's metadata in the store (model.yaml), as BentoML itself writes it."""
    model.info.metadata.update(_without_none(update))
    with (Path(model.path) / "model.yaml").open("w", encoding="utf8") as handle:
        model.info.dump(handle)


def _without_none(value: Any) -> Any:
    """BentoML's metadata takes no None (its validator refuses it): unknown entries are left out."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value if v is not None]
    return value


# ------------------------------------------------------------------------------------------------ the bentofile
def bentofile_for(model: Any, metadata: dict, bento_dir: Path, template: str = "bentofile.yaml") -> Path:
    """A bentofile for the template over ``model`` (in ``bento_dir``, where bentoml build needs it): the
    template bentofile's includes and packages, plus the model's framework and ONNX Runtime when chosen."""
    from importlib.metadata import PackageNotFoundError, version

    base = yaml.safe_load((bento_dir / template).read_text())
    packages = list(base.get("python", {}).get("packages", []))
    wanted = {"bentoml.xgboost": "xgboost", "bentoml.lightgbm": "lightgbm"}.get(str(model.info.module))
    extra = [wanted] if wanted else []
    if (metadata.get(served.ACCELERATION) or {}).get("chosen") == served.ONNXRUNTIME:
        extra.append("onnxruntime")
    for name in extra:
        try:
            packages.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            try:
                packages.append(f"xgboost-cpu=={version('xgboost-cpu')}")  # xgboost's CPU-only wheel
            except PackageNotFoundError:
                raise UsageError(f"{name} is not installed here: `pip install {name}` (the model needs it)") from None
    base.setdefault("python", {})["packages"] = packages
    # The build's acceleration decision on the bento itself too (`bentoml get NAME:VERSION` shows its labels); the
    # figures and the reasons are in the model's metadata, which the bento carries.
    decision = metadata.get(served.ACCELERATION) or {}
    labels = base.setdefault("labels", {})
    labels["modelops.accelerator"] = str(decision.get("chosen", served.ORIGINAL))
    if decision.get("speedup"):
        labels["modelops.speedup"] = f"{float(decision['speedup']):.2f}"
    if template == "bentofile.yaml":
        base["description"] = f"{model.tag}: served by the modelops template ({metadata.get(served.TASK)})"
    # A file of its own per build (two builds at once must not share one), beside the template: bentoml build
    # refuses a bentofile outside its working directory. The caller removes it.
    descriptor, name = tempfile.mkstemp(dir=bento_dir, prefix=".bentofile-", suffix=".yaml")
    with os.fdopen(descriptor, "w", encoding="utf8") as handle:
        yaml.safe_dump(base, handle, sort_keys=False)
    return Path(name)


@dataclass(frozen=True)
class BuildResult:
    bento: str | None  # None: the profile only (--profile-only)
    model: str
    metadata: dict


def build_model(
    tag: str,
    reference: Path | None = None,
    label_column: str = DEFAULT_LABEL_COLUMN,
    store: Path | None = None,
    accelerate: bool = True,
    record: bool = True,
    say=lambda line: None,
    bentofile: str | None = None,
    force: bool = True,
    profile_only: bool = False,
) -> BuildResult:
    """Find, prepare and build: the bento of the template serving model ``tag``. ``profile_only``: record the
    profile and reference (for a bento of your own, bento/monitoring.py) and build nothing."""
    from modelops import bentos

    model = locate(tag, store)
    loaded = read_reference(reference, label_column) if reference else None
    metadata = dict(model.info.metadata)
    if profile_only:
        metadata = prepare(model, loaded, accelerate=False, say=say, golden_rows=False)
        return BuildResult(bento=None, model=str(model.tag), metadata=metadata)
    if force or not is_prepared(metadata, accelerate):
        metadata = prepare(model, loaded, accelerate=accelerate, say=say)
    else:
        decision = metadata.get(served.ACCELERATION) or {}
        say(f"serving with {decision.get('chosen', served.ORIGINAL)} (proven when this model version was prepared)")
    generated = bentofile_for(model, metadata, bentos.BENTO_DIR, bentofile or "bentofile.yaml")
    try:
        bento = bentos.build(bentofile=generated.name, record=record, env={ENV_MODEL: str(model.tag)})
    finally:
        generated.unlink(missing_ok=True)
    return BuildResult(bento=bento, model=str(model.tag), metadata=metadata)


def is_prepared(metadata: dict, accelerate: bool = True) -> bool:
    """The profile of this model version was recorded by a build with the same acceleration choice."""
    build = metadata.get(PROFILE_KEY) or {}
    return bool(build) and served.ACCELERATION in metadata and build.get("accelerate") == accelerate
