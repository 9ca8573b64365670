"""Trains the PyTorch original and ours on the same training pairs for the same steps, and scores both alike.

  python -m landmarks_jax.peer_training --config=configs/humanoid_mocap.py --original=/path/to/checkout \
      --num_steps=2000 --seeds=0,1 --workdir=runs/peer

Ours trains through its normal entry (`train.train_and_evaluate`, evaluation at the end) once per seed, in
<workdir>/ours_seed<N>. The original (a clone of NVIDIA/UnsupervisedLandmarkLearning, imported from the path
as `bench --original` imports it: `original_step`) trains on the CPU for each of --original_seeds (default:
the first seed) in <workdir>/original_seed<N>, with its own model, perceptual loss, Adam and loop body, fed by
an adapter of ours:
- the pairs: our input pipeline's batches for that seed, step for step (the same crops, resize, partners,
  flips and order), with input_a / input_b / target built by our augmentation under the key our step draws
  for that step and device, converted from NHWC to the NCHW [-1, 1] tensors the original's train.py feeds;
- the sizes: the original hard-codes its decoders' widths and SPADE's hidden width, which the config narrows.
  Each submodule whose parameter shapes differ from the config's is rebuilt from the original's own class
  (`Unet`, SPADE's convolutions) at the config's widths; with `gaussian_fg_mask`, an option the original
  lacks, its mask network becomes the Gaussians' pixelwise maximum (and the sigmoid after it the identity),
  as ours computes it; the parameter count then equals ours;
- the start: its train.py's initialisation (Xavier-uniform convolution weights, biases 0.1), torch seeded
  with the seed;
- the perceptual network: the ImageNet weights ours uses (config.vgg). The original's loss indexes VGG19's
  layers; VGG16's are laid in the same places (its missing conv3_4 an identity), so its taps stay relu1_2,
  relu2_2, relu3_2 and relu4_2.
Both are then scored by our regression (evaluation/landmark_eval.py): the original's landmark means on our
evaluation crops, fitted to the joints on the training split, scored on validation and test. Each workdir
gets eval/metrics.json; <workdir>/peer_comparison.json holds the table printed at the end (error ratio to the
mean training pose, PCK@0.1, mask IoU, per-joint errors, seconds per step). Needs the `torch` extra.
"""

import collections
import functools
import importlib
import json
import logging as python_logging
import os
import re
import statistics
import time
from typing import Any, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np

from landmarks_jax.bench import original_step
from landmarks_jax.data import datasets
from landmarks_jax.data import input_pipeline
from landmarks_jax.data.augment import pairs
from landmarks_jax.evaluation import landmark_eval
from landmarks_jax.model import vgg
from landmarks_jax.model.landmark_model import MODEL_FIELDS
from landmarks_jax.model.landmark_model import model_from_config
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import train
from landmarks_jax.training import train_state
from landmarks_jax.training import train_step
from landmarks_jax.weights import vgg_weights

REPORT_FILE = 'peer_comparison.json'
PAIRS_FILE = 'pairs.npz'
# VGG19's convolutions up to conv4_2, where the original's perceptual loss stops (its layers [:23]).
VGG19_CONVS = (
  ('conv1_1', 'conv1_2'),
  ('conv2_1', 'conv2_2'),
  ('conv3_1', 'conv3_2', 'conv3_3', 'conv3_4'),
  ('conv4_1', 'conv4_2'),
)
# Our training log's progress line: 'step S/N | ... | R steps/s | ETA ...'.
_RATE_LINE = re.compile(r'^step (\d+)/\d+ \|.* ([0-9.]+) steps/s')


# ----------------------------------------------------------------------------------------------------------
# The original at the config's sizes.


def _same_shapes(module_a, module_b) -> bool:
  shapes = lambda module: [(name, tuple(t.shape)) for name, t in module.state_dict().items()]
  return shapes(module_a) == shapes(module_b)


