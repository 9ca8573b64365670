"""Training steps against the original's on a matrix of option sets and image sizes, in float64.

Each tests/data/torch_original_train_*.npz (tests/data/README.md says how each was made) holds what the original's
own training loop computes for three steps with tiny widths: every step's losses and gradient norms, and, for a
few layers, step 0's gradients and the weights after the last step, with every spectral-norm vector after step 0.
Between them the files cover image sizes 32, 48, 64 and 96, learned and fixed covariance (two values), masks
off, full-size and low-resolution, no GAN, LSGAN and BCE, clipping on and off, reduced_w on and off, naf 0 and 2,
and vgg_lambda and weight decay away from their defaults, on one device and on two. The frames are not stored:
`reference_inputs` draws them by the generator's rule. Our real pmapped step runs each file (test_train_parity's
machinery) in float64 on XLA's own operations, the program GPUs run.

Some files also hold the step-0 gradients of the original run in float32 (`grad0_float32/`): there our step runs
once more, in float32 on the CPU kernels (config.cpu_kernels='auto', Winograd's convolutions included), and its
step-0 gradients must be as close to the original's float64 ones as the original's own float32 gradients are,
within FLOAT32_MARGIN: float32's rounding on this network, measured by the original's kernels.

`python tests/test_train_parity_matrix.py FULL.npz OUT.npz [FULL_FLOAT32.npz]` shrinks a generator's full output
(and that of the same options with --float32) to such a file.
"""

import ast
import pathlib
import re
import sys

import jax
import numpy as np
import pytest

from landmarks_jax.training import train_step

from test_train_parity import discriminator_by_torch_name
from test_train_parity import model_by_torch_name
from test_train_parity import run_steps
from test_train_parity import step_zero_gradients_by_torch_name

DATA = pathlib.Path(__file__).resolve().parent / 'data'
MATRIX = sorted(DATA.glob('torch_original_train_*.npz'))
# The files that also hold the original's step-0 gradients in float32.
FLOAT32_MATRIX = [path for path in MATRIX if any(key.startswith('grad0_float32/') for key in np.load(path).files)]

# Step 0's losses and gradient norms (float64 in the files) within 1e-9 relative; each later step 100 times looser.
# Adam divides every gradient by sqrt(v) + 1e-8, so float64 summation-order differences in step 0's gradients
# (about 1e-13 of their norm) grow from step to step. Measured with our own step on the 48 px file: inputs moved
# by 1e-13 of themselves move step 1's generator gradient norm by 1.1e-8 and step 2's by 1.5e-7 (by 1e-15: 2.4e-11
# and 1e-9); ours against the original's differ by 4.8e-11 and 1.4e-8 there.
METRIC_TOLERANCE, METRIC_GROWTH = 1e-9, 100.0
# Arrays are stored as float32, and rounding to float32 moves a value by up to 2**-24 of itself; so each element
# may differ by that much of its own size, plus 1e-9 of the tensor's range (of its largest size where all its
# values are equal, as in a one-element bias).
STORAGE_ROUNDING = 2.0**-24
ARRAY_TOLERANCE = 1e-9

# Ours in float32 on the CPU kernels may be this many times as far from the float64 gradients as the original's
# float32 gradients are (over the kept tensors, in units of the step's gradient norm), plus FLOAT32_FLOOR of it;
# measured on img32_nomask_noclip_decay: 2.4e-6 against the original's 1.6e-6 (1.5 times).
FLOAT32_MARGIN = 4.0
FLOAT32_FLOOR = 1e-7

# Layers whose step-0 gradients and final weights a file keeps, besides the first and last weight of each part.
EXTRA_LAYERS = ('image_decoder.head_0.conv_0.weight_orig', 'image_decoder.head_0.norm_0.mlp_gamma.weight')


