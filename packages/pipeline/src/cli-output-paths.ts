// Output paths of `ssd generate` checked before anything loads (a bad --out used to fail with a raw
// EISDIR after minutes of denoising): each must not be a directory, and its folder must exist or be
// creatable and writable. Missing folders are created one level at a time with plain mkdir — Node's
// recursive mkdir loops forever on paths such as /proc/x/y.
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError } from '@ssd/tensor';

async function statOrNull(p: string) {
  try {
    return await stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw e;
  }
}

/** Checks `file` (the value of `--<flag>`) can be written, creating its folder if needed. */
export async function prepareOutputPath(flag: string, file: string): Promise<void> {
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`--${flag} ${JSON.stringify(file)}: ${why}`);
  };
  if (!file || /[\0]/.test(file)) fail('not a file name');
  const path = resolve(file);
  const st = await statOrNull(path).catch((e: Error) => fail(`cannot be checked (${e.message})`));
  if (st?.isDirectory()) fail('is a directory; give a file name, e.g. out.png');
  if (st && !st.isFile()) fail('exists and is not a regular file');
  // the folders from the nearest existing one down
  const missing: string[] = [];
  let dir = dirname(path);
  for (;;) {
    const d = await statOrNull(dir).catch((e: Error) => fail(`its folder ${dir} cannot be checked (${e.message})`));
    if (d) {
      if (!d.isDirectory()) fail(`${dir} is not a directory`);
      break;
    }
    missing.unshift(dir);
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  for (const m of missing) {
    await mkdir(m).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : fail(`cannot create its folder ${m} (${e.code ?? e.message})`)));
  }
  await access(st ? path : dirname(path), constants.W_OK).catch(() => fail(st ? 'is not writable' : `its folder ${dirname(path)} is not writable`));
}
