// The event page's state: the event, the user's place in its waiting room, the seats they
// picked, their hold and its payment. One zustand store; the seat map reads the selection from
// it and the panels render from it.
//
// The flow (SPEC §5, §6): [join the queue → admitted, with an admission token] → pick seats →
// hold them (all or nothing, X-Admission-Token) → pay (Idempotency-Key) → tickets.
// An admission and a hold survive a reload (localStorage, per event); the server stays the judge:
// the queue is re-read on load and a kept hold is re-read before it is shown.
//
// Errors know what caused them (`errorCause`) so they can go away by themselves when that is
// over: "could not reach the server" when the live connection is back, "you need an admission"
// once the waiting room admits the user.

import { create } from 'zustand';

import { deadlineOf, type Deadline } from '../hold/countdown';
import { ApiError, describeError, isNetworkError } from '../shared/http';
import { load, save } from '../shared/storage';
import type { BestAvailableRequest, EventDetail, EventStatusPush, Hold, Order, QueuePosition, SeatStatus } from '../shared/types';
import { api } from './api';
import { bestAvailableFailure } from './bestAvailable';
import { randomKey } from './ids';
import { keepOrder, rememberEmail, keptOrders } from './orders';
import { solveProof } from './pow';
import { seatWords, takenMessage } from './seats';

/** How far along the waiting room a state is; positions never move backwards. */
const STAGE: Record<QueuePosition['state'], number> = {
  waiting: 0,
  paused: 0,
  sold_out: 0,
  admitted: 1,
  expired: 2,
  closed: 2,
  not_joined: -1, // never applied: api.queueMe answers null for it
};

export interface ActiveHold extends Hold {
  deadline: Deadline;
}

export interface Admission {
  token: string;
  expiresAt: string;
}

export const TEST_CARDS = [
  { token: 'tok_visa', label: 'Visa •••• 4242 (approved)' },
  { token: 'tok_declined', label: 'Card declined' },
  { token: 'tok_error', label: 'Gateway error' },
  { token: 'tok_timeout', label: 'Gateway timeout (slow)' },
] as const;

type Busy = 'hold' | 'release' | 'pay' | 'join' | null;

/** What an error is about, when it can end by itself: no answer from the server (ends when the
 *  connection is back), no admission (ends when the waiting room admits the user). */
export type ErrorCause = 'network' | 'admission';

export interface ShopState {
  eventId: number | null;
  event: EventDetail | null;
  loadError: string | null;
  /** The HTTP status of the failed load (404: no such event; 0: no answer). */
  loadStatus: number | null;
  /** The user's waiting-room status; null when they have not joined (or no waiting room). */
  queue: QueuePosition | null;
  /** Whether `queue` has been read from the server since the page opened. */
  queueKnown: boolean;
  admission: Admission | null;
  selected: string[];
  hold: ActiveHold | null;
  /** Seats of this event bought in this browser (their tickets). */
  bought: string[];
  /** Seats the map should bring into view (set when best available held seats the user has not
   *  seen yet); a new array each time. */
  reveal: string[] | null;
  busy: Busy;
  /** Joining: the proof of work's progress (0..1) while the browser solves it, else null. */
  proofProgress: number | null;
  /** The problem to show (data-testid="error-message"). */
  error: string | null;
  errorCause: ErrorCause | null;
  /** Good or neutral news (a hold released, an admission that lapsed). */
  notice: string | null;
  /** Reused only to retry a payment that got no answer, with the same card and address. */
  payment: { key: string; card: string; email: string } | null;

  open(eventId: number): Promise<void>;
  /** Read the event again (its sale may have been paused, closed or reopened since it loaded);
   *  the layout stays as loaded, so the seat map is not rebuilt. */
  refreshEvent(): Promise<void>;
  /** The event's status topic says its sale changed (paused, reopened, closed, the waiting
   *  room turned on or off): take it in, keeping the rest of the event as loaded. */
  applyStatus(push: EventStatusPush): void;
  leave(): void;
  applyPosition(position: QueuePosition): void;
  join(): Promise<void>;
  toggleSeat(seatId: string, status: SeatStatus | undefined): void;
  /** Seats of the selection the live map shows taken by someone else. */
  dropTaken(seatIds: string[]): void;
  placeHold(): Promise<void>;
  /** Let the server pick and hold the best seats (SPEC §5 best available). */
  holdBest(request: BestAvailableRequest): Promise<void>;
  releaseHold(): Promise<void>;
  holdLapsed(): void;
  pay(card: string, email: string): Promise<Order | null>;
  dismiss(): void;
  /** The live connection is back: errors about not reaching the server are over. */
  connectionBack(): void;
}

