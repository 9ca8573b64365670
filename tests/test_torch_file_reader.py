"""The torch-free reader of torch.save files, checked against files PyTorch itself writes."""

import collections
import os
import pickle
import zipfile

import numpy as np
import pytest

from landmarks_jax.weights.original_checkpoints import torch_file_reader

try:
  import torch  # pylint: disable=g-import-not-at-top
except ImportError:
  torch = None
needs_torch = pytest.mark.skipif(torch is None, reason='the torch extra is not installed')


def sample_state():
  generator = torch.Generator().manual_seed(0)
  base = torch.randn(4, 6, generator=generator)
  state = collections.OrderedDict()
  state['conv.weight'] = torch.nn.Parameter(torch.randn(8, 3, 3, 3, generator=generator))
  state['conv.bias'] = torch.randn(8, generator=generator)
  state['transposed'] = base.t()  # non-contiguous
  state['slice'] = base[1:3, 2:]  # a view into a shared storage
  state['same_storage'] = base
  state['scalar'] = torch.tensor(3.5)
  state['counts'] = torch.arange(5)
  state['half'] = torch.randn(3, generator=generator).half()
  state['flags'] = torch.tensor([True, False])
  return state


@needs_torch
@pytest.mark.parametrize('zip_format', [True, False])
def test_reads_what_torch_saves(tmp_path, zip_format):
  state = sample_state()
  path = tmp_path / 'state.ckpt'
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  loaded = torch_file_reader.load(str(path))
  assert list(loaded) == list(state)
  for name, tensor in state.items():
    expected = tensor.detach().numpy()
    assert loaded[name].dtype == expected.dtype, name
    np.testing.assert_array_equal(loaded[name], expected, err_msg=name)
    assert loaded[name].flags.writeable


@needs_torch
def test_state_dict_unwraps_module_prefix(tmp_path):
  path = tmp_path / 'ddp.ckpt'
  torch.save({'state_dict': {'module.a.weight': torch.ones(2), 'module.b.bias': torch.zeros(1)}}, path)
  assert sorted(torch_file_reader.load_state_dict(str(path))) == ['a.weight', 'b.bias']


@needs_torch
def test_refuses_arbitrary_classes(tmp_path):
  path = tmp_path / 'model.ckpt'
  torch.save(torch.nn.Linear(2, 2), path)  # a whole module, not a state dict
  with pytest.raises(torch_file_reader.TorchFileError, match='refusing to load'):
    torch_file_reader.load(str(path))


@needs_torch
def test_truncated_and_foreign_files(tmp_path):
  path = tmp_path / 'legacy.ckpt'
  torch.save({'w': torch.randn(100)}, path, _use_new_zipfile_serialization=False)
  data = path.read_bytes()
  path.write_bytes(data[:-40])
  with pytest.raises(torch_file_reader.TorchFileError, match='truncated'):
    torch_file_reader.load(str(path))
  other = tmp_path / 'other.pkl'
  other.write_bytes(pickle.dumps({'a': 1}))
  with pytest.raises(torch_file_reader.TorchFileError, match=str(other)):
    torch_file_reader.load(str(other))
  with pytest.raises(FileNotFoundError):
    torch_file_reader.load(str(tmp_path / 'missing.ckpt'))


class _RunsCode:
  """Unpickling this runs a shell command, as a hostile checkpoint would."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return os.system, (f'touch {self.marker}',)


LEGACY_POSITIONS = ('magic', 'protocol', 'system_info', 'object', 'storage_keys')


def _legacy_file(path, hostile_position, marker):
  """An old-format torch.save file (five pickles, no storages) with a hostile pickle at one position."""
  parts = {
    'magic': torch_file_reader.LEGACY_MAGIC,
    'protocol': 1001,
    'system_info': {'protocol_version': 1001, 'little_endian': True},
    'object': {'a': 1},
    'storage_keys': [],
  }
  parts[hostile_position] = _RunsCode(marker)
  path.write_bytes(b''.join(pickle.dumps(parts[name], protocol=2) for name in LEGACY_POSITIONS))


@pytest.mark.parametrize('position', LEGACY_POSITIONS)
def test_no_pickle_of_the_legacy_format_runs_code(tmp_path, position):
  marker, path = tmp_path / 'ran', tmp_path / 'hostile.ckpt'
  _legacy_file(path, position, marker)
  with pytest.raises(torch_file_reader.TorchFileError, match=r'refusing to load posix\.system'):
    torch_file_reader.load(str(path))
  assert not marker.exists()


def test_no_pickle_of_the_zip_format_runs_code(tmp_path):
  marker, path = tmp_path / 'ran', tmp_path / 'hostile.pth'
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr('archive/data.pkl', pickle.dumps(_RunsCode(marker), protocol=2))
    archive.writestr('archive/version', '3\n')
  with pytest.raises(torch_file_reader.TorchFileError, match=r'refusing to load posix\.system'):
    torch_file_reader.load(str(path))
  assert not marker.exists()


def test_hostile_files_through_the_import_command(tmp_path):
  """The command's own path to the reader (a state dict for the generator) refuses them the same way."""
  from landmarks_jax.configs import test as test_config  # pylint: disable=g-import-not-at-top
  from landmarks_jax.weights import pretrained  # pylint: disable=g-import-not-at-top

  marker, path = tmp_path / 'ran', tmp_path / 'checkpoint_1.ckpt'
  _legacy_file(path, 'system_info', marker)
  with pytest.raises(torch_file_reader.TorchFileError, match=str(path)):
    pretrained.generator_variables(str(path), test_config.get_config())
  assert not marker.exists()


def test_a_tensor_outside_its_storage_is_refused(tmp_path):
  """A view that as_strided would take past the end of the storage's bytes is an error, not a memory read."""

  path = tmp_path / 'overreach.ckpt'
  header = [torch_file_reader.LEGACY_MAGIC, 1001, {'protocol_version': 1001}]
  # The object pickle, written opcode by opcode: _rebuild_tensor_v2(storage('0', 4 floats), 0, (100,), (1,)).
  body = (
    b'\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00('
    b'(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04Ntq\x01Q'
    b'K\x00K\x64\x85K\x01\x85\x89tR.'
  )
  data = b''.join(pickle.dumps(x, protocol=2) for x in header) + body + pickle.dumps(['0'], protocol=2)
  data += np.int64(4).tobytes() + np.zeros(4, np.float32).tobytes()
  path.write_bytes(data)
  with pytest.raises(torch_file_reader.TorchFileError, match='reaches past its storage'):
    torch_file_reader.load(str(path))