def _gaussian_union(torch):
  """A module: (B, K, H, W) Gaussian maps -> (B, 1, H, W) their pixelwise maximum."""

  class GaussianUnion(torch.nn.Module):
    def forward(self, maps):
      return maps.amax(dim=1, keepdim=True)

  return GaussianUnion()


def match_widths(modules: dict, model: Any, config: ml_collections.ConfigDict) -> list[str]:
  """Rebuilds, from the original's own classes, each submodule of `model` whose widths differ from config's.

  Returns the names of the submodules replaced.
  """
  import torch  # pylint: disable=g-import-not-at-top

  unet = modules['part_factorized_model'].Unet
  k = config.n_landmarks
  shape_encoder = unet(3, list(config.shape_decoder_widths) + [k], 4, 3, config.nsf)
  wanted = {
    'shape_encoder': shape_encoder,
    'appearance_encoder': unet(
      k + shape_encoder.f_filters, [config.appearance_decoder_width, config.n_filters], 1, 1, config.naf
    ),
  }
  if config.use_fg_bg_mask:
    wanted['bg_net'] = unet(3, list(config.background_decoder_widths) + [3], 3, 3, config.background_filters)
    if not config.gaussian_fg_mask and config.low_res_mask:
      wanted['fg_mask_net'] = torch.nn.Sequential(
        unet(k, [config.low_res_mask_width, 1], 3, 1, config.mask_filters),
        torch.nn.Upsample(scale_factor=4, mode='bilinear'),
      )
    elif not config.gaussian_fg_mask:
      wanted['fg_mask_net'] = unet(k, list(config.mask_decoder_widths) + [1], 3, 3, config.mask_filters)
  replaced = [name for name, module in wanted.items() if not _same_shapes(getattr(model, name), module)]
  for name in replaced:
    setattr(model, name, wanted[name])
  if config.use_fg_bg_mask and config.gaussian_fg_mask:
    model.fg_mask_net, model.sigmoid = _gaussian_union(torch), torch.nn.Identity()
    replaced.append("fg_mask_net (the Gaussians' maximum)")
  spades = [m for m in model.image_decoder.modules() if hasattr(m, 'mlp_shared') and hasattr(m, 'mlp_gamma')]
  if spades and spades[0].mlp_shared[0].out_channels != config.spade_hidden:
    for spade in spades:
      hidden, first = config.spade_hidden, spade.mlp_shared[0]
      conv = lambda fan_in, fan_out, like: torch.nn.Conv2d(fan_in, fan_out, like.kernel_size, padding=like.padding)
      spade.mlp_shared[0] = conv(first.in_channels, hidden, first)
      spade.mlp_gamma = conv(hidden, spade.mlp_gamma.out_channels, spade.mlp_gamma)
      spade.mlp_beta = conv(hidden, spade.mlp_beta.out_channels, spade.mlp_beta)
    replaced.append(f'image_decoder SPADE hidden width {config.spade_hidden}')
  return replaced


def init_as_train_py(torch, network) -> None:
  """The original train.py's initialisation: Xavier-uniform weights and biases of 0.1 for every Conv2d."""

  def init(module):
    if type(module) is torch.nn.Conv2d:  # pylint: disable=unidiomatic-typecheck  (exactly Conv2d, as train.py)
      torch.nn.init.xavier_uniform_(module.weight)
      if module.bias is not None:
        module.bias.data.fill_(0.1)

  network.apply(init)


def vgg_features(torch, params: dict, layout: str):
  """torchvision-style VGG `features` up to relu4_2 in VGG19's layer indices, with our perceptual weights.

  A VGG16 convolution missing from VGG19's places (conv3_4) is an identity, and so is its ReLU.
  """
  layers, have = [], set(vgg.conv_names(layout))
  for block in VGG19_CONVS:
    if layers:
      layers.append(torch.nn.MaxPool2d(2, 2))
    for name in block:
      if name not in have:
        layers += [torch.nn.Identity(), torch.nn.Identity()]
        continue
      kernel = np.asarray(params[name]['kernel'], np.float32)  # (kh, kw, in, out)
      conv = torch.nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0], padding=kernel.shape[0] // 2)
      with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        conv.bias.copy_(torch.from_numpy(np.asarray(params[name]['bias'], np.float32)))
      layers += [conv, torch.nn.ReLU(inplace=True)]
  return torch.nn.Sequential(*layers)


