"""The few tokenizer facts inference needs, read from tokenizer.json with the `tokenizers` library.

Importing transformers (and with it torch) takes longer than everything else in loading an int8
ONNX token classifier, so that path builds its tokenizer from `tokenizer.json` and the special
tokens named in `tokenizer_config.json` instead of `AutoTokenizer`.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIAL = ("cls", "sep", "pad", "bos", "eos", "unk")


class LightTokenizer:
    """`backend_tokenizer` plus `<kind>_token_id` for the special tokens, like a fast HF tokenizer."""

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.backend_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.backend_tokenizer.no_truncation()
        self.backend_tokenizer.no_padding()
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
        self.model_max_length = int(config.get("model_max_length") or 512)
        for kind in SPECIAL:
            token = config.get(f"{kind}_token")
            if isinstance(token, dict):  # {"content": "[CLS]", ...} in older files
                token = token.get("content")
            setattr(self, f"{kind}_token_id", self.backend_tokenizer.token_to_id(token) if token else None)

    @staticmethod
    def available(folder: str | Path) -> bool:
        return (Path(folder) / "tokenizer.json").exists()
