"""XLA's CPU settings, chosen by the processor before JAX starts its CPU backend.

On processors with AVX2 but no AVX-512, XLA's YNNPACK convolution fusions made convolutions, and the BBC Pose
training step, several times slower, so they are turned off there. With AVX-512 they are as fast or faster,
so they stay on (docs/benchmarks.md, "XLA's CPU settings", has the figures). Each command applies this when it
starts (`process_settings.py`), unless XLA_FLAGS already names the setting: a user's own choice always wins.
"""

import os

YNN_FUSIONS = '--xla_cpu_experimental_ynn_fusion_type'


def _first_processor(cpuinfo: str) -> dict[str, str]:
  """The fields of the first processor listed in /proc/cpuinfo (empty when unreadable)."""
  fields = {}
  try:
    with open(cpuinfo) as f:
      for line in f:
        if not line.strip():
          if fields:
            break
          continue
        key, _, value = line.partition(':')
        fields[key.strip()] = value.strip()
  except OSError:
    pass
  return fields


def cpu_features(cpuinfo: str = '/proc/cpuinfo') -> set[str]:
  """The instruction-set flags of the first processor listed in /proc/cpuinfo (empty when unreadable)."""
  return set(_first_processor(cpuinfo).get('flags', '').split())


def host_cpu(cpuinfo: str = '/proc/cpuinfo') -> dict:
  """The processor a CPU timing came from, for benchmark reports: timings of one kind of machine do not carry
  to another, and the model name alone does not tell AMD EPYCs with and without AVX-512 apart."""
  fields = _first_processor(cpuinfo)
  return {
    'model_name': fields.get('model name', 'unknown'),
    'family': fields.get('cpu family', 'unknown'),
    'model': fields.get('model', 'unknown'),
    'avx512': 'avx512f' in fields.get('flags', '').split(),
  }


def recommended_flags(features: set[str]) -> list[str]:
  """XLA flags for a processor with these features: YNNPACK's fusions off where AVX2 comes without AVX-512."""
  if 'avx2' in features and 'avx512f' not in features:
    return [f'{YNN_FUSIONS}=']
  return []


def configure(environ=os.environ, cpuinfo: str = '/proc/cpuinfo') -> list[str]:
  """Adds the recommended flags to environ['XLA_FLAGS'] where the user has not set them; returns those added."""
  current = environ.get('XLA_FLAGS', '')
  added = [flag for flag in recommended_flags(cpu_features(cpuinfo)) if flag.split('=')[0] not in current]
  if added:
    environ['XLA_FLAGS'] = ' '.join([current] + added).strip()
  return added
