"""Language detection for items that do not declare one (py3langid, restricted to expected ones)."""

from __future__ import annotations

import re
from collections.abc import Sequence

_CJK = re.compile(r"[\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")


class LanguageDetector:
    """Detects a text's language among ``languages``; short or empty text gives None."""

    def __init__(self, languages: Sequence[str]) -> None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        self.languages = tuple(languages)
        self._identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE,
                                                             norm_probs=True)
        self._identifier.set_languages(list(self.languages))

    def detect(self, text: str, min_chars: int = 12) -> str | None:
        text = (text or "").strip()
        if len(text) < min_chars:
            # CJK scripts say enough in a few characters.
            if _KANA.search(text) and "ja" in self.languages:
                return "ja"
            if _HANGUL.search(text) and "ko" in self.languages:
                return "ko"
            if _CJK.search(text) and "zh" in self.languages:
                return "zh"
            return None
        lang, prob = self._identifier.classify(text)
        return lang if prob >= 0.5 else None
