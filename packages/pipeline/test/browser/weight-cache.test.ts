// The weight cache (@ssd/pipeline/browser) in Node against an in-memory OPFS and fetch (fakes.ts):
// download once then read from the cache; a dropped download keeps only a part and resumes with a
// Range request; a server that ignores Range, or a file whose ETag changed, restarts from zero; a
// damaged commit is never used; 404s are remembered; the quota is checked; importing in plain Node
// is harmless. The real OPFS path (sync access handles in a worker) runs in examples/browser's tests.
import { afterEach, describe, expect, it } from 'vitest';
import { CachedUrlSource, clearCachedModels, listCachedModels, StorageQuotaError, weightCacheStorage } from '../../src/browser/index.js';
import { fakeServer, installFakeCaches, installFakeOpfs, type FakeDir } from './fakes.js';

const BASE = 'https://models.example/tiny';
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 255);
const WEIGHTS = bytes(25_000, 1);
const CONFIG = new TextEncoder().encode('{"_class_name":"UNet2DConditionModel"}');

function setup(o: { quota?: number } = {}) {
  const opfs = installFakeOpfs(o.quota);
  const server = fakeServer({
    [`${BASE}/unet/diffusion_pytorch_model.safetensors`]: { data: WEIGHTS, etag: '"w1"' },
    [`${BASE}/unet/config.json`]: { data: CONFIG, etag: '"c1"' },
  });
  uninstall = opfs.uninstall;
  return { root: opfs.root, server, source: (extra = {}) => new CachedUrlSource(BASE, { fetch: server.fetch, ...extra }) };
}
let uninstall: (() => void) | null = null;
afterEach(() => {
  uninstall?.();
  uninstall = null;
});

async function readAll(src: CachedUrlSource, path: string): Promise<Uint8Array> {
  const b = await src.open(path);
  return b.read(0, await b.size());
}
const parts = (root: FakeDir) => [...root.files()].filter(([p]) => p.endsWith('.part'));
const gets = (s: ReturnType<typeof setup>['server'], suffix: string) => s.requests.filter((r) => r.method === 'GET' && r.url.endsWith(suffix));

