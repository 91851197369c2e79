// ModelSource: where a diffusers folder lives — a local folder (Node), a URL base (fetch, Node and
// browsers) or a set of Files from a browser folder picker. Paths are '/'-separated and relative to
// the model root ("unet/config.json").

import { BlobSource, DenoFileSource, HttpRangeSource, NodeFileSource, type ByteSource, type HttpOptions } from './byte-source.js';
import { InvalidArgumentError, ModelLoadError } from './errors.js';
import { isNode } from './gpu-provider.js';

export interface ModelSource {
  /** The folder path or URL base, for messages. */
  readonly description: string;
  exists(path: string): Promise<boolean>;
  /** The file's text; a ModelLoadError naming the full path when it is missing. */
  readText(path: string): Promise<string>;
  /** Random access to a file (weights). */
  open(path: string): Promise<ByteSource>;
}

/** A local folder (Node only). */
export class FolderSource implements ModelSource {
  constructor(readonly root: string) {}

  get description(): string {
    return this.root;
  }

  private full(path: string): string {
    return `${this.root.replace(/\/+$/, '')}/${path}`;
  }

  async exists(path: string): Promise<boolean> {
    const fs = await nodeFs();
    try {
      const st = await fs.stat(this.full(path));
      return st.isFile() || st.isDirectory();
    } catch {
      return false;
    }
  }

  async readText(path: string): Promise<string> {
    const fs = await nodeFs();
    try {
      return await fs.readFile(this.full(path), 'utf8');
    } catch (e) {
      const code = (e as { code?: string }).code;
      throw new ModelLoadError(code === 'ENOENT' ? `file not found: ${this.full(path)}` : `cannot read ${this.full(path)}: ${(e as Error).message}`, { cause: e });
    }
  }

  async open(path: string): Promise<ByteSource> {
    if (!(await this.exists(path))) throw new ModelLoadError(`file not found: ${this.full(path)}`);
    return new NodeFileSource(this.full(path));
  }
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
      const res = await this.fetchImpl(this.url(path), { method: 'HEAD', headers: this.options.headers });
      if (res.status === 405) {
        const g = await this.fetchImpl(this.url(path), { headers: { ...this.options.headers, Range: 'bytes=0-0' } });
        await g.body?.cancel().catch(() => {});
        return g.ok;
      }
      return res.ok;
    } catch {
      return false;
    }
  }

  async readText(path: string): Promise<string> {
    let res: Response;
    try {
      res = await this.fetchImpl(this.url(path), { headers: this.options.headers });
    } catch (e) {
      throw new ModelLoadError(`${this.url(path)}: request failed (${(e as Error).message})`, { cause: e });
    }
    if (res.status === 404) throw new ModelLoadError(`file not found: ${this.url(path)} (HTTP 404)`);
    if (!res.ok) throw new ModelLoadError(`${this.url(path)}: HTTP ${res.status} ${res.statusText}`);
    try {
      return await res.text();
    } catch (e) {
      throw new ModelLoadError(`${this.url(path)}: the connection dropped while reading (${(e as Error).message})`, { cause: e });
    }
  }

  async open(path: string): Promise<ByteSource> {
    return new HttpRangeSource(this.url(path), this.options);
  }
}

/** Files picked in a browser (<input webkitdirectory> or a directory handle walked by the caller). */
export class FileListSource implements ModelSource {
  private readonly files = new Map<string, Blob>();
  readonly description: string;

  /** `files`: File objects with webkitRelativePath, or a map of model-relative path → Blob. */
  constructor(files: Iterable<File> | ReadonlyMap<string, Blob>, description = 'selected files') {
    this.description = description;
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
    return this.get(path).text();
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
  if (isNode()) return new FolderSource(source);
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
    try {
      return await this.deno.readTextFile(this.full(path));
    } catch (e) {
      throw new ModelLoadError(`file not found: ${this.full(path)} (${(e as Error).message})`, { cause: e });
    }
  }
  async open(path: string): Promise<ByteSource> {
    const full = this.full(path);
    try {
      await this.deno.stat(full);
    } catch (e) {
      throw new ModelLoadError(`file not found: ${full}`, { cause: e });
    }
    return new DenoFileSource(full);
  }
}

interface DenoApi {
  stat(p: string): Promise<unknown>;
  readTextFile(p: string): Promise<string>;
}

interface NodeFs {
  stat(p: string): Promise<{ isFile(): boolean; isDirectory(): boolean }>;
  readFile(p: string, enc: 'utf8'): Promise<string>;
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
    const bytes = f instanceof Uint8Array ? f : await f.read(0, await f.size());
    return new TextDecoder().decode(bytes);
  }
  async open(path: string): Promise<ByteSource> {
    const f = this.get(path);
    if (typeof f === 'string') return new BlobSource(new Blob([f]), path);
    if (f instanceof Uint8Array) return new BlobSource(new Blob([f as BlobPart]), path);
    return f;
  }
}