def build_original(checkout: str, config: ml_collections.ConfigDict, seed: int) -> tuple[Any, list[str]]:
  """The original's training set-up (`original_step.OriginalTraining`) at config's sizes, initialised as its
  train.py does from `seed`; and the submodules rebuilt to config's widths."""
  import torch  # pylint: disable=g-import-not-at-top

  modules = original_step.import_models(checkout)
  replaced = []

  def prepare(model, discriminator):
    replaced.extend(match_widths(modules, model, config))
    for network in (model, discriminator):
      if network is not None:
        init_as_train_py(torch, network)

  params = vgg_weights.vgg_params(config) if config.use_vgg else None
  features = (lambda: vgg_features(torch, params, config.vgg)) if params is not None else None
  torch.manual_seed(seed)
  return original_step.build_training(modules, config, prepare, features), replaced


# ----------------------------------------------------------------------------------------------------------
# The adapter: our pairs, as the original's inputs.


class _KeyAndStep(NamedTuple):
  """What our step's key depends on (`train_step.step_rng`): the state's key and step."""

  rng: jax.Array
  step: int


def make_step_inputs(config: ml_collections.ConfigDict):
  """A function (key, step, target, temporal) -> (input_a, input_b, target), (D * B', H, W, 3) in [-1, 1].

  target and temporal are a host batch's (D, B, H, W, 3) frames; the result is what our step builds from them
  on each device with that device's key, the devices' rows one after the other (with use_temporal and
  use_warped, each device's warped pairs then its temporal ones: the original's loss is a mean over the batch,
  so the order does not change it).
  """

  def on_one_device(key, step, batch):
    inputs = pairs.make_training_inputs(train_step.step_rng(_KeyAndStep(key, step)), batch, config)
    return train_step.model_inputs(inputs, config)

  @jax.jit
  def step_inputs(key, step, target, temporal):
    per_device = jax.vmap(
      lambda t, p: on_one_device(key, step, {'target': t, 'input_temporal': p}), axis_name=train_step.AXIS
    )(target, temporal)
    return tuple(x.reshape((-1,) + x.shape[2:]) for x in per_device)

  return step_inputs


def original_batches(config: ml_collections.ConfigDict, source, videos, num_steps: int, record: dict):
  """Yields, for steps 0..num_steps-1, the original's (input_a, input_b, target) as NCHW torch tensors.

  `record` collects each step's 'index' and 'temporal_index' (global batch order) as they are fed.
  """
  import torch  # pylint: disable=g-import-not-at-top

  step_inputs = make_step_inputs(config)
  key = jax.random.PRNGKey(config.seed)  # the training state's key (train_state.create_train_state)
  with input_pipeline.train_batches(config, source, videos, start_step=0, **device_layout.host_layout()) as batches:
    for step, batch in zip(range(num_steps), batches):
      for name in ('index', 'temporal_index'):
        record[name].append(np.asarray(batch[name]).reshape(-1))
      images = step_inputs(key, step, batch['target'], batch['input_temporal'])
      yield tuple(torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))) for x in images)


# ----------------------------------------------------------------------------------------------------------
# Scoring the original with our evaluation.