const admissionKey = (eventId: number): string => `admission.${eventId}`;
const holdKey = (eventId: number): string => `hold.${eventId}`;

/** Whether the user may hold seats now (the waiting room, when on, admitted them). */
export function canShop(state: Pick<ShopState, 'event' | 'admission'>): boolean {
  if (!state.event) return false;
  return !state.event.waiting_room || state.admission !== null;
}

const EMPTY = {
  eventId: null,
  event: null,
  loadError: null,
  loadStatus: null,
  queue: null,
  queueKnown: false,
  admission: null,
  selected: [],
  hold: null,
  bought: [],
  reveal: null,
  busy: null,
  proofProgress: null,
  error: null,
  errorCause: null,
  notice: null,
  payment: null,
} satisfies Partial<ShopState>;

export const useShop = create<ShopState>()((set, get) => {
  /** Apply `update` only if the page still shows `eventId` (answers may arrive after leaving). */
  const setFor = (eventId: number, update: Partial<ShopState>): void => {
    if (get().eventId === eventId) set(update);
  };

  const setAdmission = (eventId: number, admission: Admission | null): void => {
    save(admissionKey(eventId), admission);
    setFor(eventId, { admission });
  };

  const setHold = (eventId: number, hold: ActiveHold | null): void => {
    save(holdKey(eventId), hold);
    setFor(eventId, { hold });
  };

  /** The error to show for a failed call, and what it is about. */
  const failure = (error: unknown, text = describeError(error)): Partial<ShopState> => ({
    error: text,
    errorCause: isNetworkError(error) ? 'network' : null,
  });

  /** Hold seats through `request` (explicit seats or best available); `failed` words a refusal. */
  const holdVia = async (
    request: (eventId: number, admission: string | null) => Promise<Hold>,
    failed: (error: unknown) => Partial<ShopState>,
    reveal: boolean,
  ): Promise<void> => {
    const state = get();
    const { event } = state;
    if (!event || state.busy) return;
    const eventId = event.id;
    set({ busy: 'hold', error: null, errorCause: null, notice: null });
    try {
      const hold = await request(eventId, state.admission?.token ?? null);
      const active: ActiveHold = { ...hold, deadline: deadlineOf(hold.created_at, hold.expires_at, Date.now()) };
      setHold(eventId, active);
      setFor(eventId, { selected: [], busy: null, reveal: reveal ? [...hold.seats] : null });
    } catch (error) {
      const update: Partial<ShopState> = { busy: null, ...failed(error) };
      // Refused because the sale is not open: the page may still say what it loaded (a status
      // push lost to a dropped connection), so the refusal is a moment to learn it.
      if (saleRefused(error)) void get().refreshEvent();
      if (error instanceof ApiError && error.status === 403 && event.waiting_room) {
        update.errorCause = 'admission';
        // The admission is missing or lapsed: ask the waiting room where we stand.
        api.queueMe(eventId).then((p) => (p ? applyPosition(p) : setAdmission(eventId, null)), () => undefined);
      }
      setFor(eventId, update);
    }
  };

  const applyPosition = (position: QueuePosition): void => {
    const eventId = position.event_id;
    if (get().eventId !== eventId) return;
    // A user's state only moves forward (waiting → admitted → expired/closed), but answers
    // arrive out of order: the REST join reply can land after the STOMP push that admitted
    // them. A stale answer must not send an admitted user back to the queue.
    const current = get().queue;
    if (current && current.event_id === eventId && STAGE[position.state] < STAGE[current.state]) {
      return;
    }
    set({ queue: position, queueKnown: true });
    if (position.state === 'admitted') {
      if (position.admission_token && position.expires_at) {
        setAdmission(eventId, { token: position.admission_token, expiresAt: position.expires_at });
      }
      if (get().errorCause === 'admission') set({ error: null, errorCause: null });
      const offer = position.offer;
      if (offer && get().hold?.hold_id !== offer.hold_id && !get().hold) {
        // Seats came back and are on hold for us: that hold is ours to check out.
        api.getHold(offer.hold_id).then(
          (hold) => {
            if (get().eventId !== eventId || get().hold) return;
            setHold(eventId, { ...hold, deadline: deadlineOf(hold.created_at, hold.expires_at, Date.now()) });
            setFor(eventId, { reveal: [...hold.seats] });
          },
          () => undefined,
        );
      }
    } else if (get().admission) {
      setAdmission(eventId, null);
      if (position.state === 'expired') {
        set({ notice: 'Your admission expired. Join the queue again to continue.' });
      }
    }
  };

  return {
    ...EMPTY,

    async open(eventId) {
      const keptAdmission = load<Admission>(admissionKey(eventId));
      const keptHold = load<ActiveHold>(holdKey(eventId));
      set({
        ...EMPTY,
        eventId,
        admission: keptAdmission,
        hold: keptHold && keptHold.deadline.at > Date.now() ? keptHold : null,
        bought: boughtSeats(eventId),
      });
      let event: EventDetail;
      try {
        event = await api.event(eventId);
        setFor(eventId, { event, loadError: null, loadStatus: null });
      } catch (error) {
        setFor(eventId, { loadError: describeError(error), loadStatus: error instanceof ApiError ? error.status : null });
        return;
      }
      if (event.waiting_room) {
        try {
          const position = await api.queueMe(eventId);
          if (position) applyPosition(position);
          else setAdmission(eventId, null);
        } catch (error) {
          setFor(eventId, failure(error));
        } finally {
          setFor(eventId, { queueKnown: true });
        }
      }
      const hold = get().hold;
      if (hold) {
        // A kept hold is shown only while the server still says it is active.
        try {
          const fresh = await api.getHold(hold.hold_id);
          if (fresh.status !== 'active') setHold(eventId, null);
        } catch {
          setHold(eventId, null);
        }
      }
    },

    async refreshEvent() {
      const { eventId, event } = get();
      if (eventId === null || !event) return;
      try {
        const fresh = await api.event(eventId);
        const current = get().event;
        if (current) setFor(eventId, { event: keepLayout(current, fresh) });
      } catch {
        // keep what we have: the next refusal or reconnection tries again
      }
    },

    applyStatus(push) {
      const { eventId, event } = get();
      if (eventId !== push.event_id || !event) return;
      const { status, on_sale, waiting_room, sale_opens_at, sale_closes_at } = push;
      setFor(eventId, { event: { ...event, status, on_sale, waiting_room, sale_opens_at, sale_closes_at } });
    },

    leave() {
      set({ ...EMPTY });
    },

    applyPosition,

    async join() {
      const { eventId } = get();
      if (eventId === null) return;
      set({ busy: 'join', error: null, errorCause: null, notice: null });
      try {
        let proof: string | undefined;
        if ((get().event?.pow_difficulty ?? 0) > 0) {
          const issued = await api.queueChallenge(eventId);
          if (issued.difficulty > 0) {
            setFor(eventId, { proofProgress: 0 });
            proof = await solveProof(issued.challenge, issued.difficulty, (share) => setFor(eventId, { proofProgress: share }));
          }
        }
        applyPosition(await api.joinQueue(eventId, proof));
      } catch (error) {
        setFor(eventId, failure(error));
      } finally {
        setFor(eventId, { busy: null, proofProgress: null });
      }
    },

    toggleSeat(seatId, status) {
      const state = get();
      if (state.hold) {
        set({ notice: 'You are holding seats: pay for them, or release the hold to pick others.' });
        return;
      }
      const cleared = state.errorCause === 'network' ? {} : { error: null, errorCause: null };
      if (state.selected.includes(seatId)) {
        set({ selected: state.selected.filter((id) => id !== seatId), ...cleared });
        return;
      }
      if (status !== 'available') {
        set({ error: `${seatWords(state.event, seatId)} is ${status ?? 'not available'}.`, errorCause: null });
        return;
      }
      const max = state.event?.max_seats_per_user ?? 4;
      if (state.selected.length >= max) {
        set({ error: `You can pick up to ${max} seat${max === 1 ? '' : 's'} for this event.`, errorCause: null });
        return;
      }
      set({ selected: [...state.selected, seatId], ...cleared });
    },

    dropTaken(seatIds) {
      const state = get();
      // While our own hold request is out, its seats turn "held" on the live map before the
      // answer arrives: that is us, not someone else.
      if (state.busy === 'hold') return;
      const taken = state.selected.filter((id) => seatIds.includes(id));
      if (taken.length === 0) return;
      set({
        selected: state.selected.filter((id) => !taken.includes(id)),
        error: takenMessage(state.event, taken),
        errorCause: null,
      });
    },

    async placeHold() {
      const { selected, event } = get();
      if (selected.length === 0) return;
      await holdVia(
        (eventId, admission) => api.hold(eventId, selected, admission),
        (error) => {
          const conflicts = error instanceof ApiError && error.status === 409 ? (error.problem.conflicts ?? []) : [];
          if (conflicts.length === 0) return failure(error);
          return {
            error: takenMessage(event, conflicts),
            errorCause: null,
            selected: get().selected.filter((id) => !conflicts.includes(id)),
          };
        },
        false,
      );
    },

    async holdBest(request) {
      const { event, hold } = get();
      if (hold || request.count < 1) return;
      await holdVia(
        (eventId, admission) => api.holdBest(eventId, request, admission),
        (error) => failure(error, bestAvailableFailure(error, event, request)),
        true,
      );
    },

    async releaseHold() {
      const { hold, eventId } = get();
      if (!hold || eventId === null) return;
      set({ busy: 'release', error: null, errorCause: null });
      try {
        await api.release(hold.hold_id);
        setHold(eventId, null);
        setFor(eventId, { notice: 'Hold released: the seats are free for others again.' });
      } catch (error) {
        // 409: it is no longer active (expired or bought meanwhile): nothing left to release.
        if (error instanceof ApiError && (error.status === 409 || error.status === 404)) setHold(eventId, null);
        else setFor(eventId, failure(error));
      } finally {
        setFor(eventId, { busy: null });
      }
    },

    holdLapsed() {
      const { eventId, hold } = get();
      if (eventId === null || !hold) return;
      setHold(eventId, null);
      set({ notice: 'Your hold expired and the seats were released. Pick seats again to continue.', payment: null });
    },

    async pay(card, email) {
      const { hold, event, eventId } = get();
      if (!hold || !event || eventId === null || get().busy) return null;
      const previous = get().payment;
      const payment = previous && previous.card === card && previous.email === email ? previous : { key: randomKey(), card, email };
      set({ busy: 'pay', error: null, errorCause: null, notice: null, payment });
      try {
        const order = await api.checkout(hold.hold_id, card, payment.key, email);
        keepOrder(order, event);
        rememberEmail(email);
        setHold(eventId, null);
        setAdmission(eventId, null); // a purchase uses the admission up
        setFor(eventId, { busy: null, payment: null, selected: [], bought: boughtSeats(eventId) });
        return order;
      } catch (error) {
        const answered = error instanceof ApiError && error.status !== 0;
        const update: Partial<ShopState> = {
          busy: null,
          ...failure(error),
          // A definite answer settles the key; without one, a retry must reuse it so the
          // server can tell it is the same purchase.
          payment: answered ? null : payment,
        };
        if (saleRefused(error)) void get().refreshEvent();
        if (error instanceof ApiError) {
          update.error = paymentRefusal(error.status, error.message) ?? update.error;
          if (error.status === 409 && error.kind !== 'in_progress') setHold(eventId, null);
        }
        setFor(eventId, update);
        return null;
      }
    },

    dismiss() {
      set({ error: null, errorCause: null, notice: null });
    },

    connectionBack() {
      const state = get();
      if (state.eventId !== null && !state.event && state.loadStatus === 0) {
        void get().open(state.eventId); // the event never loaded for want of a network: try again
        return;
      }
      if (state.errorCause === 'network') {
        set({ error: null, errorCause: null, notice: 'The connection is back. Please try again.' });
      }
      // The sale may have been paused or reopened while we were away.
      if (state.event) void get().refreshEvent();
    },
  };
});

