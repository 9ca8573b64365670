"""Reads tensors saved by `torch.save` into numpy, without PyTorch installed.

Both of torch's formats are understood: the zip archive (torch >= 1.6) and the older single-stream format
(the original's checkpoints and torchvision's VGG19 file). Every pickle of either format goes through an
allow-list: the legacy format's header pickles (magic number, protocol, system info) and storage keys may
hold plain values only, the object pickle plain containers and tensors. Any other class is refused, so reading
a checkpoint never runs code from it, and a tensor must lie inside its storage.
"""

import collections
import io
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np

from landmarks_jax import user_errors

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
  'FloatStorage': np.float32,
  'DoubleStorage': np.float64,
  'HalfStorage': np.float16,
  'BFloat16Storage': ml_dtypes.bfloat16,
  'LongStorage': np.int64,
  'IntStorage': np.int32,
  'ShortStorage': np.int16,
  'CharStorage': np.int8,
  'ByteStorage': np.uint8,
  'BoolStorage': np.bool_,
}


class TorchFileError(user_errors.UserError, ValueError):
  """The file is not a torch.save file this reader understands."""


class _StorageType:
  def __init__(self, name: str):
    if name not in _STORAGE_DTYPES:
      raise TorchFileError(f'unsupported tensor storage {name}')
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, offset, size, stride, *unused):
  # A view, not a copy: in the older format the storage bytes are only read after the pickle. as_strided
  # checks nothing, so the view's extent is checked here: a crafted file must not read past its storage.
  if not isinstance(storage, np.ndarray):
    raise TorchFileError('a tensor without a storage')
  offset, size, stride = int(offset), tuple(int(n) for n in size), tuple(int(n) for n in stride)
  if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride) or len(size) != len(stride):
    raise TorchFileError(f'a tensor of size {size}, stride {stride} and offset {offset} is malformed')
  if 0 not in size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.size:
    raise TorchFileError(
      f'a tensor of size {size}, stride {stride} and offset {offset} reaches past its '
      f'storage of {storage.size} elements'
    )
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride))


def _rebuild_parameter(data, *unused):
  return data


_ALLOWED = {
  ('collections', 'OrderedDict'): collections.OrderedDict,
  ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
  ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
  ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
}


class _PlainUnpickler(pickle.Unpickler):
  """Reads pickles of plain values only (numbers, strings, lists, dicts): any class or reference is refused."""

  def find_class(self, module, name):
    raise TorchFileError(f'refusing to load {module}.{name} from a checkpoint')

  def persistent_load(self, pid):
    raise TorchFileError('unexpected persistent id in a header pickle')


def _load_plain(stream):
  return _PlainUnpickler(stream).load()


class _Unpickler(pickle.Unpickler):
  """Rebuilds tensors as numpy arrays; storages come from `load_storage(dtype, key, numel)`."""

  def __init__(self, stream, load_storage):
    super().__init__(stream)
    self._load_storage = load_storage

  def find_class(self, module, name):
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    if module == 'torch' and name.endswith('Storage'):
      return _StorageType(name)
    raise TorchFileError(f'refusing to load {module}.{name} from a checkpoint')

  def persistent_load(self, pid):
    if pid[0] != 'storage':
      raise TorchFileError(f'unsupported persistent id {pid[0]!r}')
    storage_type, key = pid[1], str(pid[2])
    if not isinstance(storage_type, _StorageType):
      raise TorchFileError('untyped storages are not supported')
    numel = pid[4]
    storage = self._load_storage(storage_type.dtype, key, numel)
    if len(pid) > 5 and pid[5] is not None:  # a view of a larger storage: (view key, offset, size)
      _, view_offset, view_size = pid[5]
      storage = storage[view_offset : view_offset + view_size]
    return storage


def _load_zip(path: str):
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
    if not pickles:
      raise TorchFileError('zip archive without data.pkl')
    root = pickles[0][: -len('data.pkl')]

    def load_storage(dtype, key, numel):
      raw = archive.read(f'{root}data/{key}')
      return np.frombuffer(raw, dtype=dtype, count=numel)

    return _Unpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _load_legacy(path: str):
  with open(path, 'rb') as f:
    if _load_plain(f) != LEGACY_MAGIC:
      raise TorchFileError('not a torch.save file (bad magic number)')
    _load_plain(f)  # protocol version
    _load_plain(f)  # system info
    pending = {}

    def load_storage(dtype, key, numel):
      # Storage bytes follow the pickle; hand out placeholders and fill them in afterwards.
      if key not in pending:
        pending[key] = np.empty(numel, dtype)
      return pending[key]

    result = _Unpickler(f, load_storage).load()
    keys = _load_plain(f)
    if not isinstance(keys, list):
      raise TorchFileError('the storage key list is not a list')
    for key in keys:
      size = int(np.frombuffer(f.read(8), '<i8')[0])
      if str(key) not in pending:
        raise TorchFileError(f'storage {key!r} is listed but no tensor uses it')
      array = pending[str(key)]
      if not 0 <= size <= array.size:
        raise TorchFileError(f'storage {key!r} claims {size} elements, its tensors declared {array.size}')
      data = np.frombuffer(f.read(size * array.dtype.itemsize), dtype=array.dtype)
      if data.size != size:
        raise TorchFileError('file ends inside a tensor (truncated download?)')
      array[:size] = data
  return result


def _own_arrays(obj):
  if isinstance(obj, np.ndarray):
    return np.array(obj, copy=True)
  if isinstance(obj, dict):
    return type(obj)((k, _own_arrays(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_own_arrays(v) for v in obj)
  return obj


def load(path: str):
  """The object torch.save wrote to `path`, with tensors as numpy arrays."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No such checkpoint file: {path}')
  try:
    return _own_arrays(_load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path))
  except TorchFileError as e:
    raise TorchFileError(f'Cannot read {path}: {e}') from None
  except (
    pickle.UnpicklingError,
    EOFError,
    KeyError,
    ValueError,
    IndexError,
    TypeError,
    AttributeError,
    OverflowError,
    MemoryError,
    zipfile.BadZipFile,
  ) as e:
    raise TorchFileError(
      f'Cannot read {path} as a torch.save file ({type(e).__name__}: {e}); is it truncated or of another format?'
    ) from None


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """A flat {name: array} state dict from a torch.save file, unwrapping 'state_dict' and 'module.'."""
  obj = load(path)
  if isinstance(obj, dict) and 'state_dict' in obj and isinstance(obj['state_dict'], dict):
    obj = obj['state_dict']
  if not isinstance(obj, dict):
    raise TorchFileError(f'{path} holds a {type(obj).__name__}, not a state dict')
  arrays = {k: v for k, v in obj.items() if isinstance(v, np.ndarray)}
  if arrays and all(k.startswith('module.') for k in arrays):
    arrays = {k[len('module.') :]: v for k, v in arrays.items()}
  return arrays
