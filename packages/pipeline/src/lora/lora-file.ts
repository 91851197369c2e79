// Opening a LoRA .safetensors file from a path, URL, Blob/File, ByteSource or (ModelSource, path),
// detecting its layout and grouping its keys per module (down, up, alpha). Only the header is read
// here; tensor data is read when the adapter is built (lora-mapping.ts).
import {
  BlobSource, CheckpointError, DenoFileSource, HttpRangeSource, InvalidArgumentError, isNode, NodeFileSource, SafetensorsFile, runtimeName,
  type ByteSource, type CheckpointProblem, type HttpOptions, type ModelSource,
} from '@ssd/tensor';
import { detectLayout, LAYOUTS, parseKey, type LoraComponent, type LoraLayout, type ModuleNaming } from './layouts.js';

/** Where a LoRA file comes from: a path or URL, a browser File/Blob, a ByteSource, or a file of a ModelSource. */
export type LoraSource = string | Blob | ByteSource | { readonly source: ModelSource; readonly path: string };

/** One module's keys in the file. */
export interface LoraModuleKeys {
  readonly component: LoraComponent;
  readonly module: string;
  readonly naming: ModuleNaming;
  down?: string;
  up?: string;
  alpha?: string;
}

export interface LoraFile {
  readonly file: SafetensorsFile;
  readonly layout: LoraLayout;
  readonly modules: readonly LoraModuleKeys[];
}

function isByteSource(s: object): s is ByteSource {
  return typeof (s as ByteSource).read === 'function' && typeof (s as ByteSource).size === 'function';
}

/** The ByteSource of a LoRA source (a string is a URL when it has a scheme, else a local path). */
export async function openLoraSource(src: LoraSource, http: HttpOptions = {}): Promise<ByteSource> {
  if (typeof src === 'string') {
    if (!src) throw new InvalidArgumentError('LoRA source is an empty string');
    if (/^https?:\/\//i.test(src)) return new HttpRangeSource(src, http);
    if (isNode()) return new NodeFileSource(src);
    if (runtimeName() === 'deno') return new DenoFileSource(src);
    const loc = (globalThis as { location?: { href: string } }).location;
    if (loc) return new HttpRangeSource(new URL(src, loc.href).href, http);
    throw new InvalidArgumentError(`cannot open LoRA "${src}" here: pass a URL, a File/Blob or a ByteSource`);
  }
  if (typeof Blob !== 'undefined' && src instanceof Blob) return new BlobSource(src);
  if (isByteSource(src)) return src;
  if ('source' in src && 'path' in src) return src.source.open(src.path);
  throw new InvalidArgumentError('LoRA source must be a path or URL, a File/Blob, a ByteSource or { source, path }');
}

/**
 * Reads the header, detects the layout and groups the keys per module. A key no rule of the layout
 * explains, or a module without its down or up tensor, is a CheckpointError naming the layout.
 */
export async function openLoraFile(src: LoraSource, http?: HttpOptions): Promise<LoraFile> {
  const bytes = await openLoraSource(src, http);
  const file = await SafetensorsFile.open(bytes);
  try {
    const keys = file.keys();
    const layout = detectLayout(file.name, keys);
    const modules = new Map<string, LoraModuleKeys>();
    const problems: CheckpointProblem[] = [];
    for (const key of keys) {
      const p = parseKey(layout, key);
      if (!p) {
        problems.push({ key, kind: 'unexpected', actual: JSON.stringify(file.info(key).shape) });
        continue;
      }
      const id = `${p.component}:${p.module}`;
      let m = modules.get(id);
      if (!m) modules.set(id, (m = { component: p.component, module: p.module, naming: p.naming }));
      m[p.role] = key;
    }
    for (const m of modules.values()) {
      if (!m.down) problems.push({ key: `${m.up ?? m.alpha} (its down / lora_A tensor)`, kind: 'missing', expected: '[rank, in_features, …]' });
      else if (!m.up) problems.push({ key: `${m.down} (its up / lora_B tensor)`, kind: 'missing', expected: '[out_features, rank, …]' });
    }
    if (problems.length) throw loraCheckpointError(file.name, layout, problems);
    return { file, layout, modules: [...modules.values()] };
  } catch (e) {
    await bytes.close();
    throw e;
  }
}

/** A CheckpointError whose file label names the LoRA layout that was assumed. */
export function loraCheckpointError(file: string, layout: LoraLayout, problems: CheckpointProblem[]): CheckpointError {
  return new CheckpointError(`${file} (LoRA, read as layout "${layout}": ${LAYOUTS[layout].description})`, problems);
}
