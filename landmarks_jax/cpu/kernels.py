"""The model's CPU kernels, behind one switch.

The model computes two things through here: its convolutions (`model/convolution.py`) and resizes
(`model/resize.py`). With `config.cpu_kernels = 'auto'` (the default), on a CPU, they take this package's faster
paths:
- convolutions by oneDNN's custom calls, the large 3x3 ones by Winograd's algorithm (`onednn_convolution.py`),
  or, where oneDNN is not built, XLA's forward pass with a banded kernel gradient (`banded_gradient.py`);
- resizes by a custom call that reads only the pixels each output blends (`sparse_resize.py`).
With 'xla', and on every other backend, the model is plain `lax` and `jax.numpy`: the program GPUs run. The
choice is the process's (`select_for(config)`, made where training, evaluation, prediction and the benchmark
start) and is read when a function is traced. In float32 the two round differently; docs/differences.md says by
how much.
"""

import contextlib

import jax
import jax.numpy as jnp

from landmarks_jax.cpu import banded_gradient
from landmarks_jax.cpu import onednn_convolution
from landmarks_jax.cpu import sparse_resize

MODES = ('auto', 'xla')

_mode = 'auto'


def select(mode: str) -> None:
  """Chooses the kernels for what is traced from now on. JAX caches traces by function, so its caches are
  cleared when the choice changes: nothing traced under one choice is run under the other."""
  global _mode
  if mode not in MODES:
    raise ValueError(f'cpu_kernels must be one of {", ".join(map(repr, MODES))}, not {mode!r}')
  if mode != _mode:
    _mode = mode
    jax.clear_caches()


def select_for(config) -> None:
  """`select` with a configuration's `cpu_kernels` ('auto' where it has none): what training, evaluation,
  prediction and the benchmark call before they trace anything."""
  select(config.get('cpu_kernels', 'auto'))


def enabled() -> bool:
  """Whether what is traced now takes the CPU kernels: 'auto', on a CPU."""
  return _mode == 'auto' and jax.default_backend() == 'cpu'


@contextlib.contextmanager
def plain_xla():
  """Within it, the model traces as with 'xla'. XLA's cost analysis counts no FLOPs in a custom call and a loop's
  body once, so the benchmark counts a step's FLOPs on a program traced this way."""
  previous = _mode
  select('xla')
  try:
    yield
  finally:
    select(previous)


def describe() -> str:
  """What the model's operations run on in this process, for the log at start."""
  if _mode == 'xla':
    return "cpu_kernels='xla': XLA's own operations"
  if jax.default_backend() != 'cpu':
    return f"cpu_kernels='auto' on {jax.default_backend()}: XLA's own operations"
  convolutions = (
    "oneDNN's convolutions (Winograd's for large 3x3 ones)"
    if onednn_convolution.supports(jnp.float32)
    else "XLA's convolutions with banded kernel gradients (oneDNN not built here)"
  )
  resizes = 'sparse resizes' if sparse_resize.available() else 'dense resizes (their custom call not built here)'
  return f"cpu_kernels='auto': {convolutions}, {resizes}"


def conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """torch's Conv2d(stride, padding) on NHWC `x`, HWIO `kernel`: by oneDNN where it is built and takes the dtype,
  else with the banded kernel gradient where that pays, else XLA's."""
  if onednn_convolution.handles(x, kernel, stride, padding):
    return onednn_convolution.conv2d(x, kernel, stride, padding)
  if banded_gradient.pays(x.shape, kernel.shape, padding, stride):
    return banded_gradient.conv2d(x, kernel, stride, padding)
  return banded_gradient.xla_conv2d(x, kernel, stride, padding)


def takes_resize(x: jax.Array) -> bool:
  """Whether `resize` takes x (see sparse_resize.handles)."""
  return sparse_resize.handles(x)


def resize(x: jax.Array, rows, cols) -> jax.Array:
  """x resized by the (outputs, inputs) matrices `rows` and `cols` (NumPy), reading only their nonzero taps."""
  return sparse_resize.resize(x, sparse_resize.Taps.of(rows), sparse_resize.Taps.of(cols))
