"""Weights files and weights/manifest.json, the one list of shipped models.

A weights file is self-describing: model config, float state (fp16 where it costs nothing),
the integer h_s, the integer coding tables and metadata (training data, steps, lambda
range, measured Kodak figures). Nothing is inferred from layer names or shapes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import npnet, ptfile
from .config import ModelConfig
from .exact import CONTEXT_LAYERS, Part, parts
from .tables import Tables

if TYPE_CHECKING:
    from .model import HyperpriorModel


def _weights_dir() -> Path:
    """The folder with manifest.json: $AECOMPRESS_WEIGHTS, else the installed aecompress.weights
    package (the repository's weights/ folder, mapped onto it by pyproject.toml; a wheel carries
    the manifest and the default model), else weights/ beside the package (a source checkout)."""
    if os.environ.get("AECOMPRESS_WEIGHTS"):
        return Path(os.environ["AECOMPRESS_WEIGHTS"]).expanduser().resolve()
    try:
        from . import weights
    except ImportError:
        return Path(__file__).resolve().parent.parent / "weights"
    return Path(weights.__file__).resolve().parent


WEIGHTS_DIR = _weights_dir()
FORMAT = "aecompress-weights/1"
_FULL_PRECISION = ("log_gain", "log_inverse_gain", "noise_", "quality_", "z_prior", ".beta", ".gamma")


class ModelNotFound(LookupError):
    pass


@dataclass(frozen=True, eq=False)
class CodingModel:
    """Everything encode and decode need: the float transforms' state plus the exact integer
    parts. The transforms run in numpy (`transforms`); the torch network (`net`) is built only
    where it is asked for (CUDA, the encoder search, training)."""

    name: str
    digest: bytes  # first 8 bytes of the weights file's sha256, as written into .aec headers
    config: ModelConfig
    state: dict[str, np.ndarray]  # the float transforms, gains and priors, as stored
    h_s: list[dict[str, np.ndarray]]
    y_tables: Tables
    z_tables: Tables
    metadata: dict
    context: list[list[dict[str, np.ndarray]]] | None = None  # the integer context networks (exact.parts)

    @property
    def parts(self) -> list[Part]:
        """The parts of the y stream in coding order (exact.parts); only with a context model."""
        if self.context is None:
            raise ValueError(f"model '{self.name}' has no context model")
        return parts(self.context, self.config.M, self.config.context_slices, self.config.context_window)

    @cached_property
    def transforms(self) -> npnet.Transforms:
        return npnet.Transforms(self.config, self.state)

    @cached_property
    def net(self) -> HyperpriorModel:
        """The torch network of these weights, its integer layers mirroring `h_s` and `context`."""
        import torch

        from .model import HyperpriorModel

        net = HyperpriorModel(self.config)
        for layer, ints in zip(net.h_s.layers, self.h_s):  # the float networks mirror the integers (fine-tuning)
            layer.load_integers(ints["weight"], ints["bias"])  # type: ignore[operator]
        if self.context is not None:
            net.context.load_integers(self.context)  # type: ignore[operator]
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in self.state.items()}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(("h_s.", "context.")) for k in missing):
            raise ValueError(f"{self.name}: weights do not match the config ({missing + unexpected})")
        # Coding never trains it: no parameter needs a gradient, and threads that share the model
        # (-j, the encoder search) never change its state.
        return net.eval().requires_grad_(False).to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def _tables_to_dict(t: Tables) -> dict:
    """Rows concatenated without their padding: the file stays small."""
    import torch

    return {"counts": torch.from_numpy(t.packed()), "offset": torch.from_numpy(t.offset),
            "length": torch.from_numpy(t.length)}


def _tables_from_dict(d: dict) -> Tables:
    return Tables.unpack(d["counts"], d["offset"], d["length"])


def _int32(layers: list[dict[str, np.ndarray]], what: str) -> list[dict[str, np.ndarray]]:
    """Exported integer layers, checked to fit the int32 they are stored as."""
    for layer in layers:
        if np.abs(layer["weight"]).max() >= 2**31 or np.abs(layer["bias"]).max() >= 2**31:
            raise ValueError(f"integer {what} weights do not fit in int32")
    return layers


def _integer_h_s(net: HyperpriorModel) -> list[dict[str, np.ndarray]]:
    return _int32(net.h_s.export(), "h_s")


def _integer_context(net: HyperpriorModel) -> list[list[dict[str, np.ndarray]]] | None:
    return [_int32(layers, "context") for layers in net.context.export()] if net.config.context else None


def freeze(net: HyperpriorModel, name: str = "unsaved") -> CodingModel:
    """A coding model straight from a network in memory (used to evaluate during training)."""
    from .entropy import factorized_tables, gaussian_tables

    state = {k: v.detach().float().cpu().numpy().copy() for k, v in net.state_dict().items()
             if not k.startswith(("h_s.", "context."))}
    model = CodingModel(
        name=name, digest=bytes(8), config=net.config, state=state, h_s=_integer_h_s(net),
        y_tables=gaussian_tables(net.config.levels),
        z_tables=factorized_tables(net.z_prior, net.config.N), metadata={},
        context=_integer_context(net),
    )
    model.__dict__["net"] = net  # the network itself, not a copy (cached_property's slot)
    return model


def export(net: HyperpriorModel, path: str | Path, name: str, metadata: dict | None = None,
           integers: CodingModel | None = None) -> str:
    """Freeze a trained model into a weights file; returns its sha256 (hex).

    `integers`: a coding model whose integer h_s and context model are written as they are, for
    a network whose entropy path did not learn (an encoder-only run). Rounding its floats again
    could move the largest biases by a unit: float32 holds integers exactly only up to 2^24."""
    import torch

    from .entropy import factorized_tables, gaussian_tables

    net = net.cpu().eval()
    h_s, context = (integers.h_s, integers.context) if integers else (_integer_h_s(net), _integer_context(net))
    state = {}
    for key, value in net.state_dict().items():
        if key.startswith(("h_s.", "context.")):
            continue  # stored as integers below
        keep = any(part in key for part in _FULL_PRECISION)
        state[key] = value.float() if keep else value.half()
    blob = {
        "format": FORMAT,
        "name": name,
        "config": net.config.to_dict(),
        "state": state,
        "h_s": [{k: torch.from_numpy(v.astype(np.int32)) for k, v in layer.items()} for layer in h_s],
        "y_tables": _tables_to_dict(gaussian_tables(net.config.levels)),
        "z_tables": _tables_to_dict(factorized_tables(net.z_prior, net.config.N)),
        "metadata": json.dumps(metadata or {}),
    }
    if context is not None:
        blob["context"] = [{k: torch.from_numpy(v.astype(np.int32)) for k, v in layer.items()}
                           for layers in context for layer in layers]  # one flat list, CONTEXT_LAYERS per network
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_file(path: str | Path, expected_sha256: str | None = None) -> CodingModel:
    raw = Path(path).read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    if expected_sha256 and sha != expected_sha256:
        raise ValueError(f"{path}: sha256 {sha[:12]}... does not match the manifest")
    blob = ptfile.load(raw)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not an aecompress weights file")
    unknown = blob["config"].keys() - {f.name for f in fields(ModelConfig)}
    if unknown:
        raise ValueError(f"{path}: its model has settings this version of aecompress does not know "
                         f"({', '.join(sorted(unknown))}): a newer version wrote it")
    config = ModelConfig(**blob["config"])

    def integers(key: str) -> list[dict[str, np.ndarray]]:
        return [{k: v.astype(np.int64) for k, v in layer.items()} for layer in blob[key]]

    context = None
    if config.context:
        flat = integers("context")
        if len(flat) != CONTEXT_LAYERS * (config.context_slices + config.non_anchor_slices - 1):
            raise ValueError(f"{path}: the context model is damaged")
        context = [flat[i : i + CONTEXT_LAYERS] for i in range(0, len(flat), CONTEXT_LAYERS)]
    return CodingModel(
        name=blob["name"], digest=bytes.fromhex(sha[:16]), config=config, state=dict(blob["state"]),
        h_s=integers("h_s"), y_tables=_tables_from_dict(blob["y_tables"]),
        z_tables=_tables_from_dict(blob["z_tables"]), metadata=json.loads(blob["metadata"]), context=context,
    )


def manifest(weights_dir: Path | None = None) -> dict:
    path = (weights_dir or WEIGHTS_DIR) / "manifest.json"
    if not path.exists():
        return {"default": None, "models": []}
    return json.loads(path.read_text())


def default_model_name() -> str:
    name = manifest().get("default")
    if not name:
        raise ModelNotFound(f"no default model: {WEIGHTS_DIR / 'manifest.json'} lists none")
    return name


def entry(name: str, weights_dir: Path | None = None) -> dict | None:
    """The manifest entry of a model, by its name or by one of its `aliases` (earlier names of
    the same weights file, which files made before a rename carry)."""
    return next((e for e in manifest(weights_dir)["models"] if name == e["name"] or name in e.get("aliases", ())),
                None)


@lru_cache(maxsize=8)
def load(name_or_path: str | None = None) -> CodingModel:
    """A shipped model by name (default: the manifest's default) or a weights file by path.

    A manifest entry's `aliases` are earlier names of the same weights file: files whose header
    carries one decode with it (same file, same digest), and new files carry the entry's name."""
    if name_or_path and Path(name_or_path).suffix == ".pt" and Path(name_or_path).exists():
        return load_file(name_or_path)
    name = name_or_path or default_model_name()
    found = entry(name)
    if found is None:
        known = ", ".join(m["name"] for m in manifest()["models"]) or "none"
        raise ModelNotFound(f"model '{name}' is not installed (installed: {known})")
    path = WEIGHTS_DIR / found["file"]
    if not path.exists() and found.get("retired"):
        r = found["retired"]
        raise ModelNotFound(f"model '{name}' was retired (replaced by {r['replaced_by']}): its weights "
                            f"{found['file']} are in the project's history (git show {r['commit']}:weights/"
                            f"{found['file']}); put the file in {WEIGHTS_DIR} to use it")
    if not path.exists():
        raise ModelNotFound(f"model '{name}' is listed but its file is not installed: put {found['file']} "
                            f"in {WEIGHTS_DIR}, or set AECOMPRESS_WEIGHTS to a folder with it and a manifest.json")
    model = load_file(path, found["sha256"])
    return model if model.name == found["name"] else replace(model, name=found["name"])



def retire(name: str, replaced_by: str, commit: str, weights_dir: Path | None = None) -> None:
    """Mark a model retired in the manifest: its entry (with its config, since the file leaves
    weights/) stays, so a file that needs it gets an error that says where its weights are."""
    weights_dir = weights_dir or WEIGHTS_DIR
    m = manifest(weights_dir)
    entry = next(e for e in m["models"] if e["name"] == name)
    if m["default"] == name:
        raise ValueError(f"'{name}' is the default model: make another one the default first")
    if "config" not in entry:
        entry["config"] = load_file(weights_dir / entry["file"], entry["sha256"]).config.to_dict()
    entry["retired"] = {"replaced_by": replaced_by, "commit": commit}
    (weights_dir / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")
    load.cache_clear()


def register(path: Path, sha256: str, kodak: dict | None = None, default: bool = True,
             weights_dir: Path | None = None) -> dict:
    """Add or replace a model's entry in weights/manifest.json (the one list of shipped models).
    An entry that lists the file's name among its aliases keeps its own name and aliases."""
    weights_dir = weights_dir or WEIGHTS_DIR
    model = load_file(path, sha256)
    m = manifest(weights_dir)
    old = entry(model.name, weights_dir)
    name = old["name"] if old else model.name
    new = {"name": name, **({"aliases": old["aliases"]} if old and "aliases" in old else {}),
           "file": Path(path).name, "sha256": sha256, "bytes": Path(path).stat().st_size,
           "metadata": model.metadata}  # the config is in the file
    if kodak is not None:
        new["kodak"] = kodak
    elif old and old.get("sha256") == sha256 and "kodak" in old:
        new["kodak"] = old["kodak"]
    m["models"] = [e for e in m["models"] if e["name"] != name] + [new]
    if default or not m.get("default"):
        m["default"] = name
    (weights_dir / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")
    load.cache_clear()
    return new
