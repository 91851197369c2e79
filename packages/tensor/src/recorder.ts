// The command recorder: one command encoder and one open compute pass across dispatches, submitted
// as a whole (the context flushes at model/step boundaries, before a readback, and every
// maxDispatchesPerSubmit dispatches), never once per op. Uniforms go to the arena (written at the
// submit); a buffer freed while unsubmitted commands may use it is destroyed after the submit; an
// attached profiler gets one pass per dispatch, bracketed by timestamps.
import type { Profiler } from './profiler.js';
import { UniformArena } from './uniform-arena.js';

export class CommandRecorder {
  readonly uniforms: UniformArena;
  profiler: Profiler | null = null;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private commands = 0;
  private deferredDestroy: GPUBuffer[] = [];

  constructor(
    private readonly device: GPUDevice,
    uniformAlignment: number,
  ) {
    this.uniforms = new UniformArena(device, uniformAlignment);
  }

  /** Whether commands are recorded and not yet submitted. */
  get hasCommands(): boolean {
    return this.commands > 0;
  }

  /** Records one dispatch; returns how many this submit holds now. */
  dispatch(pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, [x, y, z]: readonly [number, number, number], label: string): number {
    const pass = this.profiler ? (this.endPass(), (this.pass = this.getEncoder().beginComputePass({ timestampWrites: this.profiler.next(label) }))) : this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.commands++;
    return ++this.dispatches;
  }

  /** Records a buffer-to-buffer copy, ordered with the dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number): void {
    this.endPass();
    this.getEncoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, size);
    this.commands++;
  }

  /** Destroys `b` now, or after the submit while recorded commands may still use it. */
  destroyWhenIdle(b: GPUBuffer): void {
    if (this.commands > 0) this.deferredDestroy.push(b);
    else b.destroy();
  }

  /** Destroys `b` after the next submit (the staging buffer of a recorded copy). */
  destroyAfterSubmit(b: GPUBuffer): void {
    this.deferredDestroy.push(b);
  }

  /** Submits everything recorded. Never waits. */
  submit(): void {
    if (!this.encoder) return;
    this.endPass();
    this.uniforms.upload();
    this.profiler?.resolve(this.encoder);
    this.device.queue.submit([this.encoder.finish()]);
    this.profiler?.submitted();
    this.encoder = null;
    this.restart();
  }

  /** Drops everything recorded (after a GPU error: what comes next must not inherit the failed work). */
  discard(): void {
    if (this.pass) {
      try {
        this.pass.end();
      } catch {
        /* an invalid pass may refuse to end; it is dropped either way */
      }
    }
    this.pass = null;
    this.encoder = null;
    this.uniforms.reset();
    this.restart();
  }

  /** Forgets the encoder of a device being destroyed. */
  forget(): void {
    this.encoder = null;
    this.pass = null;
  }

  private restart(): void {
    this.dispatches = 0;
    this.commands = 0;
    for (const b of this.deferredDestroy) b.destroy();
    this.deferredDestroy = [];
  }

  private getEncoder(): GPUCommandEncoder {
    return (this.encoder ??= this.device.createCommandEncoder({ label: 'ssd' }));
  }

  private computePass(): GPUComputePassEncoder {
    return (this.pass ??= this.getEncoder().beginComputePass());
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }
}
