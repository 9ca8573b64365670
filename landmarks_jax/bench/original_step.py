"""Times the PyTorch original's training step on this machine, imported from a checkout the user gives.

`bench --original=PATH` prints it beside ours, at the same sizes and batch: the original's model, VGG19
perceptual loss (and discriminator with use_gan) and Adam, as its train.py loop body runs them, on random
inputs. Nothing of the original is copied here; its `models` package is imported from PATH (a clone of
NVIDIA/UnsupervisedLandmarkLearning) and run on the CPU: its `.cuda()` calls are made no-ops while it is
built. The VGG19 has random weights (the step's cost does not depend on them, and nothing is downloaded); when
torchvision is not installed, a stand-in builds torchvision's VGG19 layer layout. Needs the `torch` extra.

`build_training` and `OriginalTraining.step` are that set-up and loop body; `peer_training` trains the
original with them too. The timing runs in a process of its own (`time_in_subprocess`), by default with malloc
as the original has it (each command of this package changes it: cpu/host_allocator.py), so that neither step shares the
other's threads, memory or settings.
"""

import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from typing import Any, Callable

from landmarks_jax.cpu import host_allocator

# torchvision's VGG19 'features': the output widths of its 3x3 convolutions, 'M' a 2x2 max pool.
VGG19_LAYOUT = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M')
PACKAGE = 'landmarks_original_models'
# The config entries the original's model is built from, and those its step is built from besides.
ORIGINAL_MODEL_FIELDS = (
  'n_landmarks',
  'n_filters',
  'use_identity_covariance',
  'fixed_covar',
  'img_size',
  'use_fg_bg_mask',
  'low_res_mask',
  'nsf',
  'naf',
  'ngc',
)
CONFIG_FIELDS = ORIGINAL_MODEL_FIELDS + (
  'reduced_w',
  'use_gan',
  'ndf',
  'n_layers_D',
  'no_lsgan',
  'num_D',
  'learning_rate',
  'weight_decay',
  'use_vgg',
  'vgg_lambda',
  'no_grad_clip',
)
# The malloc settings the original's process may run with: the C library's defaults, or this package's.
MALLOC_CHOICES = ('defaults', 'ours')


def _torchvision_stand_in(torch) -> types.ModuleType:
  """A `torchvision` with just `models.vgg19`, whose `features` has torchvision's layer layout."""

  def vgg19(*unused_args, **unused_kwargs):
    layers, width = [], 3
    for entry in VGG19_LAYOUT:
      if entry == 'M':
        layers.append(torch.nn.MaxPool2d(2, 2))
      else:
        layers += [torch.nn.Conv2d(width, entry, 3, padding=1), torch.nn.ReLU(inplace=True)]
        width = entry
    return types.SimpleNamespace(features=torch.nn.Sequential(*layers))

  package, models = types.ModuleType('torchvision'), types.ModuleType('torchvision.models')
  models.vgg19 = vgg19
  package.models = models
  return package


@contextlib.contextmanager
def _on_the_cpu(torch):
  """The original's hard-coded `.cuda()` and `torch.cuda.current_device()` as no-ops on the CPU."""
  saved = torch.Tensor.cuda, torch.nn.Module.cuda, torch.cuda.current_device
  torch.Tensor.cuda = lambda self, *args, **kwargs: self
  torch.nn.Module.cuda = lambda self, *args, **kwargs: self
  torch.cuda.current_device = lambda: 'cpu'
  try:
    yield
  finally:
    torch.Tensor.cuda, torch.nn.Module.cuda, torch.cuda.current_device = saved


def models_folder(checkout: str) -> str:
  """The checkout's `models` folder; a clear error where `checkout` is not a clone of the original."""
  folder = os.path.join(os.path.abspath(os.path.expanduser(checkout)), 'models')
  if not os.path.isfile(os.path.join(folder, 'part_factorized_model.py')):
    raise FileNotFoundError(
      f'{checkout} is not a checkout of NVIDIA/UnsupervisedLandmarkLearning: '
      f'{folder}/part_factorized_model.py is missing. Pass the folder of a clone.'
    )
  return folder


