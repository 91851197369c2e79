// The `ssd` CLI: `generate --out-latents` reproduces diffusers' seeded runs, the PNG carries the
// parameters chunk, and bad arguments exit non-zero with one clear line and a per-class exit code.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PNG } from 'pngjs';
import { BlobSource, parseJsonLenient, SafetensorsFile, NodeFileSource } from '@ssd/tensor';
import { fixturesDir, relL2, repoRoot } from '../../../testing/index.js';
import { formatRate } from '../src/progress.js';

const tmp = mkdtempSync(join(tmpdir(), 'ssd-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ssd(...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/pipeline/src/cli.ts'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
    timeout: 240_000, // under vitest's 300 s: spawnSync blocks the event loop, so vitest's own timeout cannot fire
  });
  if (r.error) throw new Error(`ssd ${args.join(' ')}: ${r.error.message}`);
  const stderr = r.stderr.split('\n').filter((l) => l && !l.startsWith('Warning: maxDynamic')).join('\n');
  return { code: r.status, stdout: r.stdout, stderr };
}

const NAMES: Record<string, string> = { EulerDiscreteScheduler: 'euler', EulerAncestralDiscreteScheduler: 'euler-a' };

describe('ssd generate', () => {
  const meta = parseJsonLenient<{ runs: { name: string; args: Record<string, number | string | null>; scheduler: { class: string }; vae?: { class: string } }[] }>(
    readFileSync(join(fixturesDir, 'reference/pipeline_seeded.json'), 'utf8'),
  );
  const run = meta.runs.find((r) => NAMES[r.scheduler.class] && r.vae?.class !== 'AutoencoderTiny')!;

  it(`--out-latents reproduces diffusers (${run.name}); the PNG decodes independently and carries parameters`, async () => {
    const a = run.args;
    const png = join(tmp, 'out.png');
    const lat = join(tmp, 'latents.safetensors');
    const report = join(tmp, 'report.json');
    const argv = ['generate', '--model', join(fixturesDir, 'models/tiny-ssd1b'), '--prompt', String(a.prompt), '--steps', String(a.num_inference_steps), '--guidance', String(a.guidance_scale), '--width', String(a.width), '--height', String(a.height), '--seed', String(a.seed), '--scheduler', NAMES[run.scheduler.class], '--dtype', 'f32', '--out', png, '--out-latents', lat, '--report', report];
    if (a.negative_prompt !== null) argv.push('--negative', String(a.negative_prompt));
    const r = ssd(...argv);
    expect(r.code, r.stderr).toBe(0);
    // latents: NCHW float32 tensor "latents", as diffusers' output_type="latent"
    const st = await SafetensorsFile.open(new BlobSource(new Blob([readFileSync(lat)]), 'latents'));
    expect(st.keys()).toEqual(['latents']);
    expect(st.info('latents').dtype).toBe('F32');
    const ref = await SafetensorsFile.open(new NodeFileSource(join(fixturesDir, 'reference/pipeline_seeded.safetensors')));
    expect([...st.info('latents').shape]).toEqual([...ref.info(`${run.name}.final_latents`).shape]);
    expect(relL2(await st.readFloat32('latents'), await ref.readFloat32(`${run.name}.final_latents`))).toBeLessThanOrEqual(1e-3);
    // the PNG, decoded by pngjs: the pixels of diffusers' image within 2/255, and the parameters chunk
    const img = PNG.sync.read(readFileSync(png));
    expect([img.width, img.height]).toEqual([a.width, a.height]);
    const want = (await ref.read(`${run.name}.image_uint8`)) as Uint8Array;
    let worst = 0;
    for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(img.data[p * 4 + c] - want[p * 3 + c]));
    expect(worst).toBeLessThanOrEqual(2);
    const text = readFileSync(png).toString('latin1');
    expect(text).toContain('parameters\0' + String(a.prompt));
    expect(text).toMatch(new RegExp(`Steps: ${a.num_inference_steps}, Sampler: ${NAMES[run.scheduler.class]}, CFG scale: ${a.guidance_scale}, Seed: ${a.seed}, Size: ${a.width}x${a.height}`));
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    expect(rep.stepMs.length).toBe(a.num_inference_steps);
    expect(rep.peakBytes).toBeGreaterThan(0);
    expect(rep.adapter).toBeTruthy();
    await ref.source.close();
  });

  it('--num-images numbers the files', () => {
    const out = join(tmp, 'many.png');
    const r = ssd('generate', '--prompt', 'x', '--steps', '1', '--width', '64', '--height', '64', '--num-images', '2', '--out', out, '--quiet');
    expect(r.code, r.stderr).toBe(0);
    for (const k of [1, 2]) expect(PNG.sync.read(readFileSync(join(tmp, `many-${k}.png`))).width).toBe(64);
  });
});

describe('ssd errors: one line, distinct exit codes', () => {
  const cases: [string, string[], number, RegExp][] = [
    ['unknown scheduler', ['generate', '--prompt', 'x', '--scheduler', 'nope'], 3, /unknown scheduler|valid names|"nope"/],
    ['size not a multiple of 8', ['generate', '--prompt', 'x', '--width', '100'], 2, /width = 100: must be a multiple of 8/],
    ['missing model folder', ['generate', '--prompt', 'x', '--model', '/nonexistent/model'], 4, /model folder not found: \/nonexistent\/model/],
    ['invalid seed', ['generate', '--prompt', 'x', '--seed', '1.5'], 2, /--seed "1\.5": must be an integer/],
    ['missing prompt', ['generate'], 2, /--prompt is required/],
    ['unknown option', ['generate', '--prompt', 'x', '--colour', 'red'], 2, /unknown option --colour/],
    ['unknown command', ['paint'], 2, /unknown command "paint"/],
  ];
  for (const [name, argv, code, msg] of cases) {
    it(name, () => {
      const r = ssd(...argv);
      expect(r.code).toBe(code);
      const errLines = r.stderr.split('\n').filter((l) => l.startsWith('ssd: '));
      expect(errLines.length).toBe(1);
      expect(errLines[0]).toMatch(msg);
    });
  }

  it('a missing weight file', () => {
    const r = ssd('generate', '--prompt', 'x', '--model', join(fixturesDir, 'models/tiny-taesd'));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/model_index\.json was not found/);
  });

  it('tokenize prints the 77 ids', () => {
    const r = ssd('tokenize', '--model', join(fixturesDir, 'models/tiny-ssd1b'), '--which', '2', 'hello world!');
    expect(r.code, r.stderr).toBe(0);
    const ids = JSON.parse(r.stdout);
    expect(ids.length).toBe(77);
    expect(ids[0]).toBe(49406);
    expect(ids).toContain(0); // "!" is tokenizer_2's pad token
  });
});

describe('progress rates', () => {
  it('a step slower than a second reads as s/it, not "0.00 it/s"', () => {
    expect(formatRate(2.5)).toBe('2.50 it/s');
    expect(formatRate(1 / 316.5)).toBe('316.50 s/it');
  });
});
