// The LoRA adapters of one set of models (UNet and text encoders), with diffusers' calls:
// load_lora_weights → load, set_adapters → setAdapters, cross_attention_kwargs={"scale": s} →
// setScale, fuse_lora / unfuse_lora / unload_lora_weights → fuse / unfuse / unload. The base weights
// are never written: every change is a coefficient or a copy in the layers' LoraWeight.
import { InvalidArgumentError, shapeSize, throwIfAborted, type HttpOptions, type LoadProgress, type SafetensorsFile } from '@ssd/tensor';
import type { LoraMode, LoraWeight } from '@ssd/kernels';
import { LORA_COMPONENTS, type LoraComponent, type LoraLayout } from './layouts.js';
import { openLoraFile, type LoraSource } from './lora-file.js';
import { buildPair, groupByWeight, mapLoraFile, type LoraModels, type MappedModule } from './lora-mapping.js';

export interface LoraLoadOptions {
  /** diffusers' adapter_name; default `default_<n>` (n = adapters loaded so far). */
  adapterName?: string;
  /** Components whose keys are deliberately not loaded (e.g. a UNet-only run of a full LoRA file). */
  skip?: readonly LoraComponent[];
  http?: HttpOptions;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
}

/** What a load did. */
export interface LoadedLora {
  readonly name: string;
  readonly file: string;
  readonly layout: LoraLayout;
  /** Patched modules per component. */
  readonly modules: Readonly<Record<LoraComponent, number>>;
  /** Parameters in the file's down/up tensors that were loaded. */
  readonly parameters: number;
  /** GPU bytes of the adapter as uploaded (one pair per patched layer). */
  readonly bytes: number;
}

interface Adapter {
  info: LoadedLora;
  layers: Map<LoraWeight, LoraComponent>;
}

export class LoraAdapters {
  private readonly adapters = new Map<string, Adapter>();
  private active = new Map<string, number>();
  private readonly scales: Record<LoraComponent, number> = { unet: 1, text_encoder: 1, text_encoder_2: 1 };
  /** Layers that diffusers runs at LoRA scale 1 whatever the call's scale (see setScale). */
  private readonly fixedScale = new Set<LoraWeight>();
  private loaded = 0;

  constructor(readonly models: LoraModels) {}

  /** Names of the loaded adapters, in load order. */
  get names(): string[] {
    return [...this.adapters.keys()];
  }

  /** The active adapters and their weights (set_adapters). */
  get activeAdapters(): ReadonlyMap<string, number> {
    return this.active;
  }

  info(name: string): LoadedLora | undefined {
    return this.adapters.get(name)?.info;
  }

  /**
   * Reads a LoRA file, maps it onto the models and uploads one low-rank pair per patched layer. As in
   * diffusers (PEFT backend), the first adapter loaded becomes active at weight 1; later ones load
   * inactive until setAdapters names them.
   */
  async load(source: LoraSource, opts: LoraLoadOptions = {}): Promise<LoadedLora> {
    const name = opts.adapterName ?? `default_${this.loaded}`;
    if (this.adapters.has(name)) throw new InvalidArgumentError(`LoRA adapter name "${name}" is already in use; pass another adapterName or unload it first`);
    const lora = await openLoraFile(source, opts.http);
    const layers = new Map<LoraWeight, LoraComponent>();
    try {
      const mapped = await mapLoraFile(lora, this.models, opts.skip);
      const groups = groupByWeight(mapped);
      const totalBytes = mapped.reduce((a, m) => a + fileSpan(lora.file, m).bytes, 0);
      let loadedBytes = 0;
      let bytes = 0;
      for (const [weight, modules] of groups) {
        throwIfAborted(opts.signal, 'loading the LoRA');
        const pair = await buildPair(lora, weight, modules, opts.signal);
        weight.setAdapter(name, pair);
        const component = modules[0].keys.component;
        layers.set(weight, component);
        bytes += pair.down.byteSize + pair.up.byteSize;
        if (component === 'unet' && this.runsAtScaleOne(weight)) this.fixedScale.add(weight);
        for (const m of modules) loadedBytes += fileSpan(lora.file, m).bytes;
        opts.onProgress?.({ loadedBytes, totalBytes, key: modules[modules.length - 1].keys.down! });
      }
      const modules = { unet: 0, text_encoder: 0, text_encoder_2: 0 };
      for (const m of mapped) modules[m.keys.component]++;
      const parameters = mapped.reduce((a, m) => a + fileSpan(lora.file, m).elements, 0);
      const loadedInfo: LoadedLora = { name, file: lora.file.name, layout: lora.layout, modules, parameters, bytes };
      this.adapters.set(name, { info: loadedInfo, layers });
      this.loaded++;
      if (this.active.size === 0) this.active.set(name, 1);
      this.apply();
      return loadedInfo;
    } catch (e) {
      for (const w of layers.keys()) w.deleteAdapter(name);
      throw e;
    } finally {
      await lora.file.source.close();
    }
  }