def original_encode_fn(config: ml_collections.ConfigDict, training: Any):
  """`landmark_eval.dump_landmarks`'s encode function, run by the original's model: (unused, (D, B, S, S, 3)
  uint8 crops) -> landmark means, covariances and (with masks) the foreground mask, shaped (D, B, ...)."""
  torch, model = training.torch, training.model
  heatmap = importlib.import_module(f'{original_step.PACKAGE}.submodules').gaussian_params_to_heatmap

  def encode(unused_variables, images):
    images = np.asarray(images)
    lead, size = images.shape[:2], config.img_size
    x = torch.from_numpy(
      np.ascontiguousarray(
        (images.reshape((-1,) + images.shape[2:]).astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)
      )
    )
    with torch.no_grad():
      outputs = model(x)
      mean_x, mean_y = outputs['vis_centers']
      encoded = {'mean_x': mean_x, 'mean_y': mean_y, 'covariance': outputs['vis_cov']}
      if config.use_fg_bg_mask:
        maps = heatmap(model.grid_x_2x, model.grid_y_2x, mean_x, mean_y, outputs['vis_cov'], size, size)
        encoded['pred_mask'] = model.sigmoid(model.fg_mask_net(maps)).permute(0, 2, 3, 1)
    return {
      name: jax.numpy.asarray(value.numpy().reshape(lead + tuple(value.shape[1:]))) for name, value in encoded.items()
    }

  return encode


def evaluate_original(
  config: ml_collections.ConfigDict, training: Any, workdir: str, step: int, builder: Any, pictures: bool = True
) -> dict:
  """Our landmark evaluation of the original's model: writes <workdir>/eval/ and returns the metrics."""
  splits = landmark_eval.EVAL_SPLITS
  opened = {split: datasets.open_split(builder, split) for split in (landmark_eval.FIT_SPLIT,) + tuple(splits)}
  encode = original_encode_fn(config, training)
  training.model.eval()
  try:
    dumps = {
      split: landmark_eval.dump_landmarks(
        config,
        encode,
        None,
        source,
        keep_masks=split != landmark_eval.FIT_SPLIT,
        description=f'original landmarks {split}',
      )
      for split, (source, _) in opened.items()
    }
  finally:
    training.model.train()
  metadata = builder.info.metadata or {}
  bones = landmark_eval.skeleton(metadata)
  metrics, predictions = landmark_eval.evaluate_dumps(
    config, dumps, workdir, step, list(metadata['joint_names']), splits, bones
  )
  if pictures:
    landmark_eval.draw_pictures(
      config,
      os.path.join(workdir, landmark_eval.EVAL_DIR),
      opened['test'][0],
      dumps['test'],
      predictions['test'],
      bones,
      'test',
    )
  return metrics


# ----------------------------------------------------------------------------------------------------------
# The two runs.


def run_config(config: ml_collections.ConfigDict, seed: int, num_steps: int) -> ml_collections.ConfigDict:
  """The config of one run of the comparison: `seed`, `num_steps` steps, no time limit, evaluation at the end,
  no validation or pictures during training (neither changes the training), and at least five progress lines
  (the first includes compilation; the others time the step)."""
  run = ml_collections.ConfigDict(config.to_dict())
  run.seed, run.num_train_steps, run.time_limit_minutes = int(seed), int(num_steps), 0.0
  run.log_every_steps = max(1, min(config.log_every_steps, num_steps // 5))
  run.eval_at_end, run.eval_every_steps, run.val_every_steps, run.log_images_every_steps = True, -1, -1, 0
  return run


@functools.lru_cache(maxsize=4)
def _parameter_count(config_json: str) -> int:
  config = ml_collections.ConfigDict(json.loads(config_json))
  image = train_state.sample_image(config)
  shapes = jax.eval_shape(lambda x: model_from_config(config).init(jax.random.PRNGKey(0), x, x), image)
  return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes['params'])))


def our_parameter_count(config: ml_collections.ConfigDict) -> int:
  """Our generator's parameter count for a config (its shapes only, once per model)."""
  model_options = {name: config[name] for name in MODEL_FIELDS}
  return _parameter_count(json.dumps(model_options, sort_keys=True, default=list))


