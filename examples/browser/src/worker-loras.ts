// The pipeline worker's LoRAs: each one its own adapter (a URL's file through the weight cache, or a
// File), all active at their weights through set_adapters — a weight change reloads nothing — and put
// back onto a newly loaded model. Also what the PNG records of them: A1111's name, weight and AutoV3 hash.
import type { StableDiffusionXLPipeline } from '@ssd/pipeline';
import { CachedUrlSource } from '@ssd/pipeline/browser';
import { BlobSource, UrlSource, type ByteSource } from '@ssd/tensor';
import { throttled } from './throttle.js';
import type { ErrorInfo, FromWorker, LoraChoice, LoraInfo } from './protocol.js';

interface Entry {
  choice: LoraChoice;
  scale: number;
  info: LoraInfo;
}

/** crypto.subtle hashes one buffer, so the file's data is read whole: larger LoRAs (rare) go unhashed. */
const MAX_HASH_BYTES = 512 * 2 ** 20;

export class WorkerLoras {
  /** Loaded adapters by id (the pipeline's adapter name), in load order. */
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, AbortController>();

  constructor(
    private readonly post: (m: FromWorker) => void,
    private readonly describe: (e: unknown) => ErrorInfo,
  ) {}

  /** Stops the download of a LoRA still loading (called as its 'lora-remove' arrives, ahead of the queue). */
  abort(id: string): void {
    this.loading.get(id)?.abort();
  }

  async add(pipe: StableDiffusionXLPipeline, id: string, choice: LoraChoice, scale: number): Promise<void> {
    const abort = new AbortController();
    this.loading.set(id, abort);
    const t0 = performance.now();
    try {
      const info = await this.attach(pipe, id, choice, abort.signal);
      this.entries.set(id, { choice, scale, info });
      await this.apply(pipe);
      this.post({ type: 'lora-loaded', lora: info, loadMs: performance.now() - t0 });
    } catch (e) {
      this.entries.delete(id);
      await pipe.unloadLoraWeights(id).catch(() => {});
      if (abort.signal.aborted) this.post({ type: 'cancelled', op: 'lora', id, message: 'the LoRA was removed while loading' });
      else this.post({ type: 'error', op: 'lora', id, error: this.describe(e) });
    } finally {
      this.loading.delete(id);
    }
  }

  /** A new weight: set_adapters with every loaded LoRA at its weight. */
  async setScale(pipe: StableDiffusionXLPipeline | null, id: string, scale: number): Promise<void> {
    const e = this.entries.get(id);
    if (!e) return; // failed or removed meanwhile
    e.scale = scale;
    if (pipe) await this.apply(pipe);
  }

  async remove(pipe: StableDiffusionXLPipeline | null, id: string): Promise<void> {
    if (this.entries.delete(id) && pipe) {
      await pipe.unloadLoraWeights(id);
      await this.apply(pipe);
    }
    this.post({ type: 'lora-removed', id });
  }

  /** After a model load: every LoRA onto the new pipeline (from the cache or its File); one that no longer fits is reported and dropped. */
  async reattach(pipe: StableDiffusionXLPipeline, signal: AbortSignal): Promise<void> {
    for (const [id, e] of [...this.entries]) {
      const t0 = performance.now();
      try {
        e.info = await this.attach(pipe, id, e.choice, signal);
        this.post({ type: 'lora-loaded', lora: e.info, loadMs: performance.now() - t0 });
      } catch (err) {
        this.entries.delete(id);
        await pipe.unloadLoraWeights(id).catch(() => {});
        this.post({ type: 'error', op: 'lora', id, error: this.describe(err) });
        this.post({ type: 'lora-removed', id });
      }
    }
    await this.apply(pipe);
  }

  /** The LoRAs that change the image (weight ≠ 0), as formatParameters records them. */
  forPng(): { name: string; scale: number; hash?: string }[] {
    return [...this.entries.values()].filter((e) => e.scale !== 0).map((e) => ({ name: e.info.name, scale: e.scale, hash: e.info.hash }));
  }

  private async apply(pipe: StableDiffusionXLPipeline): Promise<void> {
    const list = [...this.entries];
    if (list.length) await pipe.setAdapters(list.map(([id]) => id), list.map(([, e]) => e.scale));
  }

  private async attach(pipe: StableDiffusionXLPipeline, id: string, choice: LoraChoice, signal: AbortSignal): Promise<LoraInfo> {
    const bytes = await this.open(id, choice, signal);
    const loaded = await pipe.loadLoraWeights(bytes, { adapterName: id, signal });
    // a Blob (a File, or the cached copy of a URL's file) is hashed; an uncached URL would be downloaded again
    const hash = bytes instanceof BlobSource ? await autoV3(bytes.blob).catch(() => undefined) : undefined;
    return { id, name: loraName(choice), layout: loaded.layout, modules: { ...loaded.modules }, parameters: loaded.parameters, bytes: loaded.bytes, hash };
  }

  /** The file's bytes: a URL is a single file, read through the source of its folder as the page's checkpoint URLs are (and so cached the same way). */
  private async open(id: string, choice: LoraChoice, signal: AbortSignal): Promise<ByteSource> {
    if (choice.kind === 'file') return new BlobSource(choice.file, choice.file.name);
    const clean = choice.url.split(/[?#]/)[0];
    const base = clean.replace(/\/[^/]*$/, '');
    const path = clean.slice(base.length + 1);
    if (!choice.cache) return new UrlSource(base).open(path);
    const progress = throttled(
      (loadedBytes: number, totalBytes: number, state: 'cached' | 'download' | 'done') => this.post({ type: 'lora-progress', id, loadedBytes, totalBytes, state }),
      100,
      (l, t, s) => s !== 'download' || l === 0 || l === t,
    );
    const source = new CachedUrlSource(base, { storage: choice.storage ?? 'auto', signal, onProgress: (p) => progress(p.loadedBytes, p.totalBytes, p.state) });
    return source.open(path);
  }
}

/**
 * The name A1111 shows: the file name without .safetensors; for diffusers' default file name on the
 * Hugging Face Hub (…/<repo>/resolve/<rev>/pytorch_lora_weights.safetensors), the repository's name.
 */
export function loraName(choice: LoraChoice): string {
  const path = choice.kind === 'file' ? choice.file.name : choice.url.split(/[?#]/)[0];
  const stem = path.split('/').pop()!.replace(/\.safetensors$/i, '');
  const repo = /\/([^/]+)\/resolve\/[^/]+\/pytorch_lora_weights\.safetensors$/i.exec(path)?.[1];
  return repo ?? stem;
}

/** A1111's AutoV3 (AddNet) hash: sha256 of the tensor data after the safetensors header, first 12 hex digits. */
export async function autoV3(file: Blob): Promise<string | undefined> {
  const start = 8 + Number(new DataView(await file.slice(0, 8).arrayBuffer()).getBigUint64(0, true));
  if (start > file.size || file.size - start > MAX_HASH_BYTES) return undefined;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.slice(start).arrayBuffer()));
  return [...digest.slice(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
