// The live seat map's state, fed by the messages of /topic/events/{id}/seats (SPEC §6).
//
// Theory of operation: after SUBSCRIBE the first MESSAGE is a snapshot carrying every seat's
// status and the `seq` it is current with; then deltas follow, each with `seq` one higher than
// the last and the latest status of each seat that changed. So:
//
//   phase            message                      outcome
//   awaiting         snapshot                     replace everything, phase live
//   awaiting         delta                        ignored (it cannot be placed without a base)
//   live             snapshot                     replace everything (a resubscribe's answer)
//   live             delta, seq == last + 1       applied
//   live             delta, seq <= last           stale: ignored (statuses are absolute, so a
//                                                 repeat is harmless, but never roll back)
//   live             delta, seq > last + 1        gap: phase resync, the caller resubscribes
//   resync           delta                        ignored until the fresh snapshot arrives
//   awaiting         delta with since == last,    a resume's answer (SUBSCRIBE with
//                    after a live phase           `resume-seq: last`): applied, phase live
//
// After a reconnect the page subscribes with `resume-seq` (see `resumeFrom`) when its map was
// live: the server answers with one delta of every change since (`since`), or a snapshot.
//
// No I/O and no DOM here: the canvas and the STOMP connection sit on either side.

import type { SeatStatus } from '../shared/types';

/** Status codes stored per seat (one byte each, so 100,000 seats cost 100 kB). */
export const Code = {
  Unknown: 0,
  Available: 1,
  Held: 2,
  Sold: 3,
  Blocked: 4,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const CODE_OF: Record<SeatStatus, Code> = {
  available: Code.Available,
  held: Code.Held,
  sold: Code.Sold,
  blocked: Code.Blocked,
};

const STATUS_OF: (SeatStatus | undefined)[] = [undefined, 'available', 'held', 'sold', 'blocked'];

export function codeOf(status: string): Code {
  return CODE_OF[status as SeatStatus] ?? Code.Unknown;
}

export function statusOfCode(code: Code): SeatStatus | undefined {
  return STATUS_OF[code];
}

export interface SnapshotMessage {
  type: 'snapshot';
  event_id?: number;
  seq: number;
  seats: [string, string][];
}

export interface DeltaMessage {
  type: 'delta';
  event_id?: number;
  seq: number;
  changes: [string, string][];
  /** Only on the answer to a resume: the seq it continues from. */
  since?: number;
}

export type SeatMessage = SnapshotMessage | DeltaMessage;

export type Phase = 'awaiting' | 'live' | 'resync';

export type ApplyResult =
  /** Everything may have changed: redraw the whole map. */
  | { kind: 'snapshot' }
  /** These seat indices changed status: redraw just them. */
  | { kind: 'delta'; changed: number[] }
  /** Nothing to do (stale, or no base to apply it to). */
  | { kind: 'ignored'; reason: 'stale' | 'awaiting' | 'resync' | 'other-event' }
  /** A delta was missed: resubscribe for a fresh snapshot. */
  | { kind: 'gap'; expected: number; got: number };

/** A MESSAGE body as a seat message, or null when it is not one (never throws). */
export function parseSeatMessage(body: string): SeatMessage | null {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof data !== 'object' || data === null) return null;
  const m = data as Record<string, unknown>;
  if (typeof m.seq !== 'number') return null;
  if (m.type === 'snapshot' && Array.isArray(m.seats)) return m as unknown as SnapshotMessage;
  if (m.type === 'delta' && Array.isArray(m.changes)) return m as unknown as DeltaMessage;
  return null;
}

export class SeatMapState {
  private readonly codes: Uint8Array;
  private _seq = -1;
  private _phase: Phase = 'awaiting';
  /** The statuses are those of `_seq` exactly (live until a reset, not after a gap). */
  private _whole = false;

  /**
   * @param index seat id → index into the map's arrays (the geometry's order)
   * @param eventId when given, messages naming another event are ignored
   */
  constructor(
    private readonly index: ReadonlyMap<string, number>,
    private readonly eventId?: number,
  ) {
    this.codes = new Uint8Array(index.size);
  }

  get seq(): number {
    return this._seq;
  }

  get phase(): Phase {
    return this._phase;
  }

  get size(): number {
    return this.codes.length;
  }

  code(i: number): Code {
    return (this.codes[i] ?? Code.Unknown) as Code;
  }

  status(seatId: string): SeatStatus | undefined {
    const i = this.index.get(seatId);
    return i === undefined ? undefined : statusOfCode(this.code(i));
  }

  /** (Re)subscribing: keep the statuses on screen, but accept nothing until a snapshot (or
   * the answer to a resume from `resumeFrom()`). */
  reset(): void {
    this._whole = this._phase === 'live';
    this._phase = 'awaiting';
  }

  /** The seq to send as `resume-seq` with the next SUBSCRIBE, or null (then: a snapshot). */
  resumeFrom(): number | null {
    return this._seq >= 0 && (this._whole || this._phase === 'live') ? this._seq : null;
  }

  apply(message: SeatMessage): ApplyResult {
    if (this.eventId !== undefined && message.event_id !== undefined &&
        message.event_id !== this.eventId) {
      return { kind: 'ignored', reason: 'other-event' };
    }
    if (message.type === 'snapshot') {
      this.codes.fill(Code.Unknown);
      for (const [id, status] of message.seats) {
        const i = this.index.get(id);
        if (i !== undefined) this.codes[i] = codeOf(status);
      }
      this._seq = message.seq;
      this._phase = 'live';
      return { kind: 'snapshot' };
    }
    if (message.since !== undefined) {
      if (this._phase === 'awaiting' && this._whole && message.since === this._seq) {
        this._phase = 'live';
        return this.merge(message);
      }
      return { kind: 'ignored', reason: this._phase === 'live' ? 'stale' : this._phase };
    }
    if (this._phase !== 'live') return { kind: 'ignored', reason: this._phase };
    if (message.seq <= this._seq) return { kind: 'ignored', reason: 'stale' };
    if (message.seq !== this._seq + 1) {
      this._phase = 'resync';
      this._whole = false;
      return { kind: 'gap', expected: this._seq + 1, got: message.seq };
    }
    return this.merge(message);
  }

  private merge(message: DeltaMessage): ApplyResult {
    const changed: number[] = [];
    for (const [id, status] of message.changes) {
      const i = this.index.get(id);
      if (i === undefined) continue;
      const code = codeOf(status);
      if (this.codes[i] !== code) {
        this.codes[i] = code;
        changed.push(i);
      }
    }
    this._seq = message.seq;
    return { kind: 'delta', changed };
  }
}

/**
 * Reconciling the user's picks with the live map (after a delta, or the fresh snapshot of a
 * reconnect): the picked seats it now shows as held, sold or blocked. A seat whose status is not
 * known (no snapshot yet, not in the layout) is kept: only the map's word takes a pick away.
 */
export function unavailablePicks(picked: readonly string[], statusOf: (seatId: string) => SeatStatus | undefined): string[] {
  return picked.filter((id) => {
    const status = statusOf(id);
    return status !== undefined && status !== 'available';
  });
}
