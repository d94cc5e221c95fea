"""Models that leave the toolkit: ONNX export of trained torch models, and `OnnxClassifier`,
which runs an exported file with onnxruntime.

`export_onnx(model, out)` writes what `TorchClassifier.predict_proba` computes as one ONNX
graph: each input standardised with the mean and spread of the model's training inputs,
moved from channels last (the toolkit's arrays: N x H x W x C, N x T x H x W x C) to channels
first, the network in eval mode (dropout off, batch norm on its running statistics, MOL's
centre crop, MiMaNet's fixed sampling interval), and the softmax of its logits. The graph's
inputs are named as the model's inputs ("input", or the named inputs of a multi-input model
such as mimanet's "apex" and "clip"), float32 with a dynamic batch axis; its one output is
"probabilities" (N x classes, columns in `classes` order).

The file's metadata (ONNX `metadata_props`, JSON values) carries what a user of the file
needs: the microexpr version, the model's name, params and paper reference, the classes, the
input spec (names, per-sample shapes, channel names, dtype, layout) and the model's input
recipe (how its inputs are computed from clips, `microexpr.training.inputs`), so that
`OnnxClassifier.load(path)` works wherever a TorchClassifier does: `model_inputs(model,
clips)`, `microexpr analyze VIDEO --model model.onnx`.

Export needs the `export` extra (onnx, onnxscript; onnxruntime to verify the file and run
it): ``pip install 'microexpr[export]'``. Scikit-learn models are not exported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from microexpr import __version__
from microexpr.errors import ConfigError, InputShapeError, MicroexprError
from microexpr.training.inputs import InputRecipe

if TYPE_CHECKING:
    import onnx
    import torch

    from microexpr.models.registry import ModelSpec
    from microexpr.training.torch_classifier import TorchClassifier

OPSET = 20  # GridSample and AffineGrid (deep_emotion's spatial transformer) in their 20 form
MIN_OPSET = 18  # the opset the torch exporter's operator library is written in
OUTPUT = "probabilities"
FORMAT = "microexpr-onnx"
FORMAT_VERSION = 1
SINGLE = "input"  # the name of the one input of a single-input model (as TorchClassifier)
TOLERANCE = 1e-4  # largest difference from torch's probabilities a verified export may have
EXPORT_BATCH, VERIFY_BATCH = 2, 3  # different sizes: the verification runs the dynamic batch
INSTALL = "pip install 'microexpr[export]'"


# -- export ---------------------------------------------------------------------------------

def export_onnx(model: Any, out: str | Path, *, opset: int | None = None,
                overwrite: bool = False, verify: bool = True) -> Path:
    """Export a trained torch model to the ONNX file `out` (.onnx); returns its path.

    `model`: a trained TorchClassifier, or the path of one saved by ``.save()``,
    `microexpr train` or `evaluate --save-models`. The graph takes the model's inputs
    channels last, unstandardised, as `predict_proba` does, and returns the class
    probabilities (see the module's docstring). `opset`: the ONNX opset (default 20, at
    least 18). `out` must be new unless `overwrite`. With `verify` (default) the graph is run
    by onnxruntime on random inputs of another batch size than the export's and compared with
    `predict_proba` before the file is written (atomically).

    ConfigError for a scikit-learn model, an untrained one, a missing or foreign file, a bad
    `out`, a missing export package, or a network the exporter cannot translate (naming the
    operator when it can).
    """
    opset = _check_opset(opset)
    path = _check_out(out, overwrite)
    classifier = _torch_classifier(model)
    _require("onnx", "onnxscript", *(["onnxruntime"] if verify else []))
    import onnx

    with _on_cpu(classifier.module):
        proto = _export_proto(classifier, opset)
        onnx.helper.set_model_props(proto, _metadata(classifier, opset))
        proto.doc_string = f"{classifier.spec.name}: {classifier.spec.description}"
        data = proto.SerializeToString()
        if verify:
            _verify(classifier, data)
    from microexpr.training.checkpoints import atomic_write

    try:
        return atomic_write(path, lambda stream: stream.write(data))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}; check the folder's "
                          f"space and permissions") from None


def _check_opset(opset: int | None) -> int:
    """The opset to export with: `opset`, checked, or the default."""
    if opset is None:
        return OPSET
    if isinstance(opset, bool) or not isinstance(opset, int | np.integer) or opset < MIN_OPSET:
        raise ConfigError(f"opset must be an integer >= {MIN_OPSET} (the default is {OPSET}), "
                          f"got {opset!r}")
    return int(opset)


def _check_out(out: str | Path, overwrite: bool) -> Path:
    """`out` as a path, checked before any work: a .onnx file name, new unless `overwrite`."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise ConfigError(f"out {path} is a folder: give a file name in it, e.g. "
                          f"{path / 'model.onnx'}")
    if path.suffix.lower() != ".onnx":
        raise ConfigError(f"out {path} must be a .onnx file (e.g. {path.with_suffix('.onnx')}"
                          f"): `microexpr analyze --model` tells ONNX models by that suffix")
    if path.exists() and not overwrite:
        raise ConfigError(f"out {path} exists: pass overwrite=True (--overwrite) to replace "
                          f"it, or choose another file")
    return path