def import_models(checkout: str):
  """The checkout's `models` package (imported under a name of its own, with the torchvision stand-in)."""
  import torch  # pylint: disable=g-import-not-at-top

  folder = models_folder(checkout)
  saved = {name: sys.modules.get(name) for name in ('torchvision', 'torchvision.models')}
  stand_in = _torchvision_stand_in(torch)
  sys.modules['torchvision'], sys.modules['torchvision.models'] = stand_in, stand_in.models
  try:
    spec = importlib.util.spec_from_file_location(
      PACKAGE, os.path.join(folder, '__init__.py'), submodule_search_locations=[folder]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    return {
      name: importlib.import_module(f'{PACKAGE}.{name}')
      for name in ('part_factorized_model', 'losses', 'discriminator')
    }
  finally:
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module


@dataclasses.dataclass
class OriginalTraining:
  """The original's networks, losses and optimisers, built as its train.py builds them, and its loop body."""

  torch: Any
  config: Any
  model: Any
  perceptual: Any
  discriminator: Any
  gan_loss: Any
  optimizer: Any
  optimizer_d: Any

  def step(self, input_a, input_b, target) -> dict:
    """One iteration of train.py's loop on NCHW inputs in [-1, 1]; returns its losses (detached tensors)."""
    torch, config, discriminator = self.torch, self.config, self.discriminator
    self.optimizer.zero_grad()
    with _on_the_cpu(torch):
      reconstruction = self.model(input_a, input_b)['reconstruction']
      loss = self.perceptual(reconstruction, target.clone()) * config.vgg_lambda if config.use_vgg else 0.0
      losses = {'loss_vgg': loss}
      if discriminator is not None:
        loss_d = 0.5 * (
          self.gan_loss(discriminator(reconstruction.detach()), False) + self.gan_loss(discriminator(target), True)
        )
        losses['loss_G_GAN'] = self.gan_loss(discriminator(reconstruction), True)
        loss = loss + losses['loss_G_GAN']
    loss.backward()
    if not config.no_grad_clip:
      torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
    self.optimizer.step()
    if discriminator is not None:
      self.optimizer_d.zero_grad()
      loss_d.backward()
      if not config.no_grad_clip:
        torch.nn.utils.clip_grad_norm_(discriminator.parameters(), 1.0)
      self.optimizer_d.step()
      losses['loss_D'] = loss_d
    return {name: value.detach() for name, value in losses.items() if not isinstance(value, float)}


def build_training(
  modules: dict, config: Any, prepare: Callable | None = None, vgg_features: Callable | None = None
) -> OriginalTraining:
  """The original's model, VGG19 perceptual loss, discriminator (with use_gan) and Adam at config's options.

  `prepare(model, discriminator)` runs after the networks are built and before the optimisers see their
  parameters (to change submodules or initialise them); `vgg_features()`, when given, is the `features`
  stack the perceptual loss takes its first 23 layers from, instead of the stand-in's random VGG19.
  """
  import torch  # pylint: disable=g-import-not-at-top

  options = {name: config[name] for name in ORIGINAL_MODEL_FIELDS}
  losses_module = modules['losses']
  saved_models = getattr(losses_module, 'models', None)
  if vgg_features is not None:  # the loss module's `torchvision.models`, while the loss is built
    losses_module.models = types.SimpleNamespace(
      vgg19=lambda *unused_args, **unused_kwargs: types.SimpleNamespace(features=vgg_features())
    )
  try:
    with _on_the_cpu(torch):
      model = modules['part_factorized_model'].PartFactorizedModel(options)
      perceptual = losses_module.Vgg19PerceptualLoss(config.reduced_w)
      discriminator = gan_loss = None
      if config.use_gan:
        discriminator = modules['discriminator'].MultiscaleDiscriminator(
          3, config.ndf, config.n_layers_D, 'instance', config.no_lsgan, config.num_D, False, False
        )
        gan_loss = losses_module.GANLoss(use_lsgan=not config.no_lsgan)
  finally:
    if vgg_features is not None:
      losses_module.models = saved_models
  if prepare is not None:
    prepare(model, discriminator)
  optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
  optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=config.learning_rate) if discriminator else None
  return OriginalTraining(torch, config, model, perceptual, discriminator, gan_loss, optimizer, optimizer_d)


def time_original_step(checkout: str, config: Any, batch_size: int, num_steps: int, warmup: int = 1) -> dict:
  """Median seconds of the original's training step at config's sizes and `batch_size`, on this CPU."""
  import torch  # pylint: disable=g-import-not-at-top

  modules = import_models(checkout)
  torch.manual_seed(0)
  training = build_training(modules, config)
  shape = (batch_size, 3, config.img_size, config.img_size)
  input_a, input_b, target = (torch.rand(shape) * 2 - 1 for _ in range(3))

  def step():
    training.step(input_a, input_b, target)

  for _ in range(warmup):
    step()
  seconds = []
  for _ in range(num_steps):
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)
  median = statistics.median(seconds)
  return {
    'median_step_seconds': round(median, 4),
    'images_per_second': round(batch_size / median, 4),
    'step_seconds': [round(s, 4) for s in seconds],
    'torch_version': torch.__version__,
    'torch_threads': torch.get_num_threads(),
    'warmup_steps': warmup,
  }


def time_in_subprocess(
  checkout: str, config: Any, batch_size: int, num_steps: int, malloc: str = 'defaults', warmup: int = 1
) -> dict:
  """`time_original_step` in a process of its own, with the C library's malloc defaults or this package's
  settings (host_allocator.py); its result names those it ran with ('malloc') and its untimed steps."""
  if malloc not in MALLOC_CHOICES:
    raise ValueError(f'malloc must be one of {MALLOC_CHOICES}, not {malloc!r}')
  if warmup < 0:
    raise ValueError(f'warmup must be >= 0, got {warmup}')
  models_folder(checkout)
  options = json.dumps({name: config[name] for name in CONFIG_FIELDS})
  command = [
    sys.executable,
    '-m',
    'landmarks_jax.bench.original_step',
    checkout,
    options,
    str(batch_size),
    str(num_steps),
    str(warmup),
    malloc,
  ]
  finished = subprocess.run(command, capture_output=True, text=True, check=False)
  if finished.returncode != 0:
    raise RuntimeError(f"The original's step failed (exit status {finished.returncode}):\n{finished.stderr[-4000:]}")
  return json.loads(finished.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
  """python -m landmarks_jax.bench.original_step CHECKOUT CONFIG_JSON BATCH_SIZE NUM_STEPS WARMUP MALLOC: prints
  one JSON line."""
  import ml_collections  # pylint: disable=g-import-not-at-top

  if len(argv) != 6:
    raise SystemExit(main.__doc__.split(':')[0] + ' (bench --original runs it)')
  checkout, options, batch_size, num_steps, warmup, malloc = argv
  if malloc == 'ours':
    host_allocator.configure_this_process()
  config = ml_collections.ConfigDict(json.loads(options))
  result = time_original_step(checkout, config, int(batch_size), int(num_steps), int(warmup))
  print(json.dumps(dict(result, malloc=host_allocator.settings())), flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
