// CLIPTextModel and CLIPTextModelWithProjection (transformers models/clip/modeling_clip.py), as the
// SDXL pipeline uses them: token + position embeddings, pre-LN encoder layers with causal
// self-attention (q/k/v fused into one projection), every hidden state on request, the final
// LayerNorm at the first EOS position and, for the projection model, text_projection (no bias).
import {
  buildAndLoad, chooseComputeDtype, ConfigError, formatShape, InvalidArgumentError, openModelSource, parameterStats, readComponentConfig, ShapeError, WeightStore, withScopeSync,
  type DType, type GpuContext, type LoadProgress, type ModelSource, type QuantizedWeight, type Tensor,
} from '@ssd/tensor';
import { attention, gatherRows, LayerNorm, Linear, linear, LoraWeight, namedLoraTargets, collectLoraWeights, tokenEmbedding, type Activation, type LoraTarget } from '@ssd/kernels';
import { parseCLIPTextConfig, type CLIPTextConfig, type CLIPTextSpec } from './config.js';

export type { CLIPTextConfig } from './config.js';

export interface CLIPLoadOptions {
  context: GpuContext;
  dtype?: 'f16' | 'f32';
  variant?: string;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  onNotice?: (message: string) => void;
}

export interface CLIPEncodeOptions {
  /** Indices into hidden_states (embeddings output = 0, layer i output = i+1; negative from the end). Default [-2]. */
  hiddenStates?: readonly number[];
  /** Also compute last_hidden_state (final LayerNorm over every token). */
  lastHiddenState?: boolean;
  /** Also compute the pooled output (final LN at the first EOS) and, with projection, text_embeds. */
  pooled?: boolean;
}

export interface CLIPTextOutput {
  /** Requested hidden states, keyed by the index as given, [B, T, D]. */
  hiddenStates: Map<number, Tensor>;
  lastHiddenState?: Tensor;
  /** final_layer_norm(h)[b, eos_b] — [B, D]. */
  pooled?: Tensor;
  /** text_projection(pooled) — [B, projection_dim] (CLIPTextModelWithProjection only). */
  textEmbeds?: Tensor;
  dispose(): void;
}

class EncoderLayer {
  readonly layer_norm1: LayerNorm;
  /** q, k, v stacked; a quantized checkpoint's blocks stay quantized. */
  readonly qkvWeight: Tensor | QuantizedWeight;
  readonly qkvBias: Tensor;
  /** q_proj, k_proj and v_proj as one LoRA-adaptable weight (three parts). */
  readonly qkvProj: LoraWeight;
  readonly out_proj: Linear;
  readonly layer_norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(store: WeightStore, prefix: string, private readonly cfg: Required<Pick<CLIPTextConfig, 'hidden_size' | 'intermediate_size' | 'num_attention_heads' | 'layer_norm_eps'>>, private readonly act: Activation) {
    const d = cfg.hidden_size;
    const a = `${prefix}.self_attn`;
    this.layer_norm1 = new LayerNorm(store, `${prefix}.layer_norm1`, d, cfg.layer_norm_eps);
    this.qkvWeight = store.takeStacked([`${a}.q_proj.weight`, `${a}.k_proj.weight`, `${a}.v_proj.weight`], [[d, d], [d, d], [d, d]], { allowQuantized: true });
    this.qkvBias = store.takeStacked([`${a}.q_proj.bias`, `${a}.k_proj.bias`, `${a}.v_proj.bias`], [[d], [d], [d]]);
    this.qkvProj = new LoraWeight(this.qkvWeight, 'linear', ['q_proj', 'k_proj', 'v_proj'].map((n, i) => ({ path: `${a}.${n}`, rowOffset: i * d, rows: d })), null, store.dtype);
    this.out_proj = new Linear(store, `${a}.out_proj`, d, d);
    this.layer_norm2 = new LayerNorm(store, `${prefix}.layer_norm2`, d, cfg.layer_norm_eps);
    this.fc1 = new Linear(store, `${prefix}.mlp.fc1`, d, cfg.intermediate_size);
    this.fc2 = new Linear(store, `${prefix}.mlp.fc2`, cfg.intermediate_size, d);
  }

  /** h [B, T, D] → [B, T, D]; does not dispose h. */
  forward(h: Tensor): Tensor {
    const d = this.cfg.hidden_size;
    const heads = this.cfg.num_attention_heads;
    return withScopeSync((s) => {
      const qkv = s.then(s.track(this.layer_norm1.forward(h)), (n) => this.qkvProj.linear(n, { bias: this.qkvBias }));
      const att = s.then(qkv, (t) => attention({ tensor: t, channelOffset: 0 }, { tensor: t, channelOffset: d }, { tensor: t, channelOffset: 2 * d }, { heads, headDim: d / heads, causal: true }));
      const h1 = s.then(att, (a) => this.out_proj.forward(a, { residual: h }));
      const f = s.then(s.track(this.layer_norm2.forward(h1)), (n) => this.fc1.forward(n, { activation: this.act }));
      return this.fc2.forward(f, { residual: h1 }); // f and h1 are freed once it is recorded
    });
  }
}

