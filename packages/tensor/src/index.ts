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
 * - A `TensorSource` is any source of named tensors (a component's safetensors files, a component of a
 *   single SGM checkpoint, a GGUF file); `SingleFileSource` presents an SGM / A1111 / ComfyUI /
 *   stable-diffusion.cpp checkpoint (.safetensors or .gguf) as a diffusers folder, its architecture
 *   read from the keys and shapes. `GgufFile` reads GGUF; quantized tensors reach kernels that ask for
 *   them (`WeightStore.take(…, { allowQuantized: true })`) as `QuantizedWeight`s.
 */
// The public types use WebGPU's (GPUDevice, GPUBuffer …), which no TypeScript lib ships yet: the emitted
// index.d.ts names @webgpu/types (a dependency) so that an installed @ssd type-checks without setup.
/// <reference types="@webgpu/types" preserve="true" />
export * from './errors.js';
export * from './dtype.js';
export { createContext, GpuContext, napBeforeWait } from './context.js';
export type { DispatchArgs, DispatchBinding } from './context.js';
export { REQUESTED_LIMITS } from './device.js';
export type { ContextOptions, ContextInfo, ContextLimits, LimitName, OptionalFeature } from './device.js';
export { Tensor, Storage } from './tensor.js';
export { TensorScope, withScope, withScopeSync } from './scope.js';
export { QUANT_BLOCKS, quantizedByteSize, type QuantType, type QuantizedWeight } from './quantized.js';
export { GgufFile, GGUF_DEFAULT_ALIGNMENT } from './gguf/gguf-file.js';
export type { GgufTensorInfo, GgufKeyValue } from './gguf/gguf-file.js';
export type { GgufValue } from './gguf/gguf-header.js';
export { GGML_TYPES, ggmlTypeByName, type GgmlType } from './gguf/ggml-types.js';
export { dequantizeBlocks } from './gguf/dequantize.js';
export { quantizeBlocks } from './gguf/quantize.js';
export { quantizeRowsSdcpp } from './gguf/quantize-sdcpp.js';
export { writeGguf, ggufHeader, type GgufTensorToWrite, type WriteGgufOptions } from './gguf/gguf-writer.js';
export { CONV_FALLBACK_TYPES, convExportType, exportType, parseTypeRules, sdcppConverts, WRITABLE_TYPES, type TypeRule, type WritableType } from './gguf/type-rules.js';
export { quantizeModelToGguf, type QuantizeModelOptions, type QuantizeModelResult } from './gguf/quantize-model.js';
export { sizeClass, type MemoryStats } from './pool.js';
export { prologue, packUniforms, specKey, foldWorkgroups } from './program.js';
export type { UniformLayout, UniformType, PrologueOptions } from './program.js';
export { allInOrder } from './settle.js';
export { NodeFileSource, DenoFileSource, BlobSource, HttpRangeSource } from './byte-source.js';
export type { ByteSource, HttpOptions } from './byte-source.js';
export { SafetensorsFile, SAFETENSORS_DTYPE_BYTES, MAX_HEADER_BYTES } from './safetensors.js';
export type { TensorInfo, SafetensorsDType, SafetensorsArray, UploadOptions } from './safetensors.js';
export {
  fileRangeEntry, reshapedEntry, rowSliceEntry, rowsOfBlocks, concatRowsEntry, transposedEntry, readEntryBytes, readEntry, readEntryFloat32, readEntryAs,
  uploadEntry, uploadEntryInto, entryError, TensorMap, mergeTensorSources,
} from './tensor-source.js';
export type { TensorEntry, TensorSource, QuantizedBlocks } from './tensor-source.js';
export { openComponentTensors, isTensorModelSource } from './component-tensors.js';
export type { TensorModelSource, ComponentTensorOptions } from './component-tensors.js';
export { LayeredModelSource } from './layered-source.js';
export { SingleFileSource, openByteSource, openTensorFile, SDXL_COMPONENTS } from './sgm/single-file-source.js';
export type { SingleFileOptions } from './sgm/single-file-source.js';
export { classifyCheckpoint, SGM_PREFIXES } from './sgm/checkpoint-kind.js';
export type { CheckpointKind, SdxlComponent } from './sgm/checkpoint-kind.js';
export { SDXL_SCHEDULER_CONFIG } from './sgm/sdxl-defaults.js';
export { componentToSgm, pipelineToSgm } from './sgm/to-sgm.js';
export { writeDiffusersFolder, writeSingleFile } from './sgm/convert.js';
export type { ConvertOptions, FolderConvertOptions } from './sgm/convert.js';
export { writeSafetensors, NodeFileSink, NodeFolderSink, WritableStreamSink } from './safetensors-stream.js';
export type { ByteSink, FolderSink, WriteProgress, WriteSafetensorsOptions } from './safetensors-stream.js';
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS } from './http.js';
export type { HttpTimeouts } from './http.js';
export { FolderSource, UrlSource, FileListSource, DenoFolderSource, MemorySource, openModelSource, MAX_TEXT_BYTES } from './model-source.js';
export type { ModelSource, SourceOptions } from './model-source.js';
export { readModelIndex, readComponentConfig, readJson, parseJsonLenient, resolveWeightFiles, openWeightFiles } from './diffusers.js';
export { shardNameProblem } from './shard-index.js';
export type { ShardIndex } from './shard-index.js';
export type { ModelIndex, WeightFiles } from './diffusers.js';
export { WeightStore, buildAndLoad, chooseComputeDtype } from './weights.js';
export { permute } from './host-permute.js';
export { parameterStats } from './parameter-stats.js';
export type { TakeOptions, HostData, LoadOptions, LoadProgress } from './weights.js';
export { isNode, runtimeName, envVar, quietPolling } from './gpu-provider.js';
export { encodeSafetensors, safetensorsHeader, type TensorToWrite } from './safetensors-writer.js';
export type { DispatchTime } from './profiler.js';
