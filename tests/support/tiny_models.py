"""Local token-classification checkpoints built from a config (random weights), for tests and benchmarks.

Nothing can be downloaded here, so the architectures users load from the hub (mBERT- and XLM-R-based
LLMLingua-2 models) are rebuilt small: same model classes and tokenizer kinds, random weights.
llmlingua picks its word rules from the folder *name*, so callers choose names containing
`bert-base-multilingual-cased` or `xlm-roberta-large`.
"""

from __future__ import annotations

from pathlib import Path


def save_tiny_bert_token_classifier(folder: str | Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A small BERT token classifier on MiniLM's WordPiece vocabulary (random weights)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from ctxzip.models import resolve_model_path

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=512, num_labels=2,
    )
    torch.manual_seed(seed)
    model = BertForTokenClassification(config)
    _spread_head(model.classifier, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_xlmr_token_classifier(folder: str | Path, corpus: list[str], seed: int = 0, hidden: int = 32, vocab_size: int = 600) -> Path:
    """A small XLM-RoBERTa token classifier with a SentencePiece-style (Unigram, "▁") tokenizer trained on `corpus`."""
    import torch
    from tokenizers import SentencePieceUnigramTokenizer
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification, XLMRobertaTokenizerFast

    folder = Path(folder)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    spm = SentencePieceUnigramTokenizer()
    spm.train_from_iterator(corpus, vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>", show_progress=False)
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=spm, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                        cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    tokenizer.model_max_length = 512
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=514, num_labels=2,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = XLMRobertaForTokenClassification(config)
    _spread_head(model.classifier, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _spread_head(layer, seed: int) -> None:
    """Random heads give probabilities bunched near 0.5; a larger scale spreads them (fewer near-ties)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 2.0)


def save_tiny_llama(folder: str | Path, hidden: int = 64, seed: int = 0) -> Path:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer, saved as a local checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ctxzip.models import load_tokenizer

    folder = Path(folder)
    tokenizer = load_tokenizer("smollm2")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