def reference_inputs(seed: int, steps: int, batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """The generator's frames and partners, (steps, B, 3, S, S) float32: uniform in [-1, 1] from a NumPy generator
  seeded seed + 1 (frames drawn first), each frame's top-left 3 x 3 pixels then set to 0."""
  rng = np.random.default_rng(seed + 1)
  frames = rng.uniform(-1, 1, (steps, batch, 3, size, size)).astype(np.float32)
  partners = rng.uniform(-1, 1, (steps, batch, 3, size, size)).astype(np.float32)
  frames[:, :, :, :3, :3] = 0.0
  return frames, partners


def kept_layers(names: list[str]) -> list[str]:
  """Of parameter names in the original's order: the first and last weight of each network part (the
  discriminator's scales are parts) with the last one's bias, and EXTRA_LAYERS."""
  parts = {}
  for name in names:
    if re.search(r'\.weight(_orig)?$', name):
      parts.setdefault(name.split('.')[0], []).append(name)
  kept = set(EXTRA_LAYERS) & set(names)
  for weights in parts.values():
    last_bias = re.sub(r'\.weight(_orig)?$', '.bias', weights[-1])
    kept.update({weights[0], weights[-1]} | ({last_bias} & set(names)))
  return [name for name in names if name in kept]


def shrink(full: dict, full_float32: dict | None = None) -> dict:
  """A generator's full output cut down to what the matrix test reads, with the float32 run's step-0 gradients
  of the same layers where given; checks that the inputs follow the rule."""
  options = ast.literal_eval(str(full['config']))
  frames, partners = reference_inputs(
    int(full['seed']), int(options['steps']), full['frames'].shape[1], int(options['img_size'])
  )
  assert np.array_equal(frames, full['frames']) and np.array_equal(partners, full['partners'])
  kept = {
    key: value
    for key, value in full.items()
    if key in ('config', 'seed', 'state_keys', 'state_shapes') or key.startswith(('step', 'spectral0/'))
  }
  kept['batch'] = np.array(full['frames'].shape[1])
  for network in ('model', 'discriminator'):
    names = [key[len(f'grad0/{network}/') :] for key in full if key.startswith(f'grad0/{network}/')]
    for name in kept_layers(names):
      kept[f'grad0/{network}/{name}'] = full[f'grad0/{network}/{name}']
      kept[f'final/{network}/{name}'] = full[f'final/{network}/{name}']
      if full_float32 is not None:
        assert np.array_equal(full_float32['frames'], full['frames'])
        kept[f'grad0_float32/{network}/{name}'] = full_float32[f'grad0/{network}/{name}']
  return kept


def _items(reference: dict, prefix: str) -> dict:
  return {key[len(prefix) :]: value for key, value in reference.items() if key.startswith(prefix)}


def _compare(ours: dict, expected: dict, what: str):
  """Each expected array against ours, within its float32 storage rounding plus ARRAY_TOLERANCE of its range."""
  assert expected, what
  for name, value in expected.items():
    value = np.asarray(value, np.float64)
    assert np.shape(ours[name]) == value.shape, (what, name)
    ours_value = np.asarray(ours[name], np.float64)
    spread = float(np.ptp(value)) or float(np.max(np.abs(value)))
    limit = STORAGE_ROUNDING * np.abs(value) + ARRAY_TOLERANCE * spread
    excess = np.abs(ours_value - value) - limit
    worst = int(np.argmax(excess))
    assert excess.flat[worst] <= 0, (
      f'{what} {name}: ours {ours_value.flat[worst]!r}, reference '
      f'{value.flat[worst]!r}, allowed {limit.flat[worst]:.3g}'
    )


def load(path: pathlib.Path) -> dict:
  """A file of the matrix, with its frames and partners drawn again."""
  with np.load(path, allow_pickle=False) as data:
    reference = {key: data[key] for key in data.files}
  options = ast.literal_eval(str(reference['config']))
  reference['frames'], reference['partners'] = reference_inputs(
    int(reference['seed']), int(options['steps']), int(reference['batch']), int(options['img_size'])
  )
  return reference


def _name(path: pathlib.Path) -> str:
  return path.stem.removeprefix('torch_original_train_')


@pytest.fixture(scope='module', params=MATRIX, ids=_name)
def case(request):
  """One file of the matrix with our run of its steps; compiled programs are dropped after it."""
  reference = load(request.param)
  yield reference, run_steps(reference)
  train_step._p_train_step.cache_clear()  # pylint: disable=protected-access
  jax.clear_caches()


def test_the_matrix_is_there():
  assert len(MATRIX) >= 4 and FLOAT32_MATRIX, MATRIX


def test_every_steps_losses_and_gradient_norms(case):
  reference, (config, metrics, _, _, _) = case
  assert len(metrics) == int(ast.literal_eval(str(reference['config']))['steps'])
  for step, ours in enumerate(metrics):
    expected = _items(reference, f'step{step}/')
    assert ('loss_G_GAN' in expected) == config.use_gan, sorted(expected)
    for name, value in expected.items():
      tolerance = METRIC_TOLERANCE * METRIC_GROWTH**step
      assert ours[name] == pytest.approx(float(value), rel=tolerance), (step, name, ours[name], float(value))


def test_step_zero_gradients(case):
  reference, trained = case
  model_grads, discriminator_grads = step_zero_gradients_by_torch_name(trained)
  _compare(model_grads, _items(reference, 'grad0/model/'), 'generator gradient')
  if trained[0].use_gan:
    _compare(discriminator_grads, _items(reference, 'grad0/discriminator/'), 'discriminator gradient')


def _float32_error(gradients: dict, exact: dict, norm: float) -> float:
  """The largest difference of any kept tensor from the float64 gradients, in units of the gradient norm."""
  return (
    max(
      float(np.max(np.abs(np.asarray(gradients[name], np.float64) - np.asarray(value, np.float64))))
      for name, value in exact.items()
    )
    / norm
  )


@pytest.mark.parametrize('path', FLOAT32_MATRIX, ids=_name)
def test_step_zero_gradients_in_float32_on_the_cpu_kernels(path):
  reference = load(path)
  original = {network: _items(reference, f'grad0_float32/{network}/') for network in ('model', 'discriminator')}
  config, *_ = trained = run_steps(reference, np.float32, 'auto', num_steps=1)
  ours = step_zero_gradients_by_torch_name(trained)
  for network, gradients, norm_name in (('model', ours[0], 'grad_norm_G'), ('discriminator', ours[1], 'grad_norm_D')):
    exact = _items(reference, f'grad0/{network}/')
    if not original[network]:
      assert network == 'discriminator' and not config.use_gan
      continue
    norm = float(reference[f'step0/{norm_name}'])
    original_error = _float32_error(original[network], exact, norm)
    error = _float32_error(gradients, exact, norm)
    assert error <= FLOAT32_MARGIN * original_error + FLOAT32_FLOOR, (
      f'{network}: ours in float32 {error:.2e} of the gradient norm from float64, the original {original_error:.2e}'
    )


def test_spectral_norm_vectors_after_step_zero(case):
  reference, (_, _, states, _, _) = case
  ours = model_by_torch_name({'params': states[0].generator['params'], 'spectral': states[0].generator['spectral']})
  _compare(ours, _items(reference, 'spectral0/model/'), 'spectral vector')


def test_weights_after_the_last_step(case):
  reference, (config, _, states, _, _) = case
  _compare(model_by_torch_name(states[-1].generator), _items(reference, 'final/model/'), 'generator weight')
  if config.use_gan:
    _compare(
      discriminator_by_torch_name(states[-1].discriminator),
      _items(reference, 'final/discriminator/'),
      'discriminator weight',
    )


if __name__ == '__main__':
  read = lambda path: dict(np.load(path, allow_pickle=False))
  np.savez_compressed(sys.argv[2], **shrink(read(sys.argv[1]), read(sys.argv[3]) if len(sys.argv) > 3 else None))