def train_original(
  config: ml_collections.ConfigDict, checkout: str, workdir: str, seed: int, num_steps: int, pictures: bool = True
) -> dict:
  """Trains the original for `num_steps` on our pairs of `seed`, saves it, scores it; returns the run's record."""
  import torch  # pylint: disable=g-import-not-at-top

  config = config_checks.with_device_batch(run_config(config, seed, num_steps), jax.device_count())
  builder = datasets.prepare_dataset(config)
  source, videos = datasets.open_split(builder, 'train')
  training, replaced = build_original(checkout, config, seed)
  os.makedirs(workdir, exist_ok=True)
  record, seconds, losses = collections.defaultdict(list), [], []
  started = time.perf_counter()
  for step, (input_a, input_b, target) in enumerate(original_batches(config, source, videos, num_steps, record)):
    start = time.perf_counter()
    step_losses = training.step(input_a, input_b, target)
    seconds.append(time.perf_counter() - start)
    losses.append({name: float(value) for name, value in step_losses.items()})
    if not all(np.isfinite(v) for v in losses[-1].values()):
      raise FloatingPointError(f"The original's loss is not finite at step {step + 1}: {losses[-1]}")
    if (step + 1) % max(config.log_every_steps, 1) == 0 or step + 1 == num_steps:
      window = losses[-max(config.log_every_steps, 1) :]
      mean = {name: statistics.fmean(entry[name] for entry in window) for name in window[0]}
      print(
        f'original seed {seed}: step {step + 1}/{num_steps} | '
        + ' '.join(f'{name}={value:.4f}' for name, value in sorted(mean.items()))
        + f' | {statistics.median(seconds[-len(window) :]):.3f} s/step',
        flush=True,
      )
  train_seconds = time.perf_counter() - started
  torch.save(training.model.state_dict(), os.path.join(workdir, f'model_step{num_steps}.pt'))
  np.savez(os.path.join(workdir, PAIRS_FILE), **{name: np.stack(rows) for name, rows in record.items()})
  with open(os.path.join(workdir, 'losses.json'), 'w', encoding='utf-8') as f:
    json.dump(losses, f)
  metrics = evaluate_original(config, training, workdir, num_steps, builder, pictures)
  return {
    'name': f'original seed {seed}',
    'framework': 'original',
    'seed': seed,
    'workdir': workdir,
    'steps': num_steps,
    'seconds_per_step': statistics.median(seconds) if seconds else None,
    'train_seconds': round(train_seconds, 1),
    'parameters': sum(p.numel() for p in training.model.parameters()),
    'rebuilt_at_config_widths': replaced,
    'final_losses': losses[-1] if losses else {},
    'metrics': metrics,
  }


class _RateLog(python_logging.Handler):
  """Collects (step, steps per second) from our training log's progress lines."""

  def __init__(self):
    super().__init__(python_logging.INFO)
    self.rates = []

  def emit(self, record):
    match = _RATE_LINE.match(record.getMessage())
    if match:
      self.rates.append((int(match.group(1)), float(match.group(2))))


def train_ours(config: ml_collections.ConfigDict, workdir: str, seed: int, num_steps: int) -> dict:
  """Trains ours through `train.train_and_evaluate` (resuming from the workdir); returns the run's record.

  Seconds per step come from the training log's progress lines, leaving out the first (which includes
  compilation) where there are more.
  """
  run = run_config(config, seed, num_steps)
  rate_log = _RateLog()
  absl_logger = python_logging.getLogger('absl')
  saved_level = absl_logger.level
  absl_logger.addHandler(rate_log)
  absl_logger.setLevel(min(saved_level or python_logging.INFO, python_logging.INFO))
  started = time.perf_counter()
  try:
    metrics = train.train_and_evaluate(run, workdir)
  finally:
    absl_logger.removeHandler(rate_log)
    absl_logger.setLevel(saved_level)
  rates = [rate for _, rate in rate_log.rates]
  steady = rates[1:] if len(rates) > 1 else rates
  return {
    'name': f'ours seed {seed}',
    'framework': 'ours',
    'seed': seed,
    'workdir': workdir,
    'steps': num_steps,
    'seconds_per_step': 1.0 / statistics.median(steady) if steady and min(steady) > 0 else None,
    'seconds_per_step_includes_compilation': len(rates) == 1,
    'train_and_eval_seconds': round(time.perf_counter() - started, 1),
    'parameters': our_parameter_count(run),
    'metrics': metrics,
  }


