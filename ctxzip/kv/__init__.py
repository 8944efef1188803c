"""KV-cache codec: transform coding, quantization, entropy coding and chunked streaming of KV caches."""

from ctxzip.kv.codec import KVBudget, KVCodec, fp16_bytes
from ctxzip.kv.format import KVFormatError, StreamHeader
from ctxzip.kv.levels import LEVELS, Level
from ctxzip.kv.stream import StreamDecoder, encode_stream
from ctxzip.kv.transform import KVTransform, load_transform

__all__ = ["KVBudget", "KVCodec", "KVFormatError", "KVTransform", "LEVELS", "Level", "StreamDecoder", "StreamHeader",
           "encode_stream", "fp16_bytes", "load_transform"]
