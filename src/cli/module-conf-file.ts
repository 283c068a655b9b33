import * as fs from 'node:fs';
import { UsageError } from '../errors';
import { parseModuleConf } from '../tcpcopy/modules/module-conf';
import type { ProtocolModule } from '../tcpcopy/modules/module';
import { MysqlModule } from '../tcpcopy/modules/mysql';

/** The protocol modules `--module` knows ('plain' is no module). */
export const MODULE_NAMES = ['plain', 'mysql'];

/**
 * `--module NAME --module-conf FILE` → the module, or a UsageError with one line saying what
 * to do. The file holds passwords: it is refused when other users may read or change it.
 */
export function loadModule(name: string | undefined, confPath: string | undefined, payload: boolean): ProtocolModule | null {
  if (name === undefined || name === 'plain') {
    if (confPath !== undefined) throw new UsageError(`--module-conf ${confPath} is for a protocol module: add --module mysql`);
    return null;
  }
  if (!MODULE_NAMES.includes(name)) throw new UsageError(`--module ${name}: unknown protocol module; the known ones: ${MODULE_NAMES.join(', ')}`);
  if (confPath === undefined) throw new UsageError(`--module ${name} needs --module-conf FILE with the target's passwords, e.g. a file holding "user app@secret;" (mode 600)`);
  if (!payload) {
    throw new UsageError(`--module ${name} reads the target's greeting: add --payload here, and run intercept with --payload (the original intercept: built --with-resp-payload)`, 'missing-flag');
  }
  let st: fs.Stats;
  let text: string;
  try {
    st = fs.statSync(confPath);
    if (!st.isFile()) throw new Error('not a regular file');
    text = fs.readFileSync(confPath, 'utf8');
  } catch (e) {
    throw new UsageError(`--module-conf ${confPath}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if ((st.mode & 0o077) !== 0) {
    throw new UsageError(`--module-conf ${confPath} holds passwords and other users may read it (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}): chmod 600 ${confPath}`);
  }
  let conf;
  try {
    conf = parseModuleConf(text);
  } catch (e) {
    throw new UsageError(`--module-conf ${confPath}: ${(e as Error).message}`);
  }
  return new MysqlModule(conf);
}
