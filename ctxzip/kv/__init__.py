"""KV-cache codec: CacheGen-style quantization, entropy coding and chunked streaming of KV caches."""

from ctxzip.kv.codec import KVBudget, KVCodec, fp16_bytes
from ctxzip.kv.format import KVFormatError, StreamHeader
from ctxzip.kv.levels import LEVELS, Level
from ctxzip.kv.stream import StreamDecoder, encode_stream

__all__ = ["KVBudget", "KVCodec", "KVFormatError", "LEVELS", "Level", "StreamDecoder", "StreamHeader",
           "encode_stream", "fp16_bytes"]
