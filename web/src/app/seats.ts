// Seats in words and prices, from the event's own layout (a seat id is an opaque key: it is never
// shown to a user), and the messages about the user's seats.

import { money, sectionName } from '../shared/format';
import type { EventDetail, Tier } from '../shared/types';

export interface SeatInfo {
  section: string;
  row: string;
  number: number;
  tierId: number;
  accessible: boolean;
}

const indexes = new WeakMap<EventDetail, Map<string, SeatInfo>>();

/** seat id → where it is and its tier, built once per loaded event (layouts reach 100,000 seats). */
export function seatIndex(event: EventDetail): Map<string, SeatInfo> {
  let index = indexes.get(event);
  if (!index) {
    index = new Map();
    for (const section of event.layout.sections) {
      for (const row of section.rows) {
        for (const seat of row.seats) {
          index.set(seat.id, {
            section: section.name,
            row: row.name,
            number: seat.number,
            tierId: seat.tier_id,
            accessible: seat.accessible === true,
          });
        }
      }
    }
    indexes.set(event, index);
  }
  return index;
}

/** "Stalls row A seat 12"; a seat the layout does not know is just "a seat". */
export function seatWords(event: EventDetail | null, seatId: string): string {
  const info = event ? seatIndex(event).get(seatId) : undefined;
  return info ? `${sectionName(info.section)} row ${info.row} seat ${info.number}` : 'a seat';
}

export function tierOf(event: EventDetail, seatId: string): Tier | undefined {
  const info = seatIndex(event).get(seatId);
  return info ? event.tiers.find((t) => t.id === info.tierId) : undefined;
}

/** The price of these seats together, in the event's currency. */
export function totalOf(event: EventDetail, seatIds: readonly string[]): { cents: number; text: string } {
  const cents = seatIds.reduce((sum, id) => sum + (tierOf(event, id)?.price_cents ?? 0), 0);
  return { cents, text: money(cents, event.tiers[0]?.currency ?? 'EUR') };
}

/** "a", "a and b", "a, b and c". */
function andList(items: readonly string[]): string {
  if (items.length <= 1) return items[0] ?? '';
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** "Stalls row A seat 3", "Stalls row A seat 3 and Circle row B seat 1", "…, … and …". */
export function listInWords(event: EventDetail | null, seatIds: readonly string[]): string {
  return andList(seatIds.map((id) => seatWords(event, id)));
}

/** The seats row by row, short enough for the sticky bar: "Stalls row E seats 14 and 15",
 *  "Stalls row E seat 14; Circle row B seats 1, 2 and 3" (rows in the order first picked). */
export function seatsByRow(event: EventDetail | null, seatIds: readonly string[]): string {
  const rows = new Map<string, { name: string; numbers: number[] }>();
  let unknown = 0;
  for (const id of seatIds) {
    const info = event ? seatIndex(event).get(id) : undefined;
    if (!info) {
      unknown += 1;
      continue;
    }
    const key = `${info.section}\u0000${info.row}`;
    const row = rows.get(key) ?? { name: `${sectionName(info.section)} row ${info.row}`, numbers: [] };
    row.numbers.push(info.number);
    rows.set(key, row);
  }
  const parts = [...rows.values()].map(({ name, numbers }) => {
    const sorted = [...numbers].sort((a, b) => a - b).map(String);
    return `${name} seat${sorted.length === 1 ? '' : 's'} ${andList(sorted)}`;
  });
  if (unknown > 0) parts.push(unknown === 1 ? 'a seat' : `${unknown} seats`);
  return parts.join('; ');
}

/** The message for picked seats that someone else took (a 409, a delta, a reconnect). */
export function takenMessage(event: EventDetail | null, seatIds: readonly string[]): string {
  const names = listInWords(event, seatIds);
  return seatIds.length === 1
    ? `${names} was just taken — please pick another seat.`
    : `${names} were just taken — please pick other seats.`;
}