def _torch_classifier(model: Any) -> TorchClassifier:
    """The trained TorchClassifier `model` is or names; ConfigError for anything else."""
    if isinstance(model, str | Path):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(f"model {path} does not exist; give the file a trained torch "
                              f"model was saved to (model.save(path), `microexpr train`, "
                              f"`microexpr evaluate --save-models`)")
        if path.suffix.lower() == ".onnx":
            raise ConfigError(f"model {path} is an ONNX file already: export the .pt file it "
                              f"was exported from, or use it as it is "
                              f"(microexpr.training.export.OnnxClassifier.load)")
        from microexpr.training.checkpoints import checkpoint_kind

        if checkpoint_kind(path) == "torch":  # not load_model: it loads .onnx files by this module
            from microexpr.training.torch_classifier import TorchClassifier

            model = TorchClassifier.load(path, device="cpu")
        else:
            from microexpr.training.sklearn_classifier import SklearnClassifier

            model = SklearnClassifier.load(path)
    spec = getattr(model, "spec", None)
    kind = getattr(spec, "kind", None)
    if kind == "sklearn":
        raise ConfigError(
            f"{spec.name} is a scikit-learn model: ONNX export is for the torch models "
            f"({', '.join(_torch_models())}); use the saved file with microexpr.load_model, "
            f"or retrain with a torch model to export it")
    from microexpr.training.torch_classifier import TorchClassifier

    if not isinstance(model, TorchClassifier):
        raise ConfigError(f"model must be a trained TorchClassifier or the path of one saved "
                          f"by .save(), got {type(model).__name__}")
    if model.module is None:
        raise ConfigError(f"the {model.spec.name} classifier is not trained: call fit() or "
                          f"load() before exporting it")
    return model


def _torch_models() -> list[str]:
    """The names of the registry's torch models."""
    from microexpr.models.registry import MODELS, get_model_spec

    get_model_spec("ststnet")  # the registry fills itself on its first lookup
    return sorted(name for name, spec in MODELS.items() if spec.kind == "torch")


