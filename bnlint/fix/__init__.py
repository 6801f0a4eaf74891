"""Edits → files, atomically (`--fix` lands with the fixes issue; applying edits to text
is needed now by the rule examples' tests)."""
