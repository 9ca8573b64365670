"""Everything CPU-specific, behind one switch (`kernels.py`, chosen by `config.cpu_kernels`): oneDNN's
convolutions with Winograd's algorithm, sparse resizes, the banded kernel gradient, their C++ (`native/`), and
the process settings XLA:CPU and glibc's malloc run best with (`process_settings.py`). The model reaches it only
through `kernels`; on other backends, or with `cpu_kernels='xla'`, none of it runs."""
