"""bnlint's rules, one misuse per file (installed as `bnlint.rules`)."""