/** A payment the gateway refused (402) or could not make (502), in words that say what to do;
 *  null for other errors. The server's own reason is kept unless it only repeats the verdict
 *  ("Payment declined: the payment was declined"). */
export function paymentRefusal(status: number, reason: string): string | null {
  const detail = reason.trim().replace(/[.;:]+$/, '');
  if (status === 402) {
    const why = detail === '' || /declin/i.test(detail) ? '' : `: ${detail}`;
    return `Payment declined${why}. Nothing was charged; try another card.`;
  }
  if (status === 502) return `The payment did not go through${detail ? `: ${detail}` : ''}. Please try again.`;
  return null;
}

/** Whether `error` is the server refusing because the event is not on sale (paused, closed). */
export function saleRefused(error: unknown): boolean {
  return error instanceof ApiError && error.kind === 'sale_closed';
}

/** `fresh` with the layout and tiers of `current` when the seats are the same, so the seat map,
 *  built from them, is kept with its zoom and selection. */
export function keepLayout(current: EventDetail, fresh: EventDetail): EventDetail {
  const same = JSON.stringify(current.layout) === JSON.stringify(fresh.layout) && JSON.stringify(current.tiers) === JSON.stringify(fresh.tiers);
  return same ? { ...fresh, layout: current.layout, tiers: current.tiers } : fresh;
}

/** Seats of `eventId` in the orders bought in this browser. */
function boughtSeats(eventId: number): string[] {
  return keptOrders()
    .filter((o) => o.event_id === eventId)
    .flatMap((o) => o.seats);
}
