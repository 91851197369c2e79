// Hostile model folders and servers (issue 20), below the pipeline: shard indexes that climb out of
// their folder or disagree with their shards, servers that never answer or never stop, FIFOs and
// directories where files should be, JSON files holding null, safetensors files the reference reader
// rejects, and configs asking for absurd shapes — each a typed error naming the file, before any
// expensive work, and never a hang.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError, ConfigError, encodeSafetensors, FolderSource, HttpRangeSource, ModelLoadError, openWeightFiles, readComponentConfig,
  readModelIndex, resolveWeightFiles, SafetensorsError, SafetensorsFile, UrlSource, WeightStore, type ModelSource,
} from '@ssd/tensor';
import { fixturesDir, testContext } from '../../../testing/index.js';

const model = join(fixturesDir, 'models/tiny-ssd1b');
const tmp = mkdtempSync(join(tmpdir(), 'ssd-tensor-hard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

const f32 = (vals: number[]) => new Float32Array(vals);

/** A folder with a sharded component `c`: shards { name: { tensor: values } } and the index's weight_map. */
function shardedFolder(name: string, shards: Record<string, Record<string, number[]>>, weightMap: unknown): string {
  const dir = join(tmp, name);
  mkdirSync(join(dir, 'c'), { recursive: true });
  for (const [file, tensors] of Object.entries(shards)) {
    const entries = Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, { dtype: 'F32' as const, shape: [v.length], data: f32(v) }]));
    writeFileSync(join(dir, 'c', file), encodeSafetensors(entries));
  }
  writeFileSync(join(dir, 'c/diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return dir;
}

async function openSharded(src: ModelSource) {
  const files = await openWeightFiles(src, await resolveWeightFiles(src, 'c'));
  await Promise.all(files.map((f) => f.source.close()));
  return files;
}

describe('shard indexes (item 2)', () => {
  const good = { 's1.safetensors': { a: [1, 2], b: [3] }, 's2.safetensors': { c: [4, 5, 6] } };
  const goodMap = { a: 's1.safetensors', b: 's1.safetensors', c: 's2.safetensors' };

  it('a consistent index opens its shards', async () => {
    const files = await openSharded(new FolderSource(shardedFolder('ok', good, goodMap)));
    expect(files.map((f) => f.keys().sort())).toEqual([['a', 'b'], ['c']]);
  });

  it('a shard path climbing out of the folder, or absolute, is a ConfigError naming the key; no bytes of the target leak', async () => {
    mkdirSync(join(tmp, 'outside'), { recursive: true });
    writeFileSync(join(tmp, 'outside/x.safetensors'), encodeSafetensors({ a: { dtype: 'F32', shape: [1], data: f32([9]) } }));
    for (const [name, shard] of [['dotdot', '../../outside/x.safetensors'], ['abs', '/etc/passwd'], ['mid', 'sub/../../x.safetensors'], ['win', '..\\x.safetensors']]) {
      const dir = shardedFolder(`trav-${name}`, {}, { a: shard });
      const e = await errorOf(resolveWeightFiles(new FolderSource(dir), 'c'));
      expect(e, shard).toBeInstanceOf(ConfigError);
      expect(e.message).toContain('weight_map["a"]');
      expect(e.message).toContain('diffusion_pytorch_model.safetensors.index.json');
      expect(e.message).not.toMatch(/root:/);
    }
  });

  it('a shard that is a link to a file outside the folder is refused; huggingface_hub cache links to blobs/ are fine', async () => {
    const dir = shardedFolder('link', {}, { a: 'x.safetensors' });
    symlinkSync(join(tmp, 'outside/x.safetensors'), join(dir, 'c/x.safetensors'));
    const e = await errorOf(resolveWeightFiles(new FolderSource(dir), 'c'));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/resolves to .*outside.*: a shard must lie inside its component folder/);

    const repo = join(tmp, 'models--org--tiny');
    const snap = join(repo, 'snapshots/0123abc');
    mkdirSync(join(snap, 'c'), { recursive: true });
    mkdirSync(join(repo, 'blobs'));
    cpSync(join(tmp, 'outside/x.safetensors'), join(repo, 'blobs/deadbeef'));
    symlinkSync('../../../blobs/deadbeef', join(snap, 'c/x.safetensors'));
    writeFileSync(join(snap, 'c/diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'x.safetensors' } }));
    expect((await openSharded(new FolderSource(snap)))[0].keys()).toEqual(['a']);
  });

  it('URL sources take same-origin relative shard names only', async () => {
    const texts: Record<string, string> = {};
    const fetchStub = (async (url: string) => {
      const path = url.replace('https://models.example/m/', '');
      return path in texts ? new Response(texts[path]) : new Response('', { status: 404 });
    }) as unknown as typeof fetch;
    const src = new UrlSource('https://models.example/m', { fetch: fetchStub });
    for (const shard of ['https://evil.example/x.safetensors', '//evil.example/x.safetensors', '%2e%2e/%2e%2e/x.safetensors', 'a/./b.safetensors']) {
      texts['c/diffusion_pytorch_model.safetensors'] = '';
      delete texts['c/diffusion_pytorch_model.safetensors'];
      texts['c/diffusion_pytorch_model.safetensors.index.json'] = JSON.stringify({ weight_map: { k: shard } });
      const e = await errorOf(resolveWeightFiles(src, 'c'));
      expect(e, shard).toBeInstanceOf(ConfigError);
      expect(e.message).toContain('weight_map["k"]');
    }
  });

  it('weight_map must be an object of strings (not a string read one character at a time)', async () => {
    for (const [name, map, key] of [['str', 'model.safetensors', 'weight_map'], ['list', ['s1.safetensors'], 'weight_map'], ['null', null, 'weight_map'], ['num', { a: 3 }, 'weight_map["a"]']] as const) {
      const e = await errorOf(resolveWeightFiles(new FolderSource(shardedFolder(`map-${name}`, good, map)), 'c'));
      expect(e, name).toBeInstanceOf(ConfigError);
      expect(e.message).toContain(`config key "${key}"`);
    }
  });

  it('weight_map keys must agree with the shards: misplaced, duplicated, unlisted and missing tensors are named', async () => {
    const shards = { 's1.safetensors': { a: [1, 2], b: [3], dup: [0] }, 's2.safetensors': { c: [4, 5, 6], dup: [1], extra: [7] } };
    const map = { a: 's1.safetensors', b: 's2.safetensors', c: 's2.safetensors', dup: 's2.safetensors', gone: 's1.safetensors' };
    const e = await errorOf(openSharded(new FolderSource(shardedFolder('disagree', shards, map))));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/weight_map does not match its shards/);
    expect(e.message).toMatch(/index mismatch: b: weight_map says c\/s2\.safetensors, found in c\/s1\.safetensors/);
    expect(e.message).toMatch(/index mismatch: dup: weight_map says c\/s2\.safetensors, found in c\/s1\.safetensors/);
    expect(e.message).toMatch(/index mismatch: extra: not listed in weight_map, found in c\/s2\.safetensors/);
    expect(e.message).toMatch(/index mismatch: gone: weight_map says c\/s1\.safetensors, not in that file/);
    expect(e.message).not.toMatch(/index mismatch: (a|c):/);
  });
});

/** A server whose handler decides per request; every socket is destroyed on close. */
async function server(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const srv = createServer(handler);
  const sockets = new Set<import('node:net').Socket>();
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    }),
  };
}

