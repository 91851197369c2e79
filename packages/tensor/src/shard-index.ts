// A sharded checkpoint's index (`<weights>.safetensors.index.json`, {"weight_map": {tensor: shard}}):
// read as diffusers/transformers write it and trusted for nothing. Shard names must stay inside the
// component folder (no "..", no absolute path or URL, links resolved where the source has them), and
// once the shards' headers are read, every tensor must sit in the shard the map names (no duplicates
// across shards, nothing mapped to a shard that lacks it).
import { CheckpointError, ConfigError, type CheckpointProblem } from './errors.js';
import type { ModelSource } from './model-source.js';
import type { SafetensorsFile } from './safetensors.js';

export interface ShardIndex {
  /** Model-relative path of the index file. */
  path: string;
  /** Model-relative shard paths, in first-mention order. */
  shards: string[];
  /** Tensor key → model-relative shard path. */
  weightMap: ReadonlyMap<string, string>;
}

/**
 * Why a shard name from an index is refused, or null when it names a file inside the component
 * folder. Rejected: empty names, absolute paths, "." and ".." segments, empty segments, backslashes
 * and drive letters (Windows), URL syntax (scheme ":", "?", "#", "%" escapes a URL would decode),
 * control characters.
 */
export function shardNameProblem(name: string): string | null {
  if (!name) return 'is empty';
  if (name.startsWith('/')) return 'is an absolute path';
  if (/[\\:?#%]/.test(name)) return 'holds one of \\ : ? # % (a Windows path, a URL or an escape)';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'holds a control character';
  const segments = name.split('/');
  if (segments.some((s) => s === '..')) return 'climbs out of the folder ("..")';
  if (segments.some((s) => s === '.' || s === '')) return 'has an empty or "." path segment';
  return null;
}

/** Reads and validates an index; `parsed` is its JSON (already read by the caller). */
export async function readShardIndex(source: ModelSource, indexPath: string, folder: string, parsed: unknown): Promise<ShardIndex> {
  const file = `${source.description}/${indexPath}`;
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new ConfigError('weight_map', map, 'must be an object mapping each tensor name to its shard file name', file);
  }
  const prefix = folder ? `${folder}/` : '';
  const weightMap = new Map<string, string>();
  const shards: string[] = [];
  const checked = new Map<string, string>();
  for (const [key, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string') throw new ConfigError(`weight_map["${key}"]`, shard, 'must be a shard file name (a string)', file);
    let full = checked.get(shard);
    if (full === undefined) {
      const problem = shardNameProblem(shard);
      if (problem) throw new ConfigError(`weight_map["${key}"]`, shard, `${problem}: a shard must be a file inside ${folder || 'the model folder'}/`, file);
      full = prefix + shard;
      await source.checkContained?.(folder, full);
      checked.set(shard, full);
      shards.push(full);
    }
    weightMap.set(key, full);
  }
  return { path: indexPath, shards, weightMap };
}

/** CheckpointError unless each shard holds exactly the tensors the index maps to it. */
export function checkShardContents(source: ModelSource, index: ShardIndex, files: readonly SafetensorsFile[]): void {
  const problems: CheckpointProblem[] = [];
  const held = new Set<string>();
  files.forEach((f, i) => {
    const shard = index.shards[i];
    for (const key of f.keys()) {
      held.add(key);
      const mapped = index.weightMap.get(key);
      // a key in a shard the map does not name for it: unlisted, misplaced, or a duplicate
      if (mapped !== shard) problems.push({ key, kind: 'index', expected: mapped === undefined ? 'not listed in weight_map' : `weight_map says ${mapped}`, actual: `found in ${shard}` });
    }
  });
  // a mapped key held by another shard was reported above; one held by none is missing
  for (const [key, shard] of index.weightMap) {
    if (!held.has(key)) problems.push({ key, kind: 'index', expected: `weight_map says ${shard}`, actual: 'not in that file' });
  }
  if (problems.length) throw new CheckpointError(`${source.description}/${index.path}`, problems);
}
