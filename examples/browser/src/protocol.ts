// Messages between the page (main.ts) and the pipeline worker (worker.ts). Every long operation runs
// in the worker; the page only draws. Images travel as RGBA8 with their buffers transferred.

export interface AdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  features: string[];
  f16: boolean;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

/** A single checkpoint's URL (.safetensors or .gguf) rather than a diffusers folder's. */
export function isCheckpointUrl(url: string): boolean {
  return /\.(safetensors|gguf)$/i.test(url.split(/[?#]/)[0]);
}

/** A URL names a diffusers folder, or a single checkpoint when it ends in .safetensors / .gguf. */
export type ModelChoice =
  | { kind: 'url'; url: string; cache: boolean; storage?: 'auto' | 'opfs' | 'cache-api' }
  | { kind: 'files'; name: string; files: [string, File][] }
  | { kind: 'file'; file: File };

/** A LoRA .safetensors at a URL (a single file, cached like a model's files) or picked on this computer. */
export type LoraChoice =
  | { kind: 'url'; url: string; cache: boolean; storage?: 'auto' | 'opfs' | 'cache-api' }
  | { kind: 'file'; file: File };

/** A LoRA the worker loaded onto the pipeline (`id` is its adapter name there). */
export interface LoraInfo {
  id: string;
  /** The name A1111 shows and the PNG records: the file name without .safetensors. */
  name: string;
  layout: string;
  modules: Record<string, number>;
  parameters: number;
  /** GPU bytes of its low-rank pairs. */
  bytes: number;
  /** A1111's AutoV3 hash (sha256 of the tensor data after the header, 12 hex digits); absent for an uncached URL. */
  hash?: string;
}

export interface GenerateParams {
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidanceScale: number;
  width: number;
  height: number;
  seed: number;
  scheduler: string;
}

/** The Inpaint tab's request: the image, the painted mask (one byte per pixel, 255 repaints) and the settings. */
export interface InpaintParams {
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidanceScale: number;
  strength: number;
  seed: number;
  image: Rgba;
  mask: { width: number; height: number; data: Uint8Array };
  /** Paste the result into the image where the mask is black (diffusers' apply_overlay), so that region stays exactly as it was. */
  composite: boolean;
}

export interface Rgba {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

/** An error the page can explain: `kind` picks the headline and the advice. */
export interface ErrorInfo {
  kind: 'no-webgpu' | 'missing-file' | 'model' | 'quota' | 'memory' | 'device-lost' | 'input' | 'other';
  code: string;
  message: string;
}

export type ToWorker =
  /** `memoryBudgetBytes`: GPU allocations beyond it fail up front (simulates a smaller GPU; ?gpuBudgetMiB=). */
  | { type: 'probe'; memoryBudgetBytes?: number }
  | { type: 'load'; model: ModelChoice; dtype: 'f16' | 'f32' }
  | { type: 'generate'; params: GenerateParams }
  | { type: 'inpaint'; params: InpaintParams }
  /** Loads a LoRA as adapter `id`, active at `scale` beside the others. */
  | { type: 'lora-add'; id: string; lora: LoraChoice; scale: number }
  /** A new weight for a loaded LoRA: set_adapters, nothing is reloaded. */
  | { type: 'lora-scale'; id: string; scale: number }
  /** Unloads a LoRA (or stops its loading). */
  | { type: 'lora-remove'; id: string }
  | { type: 'cancel' };

export type FromWorker =
  | { type: 'adapter'; adapter: AdapterSummary }
  | { type: 'no-webgpu'; error: ErrorInfo }
  | { type: 'file'; path: string; loadedBytes: number; totalBytes: number; state: 'cached' | 'download' | 'done' }
  | { type: 'upload'; component: string; loadedBytes: number; totalBytes: number }
  | { type: 'notice'; message: string }
  | { type: 'loaded'; model: string; dtype: 'f16' | 'f32'; storage: string; loadMs: number; weightBytes: number; defaultSize: number; scheduler: string }
  | { type: 'step'; step: number; total: number; timestep: number; elapsedMs: number; preview?: Rgba }
  | { type: 'result'; image: Rgba; png: Uint8Array; seed: number; parameters: string; totalMs: number; stepMs: number[]; peakBytes: number; adapter: string; dtype: string }
  | { type: 'inpaint-step'; step: number; total: number }
  | { type: 'inpaint-result'; image: Rgba; png: Uint8Array; seed: number; totalMs: number; composite: boolean }
  /** A LoRA URL's file: from the network or the cache (as 'file' for a model's). */
  | { type: 'lora-progress'; id: string; loadedBytes: number; totalBytes: number; state: 'cached' | 'download' | 'done' }
  | { type: 'lora-loaded'; lora: LoraInfo; loadMs: number }
  | { type: 'lora-removed'; id: string }
  | { type: 'cancelled'; op: 'load' | 'generate' | 'inpaint' | 'lora'; message: string; id?: string }
  /** `id`: the LoRA concerned (op 'lora'). */
  | { type: 'error'; op: 'load' | 'generate' | 'inpaint' | 'lora'; error: ErrorInfo; id?: string };
