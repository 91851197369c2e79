// DenoFileSource / DenoFolderSource under Deno: positional reads of a weight file without reading it
// whole. Checks exact bytes for many concurrent reads at odd offsets (a seek and its read must not
// interleave with another's), the size, a read past the end (ModelLoadError naming the file and
// "truncated"), a missing file (ModelLoadError "file not found"), a read in flight during close,
// and a closed source reopening.
// Prints one JSON line; examples/deno/test/deno.test.ts runs it.
//   deno run --allow-read --allow-write --sloppy-imports --conditions=source checks/file-source.ts
import { DenoFileSource, DenoFolderSource, ModelLoadError } from '@ssd/tensor';

declare const Deno: {
  makeTempDir(): Promise<string>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
};

const problems: string[] = [];
const dir = await Deno.makeTempDir();
try {
  const n = 3 * 2 ** 20 + 17;
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 2654435761) >>> 24;
  await Deno.writeFile(`${dir}/w.safetensors`, bytes);

  const folder = new DenoFolderSource(dir);
  const src = await folder.open('w.safetensors');
  if (!(src instanceof DenoFileSource)) problems.push(`DenoFolderSource.open gave ${src.constructor.name}, not a DenoFileSource`);
  if ((await src.size()) !== n) problems.push(`size ${await src.size()} ≠ ${n}`);

  let s = 12345;
  const rand = (m: number) => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % m);
  const reads = Array.from({ length: 40 }, () => {
    const length = 1 + rand(200_000);
    return { offset: rand(n - length), length };
  });
  const got = await Promise.all(reads.map((r) => src.read(r.offset, r.length)));
  got.forEach((g, k) => {
    const { offset, length } = reads[k];
    if (g.length !== length) problems.push(`read ${k}: ${g.length} bytes, wanted ${length}`);
    for (let i = 0; i < length; i++) {
      if (g[i] !== bytes[offset + i]) {
        problems.push(`read ${k} (${length} at ${offset}): byte ${i} is ${g[i]}, expected ${bytes[offset + i]}`);
        break;
      }
    }
  });

  const past = await src.read(n - 10, 20).then(() => null, (e: unknown) => e);
  if (!(past instanceof ModelLoadError) || !/truncated/.test(past.message) || !past.message.includes('w.safetensors')) problems.push(`read past the end: ${String(past)}`);
  // a failed read must not wedge the queue
  const after = await src.read(5, 3);
  if (after.join() !== [...bytes.subarray(5, 8)].join()) problems.push('a read after a failed one gave wrong bytes');

  await src.read(0, 1); // the file is open
  const inFlight = src.read(0, n).then((b) => b, (e: unknown) => e); // close waits for it
  await new Promise((r) => setTimeout(r, 0)); // the read has begun
  await src.close();
  const whole = await inFlight;
  if (!(whole instanceof Uint8Array) || whole.join() !== bytes.join()) problems.push(`a read in flight during close: ${whole instanceof Uint8Array ? 'wrong bytes' : String(whole)}`);
  const again = await src.read(n - 4, 4); // reopens
  if (again.join() !== [...bytes.subarray(n - 4)].join()) problems.push('a read after close gave wrong bytes');
  await src.close();

  const missing = await folder.open('nope.safetensors').then(() => null, (e: unknown) => e);
  if (!(missing instanceof ModelLoadError) || !/file not found: .*nope\.safetensors/.test(missing.message)) problems.push(`missing file: ${String(missing)}`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
console.log(JSON.stringify({ ok: problems.length === 0, problems }));
