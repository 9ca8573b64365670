"""The PyTorch original's checkpoints: torch's file formats read without code execution (`torch_file_reader`),
and the original's parameter names mapped onto this project's variables (`weight_mapping`). The command that
turns a checkpoint into a workdir is `landmarks_jax.import_torch`; `landmarks_jax.weights.pretrained` starts training
from one."""
