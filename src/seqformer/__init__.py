"""SeqFormer: query-based video transformers for VIS and spatio-temporal action detection."""
__version__ = "0.1.0"

from seqformer import _moved

_moved.install()
