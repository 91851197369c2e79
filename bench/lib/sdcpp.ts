// What bench:peer-sdcpp reads from the machine and from stable-diffusion.cpp: the CPU (model, cores,
// SIMD, clock and the fp32 FMA peak they give) and the stage times in sd-cli's verbose log (the lines
// ../shared/peers/sdcpp/side-by-side.sh greps).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export interface CpuRecord {
  cpuModel: string;
  vendor: string;
  family: number | null;
  cpus: number;
  mhz: number | null;
  /** The widest FMA: 'avx512' | 'avx2' | 'none'. */
  simd: string;
  /** fp32 FLOP per cycle per core assumed for the peak, and why. */
  flopPerCycle: number;
  peakNote: string;
  fp32FmaPeakGflops: number | null;
  /** The peak of sd-cli's build (AVX2 + FMA, no AVX-512). */
  avx2PeakGflops: number | null;
}

/** `lscpu` (and /proc/cpuinfo for the clock a VM reports) → the CPU and its fp32 FMA peak. */
export function cpuRecord(lscpu = run('lscpu'), cpuinfo = read('/proc/cpuinfo')): CpuRecord {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(lscpu)?.[1].trim();
  const flags = new Set((field('Flags') ?? '').split(/\s+/));
  const vendor = field('Vendor ID') ?? '';
  const family = field('CPU family') ? Number(field('CPU family')) : null;
  const cpus = Number(field('CPU\\(s\\)') ?? availableParallelism());
  // the maximum clock when lscpu knows it, else what /proc/cpuinfo says (VMs), else BogoMIPS / 2
  const mhzText = field('CPU max MHz') ?? /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1] ?? (field('BogoMIPS') ? String(Number(field('BogoMIPS')) / 2) : undefined);
  const mhz = mhzText ? Number(mhzText) : null;
  const fma = flags.has('fma');
  const avx2 = flags.has('avx2') && fma;
  const avx512 = flags.has('avx512f') && fma;
  let flopPerCycle = fma ? 16 : 8;
  let peakNote = fma ? 'FMA on 128-bit vectors, 2 pipes' : 'no FMA: mul + add on 128-bit vectors';
  if (avx512 && vendor === 'AuthenticAMD' && family !== null && family < 26) {
    flopPerCycle = 32;
    peakNote = 'Zen 4 (family 25) runs AVX-512 on 256-bit pipes: 2 FMA pipes × 8 lanes × 2';
  } else if (avx512) {
    flopPerCycle = 64;
    peakNote = '2 AVX-512 FMA pipes × 16 lanes × 2 (parts with one 512-bit FMA pipe have half)';
  } else if (avx2) {
    flopPerCycle = 32;
    peakNote = '2 AVX2 FMA pipes × 8 lanes × 2';
  }
  const peak = (perCycle: number) => (mhz ? Math.round((cpus * mhz * perCycle) / 1000) : null);
  return {
    cpuModel: field('Model name') ?? 'unknown',
    vendor,
    family,
    cpus,
    mhz,
    simd: avx512 ? 'avx512' : avx2 ? 'avx2' : 'none',
    flopPerCycle,
    peakNote,
    fp32FmaPeakGflops: peak(flopPerCycle),
    avx2PeakGflops: avx2 ? peak(32) : null,
  };
}

export interface SdcppTimes {
  textEncodeS?: number;
  /** Seconds of each sampling step (step 1 includes loading the UNet). */
  stepS: number[];
  decodeS?: number;
  totalS?: number;
}

/** Stage times from sd-cli -v output (progress lines are separated by carriage returns). */
export function parseSdcppLog(log: string): SdcppTimes {
  const text = log.replace(/\r/g, '\n');
  const num = (re: RegExp) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  // the progress bar prints "i/n - X.XXs/it" (the time of step i; "it/s" when under a second), possibly
  // more than once per step: keep the last per i
  const byStep = new Map<number, number>();
  for (const m of text.matchAll(/(\d+)\/(\d+) - ([\d.]+)(s\/it|it\/s)/g)) byStep.set(Number(m[1]), m[4] === 's/it' ? Number(m[3]) : 1 / Number(m[3]));
  return {
    textEncodeS: num(/get_learned_condition completed, taking ([\d.]+)s/),
    stepS: [...byStep.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s),
    decodeS: num(/decode_first_stage completed, taking ([\d.]+)s/),
    totalS: num(/generate_image completed in ([\d.]+)s/) ?? num(/txt2img completed in ([\d.]+)s/),
  };
}

function run(cmd: string): string {
  try {
    return execFileSync(cmd, { encoding: 'utf8' });
  } catch {
    return '';
  }
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
