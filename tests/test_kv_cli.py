"""`ctxzip kv encode|decode|bench` on a tiny random-weight model saved locally."""

import pytest
from typer.testing import CliRunner

from ctxzip.kv.cli import app
from kv_models import tiny_model


@pytest.fixture(scope="module")
def local_model(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    vocab = {f"w{i}": i for i in range(120)} | {"[UNK]": 120}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)
    tiny_model("llama").save_pretrained(folder)
    text = folder / "input.txt"
    text.write_text(" ".join(f"w{(i * 7) % 120}" for i in range(300)))
    return folder, text


def test_encode_then_decode(local_model, tmp_path):
    folder, text = local_model
    out = tmp_path / "cache.czkv"
    runner = CliRunner()
    result = runner.invoke(app, ["encode", str(text), "-o", str(out), "--model", str(folder), "--level", "3"])
    assert result.exit_code == 0, result.output
    assert "300 tokens" in result.output and out.stat().st_size > 0
    result = runner.invoke(app, ["decode", str(out), "--model", str(folder)])
    assert result.exit_code == 0, result.output
    assert "ok: 300 tokens, 3 layers x 2 kv heads" in result.output
    damaged = bytearray(out.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    out.write_bytes(bytes(damaged))
    result = runner.invoke(app, ["decode", str(out)])
    assert result.exit_code == 2 and "CRC mismatch" in result.output


def test_bench_and_budget(local_model, tmp_path):
    folder, text = local_model
    runner = CliRunner()
    result = runner.invoke(app, ["bench", str(text), "--model", str(folder), "--levels", "0,5"])
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if line.strip().startswith(("0 ", "5 "))]) == 2
    result = runner.invoke(app, ["encode", str(text), "-o", str(tmp_path / "x"), "--model", str(folder),
                                 "--budget-bytes", "10"])
    assert result.exit_code == 2 and "smallest KV level" in result.output


def test_transform_levels_on_the_command_line(local_model, tmp_path):
    from ctxzip.kv.calibrate import hadamard_transform

    folder, text = local_model
    transform = tmp_path / "tiny.npz"
    hadamard_transform(3, 2, 16).save(transform)
    out = tmp_path / "cache.czkv"
    runner = CliRunner()
    result = runner.invoke(app, ["encode", str(text), "-o", str(out), "--model", str(folder), "--level", "tc-good",
                                 "--transform", str(transform)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["decode", str(out)])
    assert result.exit_code == 2 and "needs KV transform" in result.output
    result = runner.invoke(app, ["decode", str(out), "--transform", str(transform)])
    assert result.exit_code == 0 and "level 7" in result.output, result.output
