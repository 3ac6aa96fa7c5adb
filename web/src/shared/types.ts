// The REST API's bodies as the UI reads them (server/api/models.py is the source of truth;
// /api/openapi.json documents them). Instants are RFC 3339 strings in UTC.

export type SeatStatus = 'available' | 'held' | 'sold' | 'blocked';
export type EventStatus = 'draft' | 'on_sale' | 'paused' | 'closed';
export type AdmissionMode = 'fixed' | 'adaptive';
export type QueueState = 'waiting' | 'paused' | 'sold_out' | 'admitted' | 'expired' | 'closed' | 'not_joined';

/** Still in line: waiting, or waiting while the sale is paused (all held) or sold out. */
export function inLine(state: QueueState | null | undefined): boolean {
  return state === 'waiting' || state === 'paused' || state === 'sold_out';
}
export type AnnouncementLevel = 'info' | 'warning' | 'critical';

export interface Tier {
  id: number;
  name: string;
  price_cents: number;
  currency: string;
}

export interface EventSummary {
  id: number;
  name: string;
  venue: string;
  starts_at: string;
  sale_opens_at: string;
  sale_closes_at: string;
  /** The venue's IANA time zone ("Europe/Berlin"; "UTC" for events created without one): its
   *  times are shown on that clock. Read only through `eventZone` (shared/format.ts), which
   *  falls back to the browser's zone for a server that does not send it yet. */
  timezone: string;
  status: EventStatus;
  on_sale: boolean;
  waiting_room: boolean;
  seat_count: number;
  hold_ttl_s: number;
  max_seats_per_user: number;
  /** Buyers may cancel until this many hours before the start; null: not at all. */
  refund_cutoff_hours?: number | null;
  tiers: Tier[];
}

/** `/topic/events/{id}/status`: an event's sale status, at subscribe and on every change. */
export interface EventStatusPush {
  type: 'status';
  event_id: number;
  status: EventStatus;
  on_sale: boolean;
  waiting_room: boolean;
  sale_opens_at: string;
  sale_closes_at: string;
}

export interface LayoutSeat {
  id: string;
  number: number;
  tier_id: number;
  /** A wheelchair space (issue 13's seat attribute; absent from layouts that mark none). */
  accessible?: boolean;
  /** A companion seat beside an accessible one. */
  companion?: boolean;
}

export interface LayoutRow {
  name: string;
  seats: LayoutSeat[];
}

export interface LayoutSection {
  name: string;
  rows: LayoutRow[];
}

export interface Layout {
  sections: LayoutSection[];
}

export interface EventDetail extends EventSummary {
  admission_rate: number;
  max_active_shoppers: number;
  admission_mode?: AdmissionMode;
  admission_rate_min?: number;
  admission_rate_max?: number;
  /** Joining costs a proof of work of this many bits (0 or absent: none). */
  pow_difficulty?: number;
  layout: Layout;
}

export interface Guest {
  token: string;
  user: string;
  role: 'user';
  expires_at: string;
}

/** A customer signed in by e-mail (POST /api/auth/email/token). */
export interface CustomerToken extends Guest {
  email: string;
}

/** `/user/queue/position` and `GET /api/events/{id}/queue/me` (SPEC §6). */
export interface QueuePosition {
  event_id: number;
  state: QueueState;
  position: number | null;
  ahead: number | null;
  waiting_total: number;
  eta_seconds: number | null;
  admission_token?: string | null;
  expires_at?: string | null;
  /** Seats that came back, on hold for you (admitted for them). */
  offer?: { hold_id: string; seats: string[]; expires_at: string } | null;
}

/** `/topic/events/{id}/queue`, once a second. */
export interface QueueStatsMessage {
  serving: number;
  waiting: number;
  admitted_per_min: number;
}

export interface Hold {
  hold_id: string;
  event_id: number;
  seats: string[];
  status: 'active' | 'released' | 'expired' | 'purchased';
  created_at: string;
  expires_at: string;
  amount_cents: number;
  currency: string;
}

/** `POST /api/events/{id}/holds` `{"best_available": …}` (SPEC §5): the server picks `count`
 *  adjacent seats in one row. `tier` is a tier id (the server also takes a tier name). A 409
 *  with kind `no_block` (and `count`) means no such block is left. */
export interface BestAvailableRequest {
  count: number;
  tier?: number;
  section?: string;
  accessible?: boolean;
}

export interface Ticket {
  code: string;
  seat_id: string;
  status: 'valid' | 'void';
}

export interface Order {
  order_id: string;
  status: 'paid' | 'cancelled';
  event_id: number;
  amount_cents: number;
  currency: string;
  created_at: string;
  tickets: Ticket[];
  /** Where the confirmation goes. */
  email?: string | null;
  /** The buyer may cancel until then; null: not at all (the event's refund policy). */
  cancellable_until?: string | null;
  /** A cancelled order's refund. */
  refund?: 'pending' | 'refunded' | 'manual' | null;
}