export class CLIPTextModel {
  readonly dtype: DType;
  readonly config: Readonly<CLIPTextConfig>;
  /** The validated numbers the model was built from. */
  readonly spec: CLIPTextSpec;
  readonly tokenTable: { chunks: Tensor[]; rowStarts: number[] };
  readonly position_embedding: Tensor;
  readonly layers: EncoderLayer[];
  readonly final_layer_norm: LayerNorm;
  readonly text_projection: Tensor | null;
  private readonly params: Tensor[];
  private disposed = false;

  /** Builds the model from a config object and a WeightStore (see fromPretrained); `configFile` names the config in errors. */
  constructor(
    readonly ctx: GpuContext,
    config: CLIPTextConfig,
    store: WeightStore,
    readonly withProjection = false,
    configFile = 'text_encoder/config.json',
  ) {
    this.config = config;
    const spec = (this.spec = parseCLIPTextConfig(config, configFile));
    const d = spec.hiddenSize;
    this.dtype = store.dtype;
    try {
      this.tokenTable = store.takeRowChunks('text_model.embeddings.token_embedding.weight', [spec.vocabSize, d], ctx.limits.maxStorageBufferBindingSize);
      this.position_embedding = store.take('text_model.embeddings.position_embedding.weight', [spec.maxPositions, d]);
      const cfg = { hidden_size: d, intermediate_size: spec.intermediateSize, num_attention_heads: spec.numHeads, layer_norm_eps: spec.layerNormEps };
      this.layers = Array.from({ length: spec.numLayers }, (_, i) => new EncoderLayer(store, `text_model.encoder.layers.${i}`, cfg, spec.act));
      this.final_layer_norm = new LayerNorm(store, 'text_model.final_layer_norm', d, spec.layerNormEps);
      this.text_projection = withProjection ? store.take('text_projection.weight', [spec.projectionDim, d]) : null;
      store.finish();
    } catch (e) {
      store.disposeAll();
      throw e;
    }
    this.params = [...store.taken];
  }

  /**
   * Loads text_encoder/ or text_encoder_2/ as the class its config's `architectures` names: a
   * CLIPTextModelWithProjection (an instance of that subclass) for text_encoder_2, else a CLIPTextModel.
   */
  static async fromPretrained(source: string | ModelSource, subfolder: string, options: CLIPLoadOptions): Promise<CLIPTextModel> {
    const src = openModelSource(source);
    const config = (await readComponentConfig(src, subfolder)) as CLIPTextConfig;
    return loadModel(src, subfolder, config, hasProjection(config), options);
  }

  get parameterCount(): number {
    return parameterStats(this.params).count;
  }

  /**
   * The linear layers LoRA can patch, by transformers module path
   * ("text_model.encoder.layers.0.self_attn.q_proj", "….mlp.fc1").
   */
  namedLinearLayers(): Map<string, LoraTarget> {
    return namedLoraTargets(this, 'linear');
  }

  /** Index of the pooled token per row: transformers takes argmax(ids) when eos_token_id is the legacy 2, else the first eos_token_id. */
  eosPositions(ids: readonly ArrayLike<number>[]): number[] {
    const eos = this.config.eos_token_id ?? 2;
    return ids.map((row) => {
      let best = 0;
      if (eos === 2) {
        for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
        return best;
      }
      for (let k = 0; k < row.length; k++) if (row[k] === eos) return k;
      return 0;
    });
  }

