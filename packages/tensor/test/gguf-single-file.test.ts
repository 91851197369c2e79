// GGUF checkpoints through SingleFileSource: the fixture pipeline quantized (SGM names) presents the
// folder's configs field for field and its tensors dequantized; the same file under stable-diffusion.cpp's
// own names and a UNet-only file without the model.diffusion_model. prefix map to the same tensors; and a
// file whose tensors all lie past 4 GB reads the same from a local file, a URL and a Blob.
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BlobSource, dequantizeBlocks, FolderSource, GGML_TYPES, GgufFile, ggufHeader, openComponentTensors, quantizeModelToGguf, readEntryBytes, readEntryFloat32,
  SingleFileSource, writeGguf, type GgufTensorToWrite, type TensorEntry,
} from '@ssd/tensor';
import { fixturesDir, hasFixtures, MemoryByteSink } from '../../../testing/index.js';
import { serveFolder } from '../../../testing/http-server.js';

const FOLDER = 'models/tiny-ssd1b';
const COMPONENTS = ['unet', 'vae', 'text_encoder', 'text_encoder_2'] as const;
const tmp = mkdtempSync(join(tmpdir(), 'ssd-gguf-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function quantizedFixture(type: string): Promise<Uint8Array> {
  const sink = new MemoryByteSink('tiny.gguf');
  await quantizeModelToGguf(new FolderSource(join(fixturesDir, FOLDER)), sink, { type, sourceVariant: 'fp16' });
  return sink.bytes;
}

/** Every component of `sf` against the folder: configs (but transformers_version) and values, dequantized. */
async function expectSameAsFolder(sf: SingleFileSource, components: readonly string[] = COMPONENTS): Promise<number> {
  const folder = new FolderSource(join(fixturesDir, FOLDER));
  let quantized = 0;
  for (const c of components) {
    const want = JSON.parse(await folder.readText(`${c}/config.json`)) as Record<string, unknown>;
    const got = sf.config(c as 'unet');
    for (const k of Object.keys(want)) if (!k.startsWith('_') && k !== 'transformers_version') expect(got[k], `${c}: ${k}`).toEqual(want[k]);
    const mine = await sf.openTensors(c);
    const ref = await openComponentTensors(folder, c, { variant: 'fp16' });
    expect(mine.keys().sort(), c).toEqual(ref.keys().filter((k) => k !== 'text_model.embeddings.position_ids').sort());
    for (const k of mine.keys()) {
      const e = mine.get(k)!;
      const x = await readEntryFloat32(ref.get(k)!);
      if (e.quantized) {
        quantized++;
        // the reading is the blocks' dequantization, and within q8_0's step of the fp16 weights
        expect([...(await readEntryFloat32(e))], k).toEqual([...dequantizeBlocks(e.quantized.type, await e.quantized.read(0, e.quantized.byteLength))]);
      }
      const y = await readEntryFloat32(e);
      let err = 0, ref2 = 0;
      for (let i = 0; i < x.length; i++) {
        err += (y[i] - x[i]) ** 2;
        ref2 += x[i] ** 2;
      }
      expect(Math.sqrt(err / Math.max(ref2, 1e-30)), k).toBeLessThanOrEqual(e.quantized ? 1e-2 : 0);
    }
    await mine.close();
    await ref.close();
  }
  return quantized;
}

describe.skipIf(!hasFixtures(`${FOLDER}/unet/diffusion_pytorch_model.fp16.safetensors`))('GGUF single files', () => {
  it('the q8_0 pipeline file presents the folder: configs field for field, tensors dequantized', async () => {
    const bytes = await quantizedFixture('q8_0');
    const sf = await SingleFileSource.open(new BlobSource(new Blob([bytes as BlobPart]), 'tiny-q8_0.gguf'));
    expect(sf.file).toBeInstanceOf(GgufFile);
    expect(sf.components).toEqual(['unet', 'vae', 'text_encoder', 'text_encoder_2']);
    // sd.cpp's rules quantize the rows of whole 32-value blocks: the linears, norms and 1×1 projections of the tiny model
    expect(await expectSameAsFolder(sf)).toBe(158);
    await sf.close();
  });

  it("stable-diffusion.cpp's own names (--convert-name) and a bare UNet map to the same tensors", async () => {
    const g = await GgufFile.open(new BlobSource(new Blob([(await quantizedFixture('q8_0')) as BlobPart]), 'tiny-q8_0.gguf'));
    const plan: GgufTensorToWrite[] = [];
    const unetOnly: GgufTensorToWrite[] = [];
    for (const k of g.keys()) {
      const entry = g.get(k)!;
      const type = g.info(k).type;
      plan.push({ name: sdcppName(k), entry, type });
      if (k.startsWith('model.diffusion_model.')) unetOnly.push({ name: k.slice('model.diffusion_model.'.length), entry, type });
    }
    // sd.cpp's bigG: in_proj fused under transformers' names; the projection as sd.cpp multiplies it, in
    // Linear layout [proj, hidden] (from a diffusers source), or open_clip's [hidden, proj] (from an SGM one)
    const at = plan.findIndex((p) => p.name === 'cond_stage_model.1.transformer.text_model.text_projection');
    expect(plan[at].entry.shape).toEqual([16, 24]);
    for (const proj of [plan[at].entry, await transposed(plan[at].entry)]) {
      plan[at] = { ...plan[at], entry: proj, type: GGML_TYPES.get(0)! };
      const sink = new MemoryByteSink();
      await writeGguf(sink, plan);
      const sf = await SingleFileSource.open(new BlobSource(new Blob([sink.bytes as BlobPart]), 'sdcpp-names.gguf'));
      expect(await expectSameAsFolder(sf)).toBe(158);
      await sf.close();
    }
    const u = new MemoryByteSink();
    await writeGguf(u, unetOnly);
    const bare = await SingleFileSource.open(new BlobSource(new Blob([u.bytes as BlobPart]), 'unet-bare.gguf'), { base: new FolderSource(join(fixturesDir, FOLDER)) });
    expect(bare.components).toEqual(['unet']);
    await expectSameAsFolder(bare, ['unet']);
    await bare.close();
  });

  const free = (() => {
    try {
      const s = statfsSync(tmpdir());
      return s.bavail * s.bsize;
    } catch {
      return 0;
    }
  })();
  it.skipIf(process.env.SSD_SKIP_BIG_FILE_TEST === '1' || free < 2 ** 30)('a file with every tensor past 4 GB reads the same from a file, a URL and a Blob', async () => {
    const smallBytes = await quantizedFixture('q8_0');
    const small = await GgufFile.open(new BlobSource(new Blob([smallBytes as BlobPart]), 'small.gguf'));
    const smallSf = await SingleFileSource.open(new BlobSource(new Blob([smallBytes as BlobPart]), 'small.gguf'));
    const filler = 4.5 * 2 ** 30;
    const fillerEntry = { dtype: 'I8', shape: [filler], byteLength: filler } as unknown as TensorEntry;
    const plan: GgufTensorToWrite[] = [{ name: 'aaaa.filler', entry: fillerEntry, type: GGML_TYPES.get(24)! }, ...small.keys().map((k) => ({ name: k, entry: small.get(k)!, type: small.info(k).type }))];
    const { header, offsets } = ggufHeader(plan);
    const path = join(tmp, 'big.gguf');
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, header, 0, header.length, 0);
      let end = 0;
      for (let i = 1; i < plan.length; i++) {
        const info = small.info(plan[i].name);
        const b = await small.source.read(info.begin, info.byteLength);
        writeSync(fd, b, 0, b.length, header.length + offsets[i]);
        end = header.length + offsets[i] + b.length;
      }
      ftruncateSync(fd, end);
    } finally {
      closeSync(fd);
    }
    const server = await serveFolder(tmp);
    for (const source of [path, `${server.url}/big.gguf`, new BlobSource(fileBlob(path), 'big.gguf')]) {
      const sf = await SingleFileSource.open(source, { onNotice: () => {} });
      expect((sf.file as GgufFile).info('model.diffusion_model.out.2.weight').begin).toBeGreaterThan(2 ** 32);
      // every view (bigG's q/k/v row slices of in_proj, its transposed projection, the VAE's 1×1 convs as linears)
      for (const c of ['text_encoder_2', 'vae'] as const) {
        const mine = await sf.openTensors(c);
        const ref = await smallSf.openTensors(c);
        expect(mine.keys()).toEqual(ref.keys());
        for (const k of ref.keys()) {
          const [a, b] = [mine.get(k)!, ref.get(k)!];
          expect(Buffer.from(await readEntryBytes(a)).equals(Buffer.from(await readEntryBytes(b))), k).toBe(true);
          expect(a.quantized?.type, k).toBe(b.quantized?.type);
          if (b.quantized) expect(Buffer.from(await a.quantized!.read(0, a.quantized!.byteLength)).equals(Buffer.from(await b.quantized.read(0, b.quantized.byteLength))), k).toBe(true);
        }
        await mine.close();
        await ref.close();
      }
      await sf.close();
    }
    await server.close();
  });
});

