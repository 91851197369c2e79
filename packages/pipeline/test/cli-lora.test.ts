// `ssd generate` with --lora / --lora-scale / --unet / --scheduler lcm against diffusers' runs
// (reference/lora.*, reference/lcm.*), and the PNG's A1111-style LoRA record.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { fixturesDir, hasFixtures, relL2, repoRoot } from '../../../testing/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'ssd-cli-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const LORAS = join(fixturesDir, 'models/loras');

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 240_000,
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stderr: r.stderr };
}

async function compare(out: string, refFile: string, name: string): Promise<number> {
  const got = await SafetensorsFile.open(new NodeFileSource(join(tmp, `${out}.safetensors`)));
  const ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference', refFile)));
  try {
    return relL2(await got.readFloat32('latents'), await ref.readFloat32(`${name}.final_latents`));
  } finally {
    await got.source.close();
    await ref.source.close();
  }
}

const gen = (out: string, ...args: string[]) =>
  ssd('generate', '--model', join(fixturesDir, 'models/tiny-ssd1b'), '--dtype', 'f32', '--quiet', '--out', join(tmp, `${out}.png`), '--out-latents', join(tmp, `${out}.safetensors`), ...args);

describe.skipIf(!hasFixtures('reference/lora.safetensors', 'reference/lcm.safetensors', 'models/loras/lora_kohya_sgm.safetensors'))('ssd generate with LoRAs', () => {
  const fox = ['--prompt', 'a watercolor painting of a fox in a snowy forest', '--negative', 'blurry, low quality', '--steps', '4', '--guidance', '5', '--height', '96', '--width', '128', '--seed', '3111'];

  it('--lora file:0.6 (the adapter at weight 0.6 everywhere = diffusers fuse_lora(0.6)); --lora-scale 0.6 (the per-call scale)', async () => {
    const file = join(LORAS, 'lora_kohya_sgm.safetensors');
    let r = gen('weight', ...fox, '--lora', `${file}:0.6`);
    expect(r.code, r.stderr).toBe(0);
    expect(await compare('weight', 'lora.safetensors', 'fused_scale0.6')).toBeLessThanOrEqual(1e-4);
    expect(PNG.sync.read(readFileSync(join(tmp, 'weight.png'))).width).toBe(128);
    const params = readFileSync(join(tmp, 'weight.png')).toString('latin1');
    expect(params).toMatch(/a watercolor painting of a fox in a snowy forest <lora:lora_kohya_sgm:0\.6>/);
    expect(params).toMatch(/Lora hashes: "lora_kohya_sgm: [0-9a-f]{12}"/);
    r = gen('call', ...fox, '--lora', file, '--lora-scale', '0.6');
    expect(r.code, r.stderr).toBe(0);
    expect(await compare('call', 'lora.safetensors', 'kohya_sgm.scale0.6')).toBeLessThanOrEqual(1e-4);
  });

  it('--scheduler lcm with an LCM-LoRA: 4 steps without a CFG batch; --unet with the LCM-distilled UNet', async () => {
    let r = gen('lcm-lora', '--prompt', 'a cozy reading nook with plants, soft light', '--steps', '4', '--guidance', '1', '--height', '96', '--width', '128', '--seed', '3142', '--scheduler', 'lcm', '--lora', join(LORAS, 'lcm_lora_kohya_diffusers.fp16.safetensors'));
    expect(r.code, r.stderr).toBe(0);
    expect(await compare('lcm-lora', 'lcm.safetensors', 'lcm_lora_g1')).toBeLessThanOrEqual(1e-4);
    r = gen('lcm-unet', '--prompt', 'a photo of a red vintage car on a coastal road', '--steps', '4', '--guidance', '8', '--height', '128', '--width', '96', '--seed', '3141', '--scheduler', 'lcm', '--unet', join(fixturesDir, 'models/tiny-lcm-unet-ssd1b'));
    expect(r.code, r.stderr).toBe(0);
    expect(await compare('lcm-unet', 'lcm.safetensors', 'lcm_unet_g8')).toBeLessThanOrEqual(1e-4);
  });

  it('a missing --lora file fails before the model loads', () => {
    const r = gen('x', '--prompt', 'x', '--lora', join(tmp, 'nope.safetensors:0.5'));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/LoRA file not found/);
    expect(r.stderr).not.toMatch(/loaded /);
  });
});
