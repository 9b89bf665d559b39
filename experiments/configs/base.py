"""Every config field with its default. Named experiments start from `get_config()` here.

Override any field on the command line, e.g. `--config.model.num_layers=12`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = d = ml_collections.ConfigDict()
  d.dataset = "local"  # 'local' (a file or folder at `path`) or a TFDS catalog name
  d.path = "data/tiny_shakespeare.txt"
  d.include = "*"  # local folder: glob on each file's path below the folder
  d.exclude = ()  # local folder: globs of files left out, e.g. ('test/*',)
  d.text_key = "text"  # the record feature holding the text
  d.label_key = "label"  # classification: the record feature holding the class id
  d.train_split = "train"
  d.eval_split = "validation"
  d.validation_fraction = 0.1  # local corpora: the last fraction is the validation split
  d.encoding = "utf-8"  # local files' text encoding, decoded strictly (e.g. 'latin-1')
  d.decode_errors = "strict"  # 'strict': a byte that does not decode fails; 'replace': U+FFFD
  d.data_dir = "~/tensorflow_datasets"  # TFDS data and the token caches
  d.tokenizer = "char"  # 'char' or 'sentencepiece'
  d.vocab_size = 8192  # sentencepiece only; 'char' takes the corpus' characters
  d.tokenizer_train_chars = 50_000_000  # sentencepiece: characters of train text to learn from
  d.seq_len = 256
  d.document_masking = False  # decoders: attention and positions restart at each document
  # (a local corpus's files, a TFDS dataset's records)
  d.batch_size = 32  # global, over all processes and devices
  d.num_threads = 4  # grain read threads
  d.prefetch = 8  # batches read ahead

  c.init_from = ""  # start from pretrained weights: a workdir, a checkpoint
  # folder (<workdir>/checkpoints/<step>) or 'hf:/local/dir'
  # (GPT-2, BERT, Llama family); step 0, fresh optimizer
  # and schedule

  c.model = m = ml_collections.ConfigDict()
  m.kind = "decoder"  # 'decoder' (GPT, next-token LM) or 'encoder' (BERT, MLM)
  m.norm_position = "pre"  # 'pre' LayerNorm (GPT-2) or 'post' (BERT)
  m.activation = "gelu_tanh"  # 'gelu_tanh' (GPT-2's gelu_new) or 'gelu' (exact erf, BERT)
  m.type_vocab_size = 0  # segment (token type) embeddings; 0: none (BERT: 2)
  m.num_classes = 0  # > 0: train a sequence classifier on labelled data
  m.num_layers = 6
  m.num_heads = 6
  m.d_model = 384
  m.mlp_dim = m.get_ref("d_model") * 4
  m.max_seq_len = 1024  # learned position table size; data.seq_len must fit
  m.position = "learned"  # 'learned' or 'rotary'
  m.rope_theta = 10000.0  # rotary positions' base wavelength (Llama 3: 500000)
  m.rope_scaling = "none"  # context extension: 'none', 'linear' or 'llama3' (Llama 3.1)
  m.rope_scaling_factor = 1.0  # 'linear', 'llama3': how much longer the context (Llama 3.1: 8)
  m.rope_low_freq_factor = 1.0  # 'llama3': wavelengths over original_max_len / this are scaled
  m.rope_high_freq_factor = 4.0  # 'llama3': wavelengths under original_max_len / this are kept
  m.rope_original_max_len = 8192  # 'llama3': the context length the model was trained at
  m.norm = "layernorm"  # 'layernorm' (GPT-2, BERT) or 'rmsnorm' (Llama)
  m.mlp = "gelu"  # 'gelu' or 'swiglu' (Llama: mlp_dim ~ 8/3 d_model)
  m.num_kv_heads = 0  # key/value heads: grouped-query attention; 0: num_heads
  m.qk_norm = False  # RMSNorm of queries and keys per head (OLMo 2, Qwen 3)
  m.tie_embeddings = True
  m.use_bias = True
  m.qkv_bias = False  # query/key/value biases even without use_bias (Qwen2)
  m.dropout = 0.0
  m.layer_norm_eps = 1e-5
  m.vocab_multiple = 64  # the tokenizer's vocabulary is padded up to a multiple of this
  m.parametrization = "standard"  # 'standard' or 'mup' (lm/model/mup.py: a learning rate tuned
  # at base_width holds at other widths; decoders, not Muon)
  m.base_width = 0  # mup: the d_model the learning rate was tuned at
  m.base_head_dim = 0  # mup: the head_dim at that width (attention logits' scale)

  # How the model runs, not what it is (lm/model/config.py): a sweep's run identity and a
  # Hugging Face export leave it out, and fine-tuning takes it from this config.
  c.execution = e = ml_collections.ConfigDict()
  e.param_dtype = "float32"
  e.compute_dtype = "float32"  # 'bfloat16' on GPU/TPU
  e.logits_dtype = "float32"  # 'bfloat16' halves the logits' memory; the loss is f32 anyway
  e.attention_impl = "xla"  # 'xla', 'cudnn' (fused, GPU) or 'auto' (JAX chooses)
  e.remat = "none"  # rematerialise blocks in the backward: 'none', 'full', 'dots'
  e.scan_layers = False  # run the blocks as one lax.scan body (slower to compile on CPU)
  e.separate_qkv = False  # three q/k/v GEMMs instead of one QKV GEMM and three slices
  e.fused_cross_entropy = True  # lean loss backward (lm/model/numerics.py); False: Optax
  e.one_pass_logsumexp = False  # GPUs: the loss's normaliser in one pass over the logits

  c.mlm = ml_collections.ConfigDict()  # the encoder's masked-LM corruption (BERT)
  c.mlm.select_prob = 0.15  # positions predicted
  c.mlm.mask_frac = 0.8  # of those: replaced by [MASK]
  c.mlm.random_frac = 0.1  # of those: replaced by a random token (the rest unchanged)

  c.optim = o = ml_collections.ConfigDict()
  o.name = "adamw"  # 'adamw', 'muon' (hidden matrices; AdamW for the rest),
  # 'adafactor' or 'lion'
  o.learning_rate = 1e-3  # muon: the hidden matrices' (e.g. 0.02)
  o.adam_learning_rate = 0.0  # muon: the AdamW part's peak learning rate; 0: learning_rate
  o.schedule = "cosine"  # 'constant', 'linear', 'cosine', 'wsd' (warmup-stable-decay,
  # a linear cooldown) or 'wsd_sqrt' (a 1-sqrt cooldown)
  o.warmup_steps = 100
  o.final_lr_ratio = 0.1  # the decayed learning rate, as a fraction of the peak
  o.wsd_decay_fraction = 0.2  # wsd, wsd_sqrt: the final fraction of steps spent decaying
  o.b1 = 0.9
  o.b2 = 0.99
  o.eps = 1e-8
  o.weight_decay = 0.1
  o.grad_clip_norm = 1.0  # 0 disables clipping
  o.freeze_embeddings = False  # fine-tuning: keep token/position/segment embeddings fixed
  o.freeze_layers = 0  # fine-tuning: keep the lowest N blocks fixed

  c.train = t = ml_collections.ConfigDict()
  t.steps = 5000  # the schedule's length
  t.stop_after_steps = -1  # end this invocation after so many steps (saving); -1: never
  t.grad_accum_steps = 1  # microbatches per step (the batch is split, grads averaged)
  t.steps_per_dispatch = 1  # steps per program (a lax.scan over as many batches): the
  # same updates, less dispatch overhead for small models
  t.z_loss = 0.0  # adds z_loss * log(Z)^2 per prediction (PaLM: 1e-4); 0: none
  t.log_every = 50
  t.eval_every = 500
  t.eval_batches = -1  # batches of the eval split per evaluation; -1: all of it
  t.checkpoint_every = 1000
  t.keep_checkpoints = 3  # the newest N checkpoints are kept; -1: all
  t.keep_steps = ()  # also save and keep the checkpoints of these steps (a
  # cooldown sweep's branch points)
  t.async_checkpoints = True
  t.watchdog_s = 600  # end the run (exit 124) after this long without progress; 0: off
  t.wandb_project = ""  # also log the metrics to this W&B project (needs wandb); '': off
  t.wandb_mode = "online"  # W&B: 'online', or 'offline' (files for `wandb sync`)

  c.scaling = s = ml_collections.ConfigDict()  # experiments/sweep.py: an IsoFLOP grid
  s.budgets = (1e12, 1e13)  # training FLOPs per IsoFLOP curve, under `flops_convention`
  s.sizes_per_budget = 5  # model sizes per budget, log-spaced around the guessed optimum
  s.size_ratio = 10.0  # largest / smallest target params within a budget
  s.tokens_per_param = 20.0  # the guessed optimum: D = tokens_per_param * N (Chinchilla)
  s.flops_convention = "6N"  # '6N', '6N+attn' or 'exact' (lm/model/counts.py): tokens = C / this
  s.params_convention = "non_embedding"  # N that the guessed optimum and the family rule target
  s.rule = "aspect_ratio"  # 'aspect_ratio': d_model = aspect_ratio * layers; 'fixed_depth'
  s.aspect_ratio = 64.0  # d_model / num_layers
  s.fixed_num_layers = 4  # 'fixed_depth': every model has this many layers
  s.width_step = 32  # d_model is a multiple of it; num_heads = d_model / width_step
  s.num_heads = 0  # > 0: every size has this many heads (of d_model / num_heads)
  s.mlp_ratio = 4.0  # mlp_dim = mlp_ratio * d_model (SwiGLU: 8/3), multiple of width_step
  s.ladder_size = 64  # the family's members 1 .. ladder_size: 'aspect_ratio' up to this many
  # layers, 'fixed_depth' widths up to ladder_size * width_step
  s.lr_ref_params = 1e6  # lr = optim.learning_rate * (lr_ref_params / N) ** lr_power
  s.lr_power = 0.0  # 0: the same learning rate for every size
  s.mup_base_width = 0  # > 0: every size under μP (model.parametrization='mup') from
  # this base width, with optim.learning_rate tuned there
  s.batch_ref_budget = 1e12  # batch = data.batch_size * (C / batch_ref_budget) ** batch_power
  s.batch_power = 0.0  # 0: data.batch_size for every budget
  s.warmup_fraction = 0.05  # warmup_steps = warmup_fraction * steps ('cooldown': of the
  # size's shortest horizon, one warmup for its branches)
  s.method = "independent"  # 'independent': each grid point a run decayed over its own
  # length (optim.schedule); 'cooldown': one constant-lr run per
  # size, and at each horizon S of its grid points a branch that
  # decays over its last cooldown_fraction * S steps (Hägele et
  # al. 2024; lm/scaling/cooldown.py); needs batch_power = 0
  s.cooldown_fraction = 0.2  # 'cooldown': a branch's decay, as a fraction of its steps
  s.cooldown_shape = "linear"  # 'cooldown': 'linear' or '1-sqrt', to optim.final_lr_ratio
  s.lr_grid = ()  # e.g. (0.5, 1, 2): per size, trials of these multiples of the
  # rule's learning rate at its shortest horizon, then its
  # points at the best (lm/scaling/lr_search.py); (): off
  s.min_steps = 10  # grid points with fewer steps are dropped from the plan
  s.est_flops_per_s = 1e10  # training FLOP/s per worker for the plan's time estimate until
  # a run has finished (a guess: ~one CPU core on small models)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1 takes the devices the other axes leave
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  return c
