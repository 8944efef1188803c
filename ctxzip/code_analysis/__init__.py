"""Parts of the code-aware compressor (`ctxzip.compressors.code.CodeCompressor`).

languages -> chunking (tree-sitter units) -> scoring (coarse, per function) -> fine (per-function
budgets, knapsack over statement blocks) -> solver (placeholders, final count in the budget's tokenizer).
"""
