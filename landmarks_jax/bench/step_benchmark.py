"""Measures the training step on the devices: images per second, step and compile time, FLOPs.

  python -m landmarks_jax.bench --config=configs/bbc.py --config.batch_size=8 --num_steps=10 --breakdown

Builds the training state and the pmapped train step exactly as training does and feeds it synthetic frames
(uniform in [-1, 1], already on the devices, so neither the dataset nor the host pipeline is involved; see
`bench_input` for those). The step is lowered and compiled once, timed apart from the steady state, then run
`--warmup` times untimed and `--num_steps` times timed, each step waited for. Prints one JSON line.

`--breakdown` also times, on one device with its per-device batch, the pieces the step is made of: the
on-device augmentation, the generator's forward pass, its forward and backward pass, the perceptual (VGG)
loss's forward and backward pass with respect to the reconstruction, and the discriminator's (with use_gan).
`--profile_dir` records a `jax.profiler` trace of a few more steps, for TensorBoard's profiler or Perfetto.
"""

import json
import resource
import statistics
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from landmarks_jax.bench import original_step
from landmarks_jax.cpu import host_allocator
from landmarks_jax.cpu import kernels
from landmarks_jax.cpu import process_settings
from landmarks_jax.cpu import xla_flags
from landmarks_jax.data.augment import pairs
from landmarks_jax.model import losses
from landmarks_jax.model.vgg import VGGFeatures
from landmarks_jax.training import config_checks
from landmarks_jax.training import device_layout
from landmarks_jax.training import distributed
from landmarks_jax.training import train_state as train_state_lib
from landmarks_jax.training import train_step as train_step_lib
from landmarks_jax.weights import vgg_weights

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags; defined when it runs, so that importing this module leaves absl's flags alone."""
  config_flags.DEFINE_config_file('config', None, 'Configuration file.', lock_config=True)
  flags.DEFINE_integer('num_steps', 10, 'Train steps timed after the warm-up.')
  flags.DEFINE_integer(
    'warmup', 2, "Untimed train steps run after compiling (with --original, the original's too, before its timed ones)."
  )
  flags.DEFINE_string('profile_dir', '', 'If set, write a jax.profiler trace of a few more steps here.')
  flags.DEFINE_integer('profile_steps', 3, 'Train steps recorded in the --profile_dir trace.')
  flags.DEFINE_boolean('breakdown', False, 'Also time the pieces of the step on one device.')
  flags.DEFINE_float(
    'peak_tflops',
    0.0,
    'Dense peak TFLOP/s of one device at the compute dtype, for the utilisation (0: from the table of known devices).',
  )
  flags.DEFINE_string(
    'original',
    '',
    'A checkout of NVIDIA/UnsupervisedLandmarkLearning: also time its step '
    'at the same sizes on this machine (needs the torch extra) and print both.',
  )
  flags.DEFINE_enum(
    'original_malloc',
    'defaults',
    list(original_step.MALLOC_CHOICES),
    'With --original: the '
    "original's process runs with the C library's malloc defaults, as it does on its own, or with "
    'the settings this package applies to its own (host_allocator.py), which times the two '
    'computations like for like.',
  )
  flags.mark_flag_as_required('config')


# Dense peak TFLOP/s per device: (bfloat16, float32 as TF32 tensor cores), for the model FLOP utilisation.
PEAK_TFLOPS = {'H100': (989.0, 495.0), 'H200': (989.0, 495.0), 'A100': (312.0, 156.0)}


def peak_tflops(device_kind: str, compute_dtype: str) -> float | None:
  """The table's peak for a device kind such as 'NVIDIA H100 80GB HBM3' at a compute dtype; None if unknown."""
  for name, (bfloat16, float32) in PEAK_TFLOPS.items():
    if name in device_kind.upper():
      return bfloat16 if compute_dtype == 'bfloat16' else float32
  return None


def utilization(achieved_gflop_per_second_per_device: float | None, peak: float | None) -> float | None:
  """Achieved FLOP/s over the device's peak, or None when either is unknown."""
  if achieved_gflop_per_second_per_device is None or not peak:
    return None
  return round(achieved_gflop_per_second_per_device / (peak * 1e3), 4)


def flops_from_cost_analysis(cost: Any) -> float | None:
  """The 'flops' entry of XLA's cost analysis (a dict, or a list of per-program dicts); None when absent."""
  if isinstance(cost, dict):
    cost = [cost]
  if not cost:
    return None
  values = [entry.get('flops') for entry in cost if isinstance(entry, dict)]
  if not values or any(v is None for v in values):
    return None
  total = float(sum(values))
  return total if total > 0 else None


