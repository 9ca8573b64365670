"""XLA's CPU settings by processor: YNNPACK's fusions off where AVX2 comes without AVX-512, a user's flags kept."""

import pytest

from landmarks_jax import cpu_settings

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
  assert cpu_settings.configure(environ, cpuinfo(AVX2_ONLY)) == ['--xla_cpu_experimental_ynn_fusion_type=']
  assert environ['XLA_FLAGS'] == ('--xla_force_host_platform_device_count=2 '
                                  '--xla_cpu_experimental_ynn_fusion_type=')
  assert cpu_settings.configure(environ, cpuinfo(AVX2_ONLY)) == []  # applied once


def test_avx512_and_unknown_processors_keep_xlas_defaults(cpuinfo, tmp_path):
  environ = {}
  assert cpu_settings.configure(environ, cpuinfo(AVX512)) == [] and 'XLA_FLAGS' not in environ
  assert cpu_settings.configure(environ, str(tmp_path / 'missing')) == [] and 'XLA_FLAGS' not in environ


def test_a_users_own_setting_and_the_opt_out_win(cpuinfo):
  environ = {'XLA_FLAGS': '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'}
  assert cpu_settings.configure(environ, cpuinfo(AVX2_ONLY)) == []
  assert environ['XLA_FLAGS'] == '--xla_cpu_experimental_ynn_fusion_type=individual_convolution'
  environ = {cpu_settings.KEEP_DEFAULTS_VARIABLE: '1'}
  assert cpu_settings.configure(environ, cpuinfo(AVX2_ONLY)) == [] and 'XLA_FLAGS' not in environ


def test_host_cpu_names_the_first_processor_and_its_avx512(cpuinfo, tmp_path):
  two = ('processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n'
         'flags\t\t: fpu avx2 avx512f\n\nprocessor\t: 1\nmodel name\t: Other\nflags\t\t: fpu avx2\n')
  assert cpu_settings.host_cpu(cpuinfo(two)) == {'model_name': 'AMD EPYC', 'family': '25', 'model': '17',
                                                 'avx512': True}
  assert cpu_settings.cpu_features(cpuinfo(two)) == {'fpu', 'avx2', 'avx512f'}
  assert cpu_settings.host_cpu(cpuinfo(AVX2_ONLY))['avx512'] is False
  assert cpu_settings.host_cpu(str(tmp_path / 'missing')) == {'model_name': 'unknown', 'family': 'unknown',
                                                              'model': 'unknown', 'avx512': False}
