"""The original's step timed in a process of its own, with the malloc settings asked for; bad checkouts named.

The checkout here is a stand-in with the original's module and class names around one tiny convolution: what
is tested is the plumbing (import by path, the subprocess, its environment and report), not the original."""

import pytest

from landmarks_jax.bench import original_step
from landmarks_jax.configs import bbc
from landmarks_jax.cpu import host_allocator

pytest.importorskip('torch')

MODEL = """
import torch


class PartFactorizedModel(torch.nn.Module):
  def __init__(self, options):
    super().__init__()
    if options['img_size'] < 0:
      raise ValueError('the stand-in refuses this image size')
    self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

  def forward(self, input_a, input_b):
    return {'reconstruction': self.conv(input_a) + input_b}
"""
LOSSES = """
import torch


class Vgg19PerceptualLoss(torch.nn.Module):
  def __init__(self, reduced_w):
    super().__init__()

  def forward(self, prediction, target):
    return ((prediction - target) ** 2).mean()
"""


@pytest.fixture(scope='module')
def checkout(tmp_path_factory):
  folder = tmp_path_factory.mktemp('original')
  models = folder / 'models'
  models.mkdir()
  for name, text in (('__init__', ''), ('part_factorized_model', MODEL), ('losses', LOSSES), ('discriminator', '')):
    (models / f'{name}.py').write_text(text)
  return str(folder)


def tiny_config():
  config = bbc.get_config()
  config.img_size = 16
  return config


@pytest.mark.parametrize('malloc', original_step.MALLOC_CHOICES)
def test_the_step_runs_apart_with_the_malloc_settings_asked_for(checkout, malloc):
  result = original_step.time_in_subprocess(checkout, tiny_config(), batch_size=2, num_steps=2, malloc=malloc, warmup=3)
  assert len(result['step_seconds']) == 2 and result['median_step_seconds'] > 0
  assert result['warmup_steps'] == 3
  # 'ours' runs the original as this process runs: with the settings where this process has them.
  assert result['malloc'] == ('defaults' if malloc == 'defaults' else host_allocator.settings())


def test_a_folder_that_is_not_a_checkout_is_named_before_anything_runs(tmp_path):
  with pytest.raises(FileNotFoundError, match='part_factorized_model.py is missing'):
    original_step.time_in_subprocess(str(tmp_path), tiny_config(), batch_size=2, num_steps=1)


def test_the_originals_own_error_is_reported(checkout):
  config = tiny_config()
  config.img_size = -1
  with pytest.raises(RuntimeError, match='the stand-in refuses this image size'):
    original_step.time_in_subprocess(checkout, config, batch_size=2, num_steps=1)


def test_an_unknown_malloc_choice_is_refused(checkout):
  with pytest.raises(ValueError, match='malloc must be one of'):
    original_step.time_in_subprocess(checkout, tiny_config(), batch_size=2, num_steps=1, malloc='jemalloc')


def test_a_negative_warmup_is_refused(checkout):
  with pytest.raises(ValueError, match='warmup must be >= 0'):
    original_step.time_in_subprocess(checkout, tiny_config(), batch_size=2, num_steps=1, warmup=-1)


def test_the_subprocess_command_without_its_arguments_prints_its_usage():
  with pytest.raises(SystemExit, match='CHECKOUT CONFIG_JSON BATCH_SIZE NUM_STEPS WARMUP'):
    original_step.main([])
