import type { MemberState } from './codec.js';
import type { Member } from './membership.js';

// What the membership asks of the application (memberlist's Delegate + EventDelegate). The
// registry sync implements it: the gossip layer moves these bytes around, the registry owns
// what they mean and how they merge.

export interface Delegate {
  /**
   * An update arrived (possibly one already seen: merge must be idempotent), pushed by member
   * `from`. True when it was news; a copy that was not makes the gossip layer prune the edge it
   * came over. What the delegate wants passed on it hands back with the membership's
   * broadcast(id, data).
   */
  notifyUpdate(data: Uint8Array, from?: string): boolean;
  /**
   * The name of an update, the same for every copy (the one it was broadcast with), read from
   * its bytes: pushes do not carry it beside them. null: not an update (the push is dropped).
   */
  updateId(data: Uint8Array): string | null;
  /** Push-pull leg 1, initiator: what to send first (e.g. a digest of known versions). */
  pushPullRequest(join: boolean): Uint8Array;
  /** Push-pull leg 2, answering side: the answer to leg 1 (e.g. where the digests differ). */
  pushPullAnswer(remote: Uint8Array, join: boolean): Uint8Array;
  /** Push-pull, initiator: takes the answer; returns leg 3 (what the other side lacks, what to ask of it), or null. */
  pushPullFinish(answer: Uint8Array, join: boolean): Uint8Array | null;
  /** Push-pull leg 4, answering side: merges leg 3 and answers it. */
  pushPullLast(data: Uint8Array): Uint8Array;
  /** Push-pull, initiator: merges the answer to leg 3. */
  pushPullDone(reply: Uint8Array): void;
  /** A reliable request from another member's delegate; the return value is the answer. */
  handleRequest(data: Uint8Array): Uint8Array;
  /** A member appeared or changed state (`prev` undefined: first seen). */
  notifyMember(member: Member, prev: MemberState | undefined): void;
}
