// The types SdxlComponents and its loader share: what each component is, where it comes from, and the
// loading options of a pipeline.
import type { GpuContext, LoadProgress, ModelSource } from '@ssd/tensor';
import type { CLIPTextModel, CLIPTextModelWithProjection } from '@ssd/clip';
import type { AutoencoderKL, AutoencoderTiny } from '@ssd/vae';

export type Vae = AutoencoderKL | AutoencoderTiny;
export type TextEncoders = readonly [CLIPTextModel, CLIPTextModelWithProjection];

export interface ComponentLoadProgress extends LoadProgress {
  component: string;
}

export interface ComponentsOptions {
  /** 'f16' (default when the device has shader-f16) or 'f32'. The VAE decodes in f32 unless its config allows f16. */
  dtype?: 'f16' | 'f32';
  /** Weight variant to prefer, e.g. 'fp16' (falls back to the full weights with a notice). */
  variant?: string;
  /** Another VAE (AutoencoderKL such as the fp16-fix VAE, or AutoencoderTiny/TAESDXL): a folder, URL or source. */
  vae?: string | ModelSource;
  /**
   * Another UNet, as diffusers' `from_pretrained(…, unet=…)` (e.g. lcm-ssd-1b's LCM-distilled UNet): a
   * folder, URL or source holding config.json and the weights at its root.
   */
  unet?: string | ModelSource;
  /**
   * 'low': each component is loaded for its stage and released after it — text encoders, then the
   * UNet, then the VAE (decoder only) — and the buffer pool is capped at 16 MiB while a run lasts, so
   * the peak is the largest single stage (SSD-1B at 1024²: the UNet's 2.66 GB of fp16 weights plus
   * its live activations). Every call re-reads the weights.
   */
  memory?: 'resident' | 'low';
  /**
   * Classifier-free guidance's two UNet passes (unconditional, conditional): 'together' as one batch
   * (diffusers; the fastest where the device has the memory) or 'split', one after the other with half
   * the UNet activations (SSD-1B at 1024²: 128 MiB instead of 256 MiB live). The same images either
   * way. Default: 'split' in low-memory mode, else 'together'.
   */
  cfgBatch?: 'together' | 'split';
  /**
   * GPU bytes the pipeline may hold (the new context's memoryBudgetBytes; with a shared `context`, set
   * its memoryBudgetBytes instead). Weights that cannot fit are refused before loading, a size whose
   * estimated activations cannot fit before the first step; the buffer pool gives way first and the
   * VAE decodes in tiles that fit. Default: no limit but the device's.
   */
  memoryBudgetBytes?: number;
  /** A context to share (default: a new one, destroyed with the components). */
  context?: GpuContext;
  onLoadProgress?: (p: ComponentLoadProgress) => void;
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
}

/** Where one component comes from: the pipeline folder's subfolder, or a folder of its own (subfolder ''). */
export interface ComponentSource {
  source: ModelSource;
  subfolder: string;
}
