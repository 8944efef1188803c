"""ctxzip KV codec as an LMCache serde: `import lmcache_ctxzip; lmcache_ctxzip.register()`.

Then an LMCache L2 adapter config names it:  "serde": {"type": "ctxzip", "kv_heads": 3, "level": "tc-medium",
"transform": "smollm2"}. See docs/kv-serving.md.
"""

from lmcache_ctxzip.kv_layout import decode_chunk, encode_chunk, lmcache_to_layers
from lmcache_ctxzip.options import SerdeOptions

_REGISTERED: set[str] = set()


def register(name: str = "ctxzip") -> None:
    """Add the ctxzip serde to LMCache's serde factory under `name` (once per process)."""
    if name in _REGISTERED:
        return
    try:
        from lmcache.v1.distributed.serde.factory import register_serde_factory
    except ImportError as exc:
        raise ImportError("lmcache_ctxzip.register() needs LMCache: pip install lmcache") from exc
    from lmcache_ctxzip.serde import create_serde

    register_serde_factory(name, create_serde)
    _REGISTERED.add(name)


__all__ = ["SerdeOptions", "decode_chunk", "encode_chunk", "lmcache_to_layers", "register"]
