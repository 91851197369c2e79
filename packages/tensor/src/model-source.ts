// ModelSource: where a diffusers folder lives — a local folder (Node), a URL base (fetch, Node and
// browsers) or a set of Files from a browser folder picker. Paths are '/'-separated and relative to
// the model root ("unet/config.json").

import { BlobSource, DenoFileSource, HttpRangeSource, NodeFileSource, openRegularFile, type ByteSource, type HttpOptions } from './byte-source.js';
import { InvalidArgumentError, ModelLoadError } from './errors.js';
import { isNode } from './gpu-provider.js';
import { timedFetch, TransientHttpError } from './http.js';

/**
 * The largest JSON or text file (model_index.json, config.json, tokenizer files, shard indexes) a
 * source reads: 64 MiB, some 20 times the largest real one (a tokenizer.json), so that an endless or
 * mistaken file is an error instead of gigabytes of memory. Sources take `maxTextBytes` to change it.
 */
export const MAX_TEXT_BYTES = 64 << 20;

export interface SourceOptions {
  /** The largest JSON or text file readText accepts (default MAX_TEXT_BYTES). */
  maxTextBytes?: number;
}

/** `size` null: a download that went on past the cap without announcing its length. */
function tooLarge(path: string, size: number | null, max: number): ModelLoadError {
  const limit = `the ${max.toLocaleString('en-US')} bytes a model's JSON or text file may have (maxTextBytes): is it the right file?`;
  return new ModelLoadError(size === null ? `${path} goes on past ${limit}` : `${path} is ${size.toLocaleString('en-US')} bytes, more than ${limit}`);
}

export interface ModelSource {
  /** The folder path or URL base, for messages. */
  readonly description: string;
  exists(path: string): Promise<boolean>;
  /** The file's text; a ModelLoadError naming the full path when it is missing. */
  readText(path: string): Promise<string>;
  /** Random access to a file (weights). */
  open(path: string): Promise<ByteSource>;
  /**
   * Throws ModelLoadError unless `path`, with symbolic links resolved, lies inside `folder` (both
   * model-relative). Sources without links (URLs, picked files, memory) leave it out: for them the
   * lexical check of the path (shard-index.ts) is the whole check.
   */
  checkContained?(folder: string, path: string): Promise<void>;
}

/** A local folder (Node only). */
export class FolderSource implements ModelSource {
  private readonly maxTextBytes: number;
  constructor(
    readonly root: string,
    options: SourceOptions = {},
  ) {
    this.maxTextBytes = options.maxTextBytes ?? MAX_TEXT_BYTES;
  }

  get description(): string {
    return this.root;
  }

  private full(path: string): string {
    return `${this.root.replace(/\/+$/, '')}/${path}`;
  }

  /** Whether anything is there (readText and open then refuse what is not a regular file, by name). */
  async exists(path: string): Promise<boolean> {
    const fs = await nodeFs();
    try {
      await fs.stat(this.full(path));
      return true;
    } catch {
      return false;
    }
  }

