// The LoRA state of a pipeline in either memory mode: which files are loaded (by adapter name), which
// adapters are active at which weight, whether they are fused, and the per-call scale. Resident mode
// keeps one LoraAdapters on the resident models; low-memory mode, whose models live for one stage,
// checks a file against the model's tensor headers when it is loaded and attaches the adapters to
// each freshly loaded model (detached and freed with it). The base weights are never written.
import { InvalidArgumentError, openComponentTensors, type ModelSource } from '@ssd/tensor';
import type { UNetSpec } from '@ssd/unet';
import {
  LoraAdapters, openLoraFile, resolveLoraFile, sgmBlockTable, targetsFromKeys, LORA_COMPONENTS,
  type ComponentTargets, type LoadedLora, type LoraComponent, type LoraModels, type LoraSource, type TargetShape,
} from './lora/index.js';

export interface LoadLoraOptions {
  /** diffusers' adapter_name (default `default_<n>`). */
  adapterName?: string;
  /** Make the adapter active at this weight, beside the adapters already active (diffusers: set_adapters). */
  scale?: number;
  signal?: AbortSignal;
}

interface Loaded {
  name: string;
  source: LoraSource;
  info: LoadedLora;
}

/** Where the low-memory check reads each component's tensor headers. */
export interface LoraHeaderSources {
  unet: { source: ModelSource; subfolder: string; spec: UNetSpec };
  textEncoders: ModelSource;
  variant?: string;
}

export class PipelineLoras {
  private readonly loaded: Loaded[] = [];
  private active: { names: string[]; weights: number[] } | null = null;
  private fusedScale: number | null = null;
  private callScale = 1;
  private count = 0;

  constructor(
    /** Resident mode: the adapters on the resident models; null in low-memory mode. */
    private readonly resident: LoraAdapters | null,
    private readonly headers: LoraHeaderSources,
  ) {}

  /** The loaded adapters, in load order. */
  get adapters(): readonly LoadedLora[] {
    return this.loaded.map((l) => l.info);
  }

  /** The active adapters and their weights. */
  get activeAdapters(): ReadonlyMap<string, number> {
    if (this.resident) return this.resident.activeAdapters;
    if (this.active) return new Map(this.active.names.map((n, i) => [n, this.active!.weights[i]]));
    return new Map(this.loaded.length ? [[this.loaded[0].name, 1]] : []);
  }

  get fused(): boolean {
    return this.fusedScale !== null;
  }

  /** GPU bytes of the adapters beyond the base weights (resident mode; 0 in low-memory mode between runs). */
  get extraBytes(): number {
    return this.resident?.extraBytes ?? 0;
  }

  async load(source: LoraSource, o: LoadLoraOptions = {}): Promise<LoadedLora> {
    const name = o.adapterName ?? `default_${this.count}`;
    if (this.loaded.some((l) => l.name === name)) throw new InvalidArgumentError(`LoRA adapter name "${name}" is already in use; pass another adapterName or unload it first`);
    if (o.scale !== undefined && !Number.isFinite(o.scale)) throw new InvalidArgumentError(`loadLoraWeights: scale = ${o.scale}: must be a finite number`);
    const info = this.resident ? await this.resident.load(source, { adapterName: name, signal: o.signal }) : await this.check(source, name);
    this.loaded.push({ name, source, info });
    this.count++;
    if (o.scale !== undefined) {
      const now = this.activeAdapters;
      this.setAdapters([...[...now.keys()].filter((n) => n !== name), name], [...[...now.entries()].filter(([n]) => n !== name).map(([, w]) => w), o.scale]);
    }
    return info;
  }

