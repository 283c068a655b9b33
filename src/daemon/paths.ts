import * as fs from 'node:fs';
import * as path from 'node:path';
import { DaemonError, DaemonErrorCode } from '../errors';

/**
 * Checks that the directory a file of ours (-l, -P) is to be created in exists, so that a
 * mistyped path is refused with a hint instead of being created (log) or failing raw (pid).
 */
export function checkParentDir(file: string, flag: string, code: DaemonErrorCode): void {
  const dir = path.dirname(path.resolve(file));
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new DaemonError(code, `${flag} ${file}: the directory ${dir} does not exist; create it (mkdir -p ${dir}) or choose another path`);
  }
  if (!st.isDirectory()) throw new DaemonError(code, `${flag} ${file}: ${dir} is not a directory; choose another path`);
  try {
    const fst = fs.statSync(file);
    if (fst.isDirectory()) throw new DaemonError(code, `${flag} ${file} is a directory; name a file in it, e.g. ${flag} ${path.join(file, 'x')}`);
  } catch (e) {
    if (e instanceof DaemonError) throw e;
  }
}