  async readText(path: string): Promise<string> {
    const fs = await nodeFs();
    const full = this.full(path);
    const fh = await openRegularFile(fs, full);
    try {
      const size = (await fh.stat()).size;
      if (size > this.maxTextBytes) throw tooLarge(full, size, this.maxTextBytes);
      const buf = new Uint8Array(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await fh.read(buf, done, size - done, done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return new TextDecoder().decode(buf.subarray(0, done));
    } catch (e) {
      if (e instanceof ModelLoadError) throw e;
      throw new ModelLoadError(`cannot read ${full}: ${(e as Error).message}`, { cause: e });
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async open(path: string): Promise<ByteSource> {
    if (!(await this.exists(path))) throw new ModelLoadError(`file not found: ${this.full(path)}`);
    return new NodeFileSource(this.full(path));
  }

  async checkContained(folder: string, path: string): Promise<void> {
    const fs = await nodeFs();
    await checkRealPathInside((p) => fs.realpath(p), this.root, folder, path);
  }
}

/**
 * ModelLoadError unless `root/path`, links resolved by `realpath`, lies inside `root/folder` — or, for
 * a folder in the huggingface_hub cache (…/snapshots/<revision>, whose files link to ../../blobs/<hash>),
 * inside that repository's blobs/.
 */
async function checkRealPathInside(realpath: (p: string) => Promise<string>, root: string, folder: string, path: string): Promise<void> {
  const full = (p: string) => `${root.replace(/\/+$/, '')}/${p}`;
  const real = async (p: string) => {
    try {
      return (await realpath(p)).replaceAll('\\', '/'); // Windows answers with backslashes
    } catch (e) {
      const code = (e as { code?: string; name?: string }).code ?? (e as { name?: string }).name;
      throw new ModelLoadError(code === 'ENOENT' || code === 'NotFound' ? `file not found: ${p}` : `cannot resolve ${p}: ${(e as Error).message}`, { cause: e });
    }
  };
  const target = await real(full(path));
  const inside = (dir: string) => target.startsWith(dir.endsWith('/') ? dir : dir + '/');
  if (inside(await real(full(folder || '.')))) return;
  const rootReal = await real(root);
  const parent = rootReal.slice(0, rootReal.lastIndexOf('/'));
  if (parent.endsWith('/snapshots')) {
    const blobs = `${parent.slice(0, -'/snapshots'.length)}/blobs`;
    if (inside(await real(blobs).catch(() => blobs))) return;
  }
  throw new ModelLoadError(`${full(path)} resolves to ${target}, outside ${full(folder || '.')}: a shard must lie inside its component folder`);
}

/** A URL base (e.g. https://huggingface.co/segmind/SSD-1B/resolve/main). */
export class UrlSource implements ModelSource {
  private readonly base: string;
  constructor(
    base: string,
    private readonly options: HttpOptions = {},
  ) {
    this.base = base.replace(/\/+$/, '');
  }

  get description(): string {
    return this.base;
  }

  url(path: string): string {
    return `${this.base}/${path}`;
  }

  private get fetchImpl(): typeof fetch {
    return this.options.fetch ?? ((...a: Parameters<typeof fetch>) => fetch(...a));
  }

  async exists(path: string): Promise<boolean> {
    try {
      const head = await timedFetch(this.fetchImpl, this.url(path), { method: 'HEAD', headers: this.options.headers }, this.options);
      await head.cancel();
      if (head.res.status === 405) {
        const g = await timedFetch(this.fetchImpl, this.url(path), { headers: { ...this.options.headers, Range: 'bytes=0-0' } }, this.options);
        await g.cancel();
        return g.res.ok;
      }
      return head.res.ok;
    } catch (e) {
      if (e instanceof TransientHttpError) throw e; // a server that does not answer is not an absent file
      return false;
    }
  }

  async readText(path: string): Promise<string> {
    const url = this.url(path);
    const max = this.options.maxTextBytes ?? MAX_TEXT_BYTES;
    let r;
    try {
      r = await timedFetch(this.fetchImpl, url, { headers: this.options.headers }, this.options);
    } catch (e) {
      if (e instanceof ModelLoadError) throw e;
      throw new ModelLoadError(`${url}: request failed (${(e as Error).message})`, { cause: e });
    }
    const res = r.res;
    if (!res.ok) {
      await r.cancel();
      if (res.status === 404) throw new ModelLoadError(`file not found: ${url} (HTTP 404)`);
      throw new ModelLoadError(`${url}: HTTP ${res.status} ${res.statusText}`);
    }
    const announced = Number(res.headers.get('content-length'));
    if (announced > max) {
      await r.cancel();
      throw tooLarge(url, announced, max);
    }
    const bytes = await r.readBody(max, path, () => tooLarge(url, null, max));
    return new TextDecoder().decode(bytes);
  }

  async open(path: string): Promise<ByteSource> {
    return new HttpRangeSource(this.url(path), this.options);
  }
}

/** Files picked in a browser (<input webkitdirectory> or a directory handle walked by the caller). */
export class FileListSource implements ModelSource {
  private readonly files = new Map<string, Blob>();
  readonly description: string;

  private readonly maxTextBytes: number;

  /** `files`: File objects with webkitRelativePath, or a map of model-relative path → Blob. */
  constructor(files: Iterable<File> | ReadonlyMap<string, Blob>, description = 'selected files', options: SourceOptions = {}) {
    this.description = description;
    this.maxTextBytes = options.maxTextBytes ?? MAX_TEXT_BYTES;
    if (files instanceof Map) {
      for (const [p, b] of files) this.files.set(p.replace(/^\/+/, ''), b);
      return;
    }
    const list = [...(files as Iterable<File>)];
    const rel = list.map((f) => (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name);
    // drop the picked folder's own name when every path starts with it
    const first = rel[0]?.split('/')[0];
    const strip = first !== undefined && rel.every((p) => p.includes('/') && p.split('/')[0] === first);
    list.forEach((f, i) => this.files.set(strip ? rel[i].slice(first!.length + 1) : rel[i], f));
  }

  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }

  private get(path: string): Blob {
    const f = this.files.get(path);
    if (!f) throw new ModelLoadError(`file not found: ${path} among the ${this.description} (${this.files.size} files)`);
    return f;
  }

  async readText(path: string): Promise<string> {
    const f = this.get(path);
    if (f.size > this.maxTextBytes) throw tooLarge(path, f.size, this.maxTextBytes);
    return f.text();
  }

  async open(path: string): Promise<ByteSource> {
    return new BlobSource(this.get(path), path);
  }
}

/** A source from a path or URL string, or the source itself. */
export function openModelSource(source: string | ModelSource, options: HttpOptions = {}): ModelSource {
  if (typeof source !== 'string') return source;
  if (!source) throw new InvalidArgumentError('model source is an empty string');
  if (/^https?:\/\//i.test(source)) return new UrlSource(source, options);
  if (isNode()) return new FolderSource(source, options);
  const loc = (globalThis as { location?: { href: string } }).location;
  if (loc) return new UrlSource(new URL(source, loc.href).href, options);
  if ((globalThis as { Deno?: unknown }).Deno) return new DenoFolderSource(source);
  throw new InvalidArgumentError(`cannot open model source "${source}" here: pass a URL or a ModelSource`);
}

/** A local folder under Deno (Deno.open / Deno.readTextFile). */
export class DenoFolderSource implements ModelSource {
  constructor(readonly root: string) {}
  get description(): string {
    return this.root;
  }
  private full(path: string): string {
    return `${this.root.replace(/\/+$/, '')}/${path}`;
  }
  private get deno(): DenoApi {
    return (globalThis as unknown as { Deno: DenoApi }).Deno;
  }
  async exists(path: string): Promise<boolean> {
    try {
      await this.deno.stat(this.full(path));
      return true;
    } catch {
      return false;
    }
  }
  async readText(path: string): Promise<string> {
    const full = this.full(path);
    const size = await this.regularFileSize(full);
    if (size > MAX_TEXT_BYTES) throw tooLarge(full, size, MAX_TEXT_BYTES);
    try {
      return await this.deno.readTextFile(full);
    } catch (e) {
      throw new ModelLoadError(`cannot read ${full} (${(e as Error).message})`, { cause: e });
    }
  }
  async open(path: string): Promise<ByteSource> {
    const full = this.full(path);
    await this.regularFileSize(full);
    return new DenoFileSource(full);
  }
  async checkContained(folder: string, path: string): Promise<void> {
    await checkRealPathInside((p) => this.deno.realPath(p), this.root, folder, path);
  }
  /** Checked before opening: Deno.open of a FIFO would wait for a writer. */
  private async regularFileSize(full: string): Promise<number> {
    let st: { isFile: boolean; isDirectory: boolean; size: number };
    try {
      st = await this.deno.stat(full);
    } catch (e) {
      throw new ModelLoadError(`file not found: ${full}`, { cause: e });
    }
    if (!st.isFile) throw new ModelLoadError(`${full} is ${st.isDirectory ? 'a directory' : 'a FIFO, device or socket'}, not a regular file`);
    return st.size;
  }
}

interface DenoApi {
  stat(p: string): Promise<{ isFile: boolean; isDirectory: boolean; size: number }>;
  realPath(p: string): Promise<string>;
  readTextFile(p: string): Promise<string>;
}

interface NodeFs {
  stat(p: string): Promise<{ isFile(): boolean; isDirectory(): boolean }>;
  realpath(p: string): Promise<string>;
  open: Parameters<typeof openRegularFile>[0]['open'];
  constants: Parameters<typeof openRegularFile>[0]['constants'];
}

let fsPromise: Promise<NodeFs> | null = null;
function nodeFs(): Promise<NodeFs> {
  const name = 'node:fs/promises';
  return (fsPromise ??= import(/* @vite-ignore */ name) as Promise<NodeFs>);
}

/** A model held in memory: texts, bytes or ByteSources (synthetic weights) by model-relative path. */
export class MemorySource implements ModelSource {
  private readonly files: Map<string, string | Uint8Array | ByteSource>;
  constructor(
    files: Record<string, string | Uint8Array | ByteSource> | Map<string, string | Uint8Array | ByteSource>,
    readonly description = 'in-memory model',
  ) {
    this.files = files instanceof Map ? new Map(files) : new Map(Object.entries(files));
  }
  async exists(path: string): Promise<boolean> {
    return this.files.has(path);
  }
  private get(path: string): string | Uint8Array | ByteSource {
    const f = this.files.get(path);
    if (f === undefined) throw new ModelLoadError(`file not found: ${path} in the ${this.description}`);
    return f;
  }
  async readText(path: string): Promise<string> {
    const f = this.get(path);
    if (typeof f === 'string') return f;
    const size = f instanceof Uint8Array ? f.length : await f.size();
    if (size > MAX_TEXT_BYTES) throw tooLarge(path, size, MAX_TEXT_BYTES);
    const bytes = f instanceof Uint8Array ? f : await f.read(0, size);
    return new TextDecoder().decode(bytes);
  }
  async open(path: string): Promise<ByteSource> {
    const f = this.get(path);
    if (typeof f === 'string') return new BlobSource(new Blob([f]), path);
    if (f instanceof Uint8Array) return new BlobSource(new Blob([f as BlobPart]), path);
    return f;
  }
}