  /** Runs the encoder on token ids [B][T]. Records the work; read results with tensor.read(). */
  encode(ids: readonly ArrayLike<number>[], opts: CLIPEncodeOptions = {}): CLIPTextOutput {
    if (this.disposed) throw new InvalidArgumentError('CLIPTextModel was disposed');
    const n = this.layers.length;
    const t = ids[0]?.length ?? 0;
    if (!ids.length || t === 0) throw new InvalidArgumentError('CLIPTextModel.encode: no token ids');
    if (t > this.position_embedding.shape[0]) throw new ShapeError('CLIPTextModel', 'ids', `[B, ≤${this.position_embedding.shape[0]}]`, formatShape([ids.length, t]));
    // an id past the token table would be read out of bounds on the GPU (clamped: a wrong row, silently)
    const vocab = this.spec.vocabSize;
    ids.forEach((row, b) => {
      if (row.length !== t) throw new ShapeError('CLIPTextModel', 'ids', `[${ids.length}, ${t}] (rows of one length)`, `row ${b} of length ${row.length}`);
      for (let k = 0; k < t; k++) {
        const id = row[k];
        if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new InvalidArgumentError(`CLIPTextModel.encode: token id ${id} at [${b}, ${k}] is outside the vocabulary [0, ${vocab}) (vocab_size in config.json)`);
      }
    });
    const wanted = new Map<number, number>(); // layer-output index (0..n) → requested key
    for (const k of opts.hiddenStates ?? [-2]) {
      const idx = k < 0 ? n + 1 + k : k;
      if (idx < 0 || idx > n) throw new InvalidArgumentError(`CLIPTextModel.encode: hidden state ${k} does not exist (${n + 1} states)`);
      wanted.set(idx, k);
    }
    const needFinal = !!opts.lastHiddenState || !!opts.pooled;
    const lastLayer = needFinal ? n : Math.max(...wanted.keys());
    const out: CLIPTextOutput = {
      hiddenStates: new Map(),
      dispose() {
        for (const v of this.hiddenStates.values()) v.dispose();
        this.lastHiddenState?.dispose();
        this.pooled?.dispose();
        this.textEmbeds?.dispose();
      },
    };
    let h = tokenEmbedding(this.ctx, ids, this.tokenTable.chunks, this.tokenTable.rowStarts, this.position_embedding);
    const keep = (idx: number, x: Tensor) => {
      const key = wanted.get(idx);
      if (key !== undefined) out.hiddenStates.set(key, x);
      return key !== undefined;
    };
    let kept = keep(0, h);
    for (let i = 0; i < lastLayer; i++) {
      const next = this.layers[i].forward(h);
      if (!kept) h.dispose();
      h = next;
      kept = keep(i + 1, h);
    }
    if (needFinal) {
      if (opts.lastHiddenState) out.lastHiddenState = this.final_layer_norm.forward(h);
      if (opts.pooled) {
        const eos = this.ctx.fromData(Int32Array.from(this.eosPositions(ids)), [ids.length], 'i32', 'eos positions');
        const rows = gatherRows(h, eos);
        eos.dispose();
        out.pooled = this.final_layer_norm.forward(rows); // LayerNorm is per row: gather first, normalise 1 row per sample
        rows.dispose();
        if (this.text_projection) out.textEmbeds = linear(out.pooled, this.text_projection);
      }
    }
    if (!kept) h.dispose();
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const w of collectLoraWeights(this)) w.dispose();
    for (const p of this.params) p.dispose();
  }
}

/** transformers' CLIPTextModelWithProjection: CLIPTextModel plus text_projection (no bias). */
export class CLIPTextModelWithProjection extends CLIPTextModel {
  constructor(ctx: GpuContext, config: CLIPTextConfig, store: WeightStore, configFile = 'text_encoder_2/config.json') {
    super(ctx, config, store, true, configFile);
  }

  /** Loads a CLIPTextModelWithProjection folder; a config naming another architecture is a ConfigError before any weight is read. */
  static override async fromPretrained(source: string | ModelSource, subfolder: string, options: CLIPLoadOptions): Promise<CLIPTextModelWithProjection> {
    const src = openModelSource(source);
    const config = (await readComponentConfig(src, subfolder)) as CLIPTextConfig;
    // transformers' from_pretrained builds the class it is called on: `architectures` is informational
    // (diffusers takes text_encoder_2's class from model_index.json), so only a config that names another
    // class is refused — one without the key loads (issue 20: a folder diffusers accepts)
    const named = (config.architectures as string[] | undefined)?.[0];
    if (named !== undefined && named !== 'CLIPTextModelWithProjection') throw new ConfigError('architectures', config.architectures, 'is not CLIPTextModelWithProjection', `${subfolder}/config.json`);
    return loadModel(src, subfolder, config, true, options) as Promise<CLIPTextModelWithProjection>;
  }
}

function hasProjection(config: CLIPTextConfig): boolean {
  return (config.architectures as string[] | undefined)?.[0] === 'CLIPTextModelWithProjection';
}

/** Opens the weights and builds the class the config names (with `projection`: the subclass). */
async function loadModel(src: ModelSource, subfolder: string, config: CLIPTextConfig, projection: boolean, options: CLIPLoadOptions): Promise<CLIPTextModel> {
  const ctx = options.context;
  const configFile = `${subfolder}/config.json`;
  parseCLIPTextConfig(config, configFile); // at config-read time, before any weight file is opened
  const dtype = chooseComputeDtype(ctx, options.dtype, 'text encoder', options.onNotice);
  const store = await WeightStore.open(ctx, src, subfolder, {
    dtype,
    variant: options.variant,
    onNotice: options.onNotice,
    ignore: [/^text_model\.embeddings\.position_ids$/, ...(projection ? [] : [/^text_projection\.weight$/])],
  });
  const build = (s: WeightStore) => (projection ? new CLIPTextModelWithProjection(ctx, config, s, configFile) : new CLIPTextModel(ctx, config, s, false, configFile));
  return buildAndLoad(store, build, { signal: options.signal, onProgress: options.onProgress });
}

