"""Every config field with its default, by section. Named experiments start from
`get_config()` here.

Override any field on the command line, e.g. `--config.model.num_layers=12`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Every field and its default."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = data_config()
  # Start from pretrained weights: a workdir, a checkpoint folder
  # (<workdir>/checkpoints/<step>) or 'hf:/local/dir' (GPT-2, BERT, Llama family); step 0,
  # fresh optimizer and schedule.
  c.init_from = ""
  c.model = model_config()
  c.execution = execution_config()
  c.mlm = mlm_config()
  c.optim = optim_config()
  c.train = train_config()
  c.scaling = scaling_config()
  c.mesh = mesh_config()
  return c


def data_config() -> ml_collections.ConfigDict:
  """What a run reads: the corpus, its splits, the tokenizer, the windows and batches."""
  data = ml_collections.ConfigDict()
  data.dataset = "local"  # 'local': file, folder or glob at `path` (local or gs://); or a TFDS name
  data.path = "data/tiny_shakespeare.txt"
  data.format = "auto"  # local: 'text', 'jsonl' or 'parquet'; 'auto': by each file's extension
  data.include = "*"  # local folder: glob on each file's path below the folder
  data.exclude = ()  # local folder: globs of files left out, e.g. ('test/*',)
  data.text_key = "text"  # the record feature holding the text
  data.label_key = "label"  # classification: the record feature holding the class id
  data.train_split = "train"
  data.eval_split = "validation"
  # local corpora: the held-out fraction: a seeded sample of the documents (of one document,
  # e.g. a single text file: its last fraction, from a line start)
  data.validation_fraction = 0.1
  data.sample_seed = 0  # seeds the held-out documents and the tokenizer's training sample
  data.encoding = "utf-8"  # local files' text encoding, decoded strictly (e.g. 'latin-1')
  data.decode_errors = "strict"  # 'strict': a byte that does not decode fails; 'replace': U+FFFD
  # TFDS data and the token caches: gs://, absolute or ~; a relative path lies under $LM_CACHE_DIR
  # (default ~/.cache/lm), wherever the command runs
  data.data_dir = "~/tensorflow_datasets"
  data.tokenizer = "char"  # 'char', 'sentencepiece' or 'bpe' (byte-level, GPT-2's scheme)
  data.vocab_size = 8192  # 'sentencepiece' and 'bpe', specials included ('char': its corpus')
  # sentencepiece, bpe: characters of train documents to learn from (a seeded sample)
  data.tokenizer_train_chars = 50_000_000
  data.seq_len = 256
  # decoders: attention and positions restart at each document (a local corpus's files, a TFDS
  # dataset's records)
  data.document_masking = False
  data.batch_size = 32  # global, over all processes and devices
  data.num_threads = 4  # grain read threads
  data.prefetch = 8  # batches read ahead
  return data


def model_config() -> ml_collections.ConfigDict:
  """What a model is: its architecture (what a checkpoint or a Hugging Face export describes)."""
  model = ml_collections.ConfigDict()
  model.kind = "decoder"  # 'decoder' (GPT, next-token LM) or 'encoder' (BERT, MLM)
  model.norm_position = "pre"  # 'pre' LayerNorm (GPT-2) or 'post' (BERT)
  model.activation = "gelu_tanh"  # 'gelu_tanh' (GPT-2's gelu_new) or 'gelu' (exact erf, BERT)
  model.type_vocab_size = 0  # segment (token type) embeddings; 0: none (BERT: 2)
  model.num_classes = 0  # > 0: train a sequence classifier on labelled data
  model.num_layers = 6
  model.num_heads = 6
  model.d_model = 384
  model.mlp_dim = model.get_ref("d_model") * 4
  model.max_seq_len = 1024  # learned position table size; data.seq_len must fit
  model.position = "learned"  # 'learned' or 'rotary'
  model.rope_theta = 10000.0  # rotary positions' base wavelength (Llama 3: 500000)
  model.rope_scaling = "none"  # context extension: 'none', 'linear' or 'llama3' (Llama 3.1)
  model.rope_scaling_factor = 1.0  # 'linear', 'llama3': how much longer the context (Llama 3.1: 8)
  model.rope_low_freq_factor = 1.0  # 'llama3': wavelengths over original_max_len / this are scaled
  model.rope_high_freq_factor = 4.0  # 'llama3': wavelengths under original_max_len / this are kept
  model.rope_original_max_len = 8192  # 'llama3': the context length the model was trained at
  model.norm = "layernorm"  # 'layernorm' (GPT-2, BERT) or 'rmsnorm' (Llama)
  model.mlp = "gelu"  # 'gelu' or 'swiglu' (Llama: mlp_dim ~ 8/3 d_model)
  model.num_kv_heads = 0  # key/value heads: grouped-query attention; 0: num_heads
  model.qk_norm = False  # RMSNorm of queries and keys per head (OLMo 2, Qwen 3)
  model.tie_embeddings = True
  model.use_bias = True
  model.qkv_bias = False  # query/key/value biases even without use_bias (Qwen2)
  model.dropout = 0.0
  model.layer_norm_eps = 1e-5
  model.vocab_multiple = 64  # the tokenizer's vocabulary is padded up to a multiple of this
  # 'standard' or 'mup' (lm/model/mup.py: a learning rate tuned at base_width holds at other widths;
  # decoders, not Muon)
  model.parametrization = "standard"
  model.base_width = 0  # mup: the d_model the learning rate was tuned at
  model.base_head_dim = 0  # mup: the head_dim at that width (attention logits' scale)
  # mup: the logits' multiplier alpha, tuned at base_width with the learning rate (logits are
  # alpha / m times the head's output at width m * base_width); 1: untuned
  model.mup_output_multiplier = 1.0
  return model


def execution_config() -> ml_collections.ConfigDict:
  """How the model runs, not what it is (lm/model/config.py): a sweep's run identity and a
  Hugging Face export leave it out, and fine-tuning takes it from this config."""
  execution = ml_collections.ConfigDict()
  execution.param_dtype = "float32"
  execution.compute_dtype = "float32"  # 'bfloat16' on GPU/TPU
  execution.logits_dtype = "float32"  # 'bfloat16' halves the logits' memory; the loss is f32 anyway
  execution.attention_impl = "xla"  # 'xla', 'cudnn' (fused, GPU) or 'auto' (JAX chooses)
  execution.remat = "none"  # rematerialise blocks in the backward: 'none', 'full', 'dots'
  execution.scan_layers = False  # run the blocks as one lax.scan body (slower to compile on CPU)
  execution.separate_qkv = False  # three q/k/v GEMMs instead of one QKV GEMM and three slices
  execution.fused_cross_entropy = True  # lean loss backward (lm/model/numerics.py); False: Optax
  execution.one_pass_logsumexp = False  # GPUs: the loss's normaliser in one pass over the logits
  return execution


def mlm_config() -> ml_collections.ConfigDict:
  """The encoder's masked-LM corruption (BERT)."""
  mlm = ml_collections.ConfigDict()
  mlm.select_prob = 0.15  # positions predicted
  mlm.mask_frac = 0.8  # of those: replaced by [MASK]
  mlm.random_frac = 0.1  # of those: replaced by a random token (the rest unchanged)
  return mlm


