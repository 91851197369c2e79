// Cross-checks with the real stable-diffusion.cpp (97d2990, CPU build at ../shared/peers/sdcpp/sd-cli;
// skipped where it is absent): GGUFs it converts load here (its names too) with its own dequantized
// values, our q8_0 file of the fixture is byte-identical to its own, it reads every GGUF we write to the
// same floats as we do, with sd.cpp's type for every tensor, and with quantizer 'sdcpp' our files of every
// type are its files byte for byte.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  encodeSafetensors, f32ArrayToF16, FolderSource, GgufFile, NodeFileSink, NodeFileSource, quantizeModelToGguf, readEntryFloat32, SafetensorsFile, SingleFileSource,
} from '@ssd/tensor';
import { fixturesDir, hasFixtures, prng, repoRoot } from '../../../testing/index.js';

const SDCPP = process.env.SSD_SDCPP ?? resolve(repoRoot, '../shared/peers/sdcpp/sd-cli');
const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const tmp = mkdtempSync(join(tmpdir(), 'ssd-sdcpp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sdcpp = (...args: string[]) => execFileSync(SDCPP, ['-M', 'convert', '-t', '1', ...args], { stdio: 'pipe', timeout: 120_000 });

/** Every tensor of `a` reads as the same floats (bit for bit) as the tensor of that name in `b`. */
async function sameFloats(a: GgufFile, b: SafetensorsFile): Promise<void> {
  expect(a.keys().sort()).toEqual(b.keys().sort());
  for (const k of a.keys()) {
    const [x, y] = [await readEntryFloat32(a.get(k)!), await b.readFloat32(k)];
    expect(Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength)), k).toBe(true);
  }
}

describe.skipIf(!existsSync(SDCPP))('stable-diffusion.cpp reads ours, we read its', () => {
  it.skipIf(!hasFixtures(FILE))('its q8_0 GGUF of the fixture: the same bytes as ours; its --convert-name GGUF presents the folder', async () => {
    const src = join(fixturesDir, FILE);
    sdcpp('-m', src, '--type', 'q8_0', '-o', join(tmp, 'sd.gguf'));
    await quantizeModelToGguf(src, new NodeFileSink(join(tmp, 'ours.gguf')), { type: 'q8_0' });
    expect(readFileSync(join(tmp, 'ours.gguf')).equals(readFileSync(join(tmp, 'sd.gguf')))).toBe(true);
    sdcpp('-m', src, '--type', 'q8_0', '--convert-name', '-o', join(tmp, 'sd-names.gguf'));
    const sf = await SingleFileSource.open(join(tmp, 'sd-names.gguf'));
    const g = sf.file as GgufFile;
    expect(g.keys().some((k) => k.startsWith('cond_stage_model.1.transformer.text_model.encoder.layers.0.self_attn.in_proj'))).toBe(true);
    const folder = new FolderSource(join(fixturesDir, 'models/tiny-ssd1b'));
    for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2'] as const) {
      const want = JSON.parse(await folder.readText(`${c}/config.json`)) as Record<string, unknown>;
      for (const k of Object.keys(want)) if (!k.startsWith('_') && k !== 'transformers_version') expect(sf.config(c)[k], `${c}: ${k}`).toEqual(want[k]);
    }
    // the same tensors as its SGM-named file, under diffusers names
    const sgm = await SingleFileSource.open(join(tmp, 'sd.gguf'));
    for (const c of ['text_encoder_2', 'vae'] as const) {
      const [a, b] = [await sf.openTensors(c), await sgm.openTensors(c)];
      expect(a.keys().sort()).toEqual(b.keys().sort());
      for (const k of b.keys()) expect([...(await readEntryFloat32(a.get(k)!))], k).toEqual([...(await readEntryFloat32(b.get(k)!))]);
      await a.close();
      await b.close();
    }
    await sf.close();
    await sgm.close();
  });

  it('every type, both ways: its GGUFs read as it dequantizes them; ours it reads as we do; the same type per tensor', async () => {
    // rows of whole K-quant blocks, a short row, a bias, a conv: what sd.cpp's rules tell apart
    const r = prng('sdcpp-synth');
    const shapes: [string, number[]][] = [['model.diffusion_model.a.weight', [12, 512]], ['model.diffusion_model.b.weight', [8, 256]], ['model.diffusion_model.c.weight', [8, 96]], ['model.diffusion_model.a.bias', [512]], ['model.diffusion_model.conv.weight', [8, 4, 3, 3]]];
    const tensors = Object.fromEntries(shapes.map(([k, shape]) => {
      const x = new Float32Array(shape.reduce((a, b) => a * b));
      for (let i = 0; i < x.length; i++) x[i] = (r() + r() + r() - 1.5) * (i % 97 ? 0.05 : 1);
      return [k, { dtype: 'F16' as const, shape, data: f32ArrayToF16(x) }];
    }));
    const synth = join(tmp, 'synth.safetensors');
    writeFileSync(synth, encodeSafetensors(tensors));
    for (const type of ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_K', 'q5_K', 'q6_K']) {
      const [theirs, theirsBack, ours, oursBack] = ['sd', 'sd-back', 'ours', 'ours-back'].map((n) => join(tmp, `${n}-${type}.${n.endsWith('back') ? 'safetensors' : 'gguf'}`));
      sdcpp('-m', synth, '--type', type, '-o', theirs);
      sdcpp('-m', theirs, '--type', 'f32', '-o', theirsBack);
      await quantizeModelToGguf(synth, new NodeFileSink(ours), { type });
      sdcpp('-m', ours, '--type', 'f32', '-o', oursBack);
      const [t, o] = [await GgufFile.open(new NodeFileSource(theirs)), await GgufFile.open(new NodeFileSource(ours))];
      expect(o.keys().map((k) => `${k} ${o.info(k).type.name}`), type).toEqual(t.keys().map((k) => `${k} ${t.info(k).type.name}`));
      expect(t.keys().filter((k) => t.info(k).type.quant).length, type).toBe(type.endsWith('K') ? 2 : 3);
      for (const [g, back] of [[t, theirsBack], [o, oursBack]] as const) {
        const st = await SafetensorsFile.open(new NodeFileSource(back));
        await sameFloats(g, st);
        await st.close();
      }
      if (type === 'q8_0') expect(readFileSync(ours).equals(readFileSync(theirs))).toBe(true);
      const same = join(tmp, `same-${type}.gguf`);
      await quantizeModelToGguf(synth, new NodeFileSink(same), { type, quantizer: 'sdcpp' });
      expect(readFileSync(same).equals(readFileSync(theirs)), type).toBe(true);
      await Promise.all([t.close(), o.close()]);
    }
  });
});