  /** diffusers set_adapters: only these adapters run, each at its weight (default 1). */
  setAdapters(names: string | readonly string[], weights?: number | readonly number[]): void {
    const list = typeof names === 'string' ? [names] : [...names];
    const ws = weights === undefined ? list.map(() => 1) : typeof weights === 'number' ? list.map(() => weights) : [...weights];
    if (ws.length !== list.length) throw new InvalidArgumentError(`setAdapters: ${list.length} adapter names but ${ws.length} weights`);
    for (const [i, n] of list.entries()) {
      if (!this.adapters.has(n)) throw new InvalidArgumentError(`setAdapters: no LoRA adapter named "${n}" (loaded: ${this.names.join(', ') || 'none'})`);
      if (!Number.isFinite(ws[i])) throw new InvalidArgumentError(`setAdapters: the weight of "${n}" = ${ws[i]}: must be a finite number`);
    }
    this.active = new Map(list.map((n, i) => [n, ws[i]]));
    this.apply();
  }

  /**
   * The per-call LoRA scale (diffusers' cross_attention_kwargs={"scale": s}; v0.26.3 also passes it to
   * both text encoders through encode_prompt(lora_scale=s)). One diffusers v0.26.3 quirk is reproduced
   * on purpose: UNet2DConditionModel.forward calls a UNetMidBlock2D (the single-resnet mid block of
   * SSD-1B and Vega) as `self.mid_block(sample, emb)`, without the scale, so LoRA layers in it always
   * run at scale 1 (with PEFT installed, diffusers scales every layer instead). fuse() has no quirk.
   */
  setScale(scale: number, components: readonly LoraComponent[] = LORA_COMPONENTS): void {
    if (!Number.isFinite(scale)) throw new InvalidArgumentError(`LoRA scale = ${scale}: must be a finite number`);
    for (const c of components) this.scales[c] = scale;
    this.apply();
  }

  /**
   * diffusers fuse_lora(lora_scale): merges the active adapters, each at scale · weight, into a copy of
   * every patched weight (all layers, the mid block included); the forward then reads the copies.
   */
  fuse(opts: { scale?: number; components?: readonly LoraComponent[] } = {}): void {
    const scale = opts.scale ?? 1;
    if (!Number.isFinite(scale)) throw new InvalidArgumentError(`fuse: LoRA scale = ${scale}: must be a finite number`);
    const components = opts.components ?? LORA_COMPONENTS;
    const weights = new Set<LoraWeight>();
    for (const [name, a] of this.adapters) {
      for (const [w, c] of a.layers) {
        if (!components.includes(c)) continue;
        weights.add(w);
        w.setCoefficient(name, (this.active.get(name) ?? 0) * scale);
      }
    }
    for (const w of weights) w.fuse();
    this.apply();
  }

  /** diffusers unfuse_lora: the forward reads the base weights again (bit for bit), adapters run live. */
  unfuse(): void {
    for (const w of this.allLayers()) w.unfuse();
    this.apply();
  }

  /** Frees adapters (all by default; diffusers unload_lora_weights / delete_adapters). */
  unload(names: string | readonly string[] = this.names): void {
    for (const n of typeof names === 'string' ? [names] : names) {
      const a = this.adapters.get(n);
      if (!a) continue;
      for (const w of a.layers.keys()) w.deleteAdapter(n);
      this.adapters.delete(n);
      this.active.delete(n);
    }
    for (const w of [...this.fixedScale]) if (!w.adapterNames.length) this.fixedScale.delete(w);
  }

  /** How live adapters run in every patched layer (see LoraMode); undefined: LoraWeight.defaultMode. */
  setMode(mode: LoraMode | undefined): void {
    for (const w of this.allLayers()) w.mode = mode;
  }

  /** GPU bytes held for the adapters beyond the base weights (pairs, scaled and merged/fused copies). */
  get extraBytes(): number {
    let b = 0;
    for (const w of this.allLayers()) b += w.extraBytes;
    return b;
  }

  private allLayers(): Set<LoraWeight> {
    const all = new Set<LoraWeight>();
    for (const a of this.adapters.values()) for (const w of a.layers.keys()) all.add(w);
    return all;
  }

  /** Every layer's coefficient: weight (0 when inactive) × the component's scale (1 for fixedScale layers). */
  private apply(): void {
    for (const [name, a] of this.adapters) {
      const weight = this.active.get(name) ?? 0;
      for (const [w, c] of a.layers) w.setCoefficient(name, weight * (this.fixedScale.has(w) ? 1 : this.scales[c]));
    }
  }

  /** Whether the layer sits in a UNetMidBlock2D, which diffusers v0.26.3 runs without the LoRA scale. */
  private runsAtScaleOne(w: LoraWeight): boolean {
    return this.models.unet?.spec.mid?.type === 'UNetMidBlock2D' && w.parts.every((p) => p.path.startsWith('mid_block.'));
  }
}

/** File bytes and elements of a module's down and up tensors. */
function fileSpan(file: SafetensorsFile, m: MappedModule): { bytes: number; elements: number } {
  const d = file.info(m.keys.down!);
  const u = file.info(m.keys.up!);
  return { bytes: d.end - d.begin + u.end - u.begin, elements: shapeSize(d.shape) + shapeSize(u.shape) };
}
