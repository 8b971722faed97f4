"""Files: atomic writes, safe mmseg-format checkpoints, and sha256-checked weight downloads."""