def _require(*modules: str) -> None:
    """ConfigError naming the install command unless every module can be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"ONNX export and ONNX models need {', '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: {INSTALL}")


def _per_input(classifier: TorchClassifier, value: Any) -> dict[str, Any]:
    """A per-input attribute (input_shape, mean, std, channels) as {input name: value}."""
    if classifier.input_names == [SINGLE]:
        return {SINGLE: value}
    return {name: value.get(name) if isinstance(value, Mapping) else None
            for name in classifier.input_names}


def _example_inputs(classifier: TorchClassifier, n: int, seed: int) -> dict[str, np.ndarray]:
    """n random samples per input, at the scale of the training inputs (mean + std * noise)."""
    rng = np.random.default_rng(seed)
    shapes, means, stds = (_per_input(classifier, v) for v in (
        classifier.input_shape, classifier.mean, classifier.std))
    return {name: (np.asarray(means[name], np.float32) + np.asarray(stds[name], np.float32)
                   * rng.standard_normal((n, *shapes[name]), dtype=np.float32))
            for name in classifier.input_names}


def _eval_crop(network: torch.nn.Module) -> int | None:
    """The side of the centre crop a network takes of its frames in eval mode (MOL), or
    None. The exported graph crops before the network, so that the network's own crop (a
    Python-side choice of offsets) sees frames of its crop size and is a no-op."""
    from microexpr.models.mol import MOL

    return int(network.crop) if isinstance(network, MOL) else None


def _probabilities_module(classifier: TorchClassifier) -> torch.nn.Module:
    """`predict_proba` as one torch module over the raw (channels-last) inputs."""
    import torch

    class Probabilities(torch.nn.Module):
        """Standardise each input, channels last -> first, the network, softmax."""

        def __init__(self) -> None:
            super().__init__()
            self.network = classifier.module
            self.names = list(classifier.input_names)
            means, stds = _per_input(classifier, classifier.mean), _per_input(classifier,
                                                                             classifier.std)
            for i, name in enumerate(self.names):
                self.register_buffer(f"mean{i}", torch.as_tensor(np.asarray(means[name],
                                                                            np.float32)))
                self.register_buffer(f"std{i}", torch.as_tensor(np.asarray(stds[name],
                                                                           np.float32)))
            self.crop = _eval_crop(self.network)

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            prepared = {}
            for i, (name, x) in enumerate(zip(self.names, inputs, strict=True)):
                x = (x - getattr(self, f"mean{i}")) / getattr(self, f"std{i}")
                if x.ndim > 2:
                    x = x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))
                prepared[name] = x
            if self.names == [SINGLE]:
                x = prepared[SINGLE]
                if self.crop is not None:  # the centre crop of MOL.crop_offsets in eval mode
                    c, (height, width) = self.crop, x.shape[-2:]
                    top, left = (height - c) // 2, (width - c) // 2
                    x = x[..., top:top + c, left:left + c]
                out = self.network(x)
            else:
                out = self.network(**prepared)
            logits = out["logits"] if isinstance(out, Mapping) else out
            return torch.softmax(logits, dim=1)

    return Probabilities()


@contextlib.contextmanager
def _on_cpu(network: torch.nn.Module) -> Iterator[None]:
    """The network in eval mode on the CPU within the block (where the graph is traced and
    checked, in float32 without a GPU's TF32 kernels), back on its device and mode after."""
    import torch

    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = network.training
    network.cpu().eval()
    try:
        yield
    finally:
        network.to(device).train(was_training)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines, warnings and log messages silenced (errors stay)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_proto(classifier: TorchClassifier, opset: int) -> onnx.ModelProto:
    """The ONNX ModelProto of `classifier`'s probabilities (torch.export-based exporter)."""
    import torch

    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise ConfigError(f"ONNX export needs the torch.export-based exporter of torch >= 2.6 "
                          f"(this is torch {torch.__version__}): upgrade torch")
    module = _probabilities_module(classifier).eval()
    names = list(classifier.input_names)
    example = _example_inputs(classifier, EXPORT_BATCH, seed=0)
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet():
            program = torch.onnx.export(
                module, tuple(torch.from_numpy(example[n]) for n in names), None,
                input_names=names, output_names=[OUTPUT], opset_version=opset, dynamo=True,
                dynamic_shapes=(tuple({0: batch} for _ in names),), external_data=False,
                verbose=False, optimize=True)
    except Exception as exc:  # noqa: BLE001 - any exporter failure: say what and where
        raise ConfigError(_export_failure(classifier.spec.name, exc)) from None
    return program.model_proto


def _export_failure(name: str, exc: BaseException) -> str:
    """One message for an exporter failure: the operator(s) it has no translation for when
    it names them, else the first line of the underlying error."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    text = "\n".join(str(e) for e in chain)
    cause = chain[-1]
    first = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")
    detail = f"{type(cause).__name__}: {first[:300]}"
    found = re.findall(r"No ONNX function found for <OpOverload\(op='([\w.:]+)'", text)
    if not found and "not supported" in text.lower():
        found = re.findall(r"\baten[.:]+[A-Za-z_][\w.]*", text)
    ops = sorted({re.sub(r"\.default$", "", op.replace("::", ".")) for op in found})
    if ops:
        return (f"{name} cannot be exported to ONNX: the exporter has no translation for the "
                f"operator(s) {', '.join(ops[:5])} ({detail}); keep using the .pt file "
                f"(microexpr.load_model)")
    return (f"{name} cannot be exported to ONNX: {detail}; keep using the .pt file "
            f"(microexpr.load_model)")


def _spec_entries(classifier: TorchClassifier) -> list[dict[str, Any]]:
    """The input spec: per input its name, per-sample shape, channel names, dtype, layout."""
    shapes, channels = (_per_input(classifier, v) for v in (classifier.input_shape,
                                                            classifier.channels))
    return [{"name": name, "shape": [int(d) for d in shapes[name]],
             "channels": None if channels[name] is None else [str(c) for c in channels[name]],
             "dtype": "float32", "layout": "channels_last"}
            for name in classifier.input_names]


def _json(value: Any) -> str:
    """`value` as JSON text (numpy arrays and scalars as lists and numbers)."""
    return json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))


def _metadata(classifier: TorchClassifier, opset: int) -> dict[str, str]:
    """The file's metadata_props: every value a string (JSON for structured ones)."""
    spec = classifier.spec
    recipe = classifier.input_recipe
    return {
        "format": FORMAT, "format_version": str(FORMAT_VERSION),
        "microexpr_version": __version__,
        "model": spec.name,
        "reference": spec.reference,
        "classes": _json(list(classifier.classes)),
        "inputs": _json(_spec_entries(classifier)),
        "output": OUTPUT,
        "input_recipe": _json(None if recipe is None else recipe.to_dict()),
        "params": _json(classifier.params),
        "training_info": _json(classifier.training_info),
        "opset": str(opset),
    }


def _verify(classifier: TorchClassifier, data: bytes) -> None:
    """Run the graph with onnxruntime on a batch of another size than the export's and
    compare it with `predict_proba` on the CPU; MicroexprError when they differ beyond
    TOLERANCE."""
    import onnxruntime

    x = _example_inputs(classifier, VERIFY_BATCH, seed=1)
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = session.run([OUTPUT], x)[0]
    except Exception as exc:  # noqa: BLE001 - a graph onnxruntime refuses
        raise ConfigError(
            f"onnxruntime {onnxruntime.__version__} cannot run the exported "
            f"{classifier.spec.name} ({type(exc).__name__}: {str(exc).strip()[:300]}); "
            f"try another opset (--opset, default {OPSET})") from None
    import torch

    from microexpr.training.loop import predict_outputs
    from microexpr.training.torch_classifier import probabilities

    # predict_proba, on the CPU like the graph
    inputs = classifier.network_inputs(x if classifier.input_names != [SINGLE] else x[SINGLE])
    expected = probabilities(predict_outputs(classifier.module, inputs, torch.device("cpu")))
    difference = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if got.shape != expected.shape or not difference <= TOLERANCE:
        raise MicroexprError(
            f"the exported {classifier.spec.name} disagrees with torch (probabilities of shape "
            f"{got.shape} vs {expected.shape}, largest difference {difference:.3g} > "
            f"{TOLERANCE}); the file was not written. Please report this as a bug")


# -- running an exported file ---------------------------------------------------------------

def onnx_providers(device: str | None = None) -> list[str]:
    """onnxruntime execution providers for `device`: "auto"/None the GPU when onnxruntime
    has one, else the CPU; "cpu"; "cuda" (ConfigError when onnxruntime has no CUDA)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    gpu = "CUDAExecutionProvider"
    if device in (None, "", "auto"):
        return [gpu, "CPUExecutionProvider"] if gpu in available else ["CPUExecutionProvider"]
    if str(device) == "cpu":
        return ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if gpu not in available:
            raise ConfigError(f"device {device!r} was asked for but this onnxruntime has no "
                              f"CUDA provider (it has {available}); use --device cpu or auto, "
                              f"or install onnxruntime-gpu")
        return [gpu, "CPUExecutionProvider"]
    raise ConfigError(f"invalid device {device!r}: use auto, cpu or cuda[:N]")


class OnnxClassifier:
    """A model exported by `export_onnx`, run by onnxruntime, used like the TorchClassifier
    it was exported from: `classes`, `predict_proba(x)` / `predict(x)` on channels-last
    inputs (one array, or a mapping per input name), and, read from the file's metadata,
    `input_names`, `input_shape` and `channels` (per input, bare for a single input),
    `input_spec` (per input: name, per-sample shape, channels, dtype, layout),
    `input_recipe` (an InputRecipe, None when the model recorded none), `params`,
    `training_info`, `reference` and `spec` (the registry's spec of the model), so that
    `microexpr.model_inputs(model, clips)` and `microexpr analyze --model model.onnx` work on
    it unchanged. Load one with `OnnxClassifier.load(path)`.
    """

    def __init__(self, session: Any, metadata: Mapping[str, str], path: str = ""):
        self.session = session
        self.path = path
        self.metadata = dict(metadata)
        source = path or "the ONNX model"
        try:
            self.model = str(metadata["model"])
            self.classes = tuple(str(c) for c in json.loads(metadata["classes"]))
            entries = json.loads(metadata["inputs"])
            names = [str(e["name"]) for e in entries]
            shapes = {str(e["name"]): tuple(int(d) for d in e["shape"]) for e in entries}
            chans = {str(e["name"]): None if e.get("channels") is None
                     else tuple(str(c) for c in e["channels"]) for e in entries}
            recipe = json.loads(metadata.get("input_recipe") or "null")
            self.params = json.loads(metadata.get("params") or "{}")
            self.training_info = json.loads(metadata.get("training_info") or "null")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source} lacks microexpr's metadata or it is malformed "
                              f"({type(exc).__name__}: {exc}); export the model again with "
                              f"microexpr export MODEL.pt {Path(path or 'model.onnx').name}"
                              ) from None
        self.reference = str(metadata.get("reference", ""))
        self.microexpr_version = str(metadata.get("microexpr_version", ""))
        self.output = str(metadata.get("output", OUTPUT))
        self.input_spec: list[dict[str, Any]] = entries  # name, shape, channels, dtype, layout
        self.input_names = names
        single = names == [SINGLE]
        self.input_shape: Any = shapes[SINGLE] if single else shapes
        self.channels: Any = chans[SINGLE] if single else chans
        self.input_recipe = None if recipe is None else InputRecipe.from_dict(recipe, source)
        graph_inputs = sorted(i.name for i in session.get_inputs())
        if graph_inputs != sorted(names):
            raise ConfigError(f"{source}: its graph takes inputs {graph_inputs} but its "
                              f"metadata names {sorted(names)}; export the model again")

    @classmethod
    def load(cls, path: str | Path, device: str | None = None,
             providers: Sequence[str] | None = None) -> OnnxClassifier:
        """Open a file written by `export_onnx`; `device` ("auto", "cpu", "cuda") picks the
        onnxruntime providers unless `providers` names them. ConfigError naming the file when
        it is missing, not an ONNX model, or not one microexpr exported."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise ConfigError(f"no ONNX model at {path}; export one with `microexpr export "
                              f"MODEL.pt {path.name}` (microexpr.export_onnx)")
        _require("onnxruntime")
        import onnxruntime

        chosen = list(providers) if providers is not None else onnx_providers(device)
        try:
            session = onnxruntime.InferenceSession(str(path), providers=chosen)
        except Exception as exc:  # noqa: BLE001 - any load failure: not a usable ONNX file
            raise ConfigError(f"{path} cannot be loaded as an ONNX model ({type(exc).__name__}:"
                              f" {str(exc).strip()[:300]})") from None
        metadata = session.get_modelmeta().custom_metadata_map
        if metadata.get("format") != FORMAT:
            raise ConfigError(f"{path} is an ONNX model but not one exported by microexpr (its "
                              f"metadata has no format {FORMAT!r}); export models with "
                              f"`microexpr export MODEL.pt {path.name}`")
        version = metadata.get("format_version", "")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            raise ConfigError(f"{path} was exported by a newer microexpr (format "
                              f"{version or '?'}, this one reads {FORMAT_VERSION}): upgrade "
                              f"microexpr")
        return cls(session, metadata, str(path))

    @property
    def spec(self) -> ModelSpec:
        """The registry's spec of the model (its channels, input checks, representation)."""
        from microexpr.models.registry import get_model_spec

        return get_model_spec(self.model)

    def _inputs(self, x: Any) -> dict[str, np.ndarray]:
        """x as {input name: float32 array}, checked against the exported input spec."""
        if isinstance(x, Mapping):
            named = {str(k): np.ascontiguousarray(v, dtype=np.float32) for k, v in x.items()}
        else:
            named = {SINGLE: np.ascontiguousarray(x, dtype=np.float32)}
        if sorted(named) != sorted(self.input_names):
            raise InputShapeError(f"{self.model} was exported with inputs {self.input_names} "
                                  f"but got {sorted(named)}")
        shapes = {SINGLE: self.input_shape} if self.input_names == [SINGLE] else self.input_shape
        lengths = {len(a) if a.ndim else 0 for a in named.values()}
        for name, array in named.items():
            if array.ndim == 0 or array.shape[1:] != tuple(shapes[name]):
                what = "" if name == SINGLE else f" {name!r}"
                raise InputShapeError(
                    f"{self.model} was trained on inputs{what} of shape "
                    f"{tuple(shapes[name])} (channels last) but got {array.shape[1:]}; compute "
                    f"the representation with the same config (the model's input_recipe)")
        if len(lengths) > 1:
            raise InputShapeError(f"the inputs of {self.model} hold different numbers of "
                                  f"samples: {sorted(lengths)}")
        return named

    def predict_proba(self, x: Any, batch_size: int = 256) -> np.ndarray:
        """Class probabilities, N x len(classes), columns in `classes` order."""
        named = self._inputs(x)
        n = len(next(iter(named.values())))
        parts = [self.session.run([self.output], {k: v[start:start + batch_size]
                                                  for k, v in named.items()})[0]
                 for start in range(0, n, batch_size)]
        if not parts:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def predict(self, x: Any) -> np.ndarray:
        return np.array(self.classes)[self.predict_proba(x).argmax(axis=1)]

    def __repr__(self) -> str:
        return (f"OnnxClassifier({self.model!r}, classes={list(self.classes)}, "
                f"path={self.path!r})")


__all__ = ["OPSET", "OnnxClassifier", "export_onnx", "onnx_providers"]
