// The inpainting fixtures (reference/inpaint.*, made by diffusers v0.26.3; in ../shared/fixtures only)
// for the library and CLI tests: the runs, and a pipeline folder with the 9-channel UNet (diffusers
// built it as from_pretrained("models/tiny-ssd1b", unet=<tiny-inpaint-unet-ssd1b>)), made of symlinks.
import { mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseJsonLenient } from '@ssd/tensor';
import { fixturesDir, hasFixtures } from '../../../testing/index.js';

export const INPAINT_FIXTURES = ['reference/inpaint.json', 'reference/inpaint.safetensors', 'reference/inpaint_image.png', 'reference/inpaint_mask.png', 'models/tiny-inpaint-unet-ssd1b/config.json'];

export const hasInpaintFixtures = (): boolean => hasFixtures(...INPAINT_FIXTURES);

export const ref = (f: string): string => join(fixturesDir, 'reference', f);

export interface InpaintRun {
  name: string;
  unet_in_channels: number;
  scheduler: { class: string };
  args: { prompt: string; negative_prompt: string | null; seed: number; steps: number; guidance_scale: number; height: number; width: number; strength: number };
  timesteps: number[];
}

export function inpaintRuns(): InpaintRun[] {
  return parseJsonLenient<{ runs: InpaintRun[] }>(readFileSync(ref('inpaint.json'), 'utf8')).runs;
}

/** CLI names of the fixtures' schedulers. */
export const SCHEDULER_CLI: Record<string, string> = { EulerDiscreteScheduler: 'euler', EulerAncestralDiscreteScheduler: 'euler-a' };

let nineChannelDir: string | null = null;

/** models/tiny-ssd1b with unet/ → models/tiny-inpaint-unet-ssd1b (symlinks in a temporary folder). */
export function nineChannelModel(): string {
  if (nineChannelDir) return nineChannelDir;
  const dir = mkdtempSync(join(tmpdir(), 'ssd-inpaint-model-'));
  const base = join(fixturesDir, 'models/tiny-ssd1b');
  for (const entry of readdirSync(base)) symlinkSync(entry === 'unet' ? join(fixturesDir, 'models/tiny-inpaint-unet-ssd1b') : join(base, entry), join(dir, entry));
  nineChannelDir = dir;
  return dir;
}

export function modelFor(run: InpaintRun): string {
  return run.unet_in_channels === 9 ? nineChannelModel() : join(fixturesDir, 'models/tiny-ssd1b');
}
