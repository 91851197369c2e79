// bench:peer-sdcpp's readers: the fp32 FMA peak from lscpu (AVX2, Zen 4's half-rate AVX-512, Intel
// AVX-512) and the stage times of sd-cli's verbose log (carriage-return progress lines, it/s under a second).
import { describe, expect, it } from 'vitest';
import { cpuRecord, parseSdcppLog } from '../lib/sdcpp.js';

const lscpu = (vendor: string, family: number, flags: string, extra = '') =>
  `CPU(s):                                  2\nVendor ID:                               ${vendor}\nModel name:                              Test CPU\nCPU family:                              ${family}\nBogoMIPS:                                5192.27\n${extra}Flags:                                   fpu sse2 ${flags}\n`;

describe('cpuRecord', () => {
  it('gives the fp32 FMA peak from the cores, the clock and the widest FMA', () => {
    const zen4 = cpuRecord(lscpu('AuthenticAMD', 25, 'fma avx2 avx512f'), 'cpu MHz\t\t: 2596.138\n');
    expect(zen4).toMatchObject({ cpuModel: 'Test CPU', cpus: 2, mhz: 2596.138, simd: 'avx512', flopPerCycle: 32, fp32FmaPeakGflops: 166, avx2PeakGflops: 166 });
    const intel = cpuRecord(lscpu('GenuineIntel', 6, 'fma avx2 avx512f', 'CPU max MHz:                             3000.0000\n'), '');
    expect(intel).toMatchObject({ mhz: 3000, simd: 'avx512', flopPerCycle: 64, fp32FmaPeakGflops: 384, avx2PeakGflops: 192 });
    const avx2 = cpuRecord(lscpu('AuthenticAMD', 23, 'fma avx2'), ''); // no clock but BogoMIPS
    expect(avx2).toMatchObject({ mhz: 2596.135, simd: 'avx2', flopPerCycle: 32, fp32FmaPeakGflops: 166 });
  });
});

describe('parseSdcppLog', () => {
  it('reads text-encode, per-step and decode times', () => {
    const log = [
      '[INFO ] stable-diffusion.cpp:1 - get_learned_condition completed, taking 9.12s',
      '  |=====>      | 1/3 - 39.10s/it\r  |=====>      | 1/3 - 39.10s/it\r  |==========> | 2/3 - 35.05s/it\r  |===========| 3/3 - 1.25it/s',
      '[INFO ] stable-diffusion.cpp:2 - decode_first_stage completed, taking 64.20s',
      '[INFO ] stable-diffusion.cpp:3 - generate_image completed in 190.50s',
    ].join('\n');
    expect(parseSdcppLog(log)).toEqual({ textEncodeS: 9.12, stepS: [39.1, 35.05, 0.8], decodeS: 64.2, totalS: 190.5 });
    expect(parseSdcppLog('nothing')).toEqual({ textEncodeS: undefined, stepS: [], decodeS: undefined, totalS: undefined });
  });
});
