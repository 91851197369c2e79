/**
 * @ssd/tensor — the ground every @ssd package stands on.
 *
 * - `createContext()` opens a WebGPU device (browser `navigator.gpu`, Deno, or Dawn in Node via the npm
 *   package `webgpu`) with the adapter's best limits and shader-f16 / subgroups / timestamp-query when
 *   offered; `ctx.info` reports what it got. Device loss and GPU errors become typed errors.
 * - `Tensor`s own pooled GPU buffers: `ctx.empty`, `ctx.fromData`, `t.read()`, `t.dispose()`, and
 *   `ctx.memory` for live / pooled / peak bytes; a `TensorScope` owns what a piece of code makes.
 * - Ops record into the context's encoder (`ctx.kernel`, `ctx.dispatch`); `ctx.flush()` and any
 *   readback submit. src/ops/add.ts is the smallest example of the kernel pattern (see program.ts);
 *   the ops themselves are @ssd/kernels'.
 * - Test helpers (synthetic safetensors files, key lists) are the `@ssd/tensor/testing` subpath.
 * - `SafetensorsFile` validates headers and reads tensors lazily from a `ByteSource` (file, Blob, URL);
 *   `ModelSource` + `readModelIndex` / `readComponentConfig` / `WeightStore` read diffusers folders.
 */
export * from './errors.js';
export * from './dtype.js';
export { createContext, GpuContext, napBeforeWait } from './context.js';
export type { DispatchArgs, DispatchBinding } from './context.js';
export { REQUESTED_LIMITS } from './device.js';
export type { ContextOptions, ContextInfo, ContextLimits, LimitName, OptionalFeature } from './device.js';
export { Tensor, Storage } from './tensor.js';
export { TensorScope, withScope, withScopeSync } from './scope.js';
export { sizeClass, type MemoryStats } from './pool.js';
export { prologue, packUniforms, specKey, foldWorkgroups } from './program.js';
export type { UniformLayout, UniformType, PrologueOptions } from './program.js';
export { allInOrder } from './settle.js';
export { NodeFileSource, DenoFileSource, BlobSource, HttpRangeSource } from './byte-source.js';
export type { ByteSource, HttpOptions } from './byte-source.js';
export { SafetensorsFile, SAFETENSORS_DTYPE_BYTES, MAX_HEADER_BYTES } from './safetensors.js';
export type { TensorInfo, SafetensorsDType, SafetensorsArray, UploadOptions } from './safetensors.js';
export { FolderSource, UrlSource, FileListSource, DenoFolderSource, MemorySource, openModelSource } from './model-source.js';
export type { ModelSource } from './model-source.js';
export { readModelIndex, readComponentConfig, readJson, parseJsonLenient, resolveWeightFiles, openWeightFiles } from './diffusers.js';
export type { ModelIndex, WeightFiles } from './diffusers.js';
export { WeightStore, permute, buildAndLoad, chooseComputeDtype, parameterStats } from './weights.js';
export type { TakeOptions, HostData, LoadOptions, LoadProgress } from './weights.js';
export { isNode, runtimeName, envVar } from './gpu-provider.js';
export { encodeSafetensors, safetensorsHeader, type TensorToWrite } from './safetensors-writer.js';
export type { DispatchTime } from './profiler.js';