# ----------------------------------------------------------------------------------------------------------
# The comparison and its table.


def _split_row(metrics: dict, split: str) -> dict:
  scores = metrics[split]
  row = {
    'error_ratio': scores['error_ratio'],
    'mean_pixel_error': scores['mean_pixel_error'],
    'pck_0.1': scores['pck']['0.1'],
    'per_joint_pixel_error': scores['per_joint_pixel_error'],
  }
  if 'mask_iou' in scores:
    row['mask_iou'] = scores['mask_iou']
  return row


def summarise(runs: Sequence[dict]) -> dict:
  """Each run's test and validation figures, the mean-pose floor, and ours' range over seeds."""
  splits = landmark_eval.EVAL_SPLITS
  rows = [
    dict(
      {k: run[k] for k in ('name', 'framework', 'seed', 'seconds_per_step', 'parameters')},
      **{split: _split_row(run['metrics'], split) for split in splits},
    )
    for run in runs
  ]
  first = runs[0]['metrics']
  floor = {split: dict(_split_row({split: dict(first[split]['baseline'], error_ratio=1.0)}, split)) for split in splits}
  ours = [row for row in rows if row['framework'] == 'ours']
  spread = {}
  for split in splits if ours else ():
    ratios = [row[split]['error_ratio'] for row in ours]
    spread[split] = {'min': min(ratios), 'max': max(ratios)}
  return {'runs': rows, 'mean_pose': floor, 'ours_error_ratio_range': spread}


def table(report: dict) -> str:
  """The comparison as text: one line per run, per-joint test errors, and ours' seed range beside the original."""
  summary, runs = report['summary'], report['summary']['runs']
  lines = [
    f'{report["dataset"]}, {report["num_steps"]} steps at global batch {report["global_batch"]}: landmarks '
    "linearly regressed to the joints (error ratio: mean joint error / the mean training pose's)"
  ]
  header = (
    f'{"run":<18}{"test ratio":>11}{"PCK@0.1":>9}{"IoU":>7}{"val ratio":>11}{"PCK@0.1":>9}{"IoU":>7}'
    f'{"s/step":>8}{"params":>9}'
  )
  lines.append(header)
  iou = lambda row: f'{row["mask_iou"]:.3f}' if 'mask_iou' in row else '-'
  for row in runs + [dict(name='mean pose', seconds_per_step=None, parameters=None, **summary['mean_pose'])]:
    test, val = row['test'], row['validation']
    step = f'{row["seconds_per_step"]:.3f}' if row['seconds_per_step'] else '-'
    lines.append(
      f'{row["name"]:<18}{test["error_ratio"]:>11.3f}{test["pck_0.1"]:>9.1%}{iou(test):>7}'
      f'{val["error_ratio"]:>11.3f}{val["pck_0.1"]:>9.1%}{iou(val):>7}{step:>8}'
      f'{row["parameters"] or "-":>9}'
    )
  for split in ('test', 'validation'):
    lines.append(f'Per-joint {split} error (px):')
    names = [row['name'] for row in runs] + ['mean pose']
    per_joint = [row[split]['per_joint_pixel_error'] for row in runs] + [
      summary['mean_pose'][split]['per_joint_pixel_error']
    ]
    lines.append(f'{"joint":<16}' + ''.join(f'{name:>18}' for name in names))
    for joint in per_joint[0]:
      lines.append(f'{joint:<16}' + ''.join(f'{errors[joint]:>18.2f}' for errors in per_joint))
  ranges = summary['ours_error_ratio_range']
  for row in (r for r in runs if r['framework'] == 'original'):
    if not ranges:
      break
    parts = []
    for split in ('test', 'validation'):
      low, high, value = ranges[split]['min'], ranges[split]['max'], row[split]['error_ratio']
      where = 'inside' if low <= value <= high else f'{min(abs(value - low), abs(value - high)):.3f} outside'
      parts.append(f'{split} {value:.3f} against ours {low:.3f}..{high:.3f} ({where})')
    lines.append(f'{row["name"]}: ' + '; '.join(parts))
  return '\n'.join(lines)


