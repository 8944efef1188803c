"""The LMCache serde plug-in (integrations/lmcache_ctxzip): a chunk in LMCache's KV_2LTD layout goes through
the plug-in and comes back bit-identical to the codec's own decode.

The layout conversions and options run everywhere; the LMCache classes (TensorMemoryObj, the serde factory,
AsyncSerdeProcessor) run where `lmcache` imports, e.g. `/work/venvs/lmcache` (it pins numpy<=2.2.6, so it
cannot share the project's venv).
"""

import pytest
import torch

from ctxzip.errors import InvalidInputError
from ctxzip.kv import KVCodec
from ctxzip.kv.calibrate import hadamard_transform
from kv_models import layers_of, tiny_cache
from lmcache_ctxzip import SerdeOptions, decode_chunk, encode_chunk, lmcache_to_layers


def lmcache_chunk(tokens=48, dtype=torch.bfloat16):
    """A recorded cache of the tiny llama (3 layers, 2 kv heads x 16) in LMCache's [2, L, T, H*D] layout."""
    _, _, cache = tiny_cache(tokens=tokens, seed=11)
    keys = torch.stack([k[0].permute(1, 0, 2).reshape(tokens, -1) for k, _ in layers_of(cache)])
    values = torch.stack([v[0].permute(1, 0, 2).reshape(tokens, -1) for _, v in layers_of(cache)])
    return torch.stack([keys, values]).to(dtype).contiguous()


