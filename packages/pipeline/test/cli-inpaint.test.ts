// `ssd generate --init-image … --mask …` reproduces every inpainting fixture run (reference/inpaint.*:
// final latents ≤ 1e-3 rel-L2, the PNG within 2/255), --outpaint pads and repaints the border, and the
// inpainting refusals are one line with the invalid-argument exit code, before the model loads.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { BlobSource, NodeFileSource, SafetensorsFile } from '@ssd/tensor';
import { encodePng } from '@ssd/pipeline';
import { relL2, repoRoot } from '../../../testing/index.js';
import { hasInpaintFixtures, inpaintRuns, modelFor, nineChannelModel, ref, SCHEDULER_CLI } from './inpaint-fixtures.js';

const tmp = mkdtempSync(join(tmpdir(), 'ssd-cli-inpaint-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' }, timeout: 240_000,
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status, stderr: r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n') };
}

describe.skipIf(!hasInpaintFixtures())('ssd generate --mask / --outpaint (reference/inpaint.*)', () => {
  const runs = hasInpaintFixtures() ? inpaintRuns() : [];
  for (const run of runs) {
    it(`${run.name}: --out-latents and the PNG match diffusers`, async () => {
      const a = run.args;
      const png = join(tmp, `${run.name}.png`);
      const lat = join(tmp, `${run.name}.safetensors`);
      const argv = ['generate', '--model', modelFor(run), '--prompt', a.prompt, '--steps', String(a.steps), '--guidance', String(a.guidance_scale), '--seed', String(a.seed), '--strength', String(a.strength),
        '--scheduler', SCHEDULER_CLI[run.scheduler.class], '--dtype', 'f32', '--init-image', ref('inpaint_image.png'), '--mask', ref('inpaint_mask.png'), '--out', png, '--out-latents', lat, '--quiet'];
      if (a.negative_prompt !== null) argv.push('--negative', a.negative_prompt);
      const r = ssd(...argv);
      expect(r.code, r.stderr).toBe(0);
      const st = await SafetensorsFile.open(new BlobSource(new Blob([readFileSync(lat)]), 'latents'));
      const want = await SafetensorsFile.open(new NodeFileSource(ref('inpaint.safetensors')));
      expect(relL2(await st.readFloat32('latents'), await want.readFloat32(`${run.name}.final_latents`))).toBeLessThanOrEqual(1e-3);
      const img = PNG.sync.read(readFileSync(png));
      expect([img.width, img.height]).toEqual([a.width, a.height]);
      const u8 = (await want.read(`${run.name}.image_uint8`)) as Uint8Array;
      let worst = 0;
      for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(img.data[p * 4 + c] - u8[p * 3 + c]));
      expect(worst).toBeLessThanOrEqual(2);
      expect(readFileSync(png).toString('latin1')).toMatch(/Denoising strength: /);
      await want.source.close();
    });
  }

  it('a mask PNG with transparency is read by its alpha (the same run as its white-on-black twin)', async () => {
    const run = runs[0];
    const gray = PNG.sync.read(readFileSync(ref('inpaint_mask.png')));
    const alpha = new Uint8ClampedArray(gray.width * gray.height * 4);
    for (let p = 0; p < gray.width * gray.height; p++) alpha.set([0, 0, 0, gray.data[p * 4]], p * 4); // black everywhere: only alpha says where
    const maskPath = join(tmp, 'alpha-mask.png');
    writeFileSync(maskPath, encodePng({ width: gray.width, height: gray.height, data: alpha }, { alpha: true }));
    const lat = join(tmp, 'alpha.safetensors');
    const a = run.args;
    const r = ssd('generate', '--model', modelFor(run), '--prompt', a.prompt, '--negative', String(a.negative_prompt), '--steps', String(a.steps), '--guidance', String(a.guidance_scale), '--seed', String(a.seed),
      '--strength', String(a.strength), '--dtype', 'f32', '--init-image', ref('inpaint_image.png'), '--mask', maskPath, '--out', join(tmp, 'alpha.png'), '--out-latents', lat, '--quiet');
    expect(r.code, r.stderr).toBe(0);
    const st = await SafetensorsFile.open(new BlobSource(new Blob([readFileSync(lat)]), 'latents'));
    const want = await SafetensorsFile.open(new NodeFileSource(ref('inpaint.safetensors')));
    expect(relL2(await st.readFloat32('latents'), await want.readFloat32(`${run.name}.final_latents`))).toBeLessThanOrEqual(1e-3);
    await want.source.close();
  });

  it('--outpaint L,R,T,B pads the image (to multiples of 8) and repaints the border', () => {
    const png = join(tmp, 'outpaint.png');
    const r = ssd('generate', '--model', nineChannelModel(), '--prompt', 'a wider view', '--steps', '2', '--seed', '5', '--dtype', 'f32', '--init-image', ref('inpaint_image.png'), '--outpaint', '16,12,0,8', '--out', png, '--quiet');
    expect(r.code, r.stderr).toBe(0);
    const img = PNG.sync.read(readFileSync(png));
    expect([img.width, img.height]).toEqual([192 + 16 + 16, 128 + 8]); // right 12 → 16 for a multiple of 8
  });

  const refusals: [string, string[], RegExp][] = [
    ['--mask without --init-image', ['--mask', 'm.png'], /--mask needs --init-image/],
    ['--mask and --outpaint', ['--init-image', ref('inpaint_image.png'), '--mask', ref('inpaint_mask.png'), '--outpaint', '8,8,8,8'], /give --mask or --outpaint, not both/],
    ['a bad --outpaint', ['--init-image', ref('inpaint_image.png'), '--outpaint', '8,8'], /--outpaint "8,8": give four margins/],
    ['an all-black mask', ['--init-image', ref('inpaint_image.png'), '--mask', ref('inpaint_image.png').replace('inpaint_image', 'black-mask')], /nothing to repaint/],
    ['an inpainting UNet without a mask', ['--model', 'NINE'], /needs an image and a mask/],
  ];
  for (const [name, extra, msg] of refusals) {
    it(`refuses ${name} (exit 2, one line)`, () => {
      writeFileSync(join(tmp, 'black-mask.png'), encodePng({ width: 192, height: 128, data: new Uint8ClampedArray(192 * 128 * 4).map((_, i) => (i % 4 === 3 ? 255 : 0)) }));
      const argv = extra.map((x) => (x === 'NINE' ? nineChannelModel() : x.endsWith('black-mask.png') ? join(tmp, 'black-mask.png') : x));
      const r = ssd('generate', '--prompt', 'x', ...argv);
      expect(r.code, r.stderr).toBe(2);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('ssd: '));
      expect(lines.length, r.stderr).toBe(1);
      expect(lines[0]).toMatch(msg);
      expect(r.stderr).not.toMatch(/loaded /);
    });
  }
});