def compare(
  config: ml_collections.ConfigDict,
  checkout: str,
  workdir: str,
  num_steps: int,
  seeds: Sequence[int],
  original_seeds: Sequence[int],
  pictures: bool = True,
) -> dict:
  """Trains ours for each of `seeds` and the original for each of `original_seeds`; writes and returns the
  report (<workdir>/peer_comparison.json)."""
  original_step.models_folder(checkout)  # a wrong path fails before anything trains
  runs = [train_ours(config, os.path.join(workdir, f'ours_seed{seed}'), seed, num_steps) for seed in seeds]
  runs += [
    train_original(config, checkout, os.path.join(workdir, f'original_seed{seed}'), seed, num_steps, pictures)
    for seed in original_seeds
  ]
  device_config = config_checks.with_device_batch(config, jax.device_count())
  report = {
    'dataset': config.dataset,
    'num_steps': num_steps,
    'seeds': list(seeds),
    'original_seeds': list(original_seeds),
    'global_batch': device_config.batch_size * jax.device_count(),
    'checkout': os.path.abspath(checkout),
    'summary': summarise(runs),
    'runs': runs,
  }
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, REPORT_FILE), 'w', encoding='utf-8') as f:
    json.dump(report, f, indent=2)
  return report


def main(argv: Sequence[str]) -> None:
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  from landmarks_jax.cpu import process_settings  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import distributed  # pylint: disable=g-import-not-at-top
  from landmarks_jax.training import logs  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  process_settings.apply()
  flag_values = flags.FLAGS
  logs.quiet_libraries()
  distributed.initialize(flag_values.config)
  if flag_values.xla_cache_dir:
    jax.config.update('jax_compilation_cache_dir', flag_values.xla_cache_dir)
  seeds = [int(s) for s in flag_values.seeds]
  original_seeds = [int(s) for s in flag_values.original_seeds] if flag_values.original_seeds else seeds[:1]
  report = compare(
    flag_values.config,
    flag_values.original,
    flag_values.workdir,
    flag_values.num_steps,
    seeds,
    original_seeds,
    flag_values.pictures,
  )
  print(table(report))
  print(f'All figures: {os.path.join(flag_values.workdir, REPORT_FILE)}')


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  config_flags.DEFINE_config_file('config', None, 'Configuration file (both sides train with it).', lock_config=True)
  flags.DEFINE_string('original', None, 'A checkout of NVIDIA/UnsupervisedLandmarkLearning.')
  flags.DEFINE_string('workdir', None, 'Folder for the runs and peer_comparison.json.')
  flags.DEFINE_integer('num_steps', 2000, 'Training steps of every run.')
  flags.DEFINE_list('seeds', ['0', '1'], 'Seeds of our runs.')
  flags.DEFINE_list('original_seeds', [], "Seeds of the original's runs (default: the first of --seeds).")
  flags.DEFINE_boolean('pictures', True, "Draw the original's test landmarks as evaluate draws ours.")
  flags.DEFINE_string(
    'xla_cache_dir',
    os.path.join(os.path.expanduser('~'), '.cache', 'landmarks_jax', 'xla'),
    'Persistent cache of compiled programs ("" disables it).',
  )
  flags.mark_flags_as_required(['config', 'original', 'workdir'])


def command():
  """The command line: flags, then `main`."""
  from absl import app as _app  # pylint: disable=g-import-not-at-top

  define_flags()
  _app.run(main)


if __name__ == '__main__':
  command()
