"""The attentions compared with ISA (dense, criss-cross, axial, window, strided, and ISA itself as one of them), the
base they share, FlexAttention, and METHODS, their registry: see ``registry.py``."""
