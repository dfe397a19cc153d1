import type { MemberState } from './codec.js';
import type { Member } from './membership.js';

// What the membership asks of the application (memberlist's Delegate + EventDelegate). The
// registry sync implements it: the gossip layer moves these bytes around, the registry owns
// what they mean and how they merge.

export interface Delegate {
  /**
   * An update arrived (possibly one already seen: merge must be idempotent). True when it was
   * news; a copy that was not makes the gossip layer prune the edge it came over. What the
   * delegate wants passed on it hands back with the membership's broadcast(id, data).
   */
  notifyUpdate(data: Uint8Array): boolean;
  /** Push-pull, initiator: what to send first (e.g. a digest of known versions). */
  pushPullRequest(join: boolean): Uint8Array;
  /** Push-pull, answering side: merge what came, answer (e.g. own digest + what the initiator lacks). */
  pushPullAnswer(remote: Uint8Array, join: boolean): Uint8Array;
  /** Push-pull, initiator: merge the answer; return what the other side lacks, if anything. */
  pushPullFinish(answer: Uint8Array, join: boolean): Uint8Array | null;
  /** A reliable request from another member's delegate; the return value is the answer. */
  handleRequest(data: Uint8Array): Uint8Array;
  /** A member appeared or changed state (`prev` undefined: first seen). */
  notifyMember(member: Member, prev: MemberState | undefined): void;
}
