// The compiled-pipeline cache: one GPUComputePipeline per (name, spec) key, compiled on first use.
// Compilation is checked asynchronously (an error scope, then the module's compilation messages with
// the WGSL line), so a bad kernel becomes a KernelCompileError at the next call into the context
// instead of a pipeline that silently does nothing.
import { KernelCompileError } from './errors.js';
import type { DeviceWatch } from './device-watch.js';

export class KernelCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Compile checks of new kernels still waiting on the driver; ctx.sync() waits for them. */
  private readonly checks = new Set<Promise<void>>();

  constructor(
    private readonly device: GPUDevice,
    private readonly watch: DeviceWatch,
  ) {}

  get(key: string): GPUComputePipeline | undefined {
    return this.pipelines.get(key);
  }

  /** Compiles `code` under `key` (labelled with it, shortened) and caches the pipeline. */
  compile(key: string, code: string): GPUComputePipeline {
    const label = key.length > 160 ? key.slice(0, 157) + '...' : key;
    this.device.pushErrorScope('validation');
    const module = this.device.createShaderModule({ code, label });
    const pipeline = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label });
    const compiled = this.device.popErrorScope().then(async (err) => {
      if (!err || this.watch.hasError) return;
      let messages = [err.message];
      try {
        const info = await module.getCompilationInfo();
        const errs = info.messages.filter((m) => m.type === 'error');
        if (errs.length) messages = errs.map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message}\n  ${code.split('\n')[m.lineNum - 1] ?? ''}`);
      } catch {
        /* keep the scope's message */
      }
      this.watch.report(new KernelCompileError(label, messages));
    }).catch(() => {
      /* the device was lost (its own error reports that); never an unhandled rejection */
    });
    this.checks.add(compiled);
    void compiled.then(() => this.checks.delete(compiled));
    this.pipelines.set(key, pipeline);
    return pipeline;
  }

  get size(): number {
    return this.pipelines.size;
  }

  /** The compile checks still pending (empty when every kernel has reported). */
  get pendingChecks(): Promise<void>[] {
    return [...this.checks];
  }

  clear(): void {
    this.pipelines.clear();
  }
}
