"""Custom operators. Everything here has a pure-PyTorch path; faster kernels register as backends."""
from seqformer.ops.msda import available_backends, ms_deform_attn, ms_deform_attn_pytorch, register_backend

__all__ = ["ms_deform_attn", "ms_deform_attn_pytorch", "register_backend", "available_backends"]
