"""podrec: self-hosted, language-model-driven personalised podcast recommendations."""

__version__ = "0.1.0"
