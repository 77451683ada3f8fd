"""Weights files and weights/manifest.json, the one list of shipped models.

A weights file is self-describing: model config, float state (fp16 where it costs nothing),
the integer h_s, the integer coding tables and metadata (training data, steps, lambda
range, measured Kodak figures). Nothing is inferred from layer names or shapes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .context import LAYERS as CONTEXT_LAYERS
from .context import Part, parts
from .entropy import Tables, factorized_tables, gaussian_tables
from .model import HyperpriorModel, ModelConfig

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "aecompress-weights/1"
_FULL_PRECISION = ("log_gain", "log_inverse_gain", "noise_", "quality_", "z_prior", ".beta", ".gamma")


class ModelNotFound(LookupError):
    pass


@dataclass(frozen=True)
class CodingModel:
    """Everything encode and decode need: float transforms plus the exact integer parts."""

    name: str
    digest: bytes  # first 8 bytes of the weights file's sha256, as written into .aec headers
    net: HyperpriorModel
    h_s: list[dict[str, np.ndarray]]
    y_tables: Tables
    z_tables: Tables
    metadata: dict
    context: list[list[dict[str, np.ndarray]]] | None = None  # the integer context networks (context.parts)

    @property
    def config(self) -> ModelConfig:
        return self.net.config

    @property
    def parts(self) -> list[Part]:
        """The parts of the y stream in coding order (context.parts); only with a context model."""
        return parts(self.context, self.config.M, self.config.context_slices, self.config.context_window)


def _tables_to_dict(t: Tables) -> dict[str, torch.Tensor]:
    """Rows concatenated without their padding: the file stays small."""
    flat = np.concatenate([t.counts[i, :n] for i, n in enumerate(t.length)])
    return {"counts": torch.from_numpy(flat.astype(np.int32)), "offset": torch.from_numpy(t.offset),
            "length": torch.from_numpy(t.length)}


def _tables_from_dict(d: dict) -> Tables:
    flat, length = d["counts"].numpy().astype(np.int32), d["length"].numpy().astype(np.int32)
    if length.min() < 2 or length.sum() != flat.size:
        raise ValueError("coding tables are damaged")
    counts = np.zeros((len(length), length.max()), np.int32)
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    for i, (s, n) in enumerate(zip(starts, length)):
        counts[i, :n] = flat[s : s + n]
    return Tables(counts=counts, offset=d["offset"].numpy().astype(np.int32), length=length)


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
    return CodingModel(
        name=name, digest=bytes(8), net=net, h_s=_integer_h_s(net),
        y_tables=gaussian_tables(net.config.levels),
        z_tables=factorized_tables(net.z_prior, net.config.N), metadata={},
        context=_integer_context(net),
    )


def export(net: HyperpriorModel, path: str | Path, name: str, metadata: dict | None = None,
           integers: CodingModel | None = None) -> str:
    """Freeze a trained model into a weights file; returns its sha256 (hex).

    `integers`: a coding model whose integer h_s and context model are written as they are, for
    a network whose entropy path did not learn (an encoder-only run). Rounding its floats again
    could move the largest biases by a unit: float32 holds integers exactly only up to 2^24."""
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
    import io

    blob = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not an aecompress weights file")
    unknown = blob["config"].keys() - {f.name for f in fields(ModelConfig)}
    if unknown:
        raise ValueError(f"{path}: its model has settings this version of aecompress does not know "
                         f"({', '.join(sorted(unknown))}): a newer version wrote it")
    config = ModelConfig(**blob["config"])
    net = HyperpriorModel(config)
    def integers(key: str) -> list[dict[str, np.ndarray]]:
        return [{k: v.numpy().astype(np.int64) for k, v in layer.items()} for layer in blob[key]]

    h_s = integers("h_s")
    context = None
    if config.context:
        flat = integers("context")
        if len(flat) != CONTEXT_LAYERS * (config.context_slices + config.non_anchor_slices - 1):
            raise ValueError(f"{path}: the context model is damaged")
        context = [flat[i : i + CONTEXT_LAYERS] for i in range(0, len(flat), CONTEXT_LAYERS)]
    for layer, ints in zip(net.h_s.layers, h_s):  # the float networks mirror the integers (fine-tuning)
        layer.load_integers(ints["weight"], ints["bias"])
    if context is not None:
        net.context.load_integers(context)
    state = {k: v.float() for k, v in blob["state"].items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("h_s.", "context.")) for k in missing):
        raise ValueError(f"{path}: weights do not match the config ({missing + unexpected})")
    net = net.eval().to(memory_format=torch.channels_last)  # 2-3x faster convolutions on CPU
    return CodingModel(
        name=blob["name"], digest=bytes.fromhex(sha[:16]), net=net, h_s=h_s,
        y_tables=_tables_from_dict(blob["y_tables"]), z_tables=_tables_from_dict(blob["z_tables"]),
        metadata=json.loads(blob["metadata"]), context=context,
    )


def manifest(weights_dir: Path | None = None) -> dict:
    path = (weights_dir or WEIGHTS_DIR) / "manifest.json"
    if not path.exists():
        return {"default": None, "models": []}
    return json.loads(path.read_text())


def default_model_name() -> str:
    name = manifest().get("default")
    if not name:
        raise ModelNotFound("no default model: weights/manifest.json lists none")
    return name


@lru_cache(maxsize=8)
def load(name_or_path: str | None = None) -> CodingModel:
    """A shipped model by name (default: the manifest's default) or a weights file by path."""
    if name_or_path and Path(name_or_path).suffix == ".pt" and Path(name_or_path).exists():
        return load_file(name_or_path)
    name = name_or_path or default_model_name()
    for entry in manifest()["models"]:
        if entry["name"] == name:
            return load_file(WEIGHTS_DIR / entry["file"], entry["sha256"])
    known = ", ".join(m["name"] for m in manifest()["models"]) or "none"
    raise ModelNotFound(f"model '{name}' is not installed (installed: {known})")


def register(path: Path, sha256: str, kodak: dict | None = None, default: bool = True,
             weights_dir: Path | None = None) -> dict:
    """Add or replace a model's entry in weights/manifest.json (the one list of shipped models)."""
    weights_dir = weights_dir or WEIGHTS_DIR
    model = load_file(path, sha256)
    m = manifest(weights_dir)
    entry = {"name": model.name, "file": Path(path).name, "sha256": sha256,
             "bytes": Path(path).stat().st_size, "config": model.config.to_dict(),
             "metadata": model.metadata}
    old = next((e for e in m["models"] if e["name"] == model.name), None)
    if kodak is not None:
        entry["kodak"] = kodak
    elif old and old.get("sha256") == sha256 and "kodak" in old:
        entry["kodak"] = old["kodak"]
    m["models"] = [e for e in m["models"] if e["name"] != model.name] + [entry]
    if default or not m.get("default"):
        m["default"] = model.name
    (weights_dir / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")
    load.cache_clear()
    return entry
