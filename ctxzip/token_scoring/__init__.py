"""Building blocks of the token-level compressors: windows, sub-token -> unit aggregation,
token-classifier inference, causal-LM surprisal and the llmlingua-compatible selection."""