export interface TicketCheck {
  code: string;
  valid: boolean;
  status: 'valid' | 'void';
  event_id: number;
  seat_id: string;
  order_id: string;
}

export interface Announcement {
  id: string;
  level: AnnouncementLevel;
  text: string;
  sent_at: string;
  /** Only in the broadcast endpoint's answer, not in the STOMP message. */
  destination?: string;
}

/** RFC 9457 problem details, with the members the API adds by `kind`. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  kind?: string;
  detail?: string;
  conflicts?: string[];
  errors?: { loc: (string | number)[]; msg: string; type: string }[];
  limit?: number;
  have?: number;
  /** `no_block`: how many seats side by side were asked for. */
  count?: number;
}

// -- admin ------------------------------------------------------------------------------------

export interface TierSpec {
  name: string;
  price_cents: number;
  currency?: string;
}

export interface SectionSpec {
  name: string;
  rows: number;
  seats_per_row: number;
  tier: string;
  row_tiers?: Record<string, string>;
}

export interface EventCreate {
  name: string;
  venue: string;
  starts_at: string;
  sale_opens_at: string;
  sale_closes_at: string;
  /** The venue's IANA time zone (absent: "UTC"); an unknown name is a 422 at `timezone`. */
  timezone?: string;
  status?: EventStatus;
  waiting_room?: boolean;
  admission_rate?: number;
  max_active_shoppers?: number;
  /** `adaptive`: the rate follows the booking core's health between min and max. */
  admission_mode?: AdmissionMode;
  admission_rate_min?: number;
  admission_rate_max?: number;
  /** Joining costs a proof of work of this many leading zero bits (0: none). */
  pow_difficulty?: number;
  hold_ttl_s?: number;
  max_seats_per_user?: number;
  /** `accessible`, `companion`: seat ids of wheelchair spaces and of companion seats. */
  layout: { tiers: TierSpec[]; sections: SectionSpec[]; accessible?: string[]; companion?: string[] };
}

export interface EventPatch {
  status?: EventStatus;
  /** The console does not change an event's zone; the API takes it. */
  timezone?: string;
  pow_difficulty?: number;
  admission_mode?: AdmissionMode;
  admission_rate_min?: number;
  admission_rate_max?: number;
  refund_cutoff_hours?: number | null;
  waiting_room?: boolean;
  admission_rate?: number;
  max_active_shoppers?: number;
  hold_ttl_s?: number;
  max_seats_per_user?: number;
}

export interface QueueStats {
  waiting: number;
  serving: number;
  active: number;
  admitted_per_min: number;
  /** Admissions per second now, and why (`fixed`, `within budget`, the signal over budget…). */
  admission_rate?: number | null;
  rate_reason?: string | null;
  /** Admissions that lapsed unused (users who left or timed out), since the queue began. */
  abandoned?: number;
  /** Time to admission: admissions per bucket; `counts` has one more bucket than `edges_s`. */
  time_to_admission?: { edges_s: number[]; counts: number[] } | null;
}

export interface EventStats {
  event_id: number;
  name: string;
  status: EventStatus;
  waiting_room: boolean;
  seats: Record<SeatStatus, number>;
  holds_active: number;
  queue: QueueStats | null;
}

export interface Stats {
  nodes: { node_id: string; connections: number; subscriptions: number }[];
  connections: number;
  subscriptions: number;
  holds_active: number;
  sales_per_min: number;
  events: EventStats[];
}

// -- the order desk ---------------------------------------------------------------------------

export interface PaymentRecord {
  payment_id: string;
  status: string;
  amount_cents: number;
  currency: string;
  provider: string;
  created_at: string;
  updated_at: string;
}

export interface RefundRecord {
  refund_id: string;
  status: 'pending' | 'refunded' | 'manual';
  amount_cents: number;
  currency: string;
  attempts: number;
  next_attempt_at: string | null;
  last_error: string | null;
  requested_by: string;
  created_at: string;
  updated_at: string;
}

export interface Delivery {
  id: number;
  kind: string;
  recipient: string | null;
  /** skipped: not sent, because the order's address was corrected first. */
  status: 'sent' | 'pending' | 'retrying' | 'skipped';
  attempts: number;
  last_error: string | null;
  /** Why it was not sent (status skipped). */
  skipped: string | null;
  next_attempt_at: string | null;
  sent_at: string | null;
  created_at: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  reason: string | null;
  details: Record<string, unknown>;
}

export interface OrderFile {
  order: Order;
  user_id: string;
  event_name: string;
  payments: PaymentRecord[];
  refund: RefundRecord | null;
  deliveries: Delivery[];
  audit: AuditEntry[];
}