  setAdapters(names: string | readonly string[], weights?: number | readonly number[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    const ws = weights === undefined ? list.map(() => 1) : typeof weights === 'number' ? list.map(() => weights) : [...weights];
    if (ws.length !== list.length) throw new InvalidArgumentError(`setAdapters: ${list.length} adapter names but ${ws.length} weights`);
    for (const [i, n] of list.entries()) {
      if (!this.loaded.some((l) => l.name === n)) throw new InvalidArgumentError(`setAdapters: no LoRA adapter named "${n}" (loaded: ${this.loaded.map((l) => l.name).join(', ') || 'none'})`);
      if (!Number.isFinite(ws[i])) throw new InvalidArgumentError(`setAdapters: the weight of "${n}" = ${ws[i]}: must be a finite number`);
    }
    this.resident?.setAdapters(list, ws);
    this.active = { names: list, weights: ws };
  }

  fuse(loraScale = 1): void {
    if (!this.loaded.length) throw new InvalidArgumentError('fuseLora: no LoRA is loaded');
    if (!Number.isFinite(loraScale)) throw new InvalidArgumentError(`fuseLora: loraScale = ${loraScale}: must be a finite number`);
    this.resident?.fuse({ scale: loraScale });
    this.fusedScale = loraScale;
  }

  unfuse(): void {
    this.resident?.unfuse();
    this.fusedScale = null;
  }

  /** Frees the named adapters (all by default); with none left, the models are their base again, bit for bit. */
  unload(names?: string | readonly string[]): void {
    const list = names === undefined ? this.loaded.map((l) => l.name) : typeof names === 'string' ? [names] : [...names];
    this.resident?.unload(list);
    for (const n of list) {
      const i = this.loaded.findIndex((l) => l.name === n);
      if (i >= 0) this.loaded.splice(i, 1);
    }
    if (this.active) {
      const keep = this.active.names.map((n, i) => [n, this.active!.weights[i]] as const).filter(([n]) => this.loaded.some((l) => l.name === n));
      this.active = { names: keep.map(([n]) => n), weights: keep.map(([, w]) => w) };
    }
    if (!this.loaded.length) {
      this.active = null;
      this.fusedScale = null;
    }
  }

  /** The per-call scale (diffusers' cross_attention_kwargs={"scale": s}) for the run about to start; endCall restores 1. */
  beginCall(scale: number | undefined): void {
    this.callScale = scale ?? 1;
    this.resident?.setScale(this.callScale);
  }

  endCall(): void {
    this.callScale = 1;
    this.resident?.setScale(1);
  }

  /**
   * Low-memory mode: the adapters on a model loaded for one stage (null when no LoRA is loaded). The
   * caller frees them with `detach` before disposing the model.
   */
  async attach(models: LoraModels, signal?: AbortSignal): Promise<LoraAdapters | null> {
    if (this.resident || !this.loaded.length) return null;
    const adapters = new LoraAdapters(models);
    const skip = LORA_COMPONENTS.filter((c) => !models[c]);
    try {
      for (const l of this.loaded) await adapters.load(l.source, { adapterName: l.name, skip, signal });
      if (this.active) adapters.setAdapters(this.active.names, this.active.weights);
      adapters.setScale(this.callScale);
      if (this.fusedScale !== null) adapters.fuse({ scale: this.fusedScale, components: LORA_COMPONENTS.filter((c) => models[c]) });
      return adapters;
    } catch (e) {
      adapters.unload();
      throw e;
    }
  }

  detach(adapters: LoraAdapters | null): void {
    adapters?.unload();
  }

  /** Low-memory mode: the file is checked against every component's tensor headers now (no model is loaded). */
  private async check(source: LoraSource, name: string): Promise<LoadedLora> {
    const lora = await openLoraFile(source);
    try {
      const targets: Partial<Record<LoraComponent, ComponentTargets<TargetShape>>> = {};
      const h = this.headers;
      const keysOf = async (src: ModelSource, sub: string) => {
        const t = await openComponentTensors(src, sub, { variant: h.variant, onNotice: () => {} });
        try {
          return targetsFromKeys(t.keys().map((key) => ({ key, shape: t.get(key)!.shape })));
        } finally {
          await t.close();
        }
      };
      const present = new Set(lora.modules.map((m) => m.component));
      if (present.has('unet')) targets.unet = { targets: await keysOf(h.unet.source, h.unet.subfolder), sgm: sgmBlockTable(h.unet.spec) };
      for (const c of ['text_encoder', 'text_encoder_2'] as const) if (present.has(c)) targets[c] = { targets: await keysOf(h.textEncoders, c), sgm: null };
      const mapped = await resolveLoraFile(lora, targets);
      const modules = { unet: 0, text_encoder: 0, text_encoder_2: 0 } as Record<LoraComponent, number>;
      let parameters = 0;
      for (const m of mapped) {
        modules[m.keys.component]++;
        parameters += lora.file.info(m.keys.down!).shape.reduce((a, b) => a * b, 1) + lora.file.info(m.keys.up!).shape.reduce((a, b) => a * b, 1);
      }
      return { name, file: lora.file.name, layout: lora.layout, modules, parameters, bytes: 0 };
    } finally {
      await lora.file.source.close();
    }
  }
}
