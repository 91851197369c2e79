// What one generation returns: the images, the final latents, the seed, and a report of per-stage
// times and peak GPU memory (RunReport). `StageClock` measures one stage on the components' context.
import type { RgbaImage } from './options.js';
import type { SdxlComponents } from './components.js';

export interface StageReport {
  ms: number;
  /** Peak GPU bytes held by the context during the stage. */
  peakBytes: number;
}

export interface RunReport {
  adapter: string;
  dtype: string;
  scheduler: string;
  width: number;
  height: number;
  steps: number;
  batch: number;
  loadMs: number;
  textEncode: StageReport;
  /** Per denoising step, ms (each ended by a completed queue). */
  stepMs: number[];
  denoise: StageReport;
  decode: StageReport;
  totalMs: number;
  itPerSec: number;
  peakBytes: number;
  /** Prompts cut at 77 tokens: [prompt, tokens cut, whether the count is exact (else a lower bound)]. */
  truncated: [string, number, boolean][];
  notices: string[];
}

export interface GenerateResult {
  /** RGBA8 images ('rgba'), in batch order. */
  images: RgbaImage[];
  /** NHWC floats in [0, 1] per image ('float'). */
  floats?: { width: number; height: number; data: Float32Array }[];
  /** Final latents, NCHW float32 [batch, 4, h, w], as diffusers' output_type="latent" (always given). */
  latents: { shape: [number, number, number, number]; data: Float32Array };
  /** The seed used (a number, or a bigint for seeds beyond 2^53). */
  seed: number | bigint;
  report: RunReport;
}

/** Times stages and keeps the run's peak GPU memory. */
export class StageClock {
  private peak = 0;

  constructor(private readonly c: SdxlComponents) {}

  /** Starts a stage (low-memory mode frees what the last stage pooled). */
  start(): number {
    this.c.beginStage();
    return performance.now();
  }

  end(s: StageReport, started: number): void {
    s.ms = performance.now() - started;
    s.peakBytes = this.c.ctx.memory.peakBytes;
    this.peak = Math.max(this.peak, s.peakBytes);
  }

  get peakBytes(): number {
    return this.peak;
  }
}
