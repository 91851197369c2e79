// Device creation: the adapter (the best, or the one SSD_ADAPTER / `adapter` names), its optional
// features (shader-f16, subgroups, timestamp-query, minus those disabled), the device with the
// adapter's best limits, and what the context reports about it (ContextInfo, computed once here,
// including whether the adapter is a CPU implementation of WebGPU).
import { DeviceLimitError } from './errors.js';
import { envVar, getGpu, runtimeName } from './gpu-provider.js';

/** Limits the context asks the adapter for (its best values) and reports. */
export const REQUESTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;
export type LimitName = (typeof REQUESTED_LIMITS)[number];
export type ContextLimits = Record<LimitName, number>;

export type OptionalFeature = 'shader-f16' | 'subgroups' | 'timestamp-query';
const OPTIONAL_FEATURES: OptionalFeature[] = ['shader-f16', 'subgroups', 'timestamp-query'];

export interface ContextOptions {
  /** A WebGPU implementation to use instead of navigator.gpu / the `webgpu` package. */
  gpu?: GPU;
  /** Pick the adapter whose description/vendor/device contains this (default: env SSD_ADAPTER). */
  adapter?: string;
  powerPreference?: GPUPowerPreference;
  /** Features not to use even when offered (e.g. ['shader-f16'] to run everything in f32). */
  disableFeatures?: OptionalFeature[];
  /** Lower the limits the context works with (tests of the limit guards; small-device simulation). */
  limits?: Partial<ContextLimits>;
  /** Allocation beyond this many GPU bytes fails up front with DeviceLimitError. */
  memoryBudgetBytes?: number;
  /** The pool keeps at most this many free bytes (default 512 MiB). */
  maxPooledBytes?: number;
  /** Submit automatically after this many recorded dispatches (default 256). */
  maxDispatchesPerSubmit?: number;
  label?: string;
}

export interface ContextInfo {
  runtime: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /**
   * A CPU implementation of WebGPU (lavapipe/llvmpipe, SwiftShader, WARP, or any fallback adapter):
   * kernels pick register tiles and uniform loop bounds there, benchmarks run reduced sizes.
   */
  isCpu: boolean;
  /** Features the device was created with. */
  features: string[];
  /** Optional features the adapter offered but the caller disabled. */
  disabledFeatures: string[];
  limits: ContextLimits;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
}

/** A device ready for a context: the limits it works with and what it reports. */
export interface OpenedDevice {
  device: GPUDevice;
  limits: ContextLimits;
  info: ContextInfo;
}

/** Requests the adapter and the device, with the adapter's best limits and the optional features. */
export async function openDevice(options: ContextOptions = {}): Promise<OpenedDevice> {
  const filter = options.adapter ?? envVar('SSD_ADAPTER');
  const gpu = options.gpu ?? (await getGpu(filter));
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) {
    throw new DeviceLimitError('a WebGPU adapter', 1, 0, `no WebGPU adapter${filter ? ` matching "${filter}"` : ''} was found (on Linux without a GPU, install Mesa's lavapipe: see the README)`);
  }
  const ai = adapter.info;
  const text = `${ai.vendor} ${ai.architecture} ${ai.device} ${ai.description}`.toLowerCase();
  if (filter && !options.gpu && !text.includes(filter.toLowerCase()) && runtimeName() !== 'node') {
    throw new DeviceLimitError('an adapter matching', filter, `${ai.vendor} ${ai.description}`);
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
  const requiredLimits: Record<string, number> = {};
  for (const name of REQUESTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    if (typeof v === 'number') requiredLimits[name] = v;
  }
  const device = await adapter.requestDevice({
    label: options.label ?? 'ssd',
    requiredFeatures: features as GPUFeatureName[],
    requiredLimits,
  });
  const limits = workingLimits(device, options);
  const info = describe(adapter, device, limits, [...disabled].filter((f) => adapter.features.has(f)));
  return { device, limits, info };
}

/** The device's limits, lowered where the options ask for less. */
function workingLimits(device: GPUDevice, options: ContextOptions): ContextLimits {
  const limits = {} as ContextLimits;
  for (const name of REQUESTED_LIMITS) {
    const dev = (device.limits as unknown as Record<string, number>)[name];
    const asked = options.limits?.[name];
    limits[name] = asked !== undefined ? Math.min(asked, dev) : dev;
  }
  return Object.freeze(limits);
}

function describe(adapter: GPUAdapter, device: GPUDevice, limits: ContextLimits, disabledFeatures: string[]): ContextInfo {
  const ai = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const isFallbackAdapter = !!(ai as { isFallbackAdapter?: boolean }).isFallbackAdapter || !!(adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return Object.freeze({
    runtime: runtimeName(),
    vendor: ai.vendor,
    architecture: ai.architecture,
    device: ai.device,
    description: ai.description || `${ai.vendor} ${ai.architecture}`.trim(),
    isFallbackAdapter,
    isCpu: isFallbackAdapter || /cpu|software|llvmpipe|lavapipe|swiftshader|warp/i.test(`${ai.architecture} ${ai.device} ${ai.description}`),
    features: [...device.features].sort(),
    disabledFeatures,
    limits,
    subgroupMinSize: ai.subgroupMinSize,
    subgroupMaxSize: ai.subgroupMaxSize,
  });
}