describe('CachedUrlSource over OPFS', () => {
  it('downloads a file once, then reads it from the cache with no request', async () => {
    const { server, source } = setup();
    const progress: [number, number, string][] = [];
    const a = source({ onProgress: (p: { loadedBytes: number; totalBytes: number; state: string }) => progress.push([p.loadedBytes, p.totalBytes, p.state]) });
    expect(await a.storage()).toBe('opfs');
    expect(await readAll(a, 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(progress.at(-1)).toEqual([WEIGHTS.length, WEIGHTS.length, 'done']);
    expect(progress.filter(([, , s]) => s === 'download').every(([l, t]) => t === WEIGHTS.length && l <= t)).toBe(true);
    expect(await a.readText('unet/config.json')).toBe(new TextDecoder().decode(CONFIG));
    const before = server.requests.length;
    const b = source();
    expect(await b.exists('unet/diffusion_pytorch_model.safetensors')).toBe(true);
    expect(await readAll(b, 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(await b.readText('unet/config.json')).toBe(new TextDecoder().decode(CONFIG));
    expect(server.requests.slice(before)).toEqual([]);
    const [m] = await listCachedModels();
    expect(m).toMatchObject({ base: BASE, storage: 'opfs', sizeBytes: WEIGHTS.length + CONFIG.length, partialBytes: 0 });
    expect(m.files.map((f) => [f.path, f.sizeBytes, f.etag])).toEqual([
      ['unet/config.json', CONFIG.length, '"c1"'],
      ['unet/diffusion_pytorch_model.safetensors', WEIGHTS.length, '"w1"'],
    ]);
    await clearCachedModels(BASE);
    expect(await listCachedModels()).toEqual([]);
  });

  it('keeps an interrupted download as a part only, and resumes it with a Range request', async () => {
    const { root, server, source } = setup();
    const url = `${BASE}/unet/diffusion_pytorch_model.safetensors`;
    server.dropAfter.set(url, 10_000);
    await expect(readAll(source({ retries: 0 }), 'unet/diffusion_pytorch_model.safetensors')).rejects.toThrow(/connection dropped after 10000 bytes/);
    expect(parts(root).map(([, f]) => f.data.length)).toEqual([10_000]);
    expect((await listCachedModels())[0]).toMatchObject({ files: [], sizeBytes: 0, partialBytes: 10_000 });
    server.dropAfter.delete(url);
    expect(await readAll(source(), 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(gets(server, 'safetensors').at(-1)?.range).toBe('bytes=10000-');
    expect(parts(root)).toEqual([]);
  });

  it('resumes within one load after drops (retries), ending with the exact bytes', async () => {
    const { server, source } = setup();
    const url = `${BASE}/unet/diffusion_pytorch_model.safetensors`;
    server.dropAfter.set(url, 7_000); // every response dies after 7000 bytes: 4 requests for 25000
    expect(await readAll(source({ retries: 5 }), 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(gets(server, 'safetensors').map((r) => r.range)).toEqual([undefined, 'bytes=7000-', 'bytes=14000-', 'bytes=21000-']);
  });

  it('restarts from zero when the server ignores Range or the file changed (ETag)', async () => {
    const { server, source } = setup();
    const path = 'unet/diffusion_pytorch_model.safetensors';
    const url = `${BASE}/${path}`;
    server.dropAfter.set(url, 10_000);
    await expect(readAll(source({ retries: 0 }), path)).rejects.toThrow();
    server.dropAfter.delete(url);
    server.ignoreRange = true;
    expect(await readAll(source(), path)).toEqual(WEIGHTS);
    // a new version behind the same URL while a part of the old one waits
    await clearCachedModels();
    server.ignoreRange = false;
    server.dropAfter.set(url, 10_000);
    await expect(readAll(source({ retries: 0 }), path)).rejects.toThrow();
    const v2 = bytes(25_000, 2);
    server.files.set(url, { data: v2, etag: '"w2"' });
    server.dropAfter.delete(url);
    expect(await readAll(source(), path)).toEqual(v2);
    expect(gets(server, 'safetensors').slice(-2).map((r) => r.range)).toEqual(['bytes=10000-', undefined]);
    expect((await listCachedModels())[0].files.find((f) => f.path === path)?.etag).toBe('"w2"');
  });

  it('never uses a damaged commit: a short data file is dropped and downloaded again', async () => {
    const { root, server, source } = setup();
    const path = 'unet/diffusion_pytorch_model.safetensors';
    await readAll(source(), path);
    const bin = [...root.files()].find(([p, f]) => p.endsWith('.bin') && f.data.length === WEIGHTS.length)![1];
    bin.data = bin.data.slice(0, 100); // e.g. storage trimmed behind our back
    const before = gets(server, 'safetensors').length;
    expect(await readAll(source(), path)).toEqual(WEIGHTS);
    expect(gets(server, 'safetensors').length).toBe(before + 1);
  });

  it('names a missing file, and remembers a 404 so a second load asks no more', async () => {
    const { server, source } = setup();
    const a = source();
    expect(await a.exists('unet/model.safetensors')).toBe(false);
    await expect(a.open('unet/model.safetensors')).rejects.toThrow(/file not found: .*unet\/model\.safetensors \(HTTP 404\)/);
    const before = server.requests.length;
    expect(await source().exists('unet/model.safetensors')).toBe(false);
    expect(server.requests.length).toBe(before);
    expect(await source({ revalidate: true }).exists('unet/model.safetensors')).toBe(false);
    expect(server.requests.length).toBe(before + 1);
  });

  it('refuses a download that does not fit the storage quota (StorageQuotaError), committing nothing', async () => {
    const { source } = setup({ quota: 5_000 });
    const err = await readAll(source(), 'unet/diffusion_pytorch_model.safetensors').catch((e) => e);
    expect(err).toBeInstanceOf(StorageQuotaError);
    expect(err.code).toBe('STORAGE_QUOTA');
    expect(err.message).toMatch(/quota/);
    expect((await listCachedModels())[0]?.files ?? []).toEqual([]);
  });

  it('revalidate: a changed file (size or ETag) is downloaded again', async () => {
    const { server, source } = setup();
    const path = 'unet/diffusion_pytorch_model.safetensors';
    await readAll(source(), path);
    const v2 = bytes(30_000, 3);
    server.files.set(`${BASE}/${path}`, { data: v2, etag: '"w3"' });
    expect(await readAll(source(), path)).toEqual(WEIGHTS); // trusted as cached
    expect(await readAll(source({ revalidate: true }), path)).toEqual(v2);
  });
});

describe('in plain Node (no OPFS, no Cache API)', () => {
  it('imports without side effects and reads straight from the network', async () => {
    const server = fakeServer({ [`${BASE}/unet/config.json`]: { data: CONFIG } });
    expect(await weightCacheStorage()).toBe('none');
    expect(await listCachedModels()).toEqual([]);
    await clearCachedModels();
    const src = new CachedUrlSource(BASE, { fetch: server.fetch });
    expect(await src.storage()).toBe('none');
    expect(await src.readText('unet/config.json')).toBe(new TextDecoder().decode(CONFIG));
  });
});

describe('CachedUrlSource over the Cache API (no OPFS)', () => {
  function setupCaches() {
    const c = installFakeCaches();
    uninstall = c.uninstall;
    const server = fakeServer({ [`${BASE}/unet/diffusion_pytorch_model.safetensors`]: { data: WEIGHTS, etag: '"w1"' } });
    return { server, entries: c.entries, source: (extra = {}) => new CachedUrlSource(BASE, { fetch: server.fetch, ...extra }) };
  }

  it('downloads once and serves the second load from the cache', async () => {
    const { server, source } = setupCaches();
    expect(await source().storage()).toBe('cache-api');
    expect(await readAll(source(), 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    const before = server.requests.length;
    expect(await readAll(source(), 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(server.requests.length).toBe(before);
    expect(await listCachedModels()).toMatchObject([{ base: BASE, storage: 'cache-api', sizeBytes: WEIGHTS.length }]);
    await clearCachedModels(BASE);
    expect(await listCachedModels()).toEqual([]);
  });

  it('stores nothing for a dropped download and restarts it from zero', async () => {
    const { server, entries, source } = setupCaches();
    const url = `${BASE}/unet/diffusion_pytorch_model.safetensors`;
    server.dropAfter.set(url, 10_000);
    await expect(readAll(source({ retries: 1 }), 'unet/diffusion_pytorch_model.safetensors')).rejects.toThrow(/after 10000 bytes/);
    expect([...entries.values()].every((m) => m.size === 0)).toBe(true);
    server.dropAfter.delete(url);
    expect(await readAll(source(), 'unet/diffusion_pytorch_model.safetensors')).toEqual(WEIGHTS);
    expect(gets(server, 'safetensors').map((r) => r.range)).toEqual([undefined, undefined, undefined]);
  });
});
