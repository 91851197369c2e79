/**
 * @ssd/pipeline/browser — browser helpers: a weight cache for models loaded by URL.
 *
 * ```ts
 * const source = new CachedUrlSource('https://huggingface.co/segmind/SSD-1B/resolve/main', { onProgress });
 * const pipe = await StableDiffusionXLPipeline.fromPretrained(source, { variant: 'fp16' });
 * await listCachedModels();            // [{ base, storage: 'opfs', files, sizeBytes, partialBytes }]
 * await clearCachedModels(source.base);
 * ```
 * Safe to import anywhere: without OPFS or the Cache API (Node) the source simply downloads.
 */
export { CachedUrlSource, listCachedModels, clearCachedModels, weightCacheStorage } from './weight-cache.js';
export type { CachedUrlSourceOptions, CacheProgress } from './weight-cache.js';
export { StorageQuotaError, fmtBytes } from './store.js';
export type { CachedModel, EntryMeta, StorageKind } from './store.js';
