// The uniform arena: every dispatch of a submit gets its uniforms from a slot in one 1 MiB uniform
// buffer (more buffers when a submit outgrows one), instead of a buffer per dispatch. Slots are
// written to a host mirror while recording and copied to the GPU in a few writeBuffer calls at the
// submit; after it, the slots are reused (ggml's webgpu_param_arena does the same).

const ARENA_BYTES = 1 << 20;

export class UniformArena {
  private readonly buffers: GPUBuffer[] = [];
  private readonly mirrors: Uint8Array[] = [];
  private index = 0;
  private offset = 0;
  /** Byte ranges written since the last submit, merged while contiguous. */
  private pending: { arena: number; from: number; to: number }[] = [];

  /** `alignment`: minUniformBufferOffsetAlignment. */
  constructor(
    private readonly device: GPUDevice,
    private readonly alignment: number,
  ) {}

  /** A slot holding `bytes` for this submit; its contents reach the GPU at upload(). */
  slot(bytes: ArrayBuffer): GPUBufferBinding {
    const size = bytes.byteLength;
    if (this.offset + size > ARENA_BYTES) {
      this.index++;
      this.offset = 0;
    }
    while (this.buffers.length <= this.index) {
      this.buffers.push(this.device.createBuffer({ size: ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'uniform arena' }));
      if (this.mirrors.length < this.buffers.length) this.mirrors.push(new Uint8Array(ARENA_BYTES));
    }
    const arena = this.index;
    const offset = this.offset;
    this.mirrors[arena].set(new Uint8Array(bytes), offset);
    const last = this.pending[this.pending.length - 1];
    if (last && last.arena === arena) last.to = offset + size;
    else this.pending.push({ arena, from: offset, to: offset + size });
    this.offset = Math.ceil((offset + size) / this.alignment) * this.alignment;
    return { buffer: this.buffers[arena], offset, size };
  }

  /** Queues the writes of this submit's slots (call right before the submit), then starts over. */
  upload(): void {
    for (const w of this.pending) {
      this.device.queue.writeBuffer(this.buffers[w.arena], w.from, this.mirrors[w.arena] as Uint8Array<ArrayBuffer>, w.from, w.to - w.from);
    }
    this.reset();
  }

  /** Starts over without writing (the recorded work was dropped). */
  reset(): void {
    this.pending = [];
    this.index = 0;
    this.offset = 0;
  }
}