describe('servers that hang or never stop (item 4)', () => {
  const quick = { connectTimeoutMs: 300, idleTimeoutMs: 300, retries: 0 };

  it('a server that accepts and never answers: a ModelLoadError naming the timeout, for text and for ranges', async () => {
    const s = await server(() => {});
    try {
      const e = await errorOf(readModelIndex(new UrlSource(s.url, quick)));
      expect(e).toBeInstanceOf(ModelLoadError);
      expect(e.message).toMatch(/no response within 0\.3 s \(connectTimeoutMs/);
      const r = await errorOf(new HttpRangeSource(`${s.url}/x.safetensors`, quick).read(0, 16));
      expect(r).toBeInstanceOf(ModelLoadError);
      expect(r.message).toMatch(/no response within/);
    } finally {
      await s.close();
    }
  });

  it('a server that stalls mid-body: the idle timeout', async () => {
    const s = await server((req, res) => {
      res.writeHead(req.headers.range ? 206 : 200, req.headers.range ? { 'Content-Range': 'bytes 0-99/100', 'Content-Length': 100 } : {});
      res.write(req.headers.range ? new Uint8Array(10) : '{"_class_name": ');
    });
    try {
      const e = await errorOf(new UrlSource(s.url, quick).readText('model_index.json'));
      expect(e).toBeInstanceOf(ModelLoadError);
      expect(e.message).toMatch(/no data for 0\.3 s while reading model_index\.json \(idleTimeoutMs/);
      const r = await errorOf(new HttpRangeSource(`${s.url}/x`, quick).read(0, 100));
      expect(r.message).toMatch(/no data for 0\.3 s/);
    } finally {
      await s.close();
    }
  });

  it('an endless model_index.json stops at the text cap; an announced giant one is refused unread', async () => {
    let sent = 0;
    const s = await server((req, res) => {
      if (req.url?.endsWith('big.json')) {
        res.writeHead(200, { 'Content-Length': String(10 * 2 ** 30) });
        res.write('{');
        return;
      }
      res.writeHead(200);
      const chunk = Buffer.alloc(64 << 10, 0x20);
      const pump = () => {
        while (res.write(chunk)) {
          sent += chunk.length;
          if (sent > 64 << 20) return void res.end();
        }
        res.once('drain', pump);
      };
      res.write('{"a": ');
      pump();
    });
    try {
      const e = await errorOf(new UrlSource(s.url, { maxTextBytes: 1 << 20 }).readText('model_index.json'));
      expect(e).toBeInstanceOf(ModelLoadError);
      expect(e.message).toMatch(/model_index\.json goes on past the 1,048,576 bytes a model's JSON or text file may have \(maxTextBytes\)/);
      expect(sent, 'the download stopped soon after the cap').toBeLessThan(32 << 20);
      const big = await errorOf(new UrlSource(s.url).readText('big.json'));
      expect(big.message).toMatch(/big\.json is 10,737,418,240 bytes/);
    } finally {
      await s.close();
    }
  });

  it('a range answer of another size than asked is refused before its body is read', async () => {
    const s = await server((req, res) => {
      if (req.url === '/wrong-range') res.writeHead(206, { 'Content-Range': 'bytes 0-999999/1000000', 'Content-Length': 1000000 });
      else res.writeHead(206, { 'Content-Range': 'bytes 0-15/100' }); // no Content-Length, then too many bytes
      res.end(Buffer.alloc(req.url === '/wrong-range' ? 1000000 : 4096));
    });
    try {
      const a = await errorOf(new HttpRangeSource(`${s.url}/wrong-range`, quick).read(0, 16));
      expect(a.message).toMatch(/asked for bytes 0-15, the server sent bytes 0-999999/);
      const b = await errorOf(new HttpRangeSource(`${s.url}/too-long`, quick).read(0, 16));
      expect(b.message).toMatch(/larger than the 16 bytes asked for/);
    } finally {
      await s.close();
    }
  });
});

describe('files that are not regular files, and text size caps (items 4, 6)', () => {
  it('a FIFO where tokenizer/vocab.json should be is an error, not a hang', async () => {
    const dir = join(tmp, 'fifo');
    mkdirSync(join(dir, 'tokenizer'), { recursive: true });
    execFileSync('mkfifo', [join(dir, 'tokenizer/vocab.json')]);
    const e = await errorOf(new FolderSource(dir).readText('tokenizer/vocab.json'));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/vocab\.json is a FIFO \(named pipe\), not a regular file/);
  });

  it('a weight file that is a directory is a ModelLoadError, not a raw EISDIR', async () => {
    const dir = join(tmp, 'dir-weights');
    mkdirSync(join(dir, 'vae/diffusion_pytorch_model.safetensors'), { recursive: true });
    const src = new FolderSource(dir);
    const e = await errorOf(async () => SafetensorsFile.open(await src.open('vae/diffusion_pytorch_model.safetensors')));
    expect(e).toBeInstanceOf(ModelLoadError);
    expect(e.message).toMatch(/diffusion_pytorch_model\.safetensors is a directory, not a regular file/);
  });

  it('a text file over maxTextBytes is refused', async () => {
    const dir = join(tmp, 'big-text');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model_index.json'), `{"a": "${'x'.repeat(5000)}"}`);
    const e = await errorOf(new FolderSource(dir, { maxTextBytes: 4096 }).readText('model_index.json'));
    expect(e.message).toMatch(/model_index\.json is 5,009 bytes, more than the 4,096 bytes/);
  });

  it('null (or a list) as model_index.json or config.json is a ConfigError naming the file', async () => {
    const dir = join(tmp, 'nulls');
    cpSync(model, dir, { recursive: true });
    writeFileSync(join(dir, 'model_index.json'), 'null');
    writeFileSync(join(dir, 'unet/config.json'), '[1, 2]');
    const e = await errorOf(readModelIndex(new FolderSource(dir)));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/model_index\.json: the file holds null: must be a JSON object/);
    const c = await errorOf(readComponentConfig(new FolderSource(dir), 'unet'));
    expect(c).toBeInstanceOf(ConfigError);
    expect(c.message).toMatch(/unet\/config\.json: the file holds \[1,2\]/);
  });
});

/** A safetensors file from a header object and a data section (unchecked: these are bad on purpose). */
function rawSafetensors(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors the reference reader rejects (item 11)', () => {
  const bytes = (n: number) => new Uint8Array(n);
  const cases: [string, Uint8Array, RegExp][] = [
    ['a hole between tensors', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, bytes(12)), /tensor "b": data_offsets \[8, 12\] leave a hole of 4 bytes at data offset 4 after tensor "a"/],
    ['a hole before the first tensor', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, bytes(8)), /tensor "a": data_offsets \[4, 8\] leave a hole of 4 bytes at data offset 0/],
    ['trailing bytes', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, bytes(7)), /3 trailing bytes after the tensor data \(from data offset 4/],
    ['a number in __metadata__', rawSafetensors({ __metadata__: { format: 'pt', step: 3 }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, bytes(4)), /__metadata__\["step"\] must be a string, found number/],
    ['a list as __metadata__', rawSafetensors({ __metadata__: ['x'], a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, bytes(4)), /__metadata__ must be an object of strings/],
  ];
  for (const [name, data, msg] of cases) {
    it(`${name}: a SafetensorsError naming the file and the offending tensor or offset`, async () => {
      const p = join(tmp, `${name.replace(/\W+/g, '_')}.safetensors`);
      writeFileSync(p, data);
      const src = new FolderSource(tmp);
      const e = await errorOf(async () => SafetensorsFile.open(await src.open(p.slice(tmp.length + 1))));
      expect(e).toBeInstanceOf(SafetensorsError);
      expect(e.message).toMatch(msg);
      expect(e.message).toContain(p);
    });
  }

  it('a text file taken for safetensors: the error does not quote its bytes', async () => {
    const p = join(tmp, 'passwd.safetensors');
    writeFileSync(p, 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n');
    const e = await errorOf(async () => SafetensorsFile.open(await new FolderSource(tmp).open('passwd.safetensors')));
    expect(e).toBeInstanceOf(SafetensorsError);
    const first8 = readFileSync(p).readBigUInt64LE(0);
    for (const shown of [String(first8), String(Number(first8)), Number(first8).toLocaleString('en-US')]) expect(e.message).not.toContain(shown);
    expect(e.message).not.toMatch(/root|daemon/);
    // a header whose JSON fails: the position, not a quote of the text
    const q = join(tmp, 'badjson.safetensors');
    const body = Buffer.from('{"secret-token-abc": [}');
    const out = Buffer.alloc(8 + body.length);
    out.writeBigUInt64LE(BigInt(body.length));
    body.copy(out, 8);
    writeFileSync(q, out);
    const j = await errorOf(async () => SafetensorsFile.open(await new FolderSource(tmp).open('badjson.safetensors')));
    expect(j.message).toMatch(/the header is not valid JSON/);
    expect(j.message).not.toContain('secret');
  });
});

describe('config shapes are compared with the file headers before GPU memory is allocated (item 8)', () => {
  it('an absurd shape gets no buffer: finish() names the key, and nothing big was allocated', async () => {
    const ctx = await testContext();
    const before = ctx.memory.liveBytes;
    const store = await WeightStore.open(ctx, new FolderSource(model), 'text_encoder', { dtype: 'f32' });
    const key = 'text_model.embeddings.token_embedding.weight';
    const d = store.info(key)!.shape[1];
    const table = store.takeRowChunks(key, [1e9, d], ctx.limits.maxStorageBufferBindingSize);
    const pos = store.take('text_model.embeddings.position_embedding.weight', [1e8, d]);
    const ln = store.take('text_model.final_layer_norm.weight', [d]); // fine, but after a problem: no buffer either
    expect(ctx.memory.liveBytes - before).toBeLessThan(1 << 20);
    expect(table.chunks.length).toBe(1);
    expect(pos.shape).toEqual([1e8, d]);
    expect(ln.shape).toEqual([d]);
    const e = await errorOf(() => store.finish());
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/shape mismatch: text_model\.embeddings\.token_embedding\.weight: expected \[1000000000, \d+\], found \[49408, \d+\]/);
    expect(e.message).toMatch(/shape mismatch: text_model\.embeddings\.position_embedding\.weight: expected \[100000000, \d+\]/);
    store.disposeAll();
    await store.close();
    expect(ctx.memory.liveBytes).toBe(before);
  });
});
