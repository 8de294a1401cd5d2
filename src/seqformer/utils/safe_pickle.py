"""Reading pickles that must not run code: numpy arrays inside plain containers, and nothing else.

Some formats of the field are pickles: caffe2 weight releases (ir-CSN) and the ACT ground-truth
files of JHMDB-21 / UCF101-24, many of them written by Python 2.  ``pickle.load`` on such a file
would execute whatever callable it names; :class:`NumpyOnlyUnpickler` resolves only the globals a
numpy array (and its scalars) needs, so a crafted file fails before anything is imported.  Dicts,
lists, tuples, str and numbers are native opcodes and need no global.  Python-2 files need
``encoding="latin1"``.
"""
from __future__ import annotations

import importlib
import pickle


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles containers of numpy arrays and nothing else, so a crafted ``.pkl`` cannot run code.

    Python-2 pickles (caffe2 releases, ACT ground-truth files) need ``encoding="latin1"``.
    """

    ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
               ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("collections", "OrderedDict"), ("_codecs", "encode")}  # protocol-2 bytes

    def find_class(self, module: str, name: str):
        if module.startswith("numpy.core"):  # pickles written by numpy < 2
            module = "numpy._core" + module[len("numpy.core"):]
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: only numpy arrays are allowed")
        return getattr(importlib.import_module(module), name)
