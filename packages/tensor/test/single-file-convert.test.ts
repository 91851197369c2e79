// Conversions on the fixtures: the folder's fp16 variant written as a single file reproduces diffusers'
// own convert_diffusers_to_original_sdxl.py --half output byte for byte (the fixture file), and single
// file → folder → single file gives the same bytes again.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FolderSource, NodeFileSink, NodeFolderSink, openComponentTensors, readEntryBytes, SingleFileSource, writeDiffusersFolder, writeSingleFile,
} from '@ssd/tensor';
import { fixturesDir, hasFixtures } from '../../../testing/index.js';

const FILE = 'models/single-file/tiny-ssd1b-sgm.fp16.safetensors';
const FOLDER = 'models/tiny-ssd1b';

describe.skipIf(!hasFixtures(FILE, `${FOLDER}/unet/diffusion_pytorch_model.fp16.safetensors`))('single file ⇄ diffusers folder (fixture)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ssd-convert-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const fixture = readFileSync(`${fixturesDir}/${FILE}`);

  it("folder (fp16 variant) → single file equals diffusers' converter output byte for byte", async () => {
    const out = join(tmp, 'from-folder.safetensors');
    const size = await writeSingleFile(new FolderSource(`${fixturesDir}/${FOLDER}`), new NodeFileSink(out), { sourceVariant: 'fp16' });
    expect(size).toBe(fixture.length);
    expect(readFileSync(out).equals(fixture)).toBe(true);
  });

  it('single file → folder → single file round-trips byte for byte', async () => {
    const sf = await SingleFileSource.open(`${fixturesDir}/${FILE}`);
    const dir = join(tmp, 'folder');
    await writeDiffusersFolder(sf, new NodeFolderSink(dir));
    await sf.close();
    // the folder holds the same tensors as the original folder's fp16 variant, under the plain names
    for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2']) {
      const [mine, ref] = [await openComponentTensors(new FolderSource(dir), c), await openComponentTensors(new FolderSource(`${fixturesDir}/${FOLDER}`), c, { variant: 'fp16' })];
      expect(mine.keys().sort()).toEqual(ref.keys().sort());
      for (const k of ref.keys()) expect(Buffer.from(await readEntryBytes(mine.get(k)!)).equals(Buffer.from(await readEntryBytes(ref.get(k)!))), k).toBe(true);
      await Promise.all([mine.close(), ref.close()]);
    }
    expect(JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(`${fixturesDir}/${FOLDER}/unet/config.json`, 'utf8')));
    const back = join(tmp, 'round-trip.safetensors');
    await writeSingleFile(new FolderSource(dir), new NodeFileSink(back));
    expect(readFileSync(back).equals(fixture)).toBe(true);
  });

  it('writes f32 weights from the f16 file when asked (exact widening)', async () => {
    const sf = await SingleFileSource.open(`${fixturesDir}/${FILE}`);
    const out = join(tmp, 'f32.safetensors');
    await writeSingleFile(sf, new NodeFileSink(out), { dtype: 'F32' });
    const wide = await SingleFileSource.open(out);
    const [a, b] = [await wide.openTensors('vae'), await sf.openTensors('vae')];
    const k = 'decoder.mid_block.attentions.0.to_q.weight';
    expect(a.get(k)!.dtype).toBe('F32');
    const f32 = new Float32Array((await readEntryBytes(a.get(k)!)).slice().buffer);
    const f16 = new Uint16Array((await readEntryBytes(b.get(k)!)).slice().buffer);
    const { f16BitsToF32 } = await import('@ssd/tensor');
    expect([...f32]).toEqual([...f16].map(f16BitsToF32));
    await Promise.all([a.close(), b.close(), wide.close(), sf.close()]);
  });
});
