/**
 * The original's plugin.conf syntax (nginx-like): directives `name arg[,arg...];`, `#` starts a
 * comment to the end of the line. The MySQL module knows one directive:
 *
 *     user root@123456,app@secret;
 *
 * the target's password for each user (the text after the first `@`; it may be empty). A
 * password cannot hold `,`, `;`, `#` or white space.
 */
export interface ModuleConf {
  /** Target password by user name. */
  users: Map<string, string>;
}

/** Parses the text of a module configuration file; throws an Error whose message names the line. */
export function parseModuleConf(text: string): ModuleConf {
  const users = new Map<string, string>();
  const lines = text.split('\n');
  // Directives may span lines: join, remembering where each directive started.
  let buf = '';
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const hash = lines[i].indexOf('#');
    const line = (hash >= 0 ? lines[i].slice(0, hash) : lines[i]).trim();
    if (line === '') continue;
    if (buf === '') startLine = i + 1;
    buf += (buf ? ' ' : '') + line;
    let semi: number;
    while ((semi = buf.indexOf(';')) >= 0) {
      const directive = buf.slice(0, semi).trim();
      buf = buf.slice(semi + 1).trim();
      if (directive !== '') addDirective(directive, startLine, users);
      startLine = i + 1;
    }
  }
  if (buf !== '') throw new Error(`line ${startLine}: the last directive does not end with ';'`);
  if (users.size === 0) throw new Error('no "user name@password;" directive');
  return { users };
}

function addDirective(d: string, line: number, users: Map<string, string>): void {
  const m = /^(\S+)\s+(.*)$/.exec(d);
  const name = m ? m[1] : d;
  if (name !== 'user') throw new Error(`line ${line}: unknown directive "${name}" (the one known: user name@password,...;)`);
  const args = m ? m[2].split(/\s*,\s*/) : [];
  if (args.length === 0 || args[0] === '') throw new Error(`line ${line}: "user" needs name@password items`);
  for (let k = 0; k < args.length; k++) {
    const a = args[k];
    const at = a.indexOf('@');
    // The item is not quoted: it may hold a password.
    if (at <= 0 || /\s/.test(a)) throw new Error(`line ${line}: item ${k + 1} of "user" is not name@password`);
    users.set(a.slice(0, at), a.slice(at + 1));
  }
}