def counted_flops(compiled: Any, lower: Callable[[], Any]) -> float | None:
  """FLOPs of one run of `compiled` (per device for pmap) by XLA's cost analysis, or None if XLA does not say.

  Where the CPU kernels run (landmarks_jax/cpu/kernels.py), the analysis counts no FLOPs in a custom call and a
  loop's body once; there the program is traced afresh with XLA's own operations, the same mathematics, by
  `lower()`, and that program is counted instead.
  """
  try:
    if not kernels.enabled():
      return flops_from_cost_analysis(compiled.cost_analysis())
    with kernels.plain_xla():
      lowered = lower()
    return flops_from_cost_analysis(lowered.cost_analysis())
  except Exception:  # pylint: disable=broad-except
    # Some backends do not implement cost analysis; a missing figure is reported as null.
    return None


def peak_host_memory_mib() -> float:
  """Peak resident memory of this process (Linux reports ru_maxrss in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_batch(config: ml_collections.ConfigDict, num_devices: int, seed: int = 0) -> dict[str, np.ndarray]:
  """'target' and 'input_temporal', each (num_devices, batch_size, img_size, img_size, 3) uint8, as the input
  pipeline delivers them."""
  rng = np.random.default_rng(seed)
  shape = (num_devices, config.batch_size, config.img_size, config.img_size, 3)
  return {key: rng.integers(0, 256, shape, dtype=np.uint8) for key in ('target', 'input_temporal')}


def timed_runs(run: Callable[[], Any], count: int) -> list[float]:
  """Seconds of `count` calls of `run`, each waited for until its results are ready."""
  seconds = []
  for _ in range(count):
    start = time.perf_counter()
    jax.block_until_ready(run())
    seconds.append(time.perf_counter() - start)
  return seconds


def _rounded(value: float | None, digits: int = 4) -> float | None:
  return None if value is None else round(value, digits)


def compile_and_time(fn: Callable, args: Sequence[Any], num_runs: int) -> tuple[dict, Any]:
  """Compiles jit(fn) for `args`, runs it once untimed, then times `num_runs` runs.

  Returns:
    ({'median_seconds', 'gflop', 'achieved_gflop_per_second'}, the outputs of the untimed run).
  """
  compiled = jax.jit(fn).lower(*args).compile()
  outputs = jax.block_until_ready(compiled(*args))
  seconds = statistics.median(timed_runs(lambda: compiled(*args), num_runs))
  flops = counted_flops(compiled, lambda: jax.jit(fn).lower(*args))
  figures = {
    'median_seconds': _rounded(seconds),
    'gflop': _rounded(None if flops is None else flops / 1e9, 3),
    'achieved_gflop_per_second': _rounded(None if flops is None else flops / seconds / 1e9, 2),
  }
  return figures, outputs


def breakdown(
  config: ml_collections.ConfigDict,
  state: train_state_lib.TrainState,
  vgg_params: Any,
  batch: dict[str, np.ndarray],
  num_runs: int,
) -> dict:
  """Times the step's pieces on the first device, each jitted on its own, with one device's batch.

  Args:
    config: the training configuration.
    state: the unreplicated training state.
    vgg_params: the unreplicated perceptual network's parameters.
    batch: the sharded synthetic batch; its first shard is used.
    num_runs: timed runs per piece.

  Returns:
    {piece: {'median_seconds', 'gflop', 'achieved_gflop_per_second'}}.
  """
  model, discriminator = train_state_lib.build_networks(config)
  vgg = VGGFeatures(config.vgg, config.compute_dtype)
  device = jax.local_devices()[0]
  state, vgg_params = jax.device_put((state, vgg_params), device)
  shard = jax.device_put({key: value[0] for key, value in batch.items()}, device)
  rng = jax.random.PRNGKey(0)
  spectral = state.generator['spectral']

  def augment(shard):
    return train_step_lib.model_inputs(pairs.make_training_inputs(rng, shard, config), config)

  def generator_forward(params, input_a, input_b):
    outputs, _ = model.apply(
      {'params': params, 'spectral': spectral}, input_a, input_b, train=True, mutable=['spectral']
    )
    return outputs['reconstruction']

  def generator_forward_backward(params, input_a, input_b, target):
    # A pixel loss stands in for the real losses so that only the generator's own cost is measured.
    return jax.value_and_grad(lambda p: jnp.mean(jnp.square(generator_forward(p, input_a, input_b) - target)))(params)

  def vgg_forward_backward(reconstruction, target):
    features = lambda x: vgg.apply({'params': vgg_params}, x)
    return jax.value_and_grad(
      lambda r: config.vgg_lambda * losses.perceptual_loss(features, r, target, config.reduced_w)
    )(reconstruction)

  params = state.generator['params']
  pieces = {}
  pieces['augment'], (input_a, input_b, target) = compile_and_time(augment, (shard,), num_runs)
  pieces['generator_forward'], reconstruction = compile_and_time(
    generator_forward, (params, input_a, input_b), num_runs
  )
  pieces['generator_forward_backward'], _ = compile_and_time(
    generator_forward_backward, (params, input_a, input_b, target), num_runs
  )
  if config.use_vgg:
    pieces['vgg_loss_forward_backward'], _ = compile_and_time(vgg_forward_backward, (reconstruction, target), num_runs)
  if config.use_gan:
    lsgan = not config.no_lsgan

    def discriminator_forward_backward(params, fake, real):
      def loss(p):
        return losses.gan_loss(discriminator.apply({'params': p}, fake), real=False, lsgan=lsgan) + losses.gan_loss(
          discriminator.apply({'params': p}, real), real=True, lsgan=lsgan
        )

      return jax.value_and_grad(loss)(params)

    pieces['discriminator_forward_backward'], _ = compile_and_time(
      discriminator_forward_backward, (state.discriminator['params'], reconstruction, target), num_runs
    )
  return pieces


def benchmark(
  config: ml_collections.ConfigDict,
  num_steps: int,
  warmup: int,
  profile_dir: str = '',
  profile_steps: int = 3,
  with_breakdown: bool = False,
  peak: float = 0.0,
  devices: Sequence[jax.Device] | None = None,
) -> dict:
  """Compiles and times the pmapped train step on synthetic inputs; returns the figures as a dict."""
  if num_steps < 1:
    raise ValueError(f'--num_steps must be at least 1, got {num_steps}.')
  kernels.select_for(config)
  if warmup < 0 or profile_steps < 1:
    raise ValueError(f'--warmup must be >= 0 and --profile_steps >= 1, got {warmup} and {profile_steps}.')
  config_checks.validate_training_config(config)
  devices = list(devices) if devices is not None else jax.local_devices()
  num_local = len(devices)
  device_count = num_local * jax.process_count()
  config = config_checks.with_device_batch(config, device_count)
  host_state = train_state_lib.create_train_state(config)
  host_vgg = vgg_weights.vgg_params(config) if config.use_vgg else None
  state = device_layout.replicate(host_state, devices)
  vgg_params = device_layout.replicate(host_vgg, devices) if config.use_vgg else None
  host_batch = synthetic_batch(config, num_local, config.seed)
  # Laid out as the step's own outputs, like the replicated state, so the compiled step accepts it as is.
  batch = device_layout.to_devices(host_batch, devices)
  p_train_step = train_step_lib.make_p_train_step(config, devices)

  start = time.perf_counter()
  lowered = p_train_step.lower(state, batch, vgg_params)
  lowering_seconds = time.perf_counter() - start
  compiled = lowered.compile()
  compile_seconds = time.perf_counter() - start

  def step():
    nonlocal state
    state, metrics = compiled(state, batch, vgg_params)  # The state is donated: always rebind it.
    return state, metrics

  timed_runs(step, warmup)
  step_seconds = timed_runs(step, num_steps)
  if profile_dir:
    jax.profiler.start_trace(profile_dir)
    try:
      timed_runs(step, profile_steps)
    finally:
      jax.profiler.stop_trace()

  median = statistics.median(step_seconds)
  global_batch = config.batch_size * device_count
  flops_per_device = counted_flops(compiled, lambda: p_train_step.lower(state, batch, vgg_params))
  # pmap's cost analysis describes the program one device runs; the step runs it on every device.
  step_flops = None if flops_per_device is None else flops_per_device * device_count
  device_kind = devices[0].device_kind
  peak = peak or peak_tflops(device_kind, config.compute_dtype)
  per_device = None if flops_per_device is None else flops_per_device / median / 1e9
  result = {
    'images_per_second': round(global_batch / median, 4),
    'global_batch': global_batch,
    'median_step_seconds': round(median, 4),
    'mean_step_seconds': round(statistics.fmean(step_seconds), 4),
    'step_seconds': [round(s, 4) for s in step_seconds],
    'warmup_steps': warmup,
    'lowering_seconds': round(lowering_seconds, 3),
    'compile_seconds': round(compile_seconds, 3),
    'step_gflop': _rounded(None if step_flops is None else step_flops / 1e9, 3),
    'gflop_per_device': _rounded(None if flops_per_device is None else flops_per_device / 1e9, 3),
    'achieved_gflop_per_second': _rounded(None if step_flops is None else step_flops / median / 1e9, 2),
    'images_per_second_per_device': round(global_batch / median / device_count, 4),
    'peak_tflops_per_device': peak or 'unknown',
    # Model FLOP utilisation: achieved FLOP/s per device over its dense peak at the compute dtype.
    'utilization': utilization(per_device, peak) if peak else 'unknown',
    'compute_dtype': config.compute_dtype,
    'device_kind': device_kind,
    'platform': devices[0].platform,
    'device_count': device_count,
    'local_device_count': num_local,
    'process_count': jax.process_count(),
    'img_size': config.img_size,
    'batch_size': config.batch_size,
    'n_landmarks': config.n_landmarks,
    'use_fg_bg_mask': config.use_fg_bg_mask,
    'use_gan': config.use_gan,
    'use_temporal': config.use_temporal,
    'use_warped': config.use_warped,
    'vgg': config.vgg,
    'vgg_weights': None if not config.use_vgg else 'random' if config.vgg_random_init else 'imagenet',
    # With a persistent cache, compile_seconds may be a cache read rather than a compilation.
    'compilation_cache_dir': jax.config.jax_compilation_cache_dir or None,
    'profile_dir': profile_dir or None,
    'jax_version': jax.__version__,
    'malloc': host_allocator.settings(),
    'cpu_kernels': kernels.describe(),
    'host_cpu': xla_flags.host_cpu(),
  }
  if with_breakdown:
    result['breakdown'] = breakdown(config, host_state, host_vgg, host_batch, num_steps)
  result['peak_host_memory_mib'] = round(peak_host_memory_mib(), 1)
  return result


# A first timed step this much slower than the fastest later one: the step was still settling (page faults,
# an allocator raising its thresholds), so the median may be too slow.
SETTLING_RATIO = 1.1


def still_settling(step_seconds: Sequence[float]) -> bool:
  """Whether timed steps look unsettled: the first one SETTLING_RATIO times the fastest of the rest or more."""
  return len(step_seconds) > 1 and step_seconds[0] >= SETTLING_RATIO * min(step_seconds[1:])


def _describe(cpu: dict) -> str:
  """The processor in words, as a side-by-side figure is quoted."""
  return (
    f'{cpu["model_name"]}, family {cpu["family"]} model {cpu["model"]}, {"with" if cpu["avx512"] else "no"} AVX-512'
  )


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  process_settings.apply()
  if FLAGS.original:
    original_step.models_folder(FLAGS.original)  # a wrong path fails before our step is timed
  distributed.initialize(FLAGS.config)
  result = benchmark(
    FLAGS.config,
    FLAGS.num_steps,
    FLAGS.warmup,
    FLAGS.profile_dir,
    FLAGS.profile_steps,
    FLAGS.breakdown,
    FLAGS.peak_tflops,
  )
  if FLAGS.original:
    original = original_step.time_in_subprocess(
      FLAGS.original, FLAGS.config, result['global_batch'], FLAGS.num_steps, FLAGS.original_malloc, FLAGS.warmup
    )
    result['original'] = original
    result['speedup_over_original'] = round(original['median_step_seconds'] / result['median_step_seconds'], 3)
    print(
      f'step at batch {result["global_batch"]}: ours {result["median_step_seconds"]:.3f} s, the original '
      f'{original["median_step_seconds"]:.3f} s ({result["speedup_over_original"]:.2f} x; medians of '
      f'{FLAGS.num_steps} steps after {FLAGS.warmup} untimed; malloc settings: '
      f'{result["malloc"]} here, {original["malloc"]} for the original; {_describe(result["host_cpu"])})',
      flush=True,
    )
    for name, seconds in (('our', result['step_seconds']), ("the original's", original['step_seconds'])):
      if still_settling(seconds):
        print(
          f'{name} first timed step ({seconds[0]:.3f} s) is {SETTLING_RATIO} times the fastest later one or '
          f'more: it was still settling; rerun with a larger --warmup (now {FLAGS.warmup}).',
          flush=True,
        )
  print(json.dumps(result), flush=True)


def command():
  """The command line: flags, then `main`."""
  define_flags()
  app.run(main)


if __name__ == '__main__':
  command()