@pytest.fixture(scope="module")
def transform(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "tiny-hadamard.npz"
    hadamard_transform(3, 2, 16).save(path)
    return str(path)


@pytest.mark.parametrize("level", ["tc-good", "lossless"])
def test_plugin_round_trip_is_bit_identical_to_the_codec(transform, level):
    kv = lmcache_chunk()
    options = SerdeOptions.from_kwargs({"kv_heads": 2, "level": level, "transform": transform})
    codec = options.codec()
    data = encode_chunk(codec, kv, kv_heads=2, position_offset=256)
    out = torch.empty_like(kv)
    decode_chunk(codec, data, out)
    reference = KVCodec(transform=transform).decode(
        KVCodec(level=level, transform=transform, recent_tokens=0).encode(lmcache_to_layers(kv, 2), position_offset=256))
    for layer, item in enumerate(reference.layers):
        assert torch.equal(out[0, layer], item.keys[0].permute(1, 0, 2).reshape(kv.shape[2], -1))
        assert torch.equal(out[1, layer], item.values[0].permute(1, 0, 2).reshape(kv.shape[2], -1))
    if level == "lossless":
        assert torch.equal(out.view(torch.int16), kv.view(torch.int16))
    assert len(data) < kv.numel() * kv.element_size()


def test_options_and_layout_errors_are_clear():
    with pytest.raises(InvalidInputError, match="kv_heads"):
        SerdeOptions.from_kwargs({"level": "tc-good"})
    with pytest.raises(InvalidInputError, match="unknown ctxzip serde options"):
        SerdeOptions.from_kwargs({"kv_heads": 2, "bits": 4})
    with pytest.raises(InvalidInputError, match="KV_2LTD"):
        lmcache_to_layers(torch.zeros(3, 2, 4, 32), 2)
    codec = KVCodec(level=0)
    data = encode_chunk(codec, lmcache_chunk(tokens=8), kv_heads=2)
    with pytest.raises(InvalidInputError, match="destination"):
        decode_chunk(codec, data, torch.empty(2, 3, 9, 32, dtype=torch.bfloat16))


def test_through_lmcache_serde_factory(transform):
    pytest.importorskip("lmcache.v1.distributed.serde")
    import time

    from lmcache.v1.distributed.api import MemoryLayoutDesc, ObjectKey
    from lmcache.v1.distributed.serde import SerdeConfig, create_serde_processor
    from lmcache.v1.memory_management import MemoryFormat, MemoryObjMetadata, TensorMemoryObj

    import lmcache_ctxzip

    def memory_obj(tensor):
        raw = tensor.contiguous().view(-1).view(torch.uint8).clone()
        meta = MemoryObjMetadata(shape=tensor.shape, dtype=tensor.dtype, address=0, phy_size=raw.numel(), ref_count=1,
                                 fmt=MemoryFormat.KV_2LTD, shapes=[tensor.shape], dtypes=[tensor.dtype])
        return TensorMemoryObj(raw, meta, None)

    lmcache_ctxzip.register()
    lmcache_ctxzip.register()  # idempotent
    processor = create_serde_processor(SerdeConfig("ctxzip", {"kv_heads": 2, "level": "tc-good", "transform": transform}))
    kv = lmcache_chunk()
    src = memory_obj(kv)
    size = processor.estimate_serialized_size(MemoryLayoutDesc([kv.shape], [kv.dtype]))
    dst = memory_obj(torch.zeros(size, dtype=torch.uint8))
    key = ObjectKey(chunk_hash=b"x" * 32, model_name="tiny", kv_rank=0)

    def wait(query, task):
        for _ in range(600):
            result = query(task)
            if result is not None:
                return result
            time.sleep(0.05)
        raise TimeoutError

    assert wait(processor.query_serialize_result, processor.submit_serialize([src], [dst], [key])) is True
    stored = dst.tensor.clone()
    assert stored.numel() < kv.numel() * kv.element_size()  # narrowed to the bytes written
    out = memory_obj(torch.zeros_like(kv))
    assert wait(processor.query_deserialize_result, processor.submit_deserialize([memory_obj(stored)], [out], [key])) is True
    codec = KVCodec(transform=transform)
    reference = codec.decode(stored.numpy().tobytes())
    for layer, item in enumerate(reference.layers):
        assert torch.equal(out.tensor[0, layer], item.keys[0].permute(1, 0, 2).reshape(kv.shape[2], -1))
    processor.close()


def test_lmcache_storage_manager_stores_ctxzip_streams_on_disk(transform, tmp_path):
    """LMCache's own store path: StorageManager -> SerdeL2AdapterWrapper (ctxzip) -> FS L2 adapter writes the stream.

    (Its load path is not tested: LMCache 0.5.6's FS adapter reads exactly `estimate_serialized_size` bytes back and
    treats a shorter file, i.e. any compressed chunk, as a miss; see docs/kv-serving.md.)
    """
    pytest.importorskip("lmcache.v1.distributed.storage_manager")
    import json
    import time

    from lmcache.v1.distributed.api import MemoryLayoutDesc, ObjectKey
    from lmcache.v1.distributed.config import parse_args
    from lmcache.v1.distributed.storage_manager import StorageManager

    import lmcache_ctxzip

    lmcache_ctxzip.register()
    store = tmp_path / "l2"
    store.mkdir()
    adapter = {"type": "fs", "base_path": str(store),
               "serde": {"type": "ctxzip", "kv_heads": 2, "level": "tc-good", "transform": transform}}
    manager = StorageManager(parse_args(["--l1-size-gb", "0.05", "--eviction-policy", "LRU",
                                         "--l2-adapter", json.dumps(adapter)]))
    kv = lmcache_chunk()
    key = ObjectKey(chunk_hash=b"k" * 32, model_name="tiny", kv_rank=0)
    objects = manager.reserve_write([key], MemoryLayoutDesc([kv.shape], [kv.dtype]))
    objects[key].tensor.copy_(kv)
    manager.finish_write([key])
    files = []
    for _ in range(400):
        files = list(store.glob("*.data"))
        if files and files[0].stat().st_size:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    manager.close()
    assert len(files) == 1
    data = files[0].read_bytes()
    assert data.startswith(b"CZKV\x02") and len(data) < kv.numel() * kv.element_size() / 3
    out = torch.empty_like(kv)
    options = SerdeOptions.from_kwargs({"kv_heads": 2, "level": "tc-good", "transform": transform})
    decode_chunk(options.codec(), data, out)
    reference = KVCodec(transform=transform).decode(data)
    assert torch.equal(out[1, 2], reference.layers[2].values[0].permute(1, 0, 2).reshape(kv.shape[2], -1))