def optim_config() -> ml_collections.ConfigDict:
  """The optimizer, its learning-rate schedule, and what fine-tuning keeps fixed."""
  optim = ml_collections.ConfigDict()
  # 'adamw', 'muon' (hidden matrices; AdamW for the rest), 'adafactor' or 'lion'
  optim.name = "adamw"
  # AdamW's; muon: the hidden matrices' (0.02), lion: 3-10x less (a run at AdamW's 1e-3 warns)
  optim.learning_rate = 1e-3
  optim.adam_learning_rate = 0.0  # muon: the AdamW part's peak learning rate; 0: learning_rate
  # 'constant', 'linear', 'cosine', 'wsd' (warmup-stable-decay, a linear cooldown) or 'wsd_sqrt' (a
  # 1-sqrt cooldown)
  optim.schedule = "cosine"
  optim.warmup_steps = 100
  optim.final_lr_ratio = 0.1  # the decayed learning rate, as a fraction of the peak
  optim.wsd_decay_fraction = 0.2  # wsd, wsd_sqrt: the final fraction of steps spent decaying
  optim.b1 = 0.9
  optim.b2 = 0.99
  optim.eps = 1e-8
  optim.weight_decay = 0.1
  optim.grad_clip_norm = 1.0  # 0 disables clipping
  optim.freeze_embeddings = False  # fine-tuning: keep token/position/segment embeddings fixed
  optim.freeze_layers = 0  # fine-tuning: keep the lowest N blocks fixed
  return optim


def train_config() -> ml_collections.ConfigDict:
  """The loop: its length, and how often it logs, evaluates, saves and watches itself."""
  train = ml_collections.ConfigDict()
  train.steps = 5000  # the schedule's length
  train.stop_after_steps = -1  # end this invocation after so many steps (saving); -1: never
  train.grad_accum_steps = 1  # microbatches per step (the batch is split, grads averaged)
  # steps per program (a lax.scan over as many batches): the same updates, less dispatch overhead
  # for small models
  train.steps_per_dispatch = 1
  train.z_loss = 0.0  # adds z_loss * log(Z)^2 per prediction (PaLM: 1e-4); 0: none
  train.log_every = 50
  train.eval_every = 500
  train.eval_batches = -1  # batches of the eval split per evaluation; -1: all of it
  train.checkpoint_every = 1000
  train.keep_checkpoints = 3  # the newest N checkpoints are kept; -1: all
  # also save and keep the checkpoints of these steps (a cooldown sweep's branch points)
  train.keep_steps = ()
  train.async_checkpoints = True
  train.watchdog_s = 600  # end the run (exit 124) after this long without progress; 0: off
  train.wandb_project = ""  # also log the metrics to this W&B project (needs wandb); '': off
  train.wandb_mode = "online"  # W&B: 'online', or 'offline' (files for `wandb sync`)
  return train


