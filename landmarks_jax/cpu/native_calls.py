"""The XLA custom calls that `pip install` compiles from landmarks_jax/cpu/native (setup.py, optional): loading one
extension module and registering its handlers with XLA for CPUs, or saying why not, in one place for every
module that has such calls."""

import ctypes
import importlib.util
import logging
from typing import Callable, Mapping

import jax


def register(
  extension_module: str, targets: Mapping[str, str], fallback: str, preload: Callable[[], None] = lambda: None
) -> bool:
  """Loads `extension_module` (after `preload`, which loads what it links against) and registers each custom-call
  target with the handler symbol it maps to; False, with `fallback` and the reason logged, where the
  module was not built, or `preload` raises OSError."""
  try:
    spec = importlib.util.find_spec(extension_module)
    if spec is None or spec.origin is None:
      raise OSError(f'{extension_module} was not built (reinstall landmarks_jax with a C++ compiler present)')
    preload()
    library = ctypes.CDLL(spec.origin)
  except OSError as error:
    logging.info('%s: %s', fallback, error)
    return False
  for target, symbol in targets.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform='cpu')
  return True
