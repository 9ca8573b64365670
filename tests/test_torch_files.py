"""The torch-free reader of torch.save files, checked against files PyTorch itself writes."""

import collections
import pickle

import numpy as np
import pytest

from landmarks_jax import torch_files

torch = pytest.importorskip('torch')


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


@pytest.mark.parametrize('zip_format', [True, False])
def test_reads_what_torch_saves(tmp_path, zip_format):
  state = sample_state()
  path = tmp_path / 'state.ckpt'
  torch.save(state, path, _use_new_zipfile_serialization=zip_format)
  loaded = torch_files.load(str(path))
  assert list(loaded) == list(state)
  for name, tensor in state.items():
    expected = tensor.detach().numpy()
    assert loaded[name].dtype == expected.dtype, name
    np.testing.assert_array_equal(loaded[name], expected, err_msg=name)
    assert loaded[name].flags.writeable


def test_state_dict_unwraps_module_prefix(tmp_path):
  path = tmp_path / 'ddp.ckpt'
  torch.save({'state_dict': {'module.a.weight': torch.ones(2), 'module.b.bias': torch.zeros(1)}}, path)
  assert sorted(torch_files.load_state_dict(str(path))) == ['a.weight', 'b.bias']


def test_refuses_arbitrary_classes(tmp_path):
  path = tmp_path / 'model.ckpt'
  torch.save(torch.nn.Linear(2, 2), path)  # a whole module, not a state dict
  with pytest.raises(torch_files.TorchFileError, match='refusing to load'):
    torch_files.load(str(path))


def test_truncated_and_foreign_files(tmp_path):
  path = tmp_path / 'legacy.ckpt'
  torch.save({'w': torch.randn(100)}, path, _use_new_zipfile_serialization=False)
  data = path.read_bytes()
  path.write_bytes(data[:-40])
  with pytest.raises(torch_files.TorchFileError, match='truncated'):
    torch_files.load(str(path))
  other = tmp_path / 'other.pkl'
  other.write_bytes(pickle.dumps({'a': 1}))
  with pytest.raises(torch_files.TorchFileError, match=str(other)):
    torch_files.load(str(other))
  with pytest.raises(FileNotFoundError):
    torch_files.load(str(tmp_path / 'missing.ckpt'))
