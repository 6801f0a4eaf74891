"""The tracer inside training frameworks: a callback per framework.

- `bnlint.integrations.lightning.BNLintCallback` (Lightning 2.x, `lightning` or
  `pytorch_lightning`);
- `bnlint.integrations.transformers.BNLintTrainerCallback` (Hugging Face `Trainer`).

Each submodule imports its framework (and torch); this package imports neither, so
`import bnlint` and the static analyzer stay free of them.
"""
