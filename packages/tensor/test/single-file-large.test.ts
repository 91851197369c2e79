// A single-file checkpoint whose tensors all lie beyond 4 GB (a 4.5 GiB sparse filler comes first):
// the mapped views (bigG's in_proj split into q/k/v row ranges, the VAE's 1×1 convs read as linears)
// read the right bytes through a local file, over HTTP range requests and through a Blob (a browser File).
import { closeSync, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BlobSource, FolderSource, openComponentTensors, pipelineToSgm, readEntryBytes, safetensorsHeader, SingleFileSource,
  type SdxlComponent, type TensorEntry, type TensorSource,
} from '@ssd/tensor';
import { fixturesDir } from '../../../testing/index.js';
import { serveFolder } from '../../../testing/http-server.js';

/**
 * A file-backed Blob stand-in: Node 20's fs.openAsBlob reports sizes modulo 2^32 (4.5 GiB → 512 MiB),
 * so the browser's File is imitated with what BlobSource uses (size, slice, arrayBuffer).
 */
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

const COMPONENTS: SdxlComponent[] = ['unet', 'vae', 'text_encoder', 'text_encoder_2'];
const dir = tmpdir();
let free = 0;
try {
  const s = statfsSync(dir);
  free = s.bavail * s.bsize;
} catch {
  /* unknown: skip */
}
const skip = process.env.SSD_SKIP_BIG_FILE_TEST === '1' || free < 2 ** 30;

describe.skipIf(skip)('a single file with every tensor past 4 GB', () => {
  const tmp = mkdtempSync(join(dir, 'ssd-sf-big-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('maps and reads the same bytes as the folder, from a file, a URL and a Blob', async () => {
    const folder = new FolderSource(`${fixturesDir}/models/tiny-ssd1b`);
    const opened = await Promise.all(COMPONENTS.map((c) => openComponentTensors(folder, c, { variant: 'fp16' })));
    const parts = Object.fromEntries(COMPONENTS.map((c, i) => [c, new Map(opened[i].keys().map((k) => [k, opened[i].get(k)!]))]));
    const sgm = pipelineToSgm(parts);
    const filler = 4.5 * 2 ** 30;
    const entries: [string, { dtype: 'U8' | TensorEntry['dtype']; shape: readonly number[] }][] = [['aaaa.filler', { dtype: 'U8', shape: [filler] }], ...sgm.map(([k, e]) => [k, e] as [string, TensorEntry])];
    const header = safetensorsHeader(entries);
    const path = join(tmp, 'big-sgm.safetensors');
    const fd = openSync(path, 'w');
    try {
      writeSync(fd, header, 0, header.length, 0);
      let at = header.length + filler;
      for (const [, e] of sgm) {
        const b = await readEntryBytes(e);
        writeSync(fd, b, 0, b.length, at);
        at += b.length;
      }
      ftruncateSync(fd, at);
    } finally {
      closeSync(fd);
    }
    const notices: string[] = [];
    const server = await serveFolder(tmp);
    for (const source of [path, `${server.url}/big-sgm.safetensors`, new BlobSource(fileBlob(path), 'big-sgm.safetensors')]) {
      const sf = await SingleFileSource.open(source, { onNotice: (m) => notices.push(m) });
      for (const c of ['text_encoder_2', 'vae'] as const) {
        const mine: TensorSource = await sf.openTensors(c);
        const ref = parts[c];
        expect(mine.keys().sort()).toEqual([...ref.keys()].sort());
        for (const [k, e] of ref) expect(Buffer.from(await readEntryBytes(mine.get(k)!)).equals(Buffer.from(await readEntryBytes(e))), k).toBe(true);
        await mine.close();
      }
      await sf.close();
    }
    await server.close();
    expect(notices.length).toBe(3);
    expect(notices[0]).toMatch(/1 tensors outside the SDXL components are not loaded \(e\.g\. aaaa\.filler\)/);
    await Promise.all(opened.map((t) => t.close()));
  });
});
