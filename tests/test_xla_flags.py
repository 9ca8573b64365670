"""XLA's CPU settings by processor: YNNPACK's fusions off where AVX2 comes without AVX-512, a user's flags kept."""

import os
import subprocess
import sys

import pytest

from landmarks_jax.cpu import xla_flags

AVX2_ONLY = 'processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma\n'
AVX512 = 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw\n'


@pytest.fixture
def cpuinfo(tmp_path):
  def write(text):
    path = tmp_path / 'cpuinfo'
    path.write_text(text)
    return str(path)

  return write


def test_avx2_without_avx512_turns_the_fusions_off(cpuinfo):
  environ = {'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  assert xla_flags.configure(environ, cpuinfo(AVX2_ONLY)) == ['--xla_cpu_experimental_ynn_fusion_type=']
  assert environ['XLA_FLAGS'] == ('--xla_force_host_platform_device_count=2 --xla_cpu_experimental_ynn_fusion_type=')
  assert xla_flags.configure(environ, cpuinfo(AVX2_ONLY)) == []  # applied once


def test_avx512_and_unknown_processors_keep_xlas_defaults(cpuinfo, tmp_path):
  environ = {}
  assert xla_flags.configure(environ, cpuinfo(AVX512)) == [] and 'XLA_FLAGS' not in environ
  assert xla_flags.configure(environ, str(tmp_path / 'missing')) == [] and 'XLA_FLAGS' not in environ


def test_a_users_own_setting_wins(cpuinfo):
  environ = {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'}
  assert xla_flags.configure(environ, cpuinfo(AVX2_ONLY)) == []
  assert environ['XLA_FLAGS'] == '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'


def test_host_cpu_names_the_first_processor_and_its_avx512(cpuinfo, tmp_path):
  two = (
    'processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n'
    'flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t\t: fpu avx2\n'
  )
  assert xla_flags.host_cpu(cpuinfo(two)) == {'model_name': 'AMD EPYC', 'family': '25', 'model': '17', 'avx512': True}
  assert xla_flags.cpu_features(cpuinfo(two)) == {'fpu', 'avx2', 'avx512f'}
  assert xla_flags.host_cpu(cpuinfo(AVX2_ONLY))['avx512'] is False
  assert xla_flags.host_cpu(str(tmp_path / 'missing')) == {
    'model_name': 'unknown',
    'family': 'unknown',
    'model': 'unknown',
    'avx512': False,
  }


def test_importing_the_package_and_its_commands_leaves_xla_flags_as_they_were():
  script = (
    'import importlib, os\n'
    'from landmarks_jax.cpu import xla_flags\n'
    "xla_flags.recommended_flags = lambda features: ['--xla_cpu_marker_for_this_test']\n"
    "for module in ('landmarks_jax', 'landmarks_jax.main', 'landmarks_jax.evaluate', 'landmarks_jax.predict',\n"
    "               'landmarks_jax.bench.step_benchmark', 'landmarks_jax.training.train'):\n"
    '  importlib.import_module(module)\n'
    "print(repr(os.environ.get('XLA_FLAGS')))\n"
    'from landmarks_jax.cpu import process_settings\n'
    'process_settings.apply()\n'
    "print(repr(os.environ.get('XLA_FLAGS')))\n"
  )
  environ = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  lines = subprocess.run(
    [sys.executable, '-c', script], env=environ, capture_output=True, text=True, check=True
  ).stdout.split()
  assert lines == ['None', "'--xla_cpu_marker_for_this_test'"]
