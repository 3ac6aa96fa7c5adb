// Ticket codes as a door scanner sees them, verified offline with the event's public keys.
//
// An Ed25519 code is `T2.<kid>.<payload>.<signature>` (base64url): the payload is
// `<event id>|<seat id>|<nonce>`, signed as the text `T2.<kid>.<payload>`. A legacy code
// (`<payload>.<mac>`, HMAC under the server's secret) cannot be checked without the secret: offline
// it admits only when the check-in list names its ticket id as valid. A ticket id is the first 96
// bits of SHA-256 of the code, base64url (the server's booking.ticket_keys.ticket_id).

export interface PublicKeyInfo {
  kid: string;
  public_key: string;
  created_at: string;
  retired_at: string | null;
}

export interface CheckInList {
  event_id: number;
  generated_at: string;
  reentry: boolean;
  valid: string[];
  void: string[];
  used: string[];
  keys: PublicKeyInfo[];
}

export type Reason =
  | 'admitted'
  | 'already_used'
  | 'void'
  | 'wrong_event'
  | 'forged'
  | 'retired_key'
  | 'exited'
  | 'not_inside';

export interface ParsedCode {
  kind: 'ed25519' | 'legacy';
  kid?: string;
  eventId?: number;
  seatId?: string;
  signed?: string;
  signature?: Uint8Array<ArrayBuffer>;
}

export function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const raw = atob(padded);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

export function toBase64Url(bytes: Uint8Array): string {
  let raw = '';
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** What a code says, without checking it; `null` for what is no ticket code at all. */
export function parseCode(code: string): ParsedCode | null {
  const parts = code.split('.');
  if (parts.length === 4 && parts[0] === 'T2') {
    try {
      const [, kid = '', payload = '', signature = ''] = parts;
      const [event, seat] = new TextDecoder().decode(fromBase64Url(payload)).split('|');
      const eventId = Number(event);
      if (!Number.isInteger(eventId) || !seat) return null;
      return { kind: 'ed25519', kid, eventId, seatId: seat, signed: `T2.${kid}.${payload}`, signature: fromBase64Url(signature) };
    } catch {
      return null;
    }
  }
  if (parts.length === 2 && parts[0] && parts[1]) return { kind: 'legacy' };
  return null;
}

export async function ticketId(code: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(code)));
  return toBase64Url(digest.slice(0, 12));
}

async function verifySignature(key: PublicKeyInfo, parsed: ParsedCode): Promise<boolean> {
  try {
    const imported = await crypto.subtle.importKey('raw', fromBase64Url(key.public_key), { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, imported, parsed.signature ?? new Uint8Array(0), new TextEncoder().encode(parsed.signed));
  } catch {
    return false;
  }
}

export interface OfflineVerdict {
  reason: Reason;
  ticketId: string;
  seatId?: string;
}

/** The offline answer for `code` at `eventId`'s door, from the cached list and what this
 *  scanner let in since (`usedHere`) and let out since (`leftHere`, exit scans). */
export async function verifyOffline(
  code: string,
  eventId: number,
  list: CheckInList,
  usedHere: Set<string>,
  leftHere: Set<string> = new Set(),
): Promise<OfflineVerdict> {
  const id = await ticketId(code);
  const parsed = parseCode(code);
  if (parsed === null) return { reason: 'forged', ticketId: id };
  if (parsed.kind === 'ed25519') {
    const key = list.keys.find((k) => k.kid === parsed.kid);
    if (!key || !(await verifySignature(key, parsed))) return { reason: 'forged', ticketId: id };
    if (parsed.eventId !== eventId) return { reason: 'wrong_event', ticketId: id, seatId: parsed.seatId };
  } else if (!list.valid.includes(id) && !list.void.includes(id)) {
    return { reason: 'forged', ticketId: id };
  }
  const seatId = parsed.seatId;
  if (list.void.includes(id)) return { reason: 'void', ticketId: id, seatId };
  if (usedHere.has(id) || (list.used.includes(id) && !leftHere.has(id))) return { reason: 'already_used', ticketId: id, seatId };
  return { reason: 'admitted', ticketId: id, seatId };
}

/** The offline answer to an exit scan (re-entry events): `exited` for a holder inside,
 *  `not_inside` for one outside, else why the code is no ticket of this door. */
export async function verifyExitOffline(
  code: string,
  eventId: number,
  list: CheckInList,
  usedHere: Set<string>,
  leftHere: Set<string>,
): Promise<OfflineVerdict> {
  const verdict = await verifyOffline(code, eventId, list, usedHere, leftHere);
  if (verdict.reason === 'already_used') return { ...verdict, reason: 'exited' };
  if (verdict.reason === 'admitted') return { ...verdict, reason: 'not_inside' };
  return verdict;
}

const WORDS: Record<Reason, string> = {
  admitted: 'Admitted',
  already_used: 'Already used',
  void: 'Void — order cancelled or ticket reissued',
  wrong_event: 'Wrong event',
  forged: 'Not a genuine ticket',
  retired_key: 'Expired ticket key',
  exited: 'Exit recorded',
  not_inside: 'Not inside',
};

export function reasonText(reason: Reason): string {
  return WORDS[reason];
}