def scaling_config() -> ml_collections.ConfigDict:
  """An IsoFLOP grid for experiments/sweep.py: budgets, the model family, and the rules
  that give each size its tokens, learning rate, batch and warmup."""
  scaling = ml_collections.ConfigDict()
  scaling.budgets = (1e12, 1e13)  # training FLOPs per IsoFLOP curve, under `flops_convention`
  scaling.sizes_per_budget = 5  # model sizes per budget, log-spaced around the guessed optimum
  scaling.size_ratio = 10.0  # largest / smallest target params within a budget
  scaling.tokens_per_param = 20.0  # the guessed optimum: D = tokens_per_param * N (Chinchilla)
  # '6N', '6N+attn' or 'exact' (lm/model/counts.py): tokens = C / this
  scaling.flops_convention = "6N"
  # N that the guessed optimum and the family rule target
  scaling.params_convention = "non_embedding"
  scaling.rule = "aspect_ratio"  # 'aspect_ratio': d_model = aspect_ratio * layers; 'fixed_depth'
  scaling.aspect_ratio = 64.0  # d_model / num_layers
  scaling.fixed_num_layers = 4  # 'fixed_depth': every model has this many layers
  scaling.width_step = 32  # d_model is a multiple of it; num_heads = d_model / width_step
  scaling.num_heads = 0  # > 0: every size has this many heads (of d_model / num_heads)
  scaling.mlp_ratio = 4.0  # mlp_dim = mlp_ratio * d_model (SwiGLU: 8/3), multiple of width_step
  # the family's members 1 .. ladder_size: 'aspect_ratio' up to this many layers, 'fixed_depth'
  # widths up to ladder_size * width_step
  scaling.ladder_size = 64
  scaling.lr_ref_params = 1e6  # lr = optim.learning_rate * (lr_ref_params / N) ** lr_power
  scaling.lr_power = 0.0  # 0: the same learning rate for every size
  # > 0: every size under μP (model.parametrization='mup') from this base width, with
  # optim.learning_rate tuned there
  scaling.mup_base_width = 0
  scaling.batch_ref_budget = 1e12  # batch = data.batch_size * (C / batch_ref_budget) ** batch_power
  scaling.batch_power = 0.0  # 0: data.batch_size for every budget
  # warmup_steps = warmup_fraction * steps ('cooldown': of the size's shortest horizon, one warmup
  # for its branches)
  scaling.warmup_fraction = 0.05
  # 'independent': each grid point a run decayed over its own length (optim.schedule); 'cooldown':
  # one constant-lr run per size, and at each horizon S of its grid points a branch that decays over
  # its last cooldown_fraction * S steps (Hägele et al. 2024; lm/scaling/cooldown.py); needs
  # batch_power = 0
  scaling.method = "independent"
  scaling.cooldown_fraction = 0.2  # 'cooldown': a branch's decay, as a fraction of its steps
  scaling.cooldown_shape = "linear"  # 'cooldown': 'linear' or '1-sqrt', to optim.final_lr_ratio
  # e.g. (0.5, 1, 2): per size, trials of these multiples of the rule's learning rate at its
  # shortest horizon, then its points at the best (lm/scaling/lr_search.py); (): off
  scaling.lr_grid = ()
  # with lr_grid: a run longer than its size's trials trains at the rate they chose times
  # (steps / trial steps)^-lr_horizon_power (a cooldown sweep: its size's longest horizon's);
  # the best rate falls as the horizon grows (Bjorck et al. 2024); 0: the trials' rate as it is
  scaling.lr_horizon_power = 0.0
  scaling.min_steps = 10  # grid points with fewer steps are dropped from the plan
  # seed repeats (lm/scaling/noise.py): sizes named as lr_search.size_of names them, e.g.
  # ('L4_d16',), whose grid points train again from scratch with each of `noise_seeds`; their
  # rows go to seed_repeats.jsonl, which measures the seed noise; (): none
  scaling.noise_sizes = ()
  # the repeats' seeds, e.g. (1, 2): positive, distinct, none of them config.seed (the sweep's own
  # runs'); given with noise_sizes
  scaling.noise_seeds = ()
  # `experiments.sweep --verify`: the verification run trains again with each of these seeds
  # (positive, not config.seed), and is compared by its mean loss over them
  scaling.verify_seeds = ()
  # lm-evaluation-harness tasks each finished run that adds a row is scored on (0-shot; needs the
  # eval extra), a column per metric (lm/scaling/sweep_tasks.py); 'corpus_next_line': the true
  # next line of the held-out split among four, written by the sweep; (): off
  scaling.eval_tasks = ()
  scaling.eval_include_path = ""  # a folder of local task YAMLs for eval_tasks ('': none)
  scaling.eval_limit = 0  # at most this many documents of each task; 0: all
  # training FLOP/s per worker for the plan's time estimate until a run has finished (a guess: ~one
  # CPU core on small models)
  scaling.est_flops_per_s = 1e10
  return scaling


def mesh_config() -> ml_collections.ConfigDict:
  """The device mesh: data x fsdp x tensor devices."""
  mesh = ml_collections.ConfigDict()
  mesh.data = -1  # -1 takes the devices the other axes leave
  mesh.fsdp = 1
  mesh.tensor = 1
  return mesh
