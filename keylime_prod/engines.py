"""The two Whisper engines behind one small interface.

- ``faster-whisper`` (CTranslate2): the default, several times faster on a CPU.
- ``openai-whisper``: the reference implementation (optional extra, needs torch). It is handed decoded samples, so
  it never runs an ``ffmpeg`` from PATH, and it runs the same weights as faster-whisper through the checkpoint
  :func:`keylime_prod.models.export_openai` converts.

Both get the same decoding options (beam size, best-of, temperature fallback, thresholds: the two libraries share
their defaults) and the same vocabulary prompt on every 30-second window: faster-whisper through ``hotwords``,
openai-whisper through ``initial_prompt`` with ``carry_initial_prompt``. Voice activity detection is done once by
the caller (keylime_prod.transcript), so each engine only ever sees speech.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import models
from .config import WhisperSettings
from .errors import TranscriptError

log = logging.getLogger(__name__)

ENGINES = ("faster-whisper", "openai-whisper")

#: CTranslate2 compute types (``ctranslate2.get_supported_compute_types("cpu")`` is a subset of these).
COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
                 "bfloat16", "float32")  # fmt: skip


@dataclass(frozen=True)
class Piece:
    """A stretch of text an engine returned, seconds relative to the samples it was given."""

    start: float
    end: float
    text: str


class Engine(Protocol):
    """What keylime_prod.transcript needs from an engine."""

    name: str
    compute_type: str

    def transcribe(self, audio: np.ndarray, prompt: str | None) -> list[Piece]:
        """Transcribe 16 kHz mono float32 samples; ``prompt`` steers the vocabulary of every window."""
        ...


def load(settings: WhisperSettings, ref: models.ModelRef, *, threads: int, cache_dir: Path) -> Engine:
    """Load the engine ``settings.engine`` with the resolved model ``ref``, using ``threads`` CPU threads."""
    if settings.engine == "faster-whisper":
        return FasterWhisperEngine(settings, ref, threads=threads, cache_dir=cache_dir)
    if settings.engine == "openai-whisper":
        return OpenAIWhisperEngine(settings, ref, threads=threads, cache_dir=cache_dir)
    raise TranscriptError(f"unknown engine {settings.engine!r}", hint=f"use one of: {', '.join(ENGINES)}")


class FasterWhisperEngine:
    """faster-whisper on the CPU."""

    name = "faster-whisper"

    def __init__(self, settings: WhisperSettings, ref: models.ModelRef, *, threads: int, cache_dir: Path) -> None:
        from faster_whisper import WhisperModel

        if ref.checkpoint is not None:
            raise TranscriptError(
                "faster-whisper needs a CTranslate2 model folder, not an openai-whisper checkpoint",
                where=ref.checkpoint,
                hint="use --engine openai-whisper for a .pt file",
            )
        if settings.compute_type not in COMPUTE_TYPES:
            raise TranscriptError(
                f"unknown compute type {settings.compute_type!r}", hint=f"use one of: {', '.join(COMPUTE_TYPES)}"
            )
        self.settings = settings
        self.compute_type = settings.compute_type
        src = str(ref.ct2_dir) if ref.ct2_dir is not None else str(ref.download)
        try:
            self.model = WhisperModel(
                src,
                device="cpu",
                compute_type=settings.compute_type,
                cpu_threads=threads,
                num_workers=1,
                download_root=str(cache_dir / "faster-whisper") if ref.download else None,
            )
        except Exception as e:  # ctranslate2 raises RuntimeError/ValueError, the hub its own types
            raise _load_error(ref, e) from e

    def transcribe(self, audio: np.ndarray, prompt: str | None) -> list[Piece]:
        """See :class:`Engine`."""
        s = self.settings
        try:
            segments, _info = self.model.transcribe(
                audio,
                language=s.language,
                beam_size=s.beam_size,
                best_of=5,
                vad_filter=False,  # done once, by the caller, for both engines
                hotwords=prompt or None,
                condition_on_previous_text=True,
                without_timestamps=False,
            )
            # faster-whisper yields lazily: materialise inside the stage (style.md, point 3).
            return [Piece(seg.start, seg.end, seg.text) for seg in segments]
        except (RuntimeError, ValueError) as e:
            raise TranscriptError(f"faster-whisper failed: {e}") from e


class OpenAIWhisperEngine:
    """openai-whisper (PyTorch) on the CPU, fed decoded samples."""

    name = "openai-whisper"
    compute_type = "float32"  # openai-whisper runs float32 on a CPU (fp16 is GPU only)

    def __init__(self, settings: WhisperSettings, ref: models.ModelRef, *, threads: int, cache_dir: Path) -> None:
        try:
            import torch
            import whisper
        except ImportError as e:
            raise TranscriptError("the openai-whisper engine is not installed", hint=models.OPENAI_INSTALL_HINT) from e
        if settings.compute_type not in ("float32", "default", "auto"):
            log.warning("openai-whisper runs float32 on a CPU; ignoring compute_type %s", settings.compute_type)
        self.settings = settings
        self._whisper = whisper
        # One thread per physical core at most: torch with 2 threads on a busy 2-core machine ran 10x slower.
        torch.set_num_threads(max(1, threads))
        if ref.download is not None:
            try:
                self.model = whisper.load_model(ref.download, device="cpu", download_root=str(cache_dir / "openai"))
            except Exception as e:  # urllib/hash/torch errors on download
                raise _load_error(ref, e) from e
        else:
            ckpt = ref.checkpoint or models.export_openai(ref, cache_dir=cache_dir)
            self.model = _load_checkpoint(ckpt, torch, whisper)
        self._carry = "carry_initial_prompt" in inspect.signature(whisper.transcribe).parameters

    def transcribe(self, audio: np.ndarray, prompt: str | None) -> list[Piece]:
        """See :class:`Engine`."""
        s = self.settings
        extra: dict[str, Any] = {"carry_initial_prompt": True} if (prompt and self._carry) else {}
        try:
            result = self._whisper.transcribe(
                self.model,
                np.array(audio, dtype=np.float32, copy=True),  # torch wants a writable array
                verbose=None,
                language=s.language,
                beam_size=s.beam_size,
                best_of=5,
                fp16=False,
                initial_prompt=prompt or None,
                condition_on_previous_text=True,
                **extra,
            )
        except (RuntimeError, ValueError) as e:
            raise TranscriptError(f"openai-whisper failed: {e}") from e
        return [Piece(float(seg["start"]), float(seg["end"]), str(seg["text"])) for seg in result["segments"]]


def _load_checkpoint(path: Path, torch: Any, whisper: Any) -> Any:
    """Load an openai-whisper checkpoint; set the word-timing heads our converter stored beside the weights."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = whisper.model.Whisper(whisper.model.ModelDimensions(**ckpt["dims"]))
        model.load_state_dict(ckpt["model_state_dict"])
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError ...
        raise TranscriptError(
            f"corrupt openai-whisper checkpoint: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            where=path,
            hint="delete it; `produce models export-openai` makes a new one",
        ) from e
    heads = ckpt.get("alignment_heads") or []
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model.eval()


def _load_error(ref: models.ModelRef, e: Exception) -> TranscriptError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if ref.download is not None:
        return TranscriptError(
            f"cannot load or download Whisper model {ref.download!r}: {first}",
            hint="without a network use a bundled model (tiny.en, base) or a model folder path",
        )
    return TranscriptError(
        f"corrupt model folder: {first}", where=ref.ct2_dir, hint="re-install or re-convert the model"
    )
