import type { Seg, Session } from '../session';
import type { ModuleConf } from './module-conf';
import { HOLD, ProtocolModule, SEND } from './module';
import {
  AuthReply, authReplyKind, NATIVE_PASSWORD, nativePasswordToken, PACKET_HEADER, packetLength, parseAuthSwitch,
  parseGreeting, parseHandshakeResponse,
} from './mysql-protocol';

/** Where a MySQL session's login is. */
const enum Phase {
  /** The target's greeting has not come yet: the client's handshake response waits. */
  AwaitGreeting = 0,
  /** Greeting parsed: the handshake response is rewritten when it goes. */
  HaveGreeting = 1,
  /** An authentication packet went: the client's next packet waits for the target's answer. */
  AuthSent = 2,
  /** The target asked for an auth switch: the client's next packet is its answer. */
  SwitchPending = 3,
  /** The target said OK: the client's next packet must be a command (sequence id 0). */
  AuthOk = 4,
}

/** Per-session state of the MySQL module (in `Session.proto` until the login is done). */
class MysqlSession {
  phase = Phase.AwaitGreeting;
  scramble: Buffer | null = null;
  password = '';
  /** Sequence id of the client's last authentication packet. */
  lastSeqId = 0;
}

/**
 * MySQL / MariaDB session replay: the client's captured login was computed for the online
 * server's scramble; the target sends its own. The module reads the target's greeting
 * (needs reply payloads: intercept --payload), recomputes the mysql_native_password answer
 * with the target's password from --module-conf, answers an auth switch the same way, and
 * lets the session's commands go unchanged (their sequence ids restart at 0 per command, so
 * nothing in them depends on the login). Sessions it cannot replay are skipped whole.
 */
export class MysqlModule implements ProtocolModule {
  readonly name = 'mysql';
  readonly wholeSessionsOnly = true;
  /** Logins answered for the target (handshake responses rewritten). */
  authRewritten = 0;
  /** Auth switch requests from the target answered. */
  authSwitches = 0;
  /** Sessions the target accepted (OK after the login): from then on plain replay. */
  authenticated = 0;

  constructor(private readonly conf: ModuleConf) {}

  counters(): Record<string, number> {
    return { mysqlAuthRewritten: this.authRewritten, mysqlAuthSwitches: this.authSwitches, mysqlAuthenticated: this.authenticated };
  }

  sessionStarted(s: Session): void {
    s.proto = new MysqlSession();
  }

  onResponse(s: Session, b: Buffer, off: number, end: number): string {
    const m = s.proto as MysqlSession;
    switch (m.phase) {
      case Phase.AwaitGreeting: {
        const g = parseGreeting(b, off, end);
        if (typeof g === 'string') return g;
        m.scramble = g.scramble;
        m.phase = Phase.HaveGreeting;
        return SEND;
      }
      case Phase.AuthSent:
        switch (authReplyKind(b, off, end)) {
          case AuthReply.Ok:
            m.phase = Phase.AuthOk;
            this.authenticated++;
            return SEND;
          case AuthReply.Error: return 'auth-failed';
          case AuthReply.MoreData: return 'plugin';
          case AuthReply.Switch: {
            const sw = parseAuthSwitch(b, off, end);
            if (typeof sw === 'string') return 'bad-auth-switch';
            if (sw.plugin !== NATIVE_PASSWORD) return 'plugin';
            if (sw.scramble.length < 20) return 'bad-auth-switch';
            m.scramble = sw.scramble;
            m.phase = Phase.SwitchPending;
            return SEND;
          }
          default: return 'bad-auth-reply';
        }
      default:
        return SEND;
    }
  }

  beforeSend(s: Session, seg: Seg): string {
    const m = s.proto as MysqlSession;
    const b = seg.buf;
    const p = seg.ipHdrLen + seg.tcpHdrLen;
    const end = seg.size;
    switch (m.phase) {
      case Phase.AwaitGreeting:
      case Phase.AuthSent:
        return HOLD;
      case Phase.HaveGreeting: {
        const r = parseHandshakeResponse(b, p, end);
        if (typeof r === 'string') return r;
        const pw = this.conf.users.get(r.user);
        if (pw === undefined) return 'unknown-user';
        m.password = pw;
        m.lastSeqId = r.sequenceId;
        m.phase = Phase.AuthSent;
        if (r.plugin !== NATIVE_PASSWORD) {
          // Another plugin's first answer (a MySQL 8 client starts with caching_sha2_password)
          // goes as captured: for a mysql_native_password user the target answers with an
          // auth switch, answered in turn; anything else skips the session then.
          return SEND;
        }
        const token = nativePasswordToken(pw, m.scramble!);
        // Another length would shift the session's sequence numbers: not done (see docs).
        if (token.length !== r.authLen) return 'auth-length';
        token.copy(b, r.authOff);
        seg.csumOk = false;
        this.authRewritten++;
        return SEND;
      }
      case Phase.SwitchPending: {
        // The client's answer to the auth switch: one packet, the next sequence id, 20 bytes.
        const len = packetLength(b, p, end);
        if (len < 0 || p + PACKET_HEADER + len > end || b[p + 3] !== ((m.lastSeqId + 2) & 0xff)) return 'auth-mismatch';
        const token = nativePasswordToken(m.password, m.scramble!);
        if (token.length !== len) return 'auth-length';
        token.copy(b, p + PACKET_HEADER);
        seg.csumOk = false;
        m.lastSeqId = b[p + 3];
        m.phase = Phase.AuthSent;
        this.authSwitches++;
        return SEND;
      }
      case Phase.AuthOk: {
        // The online server may have asked for an auth switch the target did not: the client's
        // packet then answers it and is not a command.
        if (packetLength(b, p, end) < 0 || b[p + 3] !== 0) return 'auth-mismatch';
        s.proto = null; // logged in: the rest is plain replay
        return SEND;
      }
    }
    return SEND;
  }
}