/** The SGM name as sd.cpp's --convert-name writes it (name_conversion.cpp, for SDXL). */
function sdcppName(k: string): string {
  if (k.startsWith('conditioner.embedders.0.transformer.')) return `cond_stage_model.transformer.${k.slice('conditioner.embedders.0.transformer.'.length)}`;
  if (!k.startsWith('conditioner.embedders.1.model.')) return k;
  const r = k.slice('conditioner.embedders.1.model.'.length);
  const renames: [RegExp, string][] = [
    [/^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$/, 'text_model.encoder.layers.$1.self_attn.in_proj.$2'],
    [/^transformer\.resblocks\.(\d+)\.attn\.out_proj\./, 'text_model.encoder.layers.$1.self_attn.out_proj.'],
    [/^transformer\.resblocks\.(\d+)\.ln_1\./, 'text_model.encoder.layers.$1.layer_norm1.'],
    [/^transformer\.resblocks\.(\d+)\.ln_2\./, 'text_model.encoder.layers.$1.layer_norm2.'],
    [/^transformer\.resblocks\.(\d+)\.mlp\.c_fc\./, 'text_model.encoder.layers.$1.mlp.fc1.'],
    [/^transformer\.resblocks\.(\d+)\.mlp\.c_proj\./, 'text_model.encoder.layers.$1.mlp.fc2.'],
    [/^ln_final\./, 'text_model.final_layer_norm.'],
    [/^positional_embedding$/, 'text_model.embeddings.position_embedding.weight'],
    [/^token_embedding\.weight$/, 'text_model.embeddings.token_embedding.weight'],
    [/^text_projection(\.weight)?$/, 'text_model.text_projection'],
  ];
  const hit = renames.find(([re]) => re.test(r));
  return `cond_stage_model.1.transformer.${hit ? r.replace(hit[0], hit[1]) : r}`;
}

/** An F32 entry holding `e` transposed (sd.cpp's Linear layout of the open_clip projection). */
async function transposed(e: TensorEntry): Promise<TensorEntry> {
  const [r, c] = e.shape;
  const x = await readEntryFloat32(e);
  const t = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = x[i * c + j];
  const bytes = new Uint8Array(t.buffer);
  return { dtype: 'F32', shape: [c, r], byteLength: bytes.length, file: 'memory', stored: 'text_projection (Linear layout)', read: async (o, n) => bytes.slice(o, o + n) };
}

/** A file-backed Blob stand-in (Node 20's fs.openAsBlob reports sizes modulo 2^32). */
function fileBlob(path: string, from = 0, to = statSync(path).size): Blob {
  return {
    size: to - from,
    slice: (a = 0, b = to - from) => fileBlob(path, from + a, from + Math.min(b, to - from)),
    arrayBuffer: async () => {
      const fd = openSync(path, 'r');
      try {
        const out = Buffer.alloc(to - from);
        readSync(fd, out, 0, out.length, from);
        return out.buffer.slice(out.byteOffset, out.byteOffset + out.length);
      } finally {
        closeSync(fd);
      }
    },
  } as unknown as Blob;
}
