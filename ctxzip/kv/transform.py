"""`KVTransform`: a model's calibrated decorrelating transform and its per-level step allocation.

The cache is cut into groups of `layers_per_group` consecutive layers; in each (group, key/value)
a token's vector x (all heads of those layers, keys with RoPE undone) becomes coefficients

    c = ((x - mean) * gain) @ basis          x = (c @ basis.T) / gain + mean

`gain` folds in what the model is sensitive to (per-layer KL sensitivity, per-channel query energy
for keys and o_proj column energy for values, see `calibrate.py`), so plain squared error on c is
the distortion the allocation minimises. `basis` is the PCA (KLT) of the weighted calibration data,
or a Hadamard rotation (`hadamard_transform`, no calibration data needed). `steps[level]` holds the
quantization step of every component for each transform level (0: component not coded).

The transform is stored once per model next to the codec (`save`/`load`, an .npz) and named in the
stream header by `transform_id` (8 bytes of SHA-256 over its arrays), never repeated in a stream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ctxzip.kv.format import KVFormatError
from ctxzip.kv.rope import Rope

TRANSFORM_LEVELS = ("tc-high", "tc-good", "tc-medium", "tc-low", "tc-lowest")
FIRST_TRANSFORM_LEVEL = 6  # level number of TRANSFORM_LEVELS[0]


@dataclass
class GroupTransform:
    mean: np.ndarray  # [F] float32
    gain: np.ndarray  # [F] float32
    basis: np.ndarray  # [F, K] float32, columns = kept components, most variance first
    steps: np.ndarray  # [n_levels, K] float32, 0 = not coded at that level
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def kept(self, level_index: int) -> np.ndarray:
        return np.flatnonzero(self.steps[level_index] > 0)

    def tensors(self, level_index: int, device) -> tuple[torch.Tensor, ...]:
        """(mean [F], analysis [F, K] = gain x basis, steps [K]) for the kept components, cached per device."""
        key = ("analysis", level_index, str(device))
        if key not in self._cache:
            kept = self.kept(level_index)
            analysis = self.gain[:, None].astype(np.float64) * self.basis[:, kept]
            self._cache[key] = (torch.from_numpy(self.mean).to(device), torch.from_numpy(analysis).float().to(device),
                                torch.from_numpy(self.steps[level_index, kept]).to(device))
        return self._cache[key]

    def synthesis(self, level_index: int, device, dtype: torch.dtype) -> torch.Tensor:
        """[K, F] = step x basis.T / gain: integer symbols times this (plus mean) are the decoded values."""
        key = ("synthesis", level_index, str(device), dtype)
        if key not in self._cache:
            kept = self.kept(level_index)
            matrix = self.steps[level_index, kept, None].astype(np.float64) * self.basis[:, kept].T / self.gain[None, :]
            self._cache[key] = torch.from_numpy(matrix).to(device=device, dtype=dtype)
        return self._cache[key]


@dataclass
class KVTransform:
    name: str
    n_layers: int
    n_heads: int
    head_dim: int
    layers_per_group: int
    groups: list[list[GroupTransform]]  # [group][kind]
    rope: Rope | None = None  # keys are coded with RoPE undone when set
    notes: dict = field(default_factory=dict)

    @property
    def geometry(self) -> tuple[int, int, int]:
        return (self.n_layers, self.n_heads, self.head_dim)

    @property
    def n_levels(self) -> int:
        return self.groups[0][0].steps.shape[0]

    def group_layers(self, group: int) -> range:
        return range(group * self.layers_per_group, min(self.n_layers, (group + 1) * self.layers_per_group))

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for g, kinds in enumerate(self.groups):
            for k, part in enumerate(kinds):
                for key in ("mean", "gain", "basis", "steps"):
                    arrays[f"{key}_{g}_{k}"] = np.asarray(getattr(part, key), dtype=np.float32)
                arrays[f"basis_{g}_{k}"] = arrays[f"basis_{g}_{k}"].astype(np.float16)  # stored and used at 16 bits
        if self.rope is not None:
            arrays["rope_inv_freq"] = self.rope.inv_freq.astype(np.float32)
            arrays["rope_scaling"] = np.array([self.rope.scaling], dtype=np.float32)
        return arrays

    def _meta(self) -> dict:
        return {"name": self.name, "n_layers": self.n_layers, "n_heads": self.n_heads, "head_dim": self.head_dim,
                "layers_per_group": self.layers_per_group, "notes": self.notes}

    @property
    def transform_id(self) -> bytes:
        """8 bytes naming exactly these numbers: what the stream header carries."""
        if "_id" not in self.notes:
            digest = hashlib.sha256(json.dumps({k: v for k, v in self._meta().items() if k != "notes"}).encode())
            for key, array in sorted(self._arrays().items()):
                digest.update(key.encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            self.notes["_id"] = digest.hexdigest()[:16]
        return bytes.fromhex(self.notes["_id"])

    def save(self, path: str | Path) -> None:
        meta = self._meta() | {"notes": {k: v for k, v in self.notes.items() if k != "_id"}}
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **self._arrays())

    @classmethod
    def load(cls, path: str | Path) -> "KVTransform":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                n_groups = -(-meta["n_layers"] // meta["layers_per_group"])
                groups = [[GroupTransform(*(data[f"{key}_{g}_{k}"].astype(np.float32)
                                            for key in ("mean", "gain", "basis", "steps")))
                           for k in range(2)] for g in range(n_groups)]
                rope = None
                if "rope_inv_freq" in data:
                    rope = Rope(data["rope_inv_freq"].copy(), float(data["rope_scaling"][0]))
        except (OSError, KeyError, ValueError) as exc:
            raise KVFormatError(f"cannot read KV transform {path}: {exc}") from None
        return cls(meta["name"], meta["n_layers"], meta["n_heads"], meta["head_dim"], meta["layers_per_group"],
                   groups, rope, meta.get("notes", {}))


def hadamard_matrix(n: int) -> np.ndarray:
    """Orthonormal Walsh-Hadamard matrix of size n (a power of two)."""
    if n < 1 or n & (n - 1):
        raise KVFormatError(f"a Hadamard transform needs a power-of-two width, got {n}")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return (h / np.sqrt(n)).astype(np.float32)


def transform_dir() -> Path:
    return Path(__file__).resolve().parent / "transforms"


def shipped_transforms() -> dict[str, Path]:
    """Transforms calibrated for embedded models and shipped with the package, by name."""
    return {path.stem: path for path in sorted(transform_dir().glob("*.npz"))}


def load_transform(name_or_path: str | Path) -> KVTransform:
    """A shipped transform by name (e.g. 'smollm2') or any saved .npz path."""
    shipped = shipped_transforms()
    if str(name_or_path) in shipped:
        return KVTransform.load(shipped[str(name_or_path)])
    path = Path(name_or_path)
    if not path.is_file():
        raise KVFormatError(f"no KV transform {name_or_path!r}; shipped: {sorted(shipped)}")
    return KVTransform.load(path)
