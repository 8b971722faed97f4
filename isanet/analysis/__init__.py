"""Analysis: what one pixel attends to (probe), and memory / FLOPs / time measurement (the attention bench)."""
