/** The session engine's settings (from the command line) and the figures it is built on. */

export interface EngineOptions {
  /** `-n`: sessions per captured session. */
  copies: number;
  /** `-f`: port shift factor, to keep several tcpcopy instances apart. */
  portShift: number;
  /** `-c` addresses (empty: keep the client's). */
  clientAddrs: number[];
  /** `-c` IPv6 addresses (16 bytes each) for IPv6 sessions (empty or absent: keep the client's). */
  clientAddrs6?: Buffer[];
  /** `-H`: replaces a 127.0.0.1 client source when the target is not local. */
  localhostReplacement: number;
  /** `-r`: percentage of sessions replayed (100 = all). */
  percentage: number;
  /** `-g`: ramp the percentage up from 1 % over ~100 s. */
  gradual: boolean;
  /** `-O`: only sessions whose SYN was captured. */
  onlyFullSessions: boolean;
  /** `-W`: do not wait for a response before the next request. */
  noWait: boolean;
  /** `-M`: larger captured packets are split. */
  mtu: number;
  /** `-D`: MSS in fake SYNs. */
  mss: number;
  /**
   * `-t`: a session that hears nothing for this long (no reply from the target and no packet
   * from the client) is ended.
   */
  sessionTimeoutMs: number;
  /** `-k`: same, for idle keep-alive sessions that have nothing left to send. */
  keepaliveTimeoutMs: number;
  /** A response is taken as complete after this much silence from the target. */
  quietMs: number;
  /** ... or after this long without any response data. */
  responseTimeoutMs: number;
  /** Kept packets not yet sent, per session, before it is ended ('too-many-packets'). */
  maxSegsPerSession: number;
  /** How long an ended session stays to absorb late replies. */
  lingerMs: number;
  /** How long a session waits for a captured packet that was missed. */
  gapTimeoutMs: number;
  /**
   * Memory for captured packets not yet acknowledged by the target, all sessions together
   * (bytes, with SEG_OVERHEAD per packet); 0 = no limit. See BacklogGovernor for what happens
   * beyond it.
   */
  backlogLimitBytes: number;
}

export const DEFAULT_ENGINE_OPTIONS: EngineOptions = {
  copies: 1,
  portShift: 0,
  clientAddrs: [],
  localhostReplacement: 0,
  percentage: 100,
  gradual: false,
  onlyFullSessions: false,
  noWait: false,
  mtu: 1500,
  mss: 1460,
  sessionTimeoutMs: 60_000,
  keepaliveTimeoutMs: 180_000,
  quietMs: 20,
  responseTimeoutMs: 2000,
  maxSegsPerSession: 32768,
  lingerMs: 2000,
  gapTimeoutMs: 500,
  backlogLimitBytes: 1024 << 20,
};

/**
 * What a kept packet costs beyond its bytes: its Seg and Buffer objects and the garbage
 * collector's headroom. Measured: a backlog of ~115,000 keep-alive requests of 92 bytes took
 * ~88 MB of RSS, ~770 bytes each (with a larger backlog the share falls: 665 MB counted were
 * ~300 MB of RSS with -n 2, so the count errs on the high side).
 */
export const SEG_OVERHEAD = 640;

/** What the engine needs from the intercept links. */
export interface RouteRegistrar {
  /** True while at least one intercept is connected. */
  readonly ready: boolean;
  /** Sends CLIENT_ADD to every connected intercept; false when none took it. */
  clientAdd(clientIp: number, clientPort: number, targetIp: number, targetPort: number): boolean;
  /**
   * Sends CLIENT_ADD6 to every connected intercept that accepted the IPv6 capability (the
   * addresses are 16 bytes, valid during the call); false when none took it. Absent: no IPv6.
   */
  clientAdd6?(clientIp6: Buffer, clientPort: number, targetIp6: Buffer, targetPort: number): boolean;
}
